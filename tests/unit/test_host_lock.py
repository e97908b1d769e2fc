"""The compute host's lock (compute.host_lock), across real processes.

A process holding it is named by ``holder`` (pid and role) and makes
``acquire`` elsewhere fail with HostBusy naming it; the kernel drops it
when the holder dies, even by SIGKILL, and not for a fork of the holder
(a POSIX record lock, not an flock shared with children); a stale file
names nobody.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pyct_driver import exception
from pyct_driver.compute.host_lock import COMPUTE, HOST_STOP, HostLock

HOLD = """
import os, sys, time
from pyct_driver.compute.host_lock import HostLock
lock = HostLock(sys.argv[1], "h1")
lock.acquire(sys.argv[2])
child = os.fork()
if child == 0:  # outlives its parent, and must not keep the lock
    time.sleep(60)
    os._exit(0)
print("held", child, flush=True)
time.sleep(60)
"""


def _hold(path: str, role: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, path, role],
                            stdout=subprocess.PIPE, text=True)
    word, child = proc.stdout.readline().split()
    assert word == "held"
    return proc, int(child)


def test_holder_named_busy_refused_and_freed_by_death(tmp_path):
    path = str(tmp_path / "state" / "compute-h1.lock")
    assert HostLock(path, "h1").holder() is None  # no file yet
    proc, child = _hold(path, COMPUTE)
    try:
        lock = HostLock(path, "h1")
        assert lock.holder() == (proc.pid, COMPUTE)
        with pytest.raises(exception.HostBusy,
                           match=f"held by process {proc.pid} "
                                 r"\(compute service\)"):
            lock.acquire(HOST_STOP)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        os.kill(child, 0)  # its forked child still runs, holding nothing
        deadline = time.monotonic() + 5
        while lock.holder() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.holder() is None
        lock.acquire(HOST_STOP)
        assert lock.holder() == (os.getpid(), "this process")
        lock.release()
        assert HostLock(path, "h1").holder() is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
