"""One owner per compute host: the lock the compute service holds for life.

``pyct-compute`` and the all-in-one take ``<state_path>/compute-<host>.lock``
when they start and keep it until they exit; ``pyct-manage host stop``
takes it while it works. So a second service on the same host and state
dir, or a service started in the middle of a host stop, fails at once
instead of fighting over the same guests, and ``host stop`` can tell
whether a service runs and which process it is. The lock is a POSIX record
lock (``lockf``): it belongs to the process, not to its forks, and the
kernel drops it however the process dies. The file names the holder (pid
and role); it is only read while the lock is held, so a stale file says
nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from pyct_driver import exception

COMPUTE = "compute service"
HOST_STOP = "pyct-manage host stop"


class HostLock:
    """The lock of compute host ``host`` at ``path``."""

    def __init__(self, path: str, host: str) -> None:
        self.path = path
        self.host = host
        self._fd: int | None = None

    def acquire(self, role: str = COMPUTE) -> None:
        """Take the lock for this process or raise ``HostBusy``."""
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except OSError as err:
            raise exception.PyctError(
                f"cannot open {self.path}: {err}") from err
        if not _try_lock(fd, self.path):
            os.close(fd)
            pid, held_by = self.holder() or (0, "gone meanwhile")
            raise exception.HostBusy(host=self.host, pid=pid, role=held_by)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {role}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # drops the lock

    def holder(self, settle: float = 1.0) -> tuple[int, str] | None:
        """(pid, role) of the process holding the lock, None if nobody
        does. Must not be called by a process that could hold it through
        another descriptor: closing any descriptor of the file drops a
        POSIX lock."""
        if self._fd is not None:
            return os.getpid(), "this process"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            deadline = time.monotonic() + settle
            while True:
                if _try_lock(fd, self.path):
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                    return None
                pid, _, role = os.pread(fd, 256, 0).decode(
                    errors="replace").strip().partition(" ")
                # empty for a moment between the holder's lock and write
                if pid.isdigit() or time.monotonic() > deadline:
                    return (int(pid) if pid.isdigit() else 0,
                            role or "unknown")
                time.sleep(0.01)
        finally:
            os.close(fd)


def _try_lock(fd: int, path: str) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise exception.PyctError(f"cannot lock {path}: {err}") from err
    return True
