"""The child side of a spawn: from the launcher's fresh fork to guest init.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.

The launcher forks C1, which calls ``child_main``: C1 joins the guest's
cgroups (the slow part: the host prepares the guest's root meanwhile) and
waits at its gate -- a socketpair on which the launcher passes the
guest's user namespace (made and mapped by the launcher, ``userns``; the
same one the root's idmapped layers use) and then the go byte once the
root is ready. C1 then takes a private mount namespace (owned by the
host) and mounts there what needs host paths
(``mounts.prepare_host_side``), joins the guest's net, uts, ipc, cgroup and
pid namespaces -- made inside its user namespace
(``userns.join_owned_namespaces``) or, for a privileged guest, plain new
ones -- still as host root, forks C2 (PID 1 of the new pid namespace) and
exits. C2 finishes the guest's view of the world as host root
(``mounts.finish_guest_side``: /proc with masks, read-only /sys,
pivot_root, devpts, /dev/shm, /run, the cgroup tree), sets the open-file
limit, then becomes guest root in the user namespace and copies its mount
namespace into one of its own, which locks every mount made so far (masks
and read-only paths cannot be undone from inside). It sets the hostname,
makes the console pty its controlling terminal, marks every inherited fd
close-on-exec, limits a privileged guest's capabilities to Docker's
default set, installs the seccomp filter and execs the init with a clean
environment. With ``GuestSpec.hold`` C2 stops just before that: it reports
``{"held": true}`` and blocks reading the hold pipe until the launcher
writes the go byte (``release``) -- the create/start split that lets the
host plumb the guest's network namespace before its init runs; EOF instead
(launcher gone, guest forgotten) makes it exit. Each step that can fail is
named; a failure is written as one JSON line on the CLOEXEC report pipe so
the launcher can raise a ProcessError naming it. EOF on that pipe without
an error means the exec succeeded; ``wait_for_exec`` is the launcher's side
of that handshake.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import termios
import time
from typing import NoReturn

from pyct_driver import exception
from pyct_driver.virt.kernel import files as kfiles
from pyct_driver.virt.kernel import proc as sc
from pyct_driver.virt.process.guestinit import caps, mounts, seccomp, userns
from pyct_driver.virt.process import spec as spec_mod

GUEST_NAMESPACES = (sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
                    | sc.CLONE_NEWNET | sc.CLONE_NEWPID | sc.CLONE_NEWCGROUP)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_step = mounts.step


def _report(fd: int, message: dict) -> None:
    # One line under PIPE_BUF is written atomically, so C1's and C2's lines
    # never interleave on the shared pipe.
    data = json.dumps(message).encode()[:3000] + b"\n"
    with contextlib.suppress(OSError):
        os.write(fd, data)


def _fail(fd: int, err: BaseException) -> NoReturn:
    if isinstance(err, exception.ProcessError):
        _report(fd, {"error": err.kwargs.get("reason", err.message),
                     "step": err.kwargs.get("step"),
                     "errno": err.kwargs.get("errno")})
    else:
        _report(fd, {"error": f"unexpected {type(err).__name__}: {err}",
                     "step": "internal"})
    os._exit(127)


def reset_signals() -> None:
    # The launcher's Python runtime ignores SIGPIPE/SIGXFSZ and catches
    # SIGCHLD into its wakeup pipe; exec would keep the ignores, so put every
    # disposition back to default before the guest sees them.
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


RELEASE_BYTE = GO_BYTE = b"g"
USERNS_BYTE, MOUNTED_BYTE = b"u", b"m"


def child_main(guest: spec_mod.GuestSpec, console_fd: int,
               report_fd: int, hold_fd: int | None = None,
               gate: socket.socket | None = None,
               deadline: float | None = None) -> NoReturn:
    """C1: join cgroups, wait at the gate (if any) for the go byte and the
    guest's user namespace, mount what needs host paths, unshare every
    namespace (inside that user namespace unless privileged), fork the
    guest's PID 1, report it, exit."""
    try:
        reset_signals()
        # First: the first cgroup v1 migration waits for an RCU grace
        # period (~10 ms); the host prepares the root meanwhile.
        for procs in guest.cgroup_procs:
            _step(f"join cgroup {procs}", _write_file, procs,
                  str(os.getpid()))
        userns_fd = None
        if gate is not None:
            userns_fd = _step("wait at the gate", _await_gate, gate,
                              deadline or time.monotonic() + 30.0)
            gate.close()
        if guest.id_range and userns_fd is None:
            raise exception.ProcessError(
                reason="no user namespace for an unprivileged guest",
                step="user namespace")
        owner = (guest.id_range[0],) * 2 if guest.id_range else (0, 0)
        # as host root: the guest cannot raise the hard limit
        _step("limit open files", sc.limit_nofile, *guest.nofile)
        # A private mount namespace owned by the host: what is mounted here
        # (by C1, then as host root inside the guest's pid namespace) is
        # locked once the guest's PID 1 copies it into a namespace of its
        # user namespace.
        _step("unshare mount namespace", sc.unshare, sc.CLONE_NEWNS)
        mounts.prepare_host_side(guest.root, console_fd, owner,
                                 guest.views)
        if userns_fd is None:
            _step("unshare namespaces", sc.unshare,
                  GUEST_NAMESPACES & ~sc.CLONE_NEWNS)
            pid = _step("fork guest init", sc.fork_bare)
            if pid == 0:
                _guest_main(guest, console_fd, report_fd, hold_fd, owner)
        else:
            pid = _start_in_userns(guest, console_fd, report_fd, hold_fd,
                                   userns_fd, owner)
        _report(report_fd, {"pid": pid})
        os._exit(0)
    except BaseException as err:  # noqa: B902 - never return into the launcher
        _fail(report_fd, err)


def _start_in_userns(guest: spec_mod.GuestSpec, console_fd: int,
                     report_fd: int, hold_fd: int | None, userns_fd: int,
                     owner: tuple[int, int]) -> int:
    """C1's unprivileged path; returns the guest init's pid.

    The init is born inside the guest's user namespace, after its net,
    uts, ipc, cgroup and pid namespaces were made there (so they all
    belong to it), and waits. A helper of C1 -- host root, inside the
    guest's pid, net and cgroup namespaces -- mounts /proc, /sys, the
    masks, devpts, ... into C1's mount namespace, which the host owns.
    Then the init copies that namespace into one of its own user
    namespace: the kernel locks every mount in such a copy."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)

    def init() -> NoReturn:
        try:
            os.close(go_w)
            if os.read(go_r, 1) != MOUNTED_BYTE:
                os._exit(0)  # C1 failed: it said why
            os.close(go_r)
            _step("chdir /", os.chdir, "/")
            _step("lock mounts", sc.unshare, sc.CLONE_NEWNS)
        except BaseException as err:  # noqa: B902 - never return into C1
            _fail(report_fd, err)
        _guest_main(guest, console_fd, report_fd, hold_fd, None)

    try:
        pid = _step("make the guest's namespaces", userns.fork_in_userns,
                    userns_fd, init)
        os.close(userns_fd)
        _step("join the guest's namespaces", userns.join_for_mounts, pid)
        helper = _step("fork mount helper", sc.fork_bare)
        if helper == 0:
            try:
                mounts.finish_guest_side(owner, guest.devpts_max,
                                         guest.views, guest.nesting)
            except BaseException as err:  # noqa: B902 - never return
                _fail(report_fd, err)
            os._exit(0)
        _, status = os.waitpid(helper, 0)
        if status != 0:  # it reported why; the init sees EOF and exits
            os._exit(127)
        os.write(go_w, MOUNTED_BYTE)
        return pid
    finally:
        os.close(go_r)
        os.close(go_w)


def _await_gate(gate: socket.socket, deadline: float) -> int | None:
    """Read the gate until the go byte; returns the user namespace fd the
    launcher passed on it, if any. EOF or the deadline (the spawn was
    abandoned): exit quietly, having done nothing but join cgroups."""
    userns_fd = None
    while True:
        ready = kfiles.wait_readable([gate], deadline - time.monotonic())
        if not ready:
            os._exit(0)
        data, fds, _flags, _addr = socket.recv_fds(gate, 1, 1)
        if data == USERNS_BYTE and len(fds) == 1 and userns_fd is None:
            userns_fd = fds[0]
            continue
        for fd in fds:
            os.close(fd)
        if data == GO_BYTE:
            return userns_fd
        os._exit(0)


def _guest_main(guest: spec_mod.GuestSpec, console_fd: int,
                report_fd: int, hold_fd: int | None,
                owner: tuple[int, int] | None) -> NoReturn:
    """C2, PID 1 of the new pid namespace: finish the root if ``owner``
    says so (a privileged guest, host root itself), then exec."""
    try:
        if owner is not None:
            mounts.finish_guest_side(owner, guest.devpts_max, guest.views,
                                     guest.nesting)
        _step("sethostname", sc.sethostname, guest.hostname)
        _step("attach console", _attach_console, console_fd)
        _step("close inherited fds", _cloexec_all_but_stdio, report_fd)
        env = {"PATH": DEFAULT_PATH, "TERM": "linux", "container": "pyct",
               "HOME": "/root"}
        env.update(guest.env or {})
        if hold_fd is not None:
            _report(report_fd, {"held": True})
            if _step("wait for release", os.read, hold_fd, 1) != RELEASE_BYTE:
                os._exit(0)  # never released: leave quietly, exec nothing
        if guest.keep_caps is not None:
            _step("limit capabilities", caps.limit_bounding, guest.keep_caps)
        # Last before exec: the filter also covers what setup needed
        # (mount API, ...); without no_new_privs, as guest setuid
        # binaries (sudo) must keep working.
        seccomp.install(guest.nesting)
        _step(f"exec {guest.argv[0]}", os.execve, guest.argv[0],
              list(guest.argv), env)
    except BaseException as err:  # noqa: B902 - never return into C1's code
        _fail(report_fd, err)
    os._exit(127)


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
    ``wait_for_release`` -- or (None, error) after reaping C1 and any failed
    C2 (the caller must be the subreaper so a failed C2 is its child to
    reap).
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
    _waitpid(c1)
    if error is not None and pid is not None:
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


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _attach_console(fd: int) -> None:
    os.setsid()
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target, inheritable=True)


def _cloexec_all_but_stdio(report_fd: int) -> None:
    # CLOEXEC rather than close: the report pipe must survive until the exec
    # succeeds, and then every host fd (listening socket, other guests' pty
    # masters, log files) vanishes atomically with it.
    try:
        sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    except OSError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass
