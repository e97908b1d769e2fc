"""A guest between the launcher's ``begin`` and ``start``: C1 forked, gated.

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread (it imports nothing that starts one). The C1 it forks
runs ``guestinit.nsinit``.

``begin`` forks C1 at once, so its first cgroup v1 migration (a kernel
RCU grace period, ~10 ms) runs while the compute side still prepares the
guest's root; the launcher then makes the guest's user namespace, passes
it to C1 over the gate and returns it to the compute side (for the
idmapped layers). Meanwhile C1 makes the guest's namespaces and PID 1,
which wait for the root. ``start`` writes the go byte with a detached
clone of the root the host mounted (``open_tree``: the launcher is in the
host's mount namespace, C1 no longer is). Until then C1 has touched
nothing of the root; closing the gate (``abort``: the spawn failed or was
forgotten) or its deadline makes it and what it forked exit quietly.
"""

from __future__ import annotations

import gc
import os
import socket
import time

from pyct_driver import exception
from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.kernel import proc as sc
from pyct_driver.virt.process.forkserver import console
from pyct_driver.virt.process.guestinit import nsinit, userns
from pyct_driver.virt.process import spec as spec_mod


class Pending:
    """The launcher's side of one gated C1."""

    def __init__(self, spec: spec_mod.GuestSpec, c1: int, master: int,
                 slave: int, report_r: int, hold_w: int | None,
                 gate: socket.socket, log: console.ConsoleLog,
                 started: float) -> None:
        self.spec = spec
        self.c1 = c1
        self.master = master
        self.slave = slave
        self.report_r = report_r
        self.hold_w = hold_w
        self.gate: socket.socket | None = gate
        self.log = log
        self.started = started

    def go(self) -> dict | None:
        """Let C1 go on with a detached clone of the guest's root (it then
        reports on ``report_r`` as usual); returns the error if the root
        cannot be cloned (C1, told so by a go byte without it, fails too,
        and the launcher reaps it as after any failure)."""
        gate, self.gate = self.gate, None
        error, fds = None, []
        try:
            fds.append(km.clone_with_attrs(self.spec.root, 0,
                                           recursive=True))
        except OSError as err:
            error = {"error": f"bind root: {err.strerror or err}",
                     "step": "bind root", "errno": err.errno}
        try:
            socket.send_fds(gate, [nsinit.GO_BYTE], fds)
        except OSError:
            pass  # C1 died: its error (or EOF) is on the report pipe
        finally:
            gate.close()
            for fd in fds:
                os.close(fd)
        return error

    def abort(self) -> None:
        """C1 sees EOF on the gate and exits (the launcher reaps it)."""
        if self.gate is not None:
            self.gate.close()
            self.gate = None
        for fd in (self.master, self.slave, self.report_r, self.hold_w):
            if fd is not None:
                os.close(fd)
        self.hold_w = None
        self.log.close()


def keep_only(*keep: int | None) -> None:
    """Close every descriptor but ``keep`` (None entries ignored)."""
    last = -1
    for fd in sorted({fd for fd in keep if fd is not None}):
        if fd > last + 1:
            sc.close_range(last + 1, fd - 1)
        last = fd
    sc.close_range(last + 1, 0x7FFFFFFF)


def fork_gated(spec: spec_mod.GuestSpec,
               deadline: float) -> tuple[Pending, int | None]:
    """Fork C1 (it joins the cgroups, then waits at the gate); returns it
    and, for a guest with an id range, an fd of its user namespace (the
    caller's to close; C1 has its own copy)."""
    started = time.monotonic()
    log = console.ConsoleLog(spec.console_log, spec.console_max_bytes)
    fds: list[int] = []
    socks: tuple[socket.socket, socket.socket] | None = None
    try:
        fds.extend(os.openpty())
        fds.extend(os.pipe2(os.O_CLOEXEC))
        if spec.hold:
            fds.extend(os.pipe2(os.O_CLOEXEC))
        if spec.id_range:
            # guest root must own its console (tty group 5 inside)
            start = spec.id_range[0]
            os.fchown(fds[1], start, start + 5)
        socks = socket.socketpair()
        c1 = sc.fork_bare()
    except OSError as err:
        for fd in fds:
            os.close(fd)
        for sock in socks or ():
            sock.close()
        log.close()
        raise exception.ProcessError(
            reason=f"console pty, report pipe or fork: {err}",
            step="fork") from err
    master, slave, report_r, report_w = fds[:4]
    hold_r, hold_w = fds[4:] if spec.hold else (None, None)
    if c1 == 0:
        # No collection in C1 and C2 (short-lived): a collection walks the
        # whole heap inherited from the launcher and copies every page of
        # it (copy-on-write), milliseconds on the spawn's critical path.
        gc.disable()
        try:
            # C1 keeps only its own descriptors: the launcher's (other
            # guests' ptys and logs, thousands at scale) would fill the
            # guest's open-file limit C1 sets before it makes its pipes,
            # and every fork after this one would copy them
            keep_only(0, 1, 2, slave, report_w, hold_r, socks[1].fileno())
        except BaseException:  # noqa: B902 - never return into the launcher
            os._exit(127)
        nsinit.child_main(spec, slave, report_w, hold_r, socks[1], deadline)
    os.close(report_w)
    if hold_r is not None:
        os.close(hold_r)
    socks[1].close()
    pending = Pending(spec, c1, master, slave, report_r, hold_w, socks[0],
                      log, started)
    if not spec.id_range:
        return pending, None
    try:
        # reaped by the launcher's SIGCHLD handling, not waited for here
        ns_fd = userns.make_userns_fd(spec.id_range, reap=False)
    except OSError as err:
        pending.abort()
        raise exception.ProcessError(
            reason=f"user namespace for {spec.uuid}: {err}",
            step="user namespace") from err
    try:
        socket.send_fds(socks[0], [nsinit.USERNS_BYTE], [ns_fd])
    except OSError:
        pass  # C1 died: its error is on the report pipe
    return pending, ns_fd
