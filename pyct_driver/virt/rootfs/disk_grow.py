"""Growing an instance's root disk (a resize to a larger flavor).

The disk is an ext4 in a file on a loop device (``rootfs.overlay``).
Growing it while the guest runs takes three steps, none of which the guest
notices: the file is extended (and preallocated like a new disk, so the
new space is the guest's and never fails later for lack of host space),
the loop device rereads its size (``LOOP_SET_CAPACITY``), and the mounted
ext4 grows into it (``EXT4_IOC_RESIZE_FS``, what ``resize2fs`` does on a
mounted file system, without a fork). A disk not mounted (a stopped guest)
is checked and grown offline with ``e2fsck``/``resize2fs``. Growing a
mounted ext4 needs CAP_SYS_RESOURCE, which a compute service in a container
may lack: then the file and the loop device grow at once, a marker file
(``<image>.grow``) remembers the rest, and the file system grows offline
when the disk is next mounted (``finish_pending``, at the guest's next
start). Never shrinks: an ext4 cannot shrink while mounted, and Nova
refuses it too.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.virt.kernel import loop
from pyct_driver.virt.rootfs import disk as disk_mod

LOG = logging.getLogger(__name__)

_EXT4_IOC_RESIZE_FS = 0x40086610  # _IOW('f', 16, __u64)


def grow(image: str, mountpoint: str, size_gb: int, preallocate: bool,
         reserved_bytes: int) -> bool:
    """Grow ``image`` (its ext4 mounted at ``mountpoint`` or not mounted)
    to ``size_gb``; False if the file system could not grow while mounted
    and will at the next mount, True otherwise."""
    size = size_gb << 30
    try:
        current = os.path.getsize(image)
        if size <= current:
            return True
        st = os.statvfs(os.path.dirname(image))
        if preallocate and (st.f_bavail * st.f_frsize - (size - current)
                            < reserved_bytes):
            raise exception.RootfsError(
                reason=f"not enough free disk space on the host for the "
                f"{size_gb} GiB root disk")
        os.truncate(image, size)
        if preallocate:
            disk_mod.top_up(image, reserved_bytes)
        if not os.path.ismount(mountpoint):
            _grow_offline(image)
            return True
        try:
            _grow_online(mountpoint, size)
        except PermissionError:
            LOG.warning("cannot grow the mounted disk %s (no "
                        "CAP_SYS_RESOURCE?): it grows at the next start",
                        image)
            with open(image + ".grow", "w"):
                pass
            return False
    except OSError as err:
        raise exception.RootfsError(
            reason=f"growing root disk {image}: {err}") from err
    return True


def finish_pending(image: str) -> None:
    """Grow the file system of an unmounted ``image`` into its file if an
    online grow was deferred (its marker exists)."""
    marker = image + ".grow"
    if os.path.exists(marker):
        _grow_offline(image)
        os.unlink(marker)


def _grow_online(mountpoint: str, size: int) -> None:
    dev = os.stat(mountpoint).st_dev
    lfd = os.open(f"/dev/loop{os.minor(dev)}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        loop.set_capacity(lfd)
    finally:
        os.close(lfd)
    blocks = size // os.statvfs(mountpoint).f_frsize
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _EXT4_IOC_RESIZE_FS, struct.pack("=Q", blocks))
    finally:
        os.close(fd)


def _grow_offline(image: str) -> None:
    setpriv = disk_mod.MKFS[:disk_mod.MKFS.index("mkfs.ext4")]
    for argv in (("e2fsck", "-f", "-p", image), ("resize2fs", image)):
        proc = subprocess.run([*setpriv, *argv], capture_output=True,
                              text=True)
        # e2fsck: 1 means "errors corrected", still fine to resize
        if proc.returncode not in ((0, 1) if argv[0] == "e2fsck" else (0,)):
            raise exception.RootfsError(
                reason=f"{argv[0]} of {image} failed: "
                f"{proc.stderr.strip() or proc.stdout.strip()}")
