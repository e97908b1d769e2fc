"""Project quotas: a directory tree's project id and the block limit of
that project, on a file system mounted with project quotas (XFS
``prjquota``).

A directory gets the id and the inherit flag with ``FS_IOC_FSSETXATTR``;
everything created under it afterwards carries the same id, and statfs(2)
on it answers with the project's limit and usage (so ``df`` in a guest
whose overlay upper directory is such a tree shows its root size). The
limit is set with ``quotactl_fd(2)`` (Linux 5.14) on any descriptor in the
file system: no block device path is needed. Each call raises ``OSError``
with errno.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

from pyct_driver.virt.kernel import libc

FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
_FSXATTR = "=IIIII8x"  # xflags, extsize, nextents, projid, cowextsize
_PRJQUOTA = 2
_Q_GETQUOTA = 0x800007
_Q_SETQUOTA = 0x800008
_QIF_BLIMITS = 1
_QIF_SPACE = 4
_QIF_DQBLKSIZE = 1024  # quota block limits are in KiB


class DqBlk(ctypes.Structure):
    """struct if_dqblk (linux/quota.h)."""

    _fields_ = [("bhardlimit", ctypes.c_uint64),
                ("bsoftlimit", ctypes.c_uint64),
                ("curspace", ctypes.c_uint64),
                ("ihardlimit", ctypes.c_uint64),
                ("isoftlimit", ctypes.c_uint64),
                ("curinodes", ctypes.c_uint64),
                ("btime", ctypes.c_uint64), ("itime", ctypes.c_uint64),
                ("valid", ctypes.c_uint32)]


def project_of(fd: int) -> int:
    """The project id of the file or directory open at ``fd``."""
    buf = bytearray(struct.calcsize(_FSXATTR))
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
    return struct.unpack(_FSXATTR, buf)[3]


def set_project(fd: int, projid: int) -> None:
    """Give the directory open at ``fd`` project ``projid``, inherited by
    everything created under it."""
    buf = bytearray(struct.calcsize(_FSXATTR))
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
    xflags, extsize, nextents, _, cowext = struct.unpack(_FSXATTR, buf)
    fcntl.ioctl(fd, FS_IOC_FSSETXATTR, struct.pack(
        _FSXATTR, xflags | FS_XFLAG_PROJINHERIT, extsize, nextents,
        projid, cowext))


def _quotactl(fd: int, cmd: int, projid: int, blk: DqBlk) -> None:
    libc.current().syscall("quotactl_fd", fd, (cmd << 8) | _PRJQUOTA,
                           projid, libc.pointer(blk),
                           what=f"quotactl project {projid}")


def set_limit(fd: int, projid: int, limit_bytes: int) -> None:
    """Hard block limit of project ``projid`` on the file system holding
    ``fd`` (0: no limit)."""
    blk = DqBlk()
    blk.bhardlimit = blk.bsoftlimit = -(-limit_bytes // _QIF_DQBLKSIZE)
    blk.valid = _QIF_BLIMITS
    _quotactl(fd, _Q_SETQUOTA, projid, blk)


def usage(fd: int, projid: int) -> tuple[int, int]:
    """(bytes used, hard limit in bytes) of project ``projid``."""
    blk = DqBlk()
    _quotactl(fd, _Q_GETQUOTA, projid, blk)
    return blk.curspace, blk.bhardlimit * _QIF_DQBLKSIZE


def open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
