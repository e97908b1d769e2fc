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

from pyct_driver import exception

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


def make_disk(templates_dir: str, size_gb: int, image: str) -> None:
    """Create ``image`` (must not exist): a formatted ext4 of ``size_gb``."""
    template = ensure_template(templates_dir, size_gb)
    size = size_gb << 30
    src = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
    try:
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
        finally:
            os.close(dst)
    finally:
        os.close(src)


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

