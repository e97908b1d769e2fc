"""The compute side's handle on the launcher.

Runs in pyct-compute, the caller: host root, many threads (the manager's
workers, the RPC server, periodic tasks), any of which may call here; it never
forks. The calls it makes are served one at a time by the fork server.

``LauncherClient`` starts the per-host launcher if its socket does not answer
(exec'ing a fresh interpreter, never forking the caller), reuses one that
does, and turns each call into one JSON request on ``launcher.sock``. Calls
are serialised by a lock so the compute manager's threads can share one
client. The launcher runs in its own session, so stopping or killing
pyct-compute leaves it and every guest alone; ``shutdown`` stops only the
launcher (guests keep running).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pyct_driver
from pyct_driver import exception
from pyct_driver.virt.process import guest
from pyct_driver.virt.process import spec as spec_mod
from pyct_driver.virt.process.caller.exec_session import ExecSession


class LauncherClient:
    """Talks to the launcher serving ``state_dir``; thread-safe."""

    def __init__(self, state_dir: str, timeout: float = 60.0,
                 python: str = sys.executable) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.socket_path = os.path.join(self.state_dir, spec_mod.SOCKET_NAME)
        self.log_path = os.path.join(self.state_dir, spec_mod.LOG_NAME)
        self.timeout = timeout
        self.python = python
        self._lock = threading.Lock()

    def ensure_running(self) -> int:
        """Start the launcher unless one answers; return its pid."""
        with self._lock:
            try:
                return int(self._call_locked({"op": "ping"})["pid"])
            except exception.ProcessError:
                pass
            self._start_locked()
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    return int(self._call_locked({"op": "ping"})["pid"])
                except exception.ProcessError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

    def _start_locked(self) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        # The launcher must import this package even when it is not
        # installed (a source checkout), so hand it our sys.path root.
        root = os.path.dirname(os.path.dirname(pyct_driver.__file__))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    [self.python, "-m",
                     "pyct_driver.virt.process.forkserver.daemon",
                     "--state-dir", self.state_dir],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    close_fds=True, start_new_session=True, cwd="/", env=env)
                # This process only waits for the daemon to be ready and
                # exits, so it is reaped here and leaves no zombie.
                code = proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise exception.ProcessError(
                    reason=f"cannot start launcher: {err}") from err
        if code != 0:
            raise exception.ProcessError(
                reason=f"launcher failed to start (exit {code}); "
                       f"see {self.log_path}")

    def _call(self, request: dict) -> dict:
        with self._lock:
            return self._call_locked(request)

    def _call_locked(self, request: dict,
                     fds: list[int] | None = None) -> dict:
        return self._answer(self._send(request), request, fds)

    def _send(self, request: dict) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX,
                             socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
            sock.sendall(spec_mod.encode(request))
        except OSError as err:
            sock.close()
            raise exception.ProcessError(
                reason=f"launcher at {self.socket_path} did not take "
                       f"{request.get('op')}: {err}") from err
        return sock

    def _answer(self, sock: socket.socket, request: dict,
                fds: list[int] | None = None) -> dict:
        """Read the reply to ``request`` on ``sock`` (closed here)."""
        try:
            reply = b""
            while not reply.endswith(b"\n"):
                # recv_fds also works for replies without fds
                chunk, got, _flags, _addr = socket.recv_fds(sock, 65536, 8)
                if fds is not None:
                    fds.extend(got)
                else:
                    for fd in got:
                        os.close(fd)
                if not chunk:
                    raise ConnectionError("launcher closed the connection")
                reply += chunk
        except OSError as err:
            raise exception.ProcessError(
                reason=f"launcher at {self.socket_path} did not answer "
                       f"{request.get('op')}: {err}", step="launcher") from err
        finally:
            sock.close()
        answer = spec_mod.decode(reply)
        if not answer.get("ok"):
            raise exception.ProcessError(
                reason=answer.get("error", "launcher refused the request"),
                step=answer.get("step"), errno=answer.get("errno"))
        return answer

    def spawn(self, spec: spec_mod.GuestSpec) -> spec_mod.GuestHandle:
        """Start the guest; returns once its init has been exec'd -- or,
        with ``spec.hold``, once its PID 1 (namespaces ready) waits for
        ``release``."""
        answer = self._call({"op": "spawn", "spec": spec.to_dict()})
        return spec_mod.GuestHandle.from_dict(answer["handle"])

    def begin(self, spec: spec_mod.GuestSpec) -> Begun:
        """First half of ``spawn``: sends the request and returns without
        waiting (``Begun.wait`` reads the answer). The launcher forks the
        guest's C1, which joins its cgroups (they must exist) and waits;
        the root need not be mounted until ``start``; ``forget`` abandons
        the spawn."""
        with self._lock:
            request = {"op": "begin", "spec": spec.to_dict()}
            return Begun(self, self._send(request), request,
                         spec.id_range is not None)

    def start(self, uuid: str) -> spec_mod.GuestHandle:
        """Second half of ``spawn``: returns once the guest's init has
        been exec'd (or, with ``spec.hold``, waits for ``release``)."""
        answer = self._call({"op": "start", "uuid": uuid})
        return spec_mod.GuestHandle.from_dict(answer["handle"])

    def userns_fd(self, id_range: tuple[int, int]) -> int:
        """An fd of a user namespace whose ids 0.. map onto ``id_range``
        (for idmapped mounts); the caller closes it."""
        return self._one_fd({"op": "userns", "id_range": list(id_range)},
                            "user namespace")

    def attach_console(self, uuid: str) -> int:
        """A stream socket (fd) on the guest's console: what the guest
        writes from now on (the log keeps it too), and what is written to
        it goes to the guest's console input; the caller closes it."""
        return self._one_fd({"op": "attach", "uuid": uuid}, "console")

    def _one_fd(self, request: dict, what: str) -> int:
        fds: list[int] = []
        try:
            with self._lock:
                self._call_locked(request, fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise exception.ProcessError(
                reason=f"launcher sent no {what} fd", step=request["op"])
        return fds[0]

    def exec(self, request: spec_mod.ExecRequest) -> ExecSession:
        """Run a command in a running guest, confined as the guest's own
        processes (``forkserver.guest_exec``); its pipes come back as a
        session."""
        fds: list[int] = []
        try:
            with self._lock:
                self._call_locked({"op": "exec",
                                   "request": request.to_dict()}, fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            raise exception.ProcessError(
                reason="launcher sent no exec pipes", step="exec")
        return ExecSession(fds)

    def release(self, uuid: str) -> None:
        """Let a guest spawned with ``hold`` exec its init; returns once it
        did. Releasing a running, already released guest is a no-op."""
        self._call({"op": "release", "uuid": uuid})

    def status(self, uuid: str) -> dict:
        """``{"known", "alive", "pid", "start_time", "exit_code", "held"}``.

        ``known`` is False for guests this launcher did not spawn (e.g.
        spawned by a launcher that has since died); use
        ``guest.is_same_process`` for those.
        """
        answer = self._call({"op": "status", "uuid": uuid})
        answer.pop("ok", None)
        return answer

    def forget(self, uuid: str) -> None:
        """Stop logging the guest's console and drop the launcher's record."""
        self._call({"op": "forget", "uuid": uuid})

    def running_pid(self) -> int | None:
        """The pid of the launcher answering on the socket, if one does
        (never starts one)."""
        try:
            return int(self._call({"op": "ping"})["pid"])
        except exception.ProcessError:
            return None

    def launcher_pid(self) -> int | None:
        """The pid in the launcher's pid file, if any."""
        try:
            with open(os.path.join(self.state_dir, spec_mod.PID_NAME)) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the launcher (not the guests) and wait until it is gone."""
        with self._lock:
            try:
                pid = int(self._call_locked({"op": "ping"})["pid"])
            except exception.ProcessError:
                return
            start = guest.proc_start_time(pid)
            self._call_locked({"op": "shutdown"})
            deadline = time.monotonic() + timeout
            while start is not None and guest.is_same_process(pid, start):
                if time.monotonic() > deadline:
                    raise exception.ProcessError(
                        reason=f"launcher {pid} did not stop")
                time.sleep(0.01)


class Begun:
    """The launcher's answer to ``begin``, read when needed."""

    def __init__(self, client: LauncherClient, sock: socket.socket,
                 request: dict, with_userns: bool) -> None:
        self._client = client
        self._sock: socket.socket | None = sock
        self._request = request
        self._with_userns = with_userns
        self.refused = False  # the launcher answered no: nothing to undo

    def wait(self) -> int | None:
        """Once: an fd of the guest's user namespace (the caller closes
        it) for a guest with an id range, else None; ProcessError if the
        launcher refused."""
        sock, self._sock = self._sock, None
        if sock is None:
            raise exception.ProcessError(reason="begin answer read twice",
                                         step="begin")
        fds: list[int] = []
        try:
            self._client._answer(sock, self._request, fds)
        except BaseException as err:
            for fd in fds:
                os.close(fd)
            self.refused = isinstance(err, exception.ProcessError) and \
                err.kwargs.get("step") != "launcher"
            raise
        if len(fds) > 1 or self._with_userns != bool(fds):
            for fd in fds:
                os.close(fd)
            raise exception.ProcessError(
                reason="launcher sent no user namespace fd", step="begin")
        return fds[0] if fds else None

    def close(self) -> None:
        """Drop the answer if it was not read (after the launcher sent
        it, so a ``forget`` sent next finds the guest)."""
        if self._sock is not None:
            try:
                fd = self.wait()
            except exception.ProcessError:
                return
            if fd is not None:
                os.close(fd)
