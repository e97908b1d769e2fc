"""The launcher: one long-lived, single-threaded fork server per host.

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread (it imports nothing that starts one). Every request is
served from this poll loop, one at a time.

pyct-compute is multi-threaded and must never fork itself, so it starts this
program once (``python -m pyct_driver.virt.process.forkserver.daemon
--state-dir DIR``, which detaches and serves this ``Launcher``) and it answers
newline-delimited JSON requests one at a time from a poll loop: ``begin`` (fork
the guest's C1, which joins its cgroups and waits -- ``pending``; the reply
carries the guest's user namespace fd, SCM_RIGHTS, for the root's idmapped
layers), ``start`` (let it go on; answers once init was exec'd), ``spawn``
(both), ``release``, ``ping``, ``status``, ``forget``, ``attach`` (a socket on
a guest's console), ``userns`` (an fd of a user namespace with a given id map),
``exec`` (a command in a running guest, confined as its own processes are:
``guest_exec``), ``shutdown``. It makes every guest's user namespace (only host
root in the initial namespace may map arbitrary ids). A spawn with ``hold``
answers once the guest's PID 1 waits just before its exec (namespaces and
mounts ready, so the host can plumb its netns); ``release`` lets it exec. It is
PR_SET_CHILD_SUBREAPER, so every guest init becomes its child and its exit
status is recorded. Per guest it keeps the console pty (master and slave) and
copies the master's output into a bounded log; there is no other host process
per guest.

Guests do not depend on the launcher: if it dies they keep running
(reparented), only console logging stops. A restarted launcher cannot
recover the old pty masters — they died with the old process — so old
guests' consoles stay silent until the guest is rebooted (respawned);
``status`` answers ``known: false`` for them and the compute side falls back
to ``guest.is_same_process``.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time

from pyct_driver import exception
from pyct_driver.virt.process import guest as guest_mod
from pyct_driver.virt.process import spec as spec_mod
from pyct_driver.virt.process.forkserver import (console, guest_exec,
                                                handshake, pending)
from pyct_driver.virt.process.guestinit import nsinit, userns

LOG = logging.getLogger("pyct.launcher")
SPAWN_TIMEOUT = 30.0
MAX_REQUEST = 1 << 20


class _Guest:
    """What the launcher remembers of one spawned guest."""

    def __init__(self, uuid: str, pid: int, start_time: int,
                 con: console.Console) -> None:
        self.uuid = uuid
        self.pid = pid
        self.start_time = start_time
        self.console = con
        self.exit_code: int | None = None
        # A held guest: writing the go byte to hold_w releases it, then EOF
        # on report_r says its init was exec'd.
        self.hold_w: int | None = None
        self.report_r: int | None = None

    def close_hold(self) -> None:
        for name in ("hold_w", "report_r"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


class Launcher:
    """The poll loop and the request handlers."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.poll = select.poll()
        self.guests: dict[str, _Guest] = {}
        self.consoles = console.Consoles(self.poll)
        self.by_pid: dict[int, _Guest] = {}
        self.pending: dict[str, pending.Pending] = {}
        self.conns: dict[int, tuple[socket.socket, bytearray]] = {}
        self.running = True
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_term)
        self.poll.register(listener.fileno(), select.POLLIN)
        self.poll.register(self.wakeup_r, select.POLLIN)

    def _on_term(self, *_: object) -> None:
        self.running = False

    def serve(self) -> None:
        while self.running:
            wait = self.consoles.resume_due()
            for fd, _events in self.poll.poll(int(wait * 1000) + 1):
                if fd == self.listener.fileno():
                    self._accept()
                elif fd == self.wakeup_r:
                    while True:
                        try:
                            if not os.read(self.wakeup_r, 512):
                                break
                        except BlockingIOError:
                            break
                    self._reap()
                elif fd in self.consoles.by_fd:
                    self.consoles.pump(self.consoles.by_fd[fd])
                elif fd in self.consoles.clients:
                    self.consoles.feed(fd)
                elif fd in self.conns:
                    self._read_conn(fd)
                if not self.running:
                    break

    # -- connections ---------------------------------------------------
    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self.conns[conn.fileno()] = (conn, bytearray())
        self.poll.register(conn.fileno(), select.POLLIN)

    def _drop_conn(self, fd: int) -> None:
        conn, _ = self.conns.pop(fd)
        self.poll.unregister(fd)
        conn.close()

    def _read_conn(self, fd: int) -> None:
        conn, buf = self.conns[fd]
        try:
            data = conn.recv(console.READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or len(buf) + len(data) > MAX_REQUEST:
            self._drop_conn(fd)
            return
        buf += data
        while b"\n" in buf and fd in self.conns:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self._dispatch(line)
            passed = reply.pop("_fds", [])
            try:
                conn.settimeout(5.0)
                data = spec_mod.encode(reply)
                if passed:
                    sent = socket.send_fds(conn, [data], passed)
                    conn.sendall(data[sent:])
                else:
                    conn.sendall(data)
                conn.setblocking(False)
            except OSError:
                self._drop_conn(fd)
            finally:
                for passed_fd in passed:
                    os.close(passed_fd)

    def _dispatch(self, line: bytes) -> dict:
        try:
            req = spec_mod.decode(line)
            op = req.get("op")
            if op == "ping":
                return {"ok": True, "pid": os.getpid(),
                        "guests": len(self.guests)}
            if op == "spawn":
                return self._spawn(spec_mod.GuestSpec.from_dict(req["spec"]))
            if op == "begin":
                return self._begin(spec_mod.GuestSpec.from_dict(req["spec"]))
            if op == "start":
                return self._start(str(req["uuid"]))
            if op == "userns":
                # an fd for idmapped mounts; rides the reply (SCM_RIGHTS)
                id_range = spec_mod.check_id_range(req["id_range"])
                return {"ok": True, "_fds": [userns.make_userns_fd(id_range)]}
            if op == "exec":
                return self._exec(spec_mod.ExecRequest.from_dict(
                    req["request"]))
            if op == "attach":
                return self._attach(str(req["uuid"]))
            if op == "release":
                return self._release(str(req["uuid"]))
            if op == "status":
                return self._status(str(req["uuid"]))
            if op == "forget":
                self._forget(str(req["uuid"]))
                return {"ok": True}
            if op == "shutdown":
                self.running = False
                return {"ok": True, "pid": os.getpid()}
            return {"ok": False, "error": f"unknown op {op!r}"}
        except exception.PyctError as err:
            return {"ok": False,
                    "error": err.kwargs.get("reason", err.message),
                    "step": err.kwargs.get("step"),
                    "errno": err.kwargs.get("errno")}
        # One bad request must not kill the server.
        except Exception as err:  # noqa: B902
            LOG.exception("request failed")
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}

    # -- guests ----------------------------------------------------------
    def _begin(self, spec: spec_mod.GuestSpec) -> dict:
        """Fork the guest's C1 gated (``pending``); answers at once, with
        the guest's user namespace fd if it has an id range."""
        old = self.guests.get(spec.uuid)
        if old is not None:
            if old.exit_code is None and guest_mod.is_same_process(
                    old.pid, old.start_time):
                raise exception.ProcessError(
                    reason=f"guest {spec.uuid} is already running as pid "
                           f"{old.pid}")
            self._forget(spec.uuid)
        now = time.monotonic()
        for uuid, stale in list(self.pending.items()):
            if uuid == spec.uuid or now - stale.started > SPAWN_TIMEOUT:
                del self.pending[uuid]
                stale.abort()
        # C1 closes every descriptor of ours (pending.keep_only): other
        # held guests see EOF if we die, not when this one execs
        entry, ns_fd = pending.fork_gated(spec, now + SPAWN_TIMEOUT)
        self.pending[spec.uuid] = entry
        reply: dict = {"ok": True}
        if ns_fd is not None:
            reply["_fds"] = [ns_fd]
        return reply

    def _start(self, uuid: str) -> dict:
        """Open the gate of a begun guest; answers once its init was
        exec'd (or, held, waits for ``release``)."""
        entry = self.pending.pop(uuid, None)
        if entry is None:
            raise exception.ProcessError(
                reason=f"guest {uuid} was not begun (or was forgotten)",
                step="start")
        spec = entry.spec
        root_error = entry.go()
        master, slave, report_r = entry.master, entry.slave, entry.report_r
        hold_w = entry.hold_w
        pid, error = handshake.wait_for_exec(report_r, entry.c1,
                                             entry.started + SPAWN_TIMEOUT,
                                             until_held=spec.hold)
        if error is not None and root_error is not None:
            error = root_error  # C1 only knows it got no root
        start_time = guest_mod.proc_start_time(pid) if pid else None
        if error is not None or pid is None or start_time is None:
            if hold_w is not None:
                os.close(hold_w)
                if error is None:
                    os.close(report_r)  # still open: the guest was held
            os.close(master)
            os.close(slave)
            entry.log.close()
            if error is None:
                error = {"error": "guest init vanished right after exec",
                         "step": "exec"}
            raise exception.ProcessError(
                reason=error.get("error", "unknown failure"),
                step=error.get("step"), errno=error.get("errno"))
        con = console.Console(uuid, master, slave, entry.log,
                              spec.console_rate, spec.console_burst)
        guest = _Guest(uuid, pid, start_time, con)
        if spec.hold:
            guest.hold_w, guest.report_r = hold_w, report_r
        self.guests[uuid] = guest
        self.consoles.add(con)
        self.by_pid[pid] = guest
        elapsed = time.monotonic() - entry.started
        LOG.info("spawned %s as pid %d in %.1f ms%s", uuid, pid,
                 elapsed * 1000, " (held)" if spec.hold else "")
        return {"ok": True, "handle": {"pid": pid, "start_time": start_time},
                "elapsed": elapsed}

    def _spawn(self, spec: spec_mod.GuestSpec) -> dict:
        """``begin`` and ``start`` in one request."""
        for ns_fd in self._begin(spec).pop("_fds", []):
            os.close(ns_fd)
        return self._start(spec.uuid)

    def _release(self, uuid: str) -> dict:
        """Let a held guest exec its init; answers once it did."""
        started = time.monotonic()
        entry = self.guests.get(uuid)
        if entry is None:
            raise exception.ProcessError(reason=f"unknown guest {uuid}",
                                         step="release")
        if entry.hold_w is None:
            if entry.exit_code is None and guest_mod.is_same_process(
                    entry.pid, entry.start_time):
                return {"ok": True, "elapsed": 0.0}  # released already
            raise exception.ProcessError(
                reason=f"guest {uuid} is not running", step="release")
        report_r = entry.report_r
        entry.report_r = None
        try:
            os.write(entry.hold_w, nsinit.RELEASE_BYTE)
        except OSError as err:
            os.close(report_r)
            entry.close_hold()
            raise exception.ProcessError(
                reason=f"guest {uuid} died while held: {err}",
                step="release") from err
        entry.close_hold()
        error = handshake.wait_for_release(report_r, entry.pid,
                                        started + SPAWN_TIMEOUT)
        if error is not None:
            raise exception.ProcessError(
                reason=error.get("error", "unknown failure"),
                step=error.get("step"), errno=error.get("errno"))
        return {"ok": True, "elapsed": time.monotonic() - started}

    def _exec(self, req: spec_mod.ExecRequest) -> dict:
        """Run a command in a guest the confined way (``guest_exec``);
        the reply carries its stdin, stdout, stderr and status pipes."""
        pid, fds = guest_exec.start(req)
        # the audit trail on the host: who ran what is the caller's to log
        LOG.info("exec in guest %s (init pid %d) by helper %d: %r",
                 req.uuid, req.pid, pid, list(req.argv))
        return {"ok": True, "_fds": fds}

    def _attach(self, uuid: str) -> dict:
        """A socket on the guest's console (output fanned out beside the
        log, input to the pty); rides the reply (SCM_RIGHTS)."""
        entry = self.guests.get(uuid)
        if entry is None or entry.console.master is None:
            raise exception.ProcessError(
                reason=f"guest {uuid} has no console here", step="attach")
        LOG.info("console of %s attached", uuid)
        return {"ok": True, "_fds": [self.consoles.attach(entry.console)]}

    def _status(self, uuid: str) -> dict:
        entry = self.guests.get(uuid)
        if entry is None:
            return {"ok": True, "known": False, "alive": False}
        alive = entry.exit_code is None and guest_mod.is_same_process(
            entry.pid, entry.start_time)
        return {"ok": True, "known": True, "alive": alive, "pid": entry.pid,
                "start_time": entry.start_time, "exit_code": entry.exit_code,
                "held": entry.hold_w is not None,
                "console_bytes": entry.console.read_bytes}

    def _forget(self, uuid: str) -> None:
        begun = self.pending.pop(uuid, None)
        if begun is not None:
            begun.abort()
        entry = self.guests.pop(uuid, None)
        if entry is None:
            return
        entry.close_hold()  # a held guest sees EOF and exits
        self.consoles.close(entry.console)
        entry.console.log.close()
        if self.by_pid.get(entry.pid) is entry:
            del self.by_pid[entry.pid]

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.by_pid.pop(pid, None)
            if entry is not None:
                entry.exit_code = os.waitstatus_to_exitcode(status)
                LOG.info("guest %s (pid %d) exited: %d", entry.uuid, pid,
                         entry.exit_code)
                # the last words, still in the pty buffer
                self.consoles.pump(entry.console, last=True)
                self.consoles.close(entry.console)
