"""The stream a cold migration carries: a guest's own files as one tar.

``pack`` writes named trees (the root's overlay upper directory, the
console log, the config drive) as a POSIX (pax) tar stream, each under its
name, with numeric owners, modes, times, overlay whiteouts (character
devices 0:0) and the extended attributes that give the upper layer its
meaning (``trusted.overlay.opaque``, file capabilities, ``user.*``), never
following a symlink. ``unpack`` reads such a stream into the same names on
the destination as it arrives (nothing is held in memory) and trusts
nothing in it: a member's name must be relative, free of ``..`` and under
one of the expected names; every directory on the way is opened with
``O_NOFOLLOW`` from the target's own descriptor, so no symlink -- one the
stream made a moment before, or one already there -- leads outside; files
are created with ``O_EXCL``; devices other than whiteouts, and xattrs
outside the list above, are refused. A refused member stops the unpack
with ``HostileImage`` and the caller discards what was written.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from typing import BinaryIO, Iterator

from pyct_driver import exception

_CHUNK = 1 << 20
_XATTR = "SCHILY.xattr."
_XATTRS_KEPT = ("trusted.overlay.opaque", "security.capability")
_XATTR_PREFIXES = ("user.",)


def _xattr_ok(name: str) -> bool:
    return name in _XATTRS_KEPT or name.startswith(_XATTR_PREFIXES)


def _walk(path: str, arcname: str) -> Iterator[tuple[str, str]]:
    """``(path, arcname)`` of ``path`` and, for a directory, all below
    it (parents first; symlinks are entries, never followed)."""
    yield path, arcname
    if os.path.isdir(path) and not os.path.islink(path):
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            yield from _walk(entry.path, f"{arcname}/{entry.name}")


def _xattrs(path: str) -> dict[str, str]:
    found = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return found  # a file system without xattrs: nothing to keep
    for name in names:
        if _xattr_ok(name):
            value = os.getxattr(path, name, follow_symlinks=False)
            found[_XATTR + name] = value.decode("utf-8", "surrogateescape")
    return found


def pack(trees: dict[str, str], sink: BinaryIO) -> None:
    """Write each existing path of ``trees`` (name -> path) below its
    name to ``sink`` as one tar stream."""
    try:
        with tarfile.open(fileobj=sink, mode="w|",
                          format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = _CHUNK  # not tarfile's 16 KiB copies
            for name, top in sorted(trees.items()):
                if not os.path.lexists(top):
                    continue
                for path, arcname in _walk(top, name):
                    info = tar.gettarinfo(path, arcname)
                    info.uname = info.gname = ""
                    info.pax_headers.update(_xattrs(path))
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
    except OSError as err:
        raise exception.VirtError(reason=f"packing {err}") from err


def _parts(name: str, roots: dict[str, str]) -> tuple[str, list[str]]:
    """The target root and the path components of member ``name``;
    HostileImage for a name that could leave it."""
    parts = name.split("/")
    while parts and parts[-1] in ("", "."):
        parts.pop()  # "dir/" and "dir/." name dir
    if (not parts or name.startswith("/") or "\0" in name
            or any(p in ("", ".", "..") for p in parts)
            or parts[0] not in roots):
        raise exception.HostileImage(
            image="migration stream", reason=f"member {name!r} refused")
    return roots[parts[0]], parts[1:]


@contextlib.contextmanager
def _parent(top: str, parts: list[str]) -> Iterator[int]:
    """A descriptor of the directory holding ``parts[-1]``, every step
    opened without following a symlink."""
    fd = os.open(top, os.O_DIRECTORY | os.O_RDONLY)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_DIRECTORY | os.O_RDONLY
                          | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _write(tar: tarfile.TarFile, info: tarfile.TarInfo, fd: int,
           leaf: str) -> None:
    out = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                  | os.O_NOFOLLOW, 0o600, dir_fd=fd)
    try:
        data = tar.extractfile(info)
        while chunk := data.read(_CHUNK):
            view = memoryview(chunk)
            while view:  # a write may take less than it was given
                view = view[os.write(out, view):]
    finally:
        os.close(out)


def _make(tar: tarfile.TarFile, info: tarfile.TarInfo, fd: int, leaf: str,
          roots: dict[str, str]) -> None:
    if info.isdir():
        try:
            os.mkdir(leaf, 0o700, dir_fd=fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(leaf, dir_fd=fd,
                                        follow_symlinks=False).st_mode):
                raise
    elif info.isreg():
        _write(tar, info, fd, leaf)
    elif info.issym():
        os.symlink(info.linkname, leaf, dir_fd=fd)  # never followed here
    elif info.islnk():
        top, parts = _parts(info.linkname, roots)
        if not parts:
            raise exception.HostileImage(image="migration stream",
                                         reason="link to a tree's top")
        with _parent(top, parts) as src:
            os.link(parts[-1], leaf, src_dir_fd=src, dst_dir_fd=fd,
                    follow_symlinks=False)
    elif info.ischr() and info.devmajor == 0 and info.devminor == 0:
        os.mknod(leaf, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=fd)
    elif info.isfifo():
        os.mkfifo(leaf, 0o600, dir_fd=fd)
    else:
        raise exception.HostileImage(
            image="migration stream",
            reason=f"member {info.name!r} is a device or unknown type")


def _finish(info: tarfile.TarInfo, fd: int, leaf: str) -> None:
    """Owner, then mode (a chown clears set-id bits), xattrs, times."""
    os.chown(leaf, info.uid, info.gid, dir_fd=fd, follow_symlinks=False)
    if info.issym():
        return
    os.chmod(leaf, info.mode & 0o7777, dir_fd=fd)
    via = f"/proc/self/fd/{fd}/{leaf}"
    for key, value in info.pax_headers.items():
        if key.startswith(_XATTR):
            name = key[len(_XATTR):]
            if not _xattr_ok(name):
                raise exception.HostileImage(
                    image="migration stream",
                    reason=f"xattr {name!r} on {info.name!r} refused")
            os.setxattr(via, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
    os.utime(leaf, (info.mtime, info.mtime), dir_fd=fd)


def unpack(source: BinaryIO, roots: dict[str, str]) -> int:
    """Read a ``pack`` stream from ``source`` into ``roots`` (name ->
    existing directory; a tree's top entry is that directory itself);
    returns the members written."""
    count = 0
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for info in tar:
                top, parts = _parts(info.name, roots)
                if not parts:  # the tree's top: its own attributes
                    if info.isdir():
                        with _parent(top, [".", "."]) as fd:
                            _finish(info, fd, ".")
                        continue
                    top, parts = os.path.dirname(top), [
                        os.path.basename(top)]
                with _parent(top, parts) as fd:
                    _make(tar, info, fd, parts[-1], roots)
                    _finish(info, fd, parts[-1])
                count += 1
            # the rest (tar's end blocks) belongs to the stream's digest
            while source.read(_CHUNK):
                pass
    except (OSError, tarfile.TarError) as err:
        raise exception.HostileImage(image="migration stream",
                                     reason=str(err)) from err
    return count
