"""Loop devices: attach a disk image with one ioctl, resize, detach.

``LOOP_CONFIGURE`` sets the backing file, autoclear (the device frees
itself once the ext4 on it is finally unmounted) and direct I/O in one
call, so there is no window where a half-configured device is visible;
a race with another attacher for the same free number is retried.
``set_capacity`` makes the device reread its backing file's size after
a resize grew it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LOOP_CLR_FD = 0x4C01
LOOP_SET_CAPACITY = 0x4C07
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_DIRECT_IO = 16


def attach(image: str) -> tuple[int, int]:
    """Attach ``image`` to a free loop device with autoclear; returns an
    open fd of the device (close it only once something holds the device,
    or autoclear frees it at once) and its st_rdev."""
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        name = os.path.basename(os.path.dirname(image)).encode()[:63]
        for _ in range(32):
            num = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
            lfd = os.open(f"/dev/loop{num}", os.O_RDWR | os.O_CLOEXEC)
            info = struct.pack(
                "=QQQQQIIII64s64s32sQQ", 0, 0, 0, 0, 0, 0, 0, 0,
                LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO, name, b"", b"",
                0, 0)
            cfg = struct.pack("=II", backing, 4096) + info + bytes(64)
            try:
                fcntl.ioctl(lfd, LOOP_CONFIGURE, cfg)
            except OSError as err:
                os.close(lfd)
                if err.errno == errno.EBUSY:  # another attacher won the race
                    continue
                raise
            return lfd, os.fstat(lfd).st_rdev
        raise OSError(errno.EBUSY, "no free loop device after 32 tries")
    finally:
        os.close(backing)
        os.close(ctl)


def detach(lfd: int) -> None:
    """Clear the loop device ``lfd`` (an attach whose mount failed)."""
    fcntl.ioctl(lfd, LOOP_CLR_FD)


def set_capacity(lfd: int) -> None:
    """Make the loop device reread its backing file's size."""
    fcntl.ioctl(lfd, LOOP_SET_CAPACITY, 0)


def holders(image: str, only: int | None = None) -> list[str]:
    """Loop devices still backed by ``image`` (one lingers while a lazily
    unmounted file system on it is still in use); ``only``: of loop
    device ``only`` alone (a scan of all costs tens of ms on a dense
    host)."""
    want = os.path.realpath(image)
    found = []
    for dev in [f"loop{only}"] if only is not None else \
            os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.removesuffix(" (deleted)") == want:
            found.append(dev)
    return found


def wait_released(image: str, only: int | None = None,
                  timeout: float = 30.0) -> bool:
    """Wait until ``holders(image, only)`` is empty; False on timeout."""
    deadline = time.monotonic() + timeout
    while holders(image, only):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _record_path(image: str) -> str:
    return image.removesuffix(".img") + ".loop"


def record_attached(image: str, minor: int | None) -> None:
    """Note next to ``image`` the loop device it is now attached to
    (None: a new image, never attached)."""
    with open(_record_path(image), "w") as f:
        f.write("-\n" if minor is None else f"{minor}\n")


def wait_last_released(image: str, timeout: float) -> bool:
    """Wait until the loop device ``image`` was last attached to lets it
    go; False on timeout. A lazy unmount (a process still inside the
    root) and a guest's namespace outliving the host's unmount (a dying
    guest; a rescue, the guest's root bound at /mnt) both keep the old
    file system alive with unwritten changes, and a second loop device
    beside it would corrupt the image. The record is on disk, so a
    restarted service waits too; only that one device is read (a scan of
    all costs tens of ms on a dense host), unless the record is missing
    or unreadable (an image of an older release: all are checked)."""
    try:
        with open(_record_path(image)) as f:
            last = f.read().strip()
    except FileNotFoundError:
        last = None
    if last == "-":
        return True
    only = int(last) if last and last.isdigit() else None
    return wait_released(image, only, timeout=timeout)
