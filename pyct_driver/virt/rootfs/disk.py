"""Instance disk images: one formatted template per size, copied per disk.

``mkfs.ext4`` costs ~5 ms (more under load) and forks a helper; a freshly
formatted ext4 is almost all holes (~0.7 MiB of metadata in a 1 GiB file),
so ``make_disk`` formats a template once per size (and per mkfs option
set) under ``templates/`` and gives each instance a copy: a reflink
(FICLONE) where the host file system shares extents, otherwise a
hole-preserving copy (SEEK_DATA/SEEK_HOLE + copy_file_range, ~0.3 ms).
The copies share the template's file system UUID; ext4 does not key
anything on it and pyct never mounts by UUID (``tune2fs -U random`` per
copy would cost ~4 ms). The template has no upper or work directory: the
first mount makes them, owned by the instance's guest root. ``mkfs.ext4``
runs with no_new_privs (through ``setpriv``).

Preallocated disks (``preallocate``) get all their blocks when made
(``fallocate``: unwritten extents, ~0.5-0.7 ms per GiB on ext4), so a
guest that fills its disk writes only into space it already holds and
cannot fill the file system that also holds other guests' disks, the image
cache and pyct's state; a disk that does not fit -- or would leave less than
the host's reserve free -- fails with ``RootfsError`` and leaves no file.
The guest cannot hand blocks back to take them again: its ext4 is mounted
without ``discard``, FITRIM needs host CAP_SYS_ADMIN and an fd on that
ext4, which lives outside the guest's root (overlayfs answers ENOTTY),
and each mount tops up anything missing (``top_up``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import subprocess
import threading

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.virt.kernel import files

LOG = logging.getLogger(__name__)

_SETPRIV = ("setpriv", "--no-new-privs") if shutil.which("setpriv") else ()
_EXTENDED = "lazy_itable_init=1,nodiscard,root_owner=0:0"
MKFS = (*_SETPRIV, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0",
        "-E")
# The template's unwritten inode tables are holes, zeros in every copy:
# marked zeroed, the kernel's lazyinit thread has nothing to write after
# each mount (it would, right when the guest starts). e2fsprogs >= 1.47.
_PREZEROED = ",assume_storage_prezeroed=1"
# A new option set must not reuse templates formatted with the old one.
_TAG = hashlib.sha256("\0".join(
    (*MKFS[len(_SETPRIV):], _EXTENDED, _PREZEROED)).encode()).hexdigest()[:12]
_FICLONE = 0x40049409
_lock = threading.Lock()


def template_path(templates_dir: str, size_gb: int) -> str:
    return os.path.join(templates_dir, f"ext4-{size_gb}g-{_TAG}.img")


def ensure_template(templates_dir: str, size_gb: int) -> str:
    """The formatted template of ``size_gb``, made on first use."""
    path = template_path(templates_dir, size_gb)
    if os.path.exists(path):
        return path
    with _lock:
        if os.path.exists(path):
            return path
        os.makedirs(templates_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC |
                         os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(fd, size_gb << 30)
            finally:
                os.close(fd)
            for extended in (_EXTENDED + _PREZEROED, _EXTENDED):
                proc = subprocess.run([*MKFS, extended, tmp],
                                      capture_output=True, text=True)
                if proc.returncode == 0:
                    break
            if proc.returncode != 0:
                raise exception.RootfsError(
                    reason=f"mkfs.ext4 of the {size_gb} GiB template failed:"
                    f" {proc.stderr.strip()}")
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            # atomic: a reader sees no template or a complete one
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


def make_disk(templates_dir: str, size_gb: int, image: str,
              preallocate: bool = True, reserved_bytes: int = 0) -> None:
    """Create ``image`` (must not exist): a formatted ext4 of ``size_gb``,
    with all its blocks if ``preallocate``, leaving ``reserved_bytes``
    free on the file system."""
    template = ensure_template(templates_dir, size_gb)
    size = size_gb << 30
    src = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if preallocate:  # refused before taking anything
            _check_room(os.path.dirname(image), size, size, reserved_bytes)
        dst = os.open(image, os.O_RDWR | os.O_CREAT | os.O_EXCL |
                      os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(src).st_size != size:
                raise exception.RootfsError(
                    reason=f"template {template} is not {size_gb} GiB")
            try:
                fcntl.ioctl(dst, _FICLONE, src)
            except OSError as err:
                if err.errno not in (errno.EOPNOTSUPP, errno.EXDEV,
                                     errno.EINVAL, errno.ENOTTY):
                    raise
                _sparse_copy(src, dst, size)
            if preallocate:
                _preallocate(dst, reserved_bytes)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(image)
            raise
        finally:
            os.close(dst)
    finally:
        os.close(src)


def top_up(image: str, reserved_bytes: int) -> None:
    """Allocate what ``image`` lacks (a sparse disk of an older pyct, a
    hole punched by anything); best effort: a guest keeps booting, with a
    warning, when the file system cannot give it."""
    try:
        fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise exception.RootfsError(reason=f"opening {image}: {err}") \
            from err
    try:
        _preallocate(fd, reserved_bytes)
    except (OSError, exception.RootfsError) as err:
        LOG.warning("disk %s stays partly unallocated: %s", image, err)
    finally:
        os.close(fd)


def allocated_bytes(image: str) -> int:
    """Bytes ``image`` holds on its file system (0 if it is gone)."""
    try:
        return os.stat(image).st_blocks * 512
    except FileNotFoundError:
        return 0


def _preallocate(fd: int, reserved_bytes: int) -> None:
    st = os.fstat(fd)
    missing = st.st_size - st.st_blocks * 512
    if missing <= 0:  # every block is there (the common case on mount)
        return
    _check_room(fd, st.st_size, missing, reserved_bytes)
    try:
        files.fallocate(fd, 0, 0, st.st_size)
        try:  # a reflinked copy shares the template's blocks: own them
            files.fallocate(fd, files.FALLOC_FL_UNSHARE_RANGE, 0,
                               st.st_size)
        except OSError as err:  # nothing is shared (ext4, tmpfs)
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise _no_room(st.st_size) from err
        if err.errno == errno.EOPNOTSUPP:
            raise exception.RootfsError(
                reason="the instances' file system cannot preallocate "
                "(fallocate unsupported); set [container] "
                "preallocate_images=none") from err
        raise
    # concurrent spawns may each have passed the check: re-check after
    # (with 1 MiB of slack for the extent tree's own blocks)
    _check_room(fd, st.st_size, 0, max(0, reserved_bytes - (1 << 20)))


def _check_room(where: int | str, size: int, need: int,
                reserved_bytes: int) -> None:
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    if free - need < reserved_bytes:
        LOG.warning("no room for a %d GiB disk: %.2f GiB free, %.2f GiB "
                    "more needed, %d MiB reserved", size >> 30, free / 2**30,
                    need / 2**30, reserved_bytes >> 20)
        raise _no_room(size)


def _no_room(size: int) -> exception.RootfsError:
    # the tenant sees this fault: no numbers about the host in it
    return exception.RootfsError(
        reason=f"not enough free disk space on the host for the "
        f"{size >> 30} GiB root disk")


def _sparse_copy(src: int, dst: int, size: int) -> None:
    os.ftruncate(dst, size)
    offset = 0
    while offset < size:
        try:
            data = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # only a hole is left
                return
            raise
        hole = os.lseek(src, data, os.SEEK_HOLE)
        pos = data
        while pos < hole:
            copied = os.copy_file_range(src, dst, hole - pos, pos, pos)
            if copied == 0:
                raise OSError(errno.EIO, "template shrank while copied")
            pos += copied
        offset = hole

