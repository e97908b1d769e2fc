"""Looking at and poking a running guest init from the host.

Shared by the caller (pyct-compute, any thread) and the fork server
(``launcher``, ``guest_exec``): it reads /proc and signals through a pidfd; no
threads, no state.

A guest is named by (host pid, start time in clock ticks from field 22 of
/proc/<pid>/stat): pids recycle, start times don't, so the compute service
uses ``is_same_process`` to re-adopt guests after a restart. Signals go
through a pidfd opened *before* the identity check, so a pid recycled between
check and kill can never receive a guest's shutdown signal. Also here: which
signal asks a given init to power off, and reading the console log Nova-style.
"""

from __future__ import annotations

import collections
import os
import signal

from pyct_driver import exception


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and ')'; the rest starts after the
    # last ')'. Index 0 of the result is field 3 (state).
    return data[data.rindex(b")") + 2:].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[19])


def is_same_process(pid: int, start_time: int) -> bool:
    """True if ``pid`` is alive (not a zombie) and started at
    ``start_time``."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    return (fields[0] not in (b"Z", b"X", b"x")
            and int(fields[19]) == start_time)


def signal_init(pid: int, start_time: int, sig: int) -> bool:
    """Send ``sig`` to the guest init; False if that process is gone."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError as err:
        raise exception.ProcessError(
            reason=f"pidfd_open({pid}): {err}") from err
    try:
        if not is_same_process(pid, start_time):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    except OSError as err:
        raise exception.ProcessError(
            reason=f"cannot signal guest init {pid}: {err}") from err
    finally:
        os.close(pidfd)


def _resolve_in_root(root: str, path: str) -> str:
    """Follow symlinks of ``path`` as the guest would, never leaving root."""
    parts = collections.deque(p for p in path.split("/") if p)
    current = ""
    hops = 0
    while parts:
        part = parts.popleft()
        if part == ".":
            continue
        if part == "..":
            current = current.rsplit("/", 1)[0]
            continue
        candidate = f"{current}/{part}"
        full = root.rstrip("/") + candidate
        if os.path.islink(full) and hops < 40:
            hops += 1
            target = os.readlink(full)
            if target.startswith("/"):
                current = ""
            parts.extendleft(reversed([p for p in target.split("/") if p]))
        else:
            current = candidate
    return current or "/"


def shutdown_signal(argv: tuple[str, ...] | list[str], root: str) -> int:
    """The signal that makes this guest's init power off cleanly.

    systemd powers off on SIGRTMIN+3; busybox init halts on SIGUSR1, powers
    off on SIGUSR2 and reboots on SIGTERM. Anything else gets SIGTERM; the
    caller's stop timeout, then a cgroup-wide SIGKILL, covers inits (such as
    sysvinit) that ignore it.
    """
    init = _resolve_in_root(root, argv[0]) if argv else "/sbin/init"
    if "systemd" in init.split("/")[-1] or "/systemd/" in init:
        return signal.SIGRTMIN + 3
    # busybox picks its applet by argv[0]'s name: only "init" is init
    if os.path.basename(init) == "busybox" and argv and os.path.basename(
            argv[0]) in ("init", "linuxrc"):
        return signal.SIGUSR2
    return signal.SIGTERM


def requested_reboot(status: dict) -> bool:
    """Whether a guest's init, as the launcher reaped it, ended by asking
    for a reboot: reboot(2) in a pid namespace kills its init with SIGHUP
    (a halt or power-off uses SIGINT)."""
    return bool(status.get("known")) and status.get("exit_code") == \
        -signal.SIGHUP


def read_console(path: str, length: int | None = None) -> str:
    """The console log as text; only its last ``length`` lines if given."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ""
    except OSError as err:
        raise exception.ProcessError(
            reason=f"cannot read console log {path}: {err}") from err
    # The pty turns \n into \r\n (ONLCR); logs read better without the \r.
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    if length is None:
        return text
    if length <= 0:
        return ""
    return "".join(text.splitlines(keepends=True)[-length:])
