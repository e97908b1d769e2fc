"""One btrfs store per host for ``root_disk.py``: a subvolume (or a
snapshot of an image subvolume) per guest with a qgroup limit, made and
destroyed with the btrfs ioctls from Python, no btrfs-progs per guest.

The store itself is a loop-backed file formatted once with
``mkfs.btrfs`` (outside the timing); quota accounting is switched on with
``BTRFS_IOC_QUOTA_CTL`` -- full qgroups (backref accounting at each
transaction commit) or simple quotas (kernel 6.7 and later: usage charged
to the subvolume that allocated an extent, no backref walks). Each
subvolume gets its qgroup when it is made, and ``BTRFS_IOC_QGROUP_LIMIT``
with qgroup id 0 limits the subvolume the call is made on, so a guest
needs no subvolume-id lookup. The ioctl numbers and argument layouts are
the uapi ones (``linux/btrfs.h``); ``tests/unit/test_bench_root_disk.py``
checks them against the values the header gives.
"""

from __future__ import annotations

import fcntl
import os
import struct

BTRFS_IOCTL_MAGIC = 0x94
BTRFS_PATH_NAME_MAX = 4087
_VOL_ARGS = f"=q{BTRFS_PATH_NAME_MAX + 1}s"  # struct btrfs_ioctl_vol_args
_QUOTA_CTL = "=QQ"  # cmd, status
_QGROUP_LIMIT = "=Q5Q"  # qgroupid; flags, max_rfer, max_excl, rsv_rfer, rsv_excl
QUOTA_CTL_ENABLE = 1
QUOTA_CTL_ENABLE_SIMPLE_QUOTA = 4  # newer than this host's uapi header
QGROUP_LIMIT_MAX_RFER = 1
QGROUP_LIMIT_MAX_EXCL = 2


def ioc(direction: int, nr: int, size: int) -> int:
    """``_IOC`` of asm-generic/ioctl.h for the btrfs magic; direction 1
    is _IOW, 2 _IOR, 3 _IOWR, 0 _IO."""
    return (direction << 30) | (size << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr


_VOL_SIZE = struct.calcsize(_VOL_ARGS)
IOC_SNAP_CREATE = ioc(1, 1, _VOL_SIZE)
IOC_SUBVOL_CREATE = ioc(1, 14, _VOL_SIZE)
IOC_SNAP_DESTROY = ioc(1, 15, _VOL_SIZE)
IOC_QUOTA_CTL = ioc(3, 40, struct.calcsize(_QUOTA_CTL))
# the header declares it _IOR although the kernel only reads the argument
IOC_QGROUP_LIMIT = ioc(2, 43, struct.calcsize(_QGROUP_LIMIT))
IOC_QUOTA_RESCAN_WAIT = ioc(0, 46, 0)


def vol_args(name: str, fd: int = 0) -> bytearray:
    """struct btrfs_ioctl_vol_args naming one directory entry (and, for a
    snapshot, the source subvolume's fd); a bytearray, as fcntl.ioctl
    copies an immutable argument only up to 1,024 bytes."""
    raw = name.encode()
    if not raw or b"/" in raw or b"\0" in raw or \
            len(raw) > BTRFS_PATH_NAME_MAX or name in (".", ".."):
        raise ValueError(f"not a subvolume name: {name!r}")
    return bytearray(struct.pack(_VOL_ARGS, fd, raw))


def qgroup_limit_args(limit_bytes: int, exclusive: bool = False) -> bytes:
    """struct btrfs_ioctl_qgroup_limit_args limiting the caller's own
    subvolume (qgroup id 0) to ``limit_bytes`` referenced (or, with
    ``exclusive``, unshared) bytes."""
    if limit_bytes <= 0:
        raise ValueError("a qgroup limit is a positive byte count")
    flag = QGROUP_LIMIT_MAX_EXCL if exclusive else QGROUP_LIMIT_MAX_RFER
    rfer = 0 if exclusive else limit_bytes
    excl = limit_bytes if exclusive else 0
    return struct.pack(_QGROUP_LIMIT, 0, flag, rfer, excl, 0, 0)


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def enable_quota(mnt: str, simple: bool) -> None:
    """Switch on qgroups (or simple quotas) on the store at ``mnt`` and
    wait for the first rescan."""
    fd = _open_dir(mnt)
    try:
        cmd = QUOTA_CTL_ENABLE_SIMPLE_QUOTA if simple else QUOTA_CTL_ENABLE
        fcntl.ioctl(fd, IOC_QUOTA_CTL, struct.pack(_QUOTA_CTL, cmd, 0))
        if not simple:
            fcntl.ioctl(fd, IOC_QUOTA_RESCAN_WAIT)
    finally:
        os.close(fd)


def make_subvolume(parent: str, name: str, limit_bytes: int,
                   source: str | None = None) -> str:
    """A new subvolume ``parent/name`` -- empty, or a writable snapshot
    of the subvolume ``source`` -- limited to ``limit_bytes``
    referenced bytes; returns its path."""
    pfd = _open_dir(parent)
    try:
        if source is None:
            fcntl.ioctl(pfd, IOC_SUBVOL_CREATE, vol_args(name))
        else:
            sfd = _open_dir(source)
            try:
                fcntl.ioctl(pfd, IOC_SNAP_CREATE, vol_args(name, sfd))
            finally:
                os.close(sfd)
    finally:
        os.close(pfd)
    path = os.path.join(parent, name)
    fd = _open_dir(path)
    try:
        fcntl.ioctl(fd, IOC_QGROUP_LIMIT, qgroup_limit_args(limit_bytes))
    finally:
        os.close(fd)
    return path


def destroy_subvolume(parent: str, name: str) -> None:
    """Unlink the subvolume ``parent/name``; its extents are freed later
    by the store's cleaner thread."""
    pfd = _open_dir(parent)
    try:
        fcntl.ioctl(pfd, IOC_SNAP_DESTROY, vol_args(name))
    finally:
        os.close(pfd)
