"""The launcher's side of a spawn's report pipe: wait for the guest's exec.

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread. C1, its helpers and the guest's PID 1
(``guestinit.nsinit``) write JSON lines on a close-on-exec pipe: the PID 1's
pid (as soon as it is forked, before the root is ready), ``{"held": true}``
for a held guest, or one error naming the step that failed. EOF without an
error means the init was exec'd. ``wait_for_exec`` reads that pipe after
``start``; on success it does not wait for C1 to exit (its exit tears down
its mount namespace, an RCU grace period the guest need not wait for: the
launcher's SIGCHLD loop reaps it); on failure it reaps C1 and kills and
reaps the failed PID 1, so a failed spawn leaves no process behind.
``wait_for_release`` is the same after a held guest's release.
"""

from __future__ import annotations

import os
import signal
import time

from pyct_driver.virt.kernel import files as kfiles
from pyct_driver.virt.process import spec as spec_mod


def _read_report(fd: int, deadline: float,
                 until_held: bool) -> tuple[int | None, dict | None, bool,
                                            bool]:
    """Read report lines until EOF (or, if ``until_held``, the pid and the
    held line); returns (pid, first error, timed out, held)."""
    data = b""
    pid, error, held = None, None, False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return pid, error, True, held
        ready = kfiles.wait_readable([fd], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return pid, error, False, held
        data += chunk
        *lines, data = data.split(b"\n")
        for line in lines:
            message = spec_mod.decode(line)
            if "pid" in message:
                pid = int(message["pid"])
            elif message.get("held"):
                held = True
            elif error is None:
                error = message
        if until_held and pid is not None and (held or error is not None):
            return pid, error, False, held


def wait_for_exec(fd: int, c1: int, deadline: float,
                  until_held: bool = False) -> tuple[int | None, dict | None]:
    """Parent side of the handshake: wait for EOF on the report pipe.

    Returns (guest pid, None) once the init is exec'd -- or, with
    ``until_held``, once it waits for release; ``fd`` then stays open for
    ``wait_for_release`` -- or (None, error) after reaping C1 and killing
    and reaping the PID 1 (the caller must be the subreaper so the PID 1
    is its child to reap once C1 is gone).
    """
    try:
        pid, error, timed_out, held = _read_report(fd, deadline, until_held)
    except BaseException:
        os.close(fd)
        raise
    if until_held and not held and error is None and not timed_out:
        error = {"error": "guest init exited before it was held",
                 "step": "hold"}
    if not until_held or error is not None or timed_out:
        os.close(fd)
    if timed_out:
        error = {"error": "guest setup did not finish by its deadline",
                 "step": "timeout"}
        for victim in (c1, pid):
            if victim:
                _kill(victim)
    if error is None and pid is not None:
        return pid, None  # C1 is exiting: the SIGCHLD loop reaps it
    _waitpid(c1)
    if pid is not None:
        # The failed PID 1 is ours now (C1 exited, we are the subreaper).
        _kill(pid)
        _waitpid(pid)
        pid = None
    return pid, error


def wait_for_release(fd: int, pid: int, deadline: float) -> dict | None:
    """After the go byte: EOF on the report pipe means the init is exec'd.

    Returns None, or the error after killing the failed init (the caller's
    SIGCHLD handling reaps it). Closes ``fd``.
    """
    try:
        _pid, error, timed_out, _held = _read_report(fd, deadline, False)
    finally:
        os.close(fd)
    if timed_out and error is None:
        error = {"error": "guest init did not exec by its deadline",
                 "step": "timeout"}
    if error is not None:
        _kill(pid)
    return error


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _waitpid(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
