"""Safe extraction of one tar stream into a directory: the image's first
contact with the host.

An image archive is tenant-controlled input, so every member is checked
before it touches the disk: names are relative with no ``..``; parent
directories are walked one component at a time with ``O_NOFOLLOW`` from a
directory fd, following only symlinks that stay beneath the destination
(``RESOLVE_BENEATH`` semantics, done by hand so it works on any kernel);
hard links must name a regular file this archive already wrote; device
nodes and FIFOs are skipped and counted; setuid/setgid bits are dropped;
member count, path depth and bytes are bounded. An OCI/docker layer's
``.wh.`` entries become overlayfs whiteouts. Any refusal raises
``HostileImage`` naming the member, and a destination this call created is
removed again.
"""

from __future__ import annotations

import bz2
import dataclasses
import errno
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
from typing import BinaryIO

from pyct_driver import exception

_CHUNK = 1 << 20
_MAX_LINKS = 40
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one archive; the defaults fit a large distro image."""

    max_files: int = 1_000_000
    max_bytes: int = 64 << 30
    max_depth: int = 128


@dataclasses.dataclass
class UnpackResult:
    """What an extraction wrote and what it neutralised."""

    files: int = 0
    bytes: int = 0
    devices_skipped: int = 0
    whiteouts: int = 0


def open_stream(fileobj: BinaryIO, image: str = "") -> BinaryIO:
    """Wrap ``fileobj`` in the decompressor its magic bytes name."""
    buf = fileobj if hasattr(fileobj, "peek") else \
        io.BufferedReader(fileobj, _CHUNK)  # type: ignore[arg-type]
    magic = buf.peek(6)[:6]
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buf, mode="rb")
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(buf)
    if magic[:3] == b"BZh":
        return bz2.BZ2File(buf)
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        raise exception.InvalidImage(image=image,
                                     reason="zstd archives are not supported")
    return buf


def split_name(name: str, image: str, what: str = "member") -> list[str]:
    """Turn an archive path into checked components (empty list = root)."""
    if "\x00" in name:
        raise exception.HostileImage(image=image,
                                     reason=f"{what} {name!r} contains NUL")
    if name.startswith("/"):
        raise exception.HostileImage(
            image=image, reason=f"{what} {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise exception.HostileImage(
            image=image, reason=f"{what} {name!r} contains '..'")
    return parts


class _Extractor:
    """One extraction: the destination's root fd and the running totals."""

    def __init__(self, root_fd: int, image: str, limits: Limits,
                 whiteouts: bool) -> None:
        self.root_fd = root_fd
        self.image = image
        self.limits = limits
        self.whiteouts = whiteouts
        self.result = UnpackResult()
        self.declared = 0
        self.regular: set[tuple[str, ...]] = set()
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []
        self.chown = os.geteuid() == 0

    def hostile(self, member: str, reason: str) -> exception.HostileImage:
        return exception.HostileImage(
            image=self.image, reason=f"member {member!r}: {reason}")

    # -- walking ----------------------------------------------------------

    def open_dir(self, parts: list[str], member: str,
                 create: bool = True) -> int:
        """A new fd for the directory ``parts`` beneath the root, creating
        missing directories; symlinks are followed only while they stay
        beneath the root, anything else is hostile."""
        stack = [os.dup(self.root_fd)]
        todo = list(parts)
        links = 0
        try:
            while todo:
                comp = todo.pop(0)
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) == 1:
                        raise self.hostile(member, "path escapes the "
                                           "destination through a symlink")
                    os.close(stack.pop())
                    continue
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=stack[-1])
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=stack[-1])
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=stack[-1])
                except OSError as err:
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(comp, dir_fd=stack[-1],
                                 follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise self.hostile(member, f"parent {comp!r} is not "
                                           "a directory") from err
                    target = os.readlink(comp, dir_fd=stack[-1])
                    links += 1
                    if target.startswith("/") or links > _MAX_LINKS:
                        raise self.hostile(
                            member, f"written through symlink {comp!r} -> "
                            f"{target!r}, which points outside the "
                            "destination") from err
                    todo[:0] = target.split("/")
                    continue
                stack.append(fd)
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    def clear(self, dir_fd: int, name: str, keep_dir: bool) -> None:
        """Remove whatever is at ``name`` so a member can take its place."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)

    # -- members ----------------------------------------------------------

    def check_header(self, ti: tarfile.TarInfo) -> list[str]:
        self.result.files += 1
        if self.result.files > self.limits.max_files:
            raise self.hostile(ti.name, "more than "
                               f"{self.limits.max_files} members")
        parts = split_name(ti.name, self.image)
        if len(parts) > self.limits.max_depth:
            raise self.hostile(ti.name, f"deeper than "
                               f"{self.limits.max_depth} components")
        if ti.isreg():
            self.declared += ti.size
            if self.declared > self.limits.max_bytes:
                raise self.hostile(ti.name, "archive declares more than "
                                   f"{self.limits.max_bytes} bytes")
        return parts

    def member(self, tar: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        parts = self.check_header(ti)
        if not parts:
            if ti.isdir():
                self.dirs.append((parts, ti))
                return
            raise self.hostile(ti.name, "non-directory at the root")
        if ti.ischr() or ti.isblk() or ti.isfifo():
            self.result.devices_skipped += 1
            return
        base = parts[-1]
        if self.whiteouts and base.startswith(_WHITEOUT):
            self.whiteout(parts, ti.name)
            return
        parent = self.open_dir(parts[:-1], ti.name)
        try:
            if ti.isdir():
                self.clear(parent, base, keep_dir=True)
                try:
                    os.mkdir(base, 0o700, dir_fd=parent)
                except FileExistsError:
                    pass
                self.dirs.append((parts, ti))
                return
            self.clear(parent, base, keep_dir=False)
            self.regular.discard(tuple(parts))
            if ti.isreg():
                self.write_file(tar, ti, parent, base)
                self.regular.add(tuple(parts))
            elif ti.issym():
                os.symlink(ti.linkname, base, dir_fd=parent)
                self.set_meta(parent, base, ti, link=True)
            elif ti.islnk():
                self.hardlink(ti, parent, base)
                self.regular.add(tuple(parts))
            else:
                raise self.hostile(ti.name, f"unsupported type {ti.type!r}")
        finally:
            os.close(parent)

    def write_file(self, tar: tarfile.TarFile, ti: tarfile.TarInfo,
                   parent: int, base: str) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            src = tar.extractfile(ti)
            while src is not None:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                self.result.bytes += len(chunk)
                if self.result.bytes > self.limits.max_bytes:
                    raise self.hostile(ti.name, "more than "
                                       f"{self.limits.max_bytes} bytes "
                                       "written")
                _write_all(fd, chunk)
            self.set_meta(fd, None, ti)
        finally:
            os.close(fd)

    def hardlink(self, ti: tarfile.TarInfo, parent: int, base: str) -> None:
        target = split_name(ti.linkname, self.image, "hardlink target")
        if tuple(target) not in self.regular:
            raise self.hostile(ti.name, f"hardlink to {ti.linkname!r}, which "
                               "is not a regular file of this archive")
        tparent = self.open_dir(target[:-1], ti.name, create=False)
        try:
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)

    def whiteout(self, parts: list[str], member: str) -> None:
        parent = self.open_dir(parts[:-1], member)
        try:
            base = parts[-1]
            self.result.whiteouts += 1
            if base == _OPAQUE:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
            elif base.startswith(_WHITEOUT + _WHITEOUT):
                return  # aufs/overlay bookkeeping (.wh..wh.plnk...): no use
            else:
                name = base[len(_WHITEOUT):]
                self.clear(parent, name, keep_dir=False)
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        finally:
            os.close(parent)

    def set_meta(self, fd: int, name: str | None, ti: tarfile.TarInfo,
                 link: bool = False) -> None:
        """Owner, mode and mtime: of the open ``fd``, or of the symlink
        ``name`` in directory ``fd`` (never followed)."""
        kw = {} if name is None else {"dir_fd": fd, "follow_symlinks": False}
        target = fd if name is None else name
        if self.chown:
            os.chown(target, ti.uid, ti.gid, **kw)
        if not link:
            # After chown, and without the setuid/setgid bits: the guest
            # gets no setuid program from an image we unpacked.
            os.chmod(target, ti.mode & 0o1777)
        mtime = max(0, min(int(ti.mtime), 1 << 40)) * 10**9
        os.utime(target, ns=(mtime, mtime), **kw)

    def finish_dirs(self) -> None:
        # Deepest first, after all children exist, so mtimes stick; a
        # directory a later member replaced is left alone.
        for parts, ti in sorted(self.dirs, key=lambda d: -len(d[0])):
            if not parts:
                fd = os.dup(self.root_fd)
            else:
                parent = self.open_dir(parts[:-1], ti.name, create=False)
                try:
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
                except OSError:
                    continue
                finally:
                    os.close(parent)
            try:
                self.set_meta(fd, None, ti)
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unpack(fileobj: BinaryIO, dest: str, *, image: str = "",
           limits: Limits = Limits(), whiteouts: bool = False,
           existing: bool = False) -> UnpackResult:
    """Extract the tar stream ``fileobj`` (plain, gzip, xz or bzip2) into
    ``dest``.

    ``dest`` is created (and removed again on any failure) unless
    ``existing`` is true, when members are laid over what is there.
    ``whiteouts`` turns ``.wh.`` members into overlayfs whiteouts.
    """
    if not existing:
        try:
            os.mkdir(dest, 0o755)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"cannot create {dest}: {err}") from err
    try:
        root_fd = os.open(dest, _DIR_FLAGS)
    except OSError as err:
        raise exception.RootfsError(reason=f"cannot open {dest}: {err}") \
            from err
    ex = _Extractor(root_fd, image, limits, whiteouts)
    current = "<header>"
    try:
        stream = open_stream(fileobj, image)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for ti in tar:
                current = ti.name
                ex.member(tar, ti)
            ex.finish_dirs()
        return ex.result
    except BaseException as err:
        if not existing:
            shutil.rmtree(dest, ignore_errors=True)
        if isinstance(err, exception.PyctError):
            raise
        if isinstance(err, (tarfile.TarError, EOFError, lzma.LZMAError,
                            gzip.BadGzipFile, OSError, ValueError,
                            OverflowError)):
            if isinstance(err, OSError) and err.errno in (
                    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                raise exception.RootfsError(
                    reason=f"unpacking {current!r} into {dest}: {err}") \
                    from err
            raise exception.InvalidImage(
                image=image, reason=f"bad archive at member {current!r}: "
                f"{err}") from err
        raise
    finally:
        os.close(root_fd)
