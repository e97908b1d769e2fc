"""The child side of a spawn: from the launcher's fresh fork to guest init.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.

The launcher forks C1 at ``begin``, which calls ``child_main``. Before
the root exists C1 does everything that needs none -- so it runs while the
host still makes and mounts the root: it joins the guest's cgroups
(``_join_cgroups``: by thread on cgroup v1, no RCU grace period), takes a
private mount namespace (owned by the host) and the host files its
children will bind (``handoff.HostFiles``); a helper stages that namespace
(``mounts.stage_root``: pivot into an empty tmpfs, the copy of the host's
mount tree detached), takes the guest's user namespace off the gate (made
and mapped by the launcher, ``userns``; the same one the root's idmapped
layers use) and forks the guest's PID 1 (C2) in net, uts, ipc, cgroup and
pid namespaces made inside it; C1 forks C2's mount helper (host root in
C2's pid, net and cgroup namespaces). A privileged guest's C2 is forked
by C1 itself, in plain new namespaces. C1 reports C2's pid; the mount
helper (a privileged C2 itself) waits at the gate -- a socketpair -- for
the go byte, which carries a detached clone of the root the host mounted
(``start``), attaches it, mounts there what needs host paths
(``mounts.prepare_host_side``) and finishes the guest's view of the world
as host root (``mounts.finish_guest_side``: /proc with masks, read-only
/sys, pivot_root, devpts, /dev/shm, /run, the cgroup tree); C1 reaps it
and exits. C2, guest root in its user namespace, then copies its mount
namespace into one of its own, which locks every mount made so far
(masks and read-only paths cannot be undone from inside). It sets the
hostname, makes the console pty its controlling terminal, marks every
inherited fd close-on-exec, limits a privileged guest's capabilities to
Docker's default set, installs the seccomp filter and execs the init with
a clean environment. With ``GuestSpec.hold`` C2 stops just before that: it
reports ``{"held": true}`` and blocks reading the hold pipe until the
launcher writes the go byte (``release``) -- the create/start split that
lets the host plumb the guest's network namespace before its init runs;
EOF instead (launcher gone, guest forgotten) makes it exit. Before the go
byte, EOF on the gate (the spawn was abandoned) makes the helper exit
quietly, C1 after it, and C2 sees EOF on its pipe and exits too. Each
step that can fail is named; a failure is written as one JSON line on
the CLOEXEC report pipe so the launcher can raise a ProcessError naming
it. EOF on that pipe without an error means the exec succeeded;
``forkserver.handshake`` is the launcher's side of that handshake.
"""

from __future__ import annotations

import contextlib
import errno
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
from pyct_driver.virt.process.guestinit import (caps, handoff, mounts,
                                                seccomp, userns)
from pyct_driver.virt.process.guestinit import views as views_mod
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
               report_fd: int, hold_fd: int | None, gate: socket.socket,
               deadline: float) -> NoReturn:
    """C1: join cgroups, make a private mount namespace, stage it and
    make the guest's PID 1 in its other namespaces (and its mount
    helper), both waiting at the gate for the go byte and the root; reap
    the helper, exit."""
    started: handoff.Started | None = None
    try:
        reset_signals()
        _join_cgroups(guest)
        owner = (guest.id_range[0],) * 2 if guest.id_range else (0, 0)
        # as host root: the guest cannot raise the hard limit
        _step("limit open files", sc.limit_nofile, *guest.nofile)
        # Everything up to the gate needs no root: forks, namespaces and
        # the copy of the host's mount table happen while the host still
        # makes and mounts the root, off the spawn's critical path.
        mounts.enter_private_namespace(guest.views)
        # what C1's children will mount from the host, taken now: the
        # host's mount tree is gone from here once staged
        host = handoff.HostFiles(mounts.clone_host_files(console_fd),
                          _clone_views(guest))
        if guest.id_range:
            started = _fork_in_userns(guest, console_fd, report_fd, hold_fd,
                                      gate, deadline, owner, host)
        else:
            started = _fork_privileged(guest, console_fd, report_fd, hold_fd,
                                       gate, deadline, owner, host)
        _report(report_fd, {"pid": started.pid})
        gate.close()  # the helper (a privileged PID 1) waits at it
        started.wait()
        os._exit(0)
    except BaseException as err:  # noqa: B902 - never return into the launcher
        if started is not None:
            started.abandon()
        _fail(report_fd, err)


def _take_root(gate: socket.socket, deadline: float) -> None:
    """The helper (a privileged PID 1) at the gate: the launcher's go
    byte carries a detached clone of the root it mounted; attach it in
    the stage and move into it."""
    tree = _step("wait at the gate", _await_gate, gate, GO_BYTE, deadline)
    gate.close()
    if tree is None:
        raise exception.ProcessError(reason="no root from the launcher",
                                     step="bind root")
    _step("bind root", mounts.attach_root, tree, mounts.STAGE)


def _await_pipe(fd: int, want: bytes) -> None:
    """A waiting child: go on at ``want``; EOF (C1 gave up): exit."""
    if os.read(fd, 1) != want:
        os._exit(0)
    os.close(fd)


def _fork_privileged(guest: spec_mod.GuestSpec, console_fd: int,
                     report_fd: int, hold_fd: int | None,
                     gate: socket.socket, deadline: float,
                     owner: tuple[int, int],
                     host: handoff.HostFiles) -> handoff.Started:
    """C1's privileged path: new namespaces (owned by the host) and the
    guest's PID 1 in them, waiting at the gate for the root; it finishes
    the root itself, as host root."""
    _step("unshare namespaces", sc.unshare,
          GUEST_NAMESPACES & ~sc.CLONE_NEWNS)
    mounts.stage_root()
    pid = _step("fork guest init", sc.fork_bare)
    if pid == 0:
        try:
            _take_root(gate, deadline)
            host.finish(owner, guest, finish_guest_side=False)
        except BaseException as err:  # noqa: B902 - never return into C1
            _fail(report_fd, err)
        _guest_main(guest, console_fd, report_fd, hold_fd, owner, host.views)
    return handoff.Started(pid)


def _fork_in_userns(guest: spec_mod.GuestSpec, console_fd: int,
                    report_fd: int, hold_fd: int | None,
                    gate: socket.socket, deadline: float,
                    owner: tuple[int, int],
                    host: handoff.HostFiles) -> handoff.Started:
    """C1's unprivileged path: the guest's PID 1 and its mount helper,
    both waiting for the root.

    A helper stages C1's mount namespace, takes the guest's user
    namespace off the gate and forks the init inside it, after its net,
    uts, ipc, cgroup and pid namespaces were made there (so they belong
    to it; C1 is in the guest's cgroups already, so is the init). The
    mount helper -- host root, inside the guest's pid, net and cgroup
    namespaces -- mounts /dev, /proc, /sys, the masks, devpts, ... into
    C1's mount namespace, which the host owns, and lets the init go on.
    Then the init copies that namespace into one of its own user
    namespace: the kernel locks every mount in such a copy."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)

    def init() -> NoReturn:
        try:
            os.close(go_w)
            _await_pipe(go_r, MOUNTED_BYTE)  # EOF: C1 failed, it said why
            _step("chdir /", os.chdir, "/")
            _step("lock mounts", sc.unshare, sc.CLONE_NEWNS)
        except BaseException as err:  # noqa: B902 - never return into C1
            _fail(report_fd, err)
        _guest_main(guest, console_fd, report_fd, hold_fd, None)

    def take_userns() -> int:
        # still host root: staging the namespace before anything of the
        # guest's is forked in it (pivot_root moves the roots of the
        # namespace's processes, not those of one forked meanwhile)
        try:
            mounts.stage_root()
        except BaseException as err:  # noqa: B902 - say why, then exit
            _fail(report_fd, err)
        fd = _await_gate(gate, USERNS_BYTE, deadline)
        if fd is None:
            raise OSError(errno.EBADF, "no user namespace on the gate")
        return fd

    # the host's /proc, which C1 needs after the helper staged its
    # namespace, opened before: then it no longer resolves
    proc_dir = _step("open /proc", os.open, "/proc",
                     os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pid = _step("make the guest's namespaces", userns.fork_in_userns,
                    take_userns, init)
        _step("join the guest's namespaces", userns.join_for_mounts, pid,
              proc_dir)
    finally:
        os.close(go_r)
        os.close(proc_dir)
    try:
        helper = _step("fork mount helper", sc.fork_bare)
        if helper == 0:
            try:
                _take_root(gate, deadline)
                host.finish(owner, guest)
                os.write(go_w, MOUNTED_BYTE)
            except BaseException as err:  # noqa: B902 - never return
                _fail(report_fd, err)
            os._exit(0)
    finally:
        os.close(go_w)  # the helper's copy lets the init go on (or EOF)
    return handoff.Started(pid, helper)


def _clone_views(guest: spec_mod.GuestSpec) -> list[tuple[str, int]]:
    if not guest.views:
        return []
    return _step("clone the flavor's views", views_mod.clone_views,
                 guest.views)


def _join_cgroups(guest: spec_mod.GuestSpec) -> None:
    """C1 (one thread) joins the guest's cgroups; what it forks is born
    there. On cgroup v1 by writing 0 -- the calling thread -- to each
    hierarchy's ``tasks``: moving one thread skips the kernel's
    cgroup_threadgroup_rwsem, whose first writer after a quiet spell
    waits for an RCU grace period (~10 ms, the spawn's largest step
    before); a process of one thread moves whole. cgroup v2 (no
    ``tasks``): the pid to ``cgroup.procs``."""
    for path in guest.cgroup_procs:
        tasks = os.path.join(os.path.dirname(path), "tasks")
        try:
            _write_file(tasks, "0")
        except FileNotFoundError:
            _step(f"join cgroup {path}", _write_file, path,
                  str(os.getpid()))
        except OSError as err:
            raise exception.ProcessError(
                reason=f"join cgroup {path}: {err.strerror or err}",
                step=f"join cgroup {path}", errno=err.errno) from err


def _await_gate(gate: socket.socket, want: bytes,
                deadline: float) -> int | None:
    """Read one message off the gate: ``want`` and the fd it carries (the
    user namespace, the root), if any. EOF, anything else or the deadline
    (the spawn was abandoned): exit quietly; what C1 forked sees EOF on
    its pipe and exits too."""
    ready = kfiles.wait_readable([gate], deadline - time.monotonic())
    if not ready:
        os._exit(0)
    data, fds, _flags, _addr = socket.recv_fds(gate, 1, 1)
    if data != want:
        os._exit(0)
    return fds[0] if fds else None


def _guest_main(guest: spec_mod.GuestSpec, console_fd: int,
                report_fd: int, hold_fd: int | None,
                owner: tuple[int, int] | None,
                views: list[tuple[str, int]] | None = None) -> NoReturn:
    """C2, PID 1 of the new pid namespace: finish the root if ``owner``
    says so (a privileged guest, host root itself; ``views`` from
    ``_clone_views``), then exec."""
    try:
        if owner is not None:
            mounts.finish_guest_side(owner, guest.devpts_max, views,
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
