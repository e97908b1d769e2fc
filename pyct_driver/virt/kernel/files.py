"""File calls Python's os module lacks: openat2(2), fallocate(2) with a
mode, and statfs(2)'s file system type.

``openat2`` with ``RESOLVE_IN_ROOT`` is how every host-side write into a
guest's root resolves its path (``virt.rootfs.inject``): the kernel
keeps ``..`` and symlinks inside the root. It raises ``OSError`` with
errno (ENOSYS before Linux 5.6), like every call here.
"""

from __future__ import annotations

import ctypes
import math
import os
import select
import struct
from typing import Iterable

from pyct_driver.virt.kernel import libc

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
FALLOC_FL_UNSHARE_RANGE = 0x40
CGROUP2_SUPER_MAGIC = 0x63677270


class OpenHow(ctypes.Structure):
    """struct open_how (linux/openat2.h)."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_OPENAT2_TRIES = 64


def openat2(dirfd: int, path: str, flags: int, resolve: int,
            mode: int = 0) -> int:
    """Open ``path`` relative to ``dirfd`` (close-on-exec), resolved
    under ``resolve``'s rules; returns the fd."""
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    for attempt in range(_OPENAT2_TRIES):
        try:
            return libc.current().syscall(
                "openat2", dirfd, path.encode(), libc.pointer(how),
                ctypes.sizeof(how), what=f"openat2 {path}")
        except BlockingIOError:
            # RESOLVE_IN_ROOT/BENEATH with ".." in the path: a rename or
            # mount anywhere on the host during the walk (a busy host
            # mounts all the time) makes the kernel refuse rather than
            # risk an escape, and openat2(2) says to try again
            if attempt == _OPENAT2_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    libc.current().call("fallocate", fd, mode, offset, length,
                        what="fallocate")


def fs_type(path: str) -> int | None:
    """statfs(2)'s ``f_type`` of the file system holding ``path``, or
    None if it cannot be read."""
    buf = ctypes.create_string_buffer(256)
    try:
        libc.current().call("statfs", os.fsencode(path), buf,
                            what=f"statfs {path}")
    except OSError:
        return None
    return struct.unpack_from("l", buf)[0]


def wait_readable(fds: Iterable, timeout: float | None) -> list[int]:
    """The descriptors of ``fds`` (ints or objects with ``fileno``) that
    are readable, at EOF or in error within ``timeout`` seconds (None:
    forever). poll(2), not select(2): select() refuses descriptor numbers
    from 1024 on, which a fork server holding thousands of guests passes.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait = None if timeout is None else math.ceil(max(0.0, timeout) * 1000)
    return [fd for fd, _events in poller.poll(wait)]
