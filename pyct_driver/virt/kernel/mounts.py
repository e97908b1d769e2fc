"""mount(2), umount2(2), pivot_root(2) and the new mount API.

The mount flag constants are declared here and nowhere else. The new
mount API (Linux 5.2+; ``mount_setattr`` 5.12+) works on detached mounts
held as fds: ``open_tree`` clones a mount (or tree), ``mount_setattr``
changes its attributes (read-only, an id map), ``move_mount`` attaches
it -- onto a path or onto a held directory fd, so no rename can move the
mount point -- and ``fs_mount`` builds a file system from
``fsopen``/``fsconfig``/``fsmount`` with no one-page limit on its
options. Every call raises ``OSError`` with errno; callers wrap it in
their own error naming the step.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Iterable

from pyct_driver.virt.kernel import libc

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MNT_DETACH = 0x2

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x00100000
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6


class MountAttr(ctypes.Structure):
    """struct mount_attr (linux/mount.h), for ``mount_setattr``."""

    _fields_ = [(n, ctypes.c_uint64) for n in
                ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    libc.current().call("mount", _enc(source), target.encode(),
                        _enc(fstype), flags, _enc(data),
                        what=f"mount {fstype or source} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    libc.current().call("umount2", target.encode(), flags,
                        what=f"umount {target}")


def umount_lazily_if_busy(target: str) -> bool:
    """Unmount ``target``; detach it if still busy (a guest process may
    linger); nothing if it is not a mount point (already done). True when
    it was detached: the file system lives on until its last user goes."""
    try:
        umount2(target)
    except OSError as err:
        if err.errno == errno.EINVAL:
            return False
        if err.errno != errno.EBUSY:
            raise
        umount2(target, MNT_DETACH)
        return True
    return False


def pivot_root(new_root: str, put_old: str) -> None:
    libc.current().syscall("pivot_root", new_root.encode(),
                           put_old.encode())


def open_tree(path: str, flags: int, dirfd: int = AT_FDCWD) -> int:
    """A detached clone (``OPEN_TREE_CLONE``, ``AT_RECURSIVE``) of the
    mount at ``path``; returns its fd (close-on-exec, the caller's)."""
    return libc.current().syscall(
        "open_tree", dirfd, path.encode(), flags | os.O_CLOEXEC,
        what=f"open_tree {path}")


def move_mount(from_fd: int, to_dirfd: int, to_path: str = "",
               flags: int = MOVE_MOUNT_F_EMPTY_PATH) -> None:
    """Attach the detached mount ``from_fd`` at ``to_path`` (relative to
    ``to_dirfd``; with ``MOVE_MOUNT_T_EMPTY_PATH``: onto ``to_dirfd``)."""
    libc.current().syscall("move_mount", from_fd, b"", to_dirfd,
                           to_path.encode(), flags,
                           what=f"move_mount to {to_path or to_dirfd}")


def mount_setattr(fd: int, attr_set: int, userns_fd: int = 0) -> None:
    """Set attributes on the mount ``fd`` (an id map with
    ``MOUNT_ATTR_IDMAP`` and ``userns_fd``)."""
    attr = MountAttr(attr_set, 0, 0, userns_fd)
    libc.current().syscall("mount_setattr", fd, b"", AT_EMPTY_PATH,
                           libc.pointer(attr), ctypes.sizeof(attr),
                           what="mount_setattr")


def clone_with_attrs(path: str, attr_set: int, userns_fd: int = 0,
                     recursive: bool = False) -> int:
    """``open_tree`` a clone of ``path`` and set ``attr_set`` on it (none
    when 0); returns the detached clone's fd, closed on failure."""
    flags = OPEN_TREE_CLONE | (AT_RECURSIVE if recursive else 0)
    tree = open_tree(path, flags)
    try:
        if attr_set:
            mount_setattr(tree, attr_set, userns_fd)
    except BaseException:
        os.close(tree)
        raise
    return tree


def fs_mount(fstype: str, options: Iterable[tuple[str, str | int]],
             target: str) -> None:
    """Mount a new ``fstype`` at ``target`` through the new mount API:
    each option a string or (an int) an fd, in order; repeated keys
    (overlayfs' ``lowerdir+``) are fine."""
    mnt = new_mount(fstype, options)
    try:
        move_mount(mnt, AT_FDCWD, target)
    finally:
        os.close(mnt)


def new_mount(fstype: str, options: Iterable[tuple[str, str | int]]) -> int:
    """A new, detached ``fstype`` mount (``fs_mount``'s options); returns
    its fd (close-on-exec, the caller's)."""
    lib = libc.current()
    fs = lib.syscall("fsopen", fstype.encode(), FSOPEN_CLOEXEC,
                     what=f"fsopen {fstype}")
    try:
        for key, val in options:
            if isinstance(val, int):
                lib.syscall("fsconfig", fs, FSCONFIG_SET_FD, key.encode(),
                            None, val, what=f"fsconfig {key}=fd {val}")
            else:
                lib.syscall("fsconfig", fs, FSCONFIG_SET_STRING,
                            key.encode(), val.encode(), 0,
                            what=f"fsconfig {key}={val}")
        lib.syscall("fsconfig", fs, FSCONFIG_CMD_CREATE, None, None, 0,
                    what=f"fsconfig create {fstype}")
        return lib.syscall("fsmount", fs, FSMOUNT_CLOEXEC, 0,
                           what=f"fsmount {fstype}")
    finally:
        os.close(fs)
