"""Project quotas on one XFS or ext4 store per host, for ``root_disk.py``:
a directory per guest with its own project id (inherited by everything
made under it) and a block hard limit set with ``quotactl_fd(2)``. pyct
itself uses none of this: this host's kernel has no ``CONFIG_QUOTA``, so
the methods built on it report the kernel's refusal instead of figures;
the helpers stay so that a kernel with quota support can be measured by
the same program.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from pyct_driver.virt.kernel import libc  # noqa: E402

# project quotas (linux/fs.h, linux/quota.h), for the store methods;
# pyct itself has none: this host's kernel has no CONFIG_QUOTA
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
_FSXATTR = "=IIIII8x"  # xflags, extsize, nextents, projid, cowextsize
_PRJQUOTA = 2
_Q_SETQUOTA = 0x800008
_QIF_BLIMITS = 1
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


def set_project(fd: int, projid: int) -> None:
    """Give the directory open at ``fd`` project ``projid``, inherited by
    everything created under it."""
    buf = bytearray(struct.calcsize(_FSXATTR))
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
    xflags, extsize, nextents, _, cowext = struct.unpack(_FSXATTR, buf)
    fcntl.ioctl(fd, FS_IOC_FSSETXATTR, struct.pack(
        _FSXATTR, xflags | FS_XFLAG_PROJINHERIT, extsize, nextents,
        projid, cowext))


def quotactl(fd: int, cmd: int, projid: int, blk: DqBlk) -> None:
    libc.current().syscall("quotactl_fd", fd, (cmd << 8) | _PRJQUOTA,
                           projid, libc.pointer(blk),
                           what=f"quotactl project {projid}")


def set_limit(fd: int, projid: int, limit_bytes: int) -> None:
    """Hard block limit of project ``projid`` on the file system holding
    ``fd`` (0: no limit)."""
    blk = DqBlk()
    blk.bhardlimit = blk.bsoftlimit = -(-limit_bytes // _QIF_DQBLKSIZE)
    blk.valid = _QIF_BLIMITS
    quotactl(fd, _Q_SETQUOTA, projid, blk)


def open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
