"""Capturing a guest's changes: its overlay upper directory as one OCI
layer tar.

The upper directory holds exactly what the guest changed over its image's
layers, so the layer costs what the change costs, whatever the base's
size. It is the guest's (tenant-controlled) tree, so it is read without
ever following a link: every directory is opened ``O_NOFOLLOW`` from its
parent's fd, every file ``O_NOFOLLOW|O_NONBLOCK`` and checked to be the
regular file it was listed as; nothing is written beside it. overlayfs's
own marks become OCI's: a 0/0 character device is the whiteout
``.wh.<name>``, an opaque directory (``trusted.overlay.opaque``) gets a
``.wh..wh..opq`` entry. Owners are written as the guest sees them (a
user-namespaced guest's host ids minus its range's start; an id outside
the range, which the guest cannot have made, becomes 65534). Sockets are
skipped (they do not survive a copy on any system); device nodes, names
an OCI layer would read as whiteouts (``.wh.``), overlay redirects and
metacopy files are refused with ``SnapshotError``, as is a tree past the
byte or file limits (a sparse file counts its apparent size: a tar holds
the zeros). Extended attributes are not carried (file capabilities would
be privilege). The image store unpacks the result with the same rules as
any upload (``unpack``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import tarfile
from typing import BinaryIO

from pyct_driver import exception

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_REFUSED_XATTRS = ("trusted.overlay.redirect", "user.overlay.redirect",
                   "trusted.overlay.metacopy", "user.overlay.metacopy")
_NOBODY = 65534
_CHUNK = 1 << 20


@dataclasses.dataclass
class Captured:
    """What a capture wrote: the layer's sha256 (hex), its size in bytes
    and the counts of what it held or left out."""

    digest: str = ""
    size: int = 0
    files: int = 0
    data_bytes: int = 0
    whiteouts: int = 0
    sockets_skipped: int = 0


class _Hashing:
    """A write-through file that hashes and counts what it writes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


class _Walker:
    def __init__(self, tar: tarfile.TarFile, id_range: tuple | None,
                 max_bytes: int, max_files: int, out: Captured) -> None:
        self.tar, self.id_range, self.out = tar, id_range, out
        self.max_bytes, self.max_files = max_bytes, max_files
        self.inodes: dict[tuple[int, int], str] = {}

    def refuse(self, name: str, why: str) -> exception.SnapshotError:
        return exception.SnapshotError(reason=f"{name or '/'}: {why}")

    def guest_id(self, host_id: int) -> int:
        if self.id_range is None:
            return host_id
        start, count = self.id_range
        return host_id - start if start <= host_id < start + count \
            else _NOBODY

    def info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = self.guest_id(st.st_uid), self.guest_id(st.st_gid)
        ti.mtime = max(0, int(st.st_mtime))
        return ti

    def count(self, name: str) -> None:
        self.out.files += 1
        if self.out.files > self.max_files:
            raise self.refuse(name, f"more than {self.max_files} files")

    def check_xattrs(self, fd: int, name: str) -> bool:
        """Whether the directory/file is opaque; refuse redirects."""
        try:
            attrs = os.listxattr(fd)
        except OSError:
            return False
        for key in _REFUSED_XATTRS:
            if key in attrs:
                raise self.refuse(name, f"overlay {key} is not supported")
        for key in _OPAQUE:
            if key in attrs and os.getxattr(fd, key) == b"y":
                return True
        return False

    def walk(self, dir_fd: int, prefix: str) -> None:
        for entry in sorted(os.listdir(dir_fd)):
            name = f"{prefix}{entry}"
            if entry.startswith(".wh."):
                raise self.refuse(name, "a name an OCI layer reads as a "
                                  "whiteout")
            st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            self.count(name)
            if stat.S_ISDIR(st.st_mode):
                self.directory(dir_fd, entry, name, st)
            elif stat.S_ISREG(st.st_mode):
                self.regular(dir_fd, entry, name, st)
            elif stat.S_ISLNK(st.st_mode):
                ti = self.info(name, st)
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(entry, dir_fd=dir_fd)
                self.tar.addfile(ti)
            elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                head, _, base = name.rpartition("/")
                self.tar.addfile(self.info(
                    f"{head}/.wh.{base}" if head else f".wh.{base}", st))
                self.out.whiteouts += 1
            elif stat.S_ISSOCK(st.st_mode):
                self.out.sockets_skipped += 1
            elif stat.S_ISFIFO(st.st_mode):
                ti = self.info(name, st)
                ti.type = tarfile.FIFOTYPE
                self.tar.addfile(ti)
            else:
                raise self.refuse(name, "device nodes cannot be snapshotted")

    def directory(self, parent: int, entry: str, name: str,
                  st: os.stat_result) -> None:
        fd = os.open(entry, _DIR_FLAGS, dir_fd=parent)
        try:
            ti = self.info(name, st)
            ti.type = tarfile.DIRTYPE
            self.tar.addfile(ti)
            if self.check_xattrs(fd, name):
                self.tar.addfile(self.info(f"{name}/.wh..wh..opq", st))
                self.out.whiteouts += 1
            self.walk(fd, f"{name}/")
        finally:
            os.close(fd)

    def regular(self, parent: int, entry: str, name: str,
                st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.inodes:
            ti = self.info(name, st)
            ti.type = tarfile.LNKTYPE
            ti.linkname = self.inodes[key]
            self.tar.addfile(ti)
            return
        self.out.data_bytes += st.st_size
        if self.out.data_bytes > self.max_bytes:
            raise self.refuse(name, f"the changes hold more than "
                              f"{self.max_bytes} bytes (sparse files "
                              "count their apparent size)")
        fd = os.open(entry, _FILE_FLAGS, dir_fd=parent)
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) \
                    != key or fst.st_size != st.st_size:
                raise self.refuse(name, "changed while it was captured")
            self.check_xattrs(fd, name)
            ti = self.info(name, fst)
            ti.size = fst.st_size
            with os.fdopen(os.dup(fd), "rb", buffering=_CHUNK) as f:
                self.tar.addfile(ti, f)
        finally:
            os.close(fd)
        if st.st_nlink > 1:
            self.inodes[key] = name


def capture(upper: str, dest: str, id_range: tuple[int, int] | None,
            max_bytes: int, max_files: int) -> Captured:
    """Write the changes under ``upper`` as an uncompressed layer tar at
    ``dest`` (created, 0600); its digest, size and counts."""
    out = Captured()
    try:
        root = os.open(upper, _DIR_FLAGS)
    except OSError as err:
        raise exception.SnapshotError(reason=f"no upper directory: {err}") \
            from err
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                 os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=_CHUNK) as raw:
            sink = _Hashing(raw)
            with tarfile.open(fileobj=sink, mode="w|",
                              format=tarfile.GNU_FORMAT,
                              errors="surrogateescape") as tar:
                _Walker(tar, id_range, max_bytes, max_files, out).walk(
                    root, "")
            raw.flush()
            os.fsync(raw.fileno())
    except OSError as err:
        raise exception.SnapshotError(reason=f"capturing {upper}: {err}") \
            from err
    finally:
        os.close(root)
    out.digest, out.size = sink.sha.hexdigest(), sink.size
    return out
