"""The two calls of the new mount API that move a mount between mount
namespaces: ``clone_tree`` (``open_tree(OPEN_TREE_CLONE)``: a detached
copy of the mount at a path, held by an fd) and ``attach_tree``
(``move_mount`` of such an fd onto a path of the caller's current mount
namespace). A bind mount(2) cannot take a source from another mount
namespace; a detached clone can be attached anywhere its holder has
CAP_SYS_ADMIN over. ctypes wrappers only, no policy; to be folded into the
planned ``virt/kernel`` package, the one seam to the kernel.
"""

from __future__ import annotations

import ctypes
import os

_SYS_OPEN_TREE, _SYS_MOVE_MOUNT = 428, 429  # the same on every arch
_OPEN_TREE_CLONE = 1
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def clone_tree(path: str) -> int:
    """An fd holding a detached clone of the mount at ``path``."""
    return _check(_libc.syscall(
        ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(_AT_FDCWD),
        path.encode(), ctypes.c_uint(_OPEN_TREE_CLONE | os.O_CLOEXEC)),
        f"open_tree {path}")


def attach_tree(tree: int, target: str) -> None:
    """Mount the detached clone ``tree`` on ``target`` (not following a
    final symlink)."""
    _check(_libc.syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
        ctypes.c_int(_AT_FDCWD), target.encode(),
        ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount {target}")
