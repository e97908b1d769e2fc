"""The caller's end of a command run in a guest (the launcher's ``exec``).

Runs in pyct-compute, the caller: host root, many threads (the manager's
workers, the RPC server, periodic tasks), any of which may call here; it never
forks. ``communicate`` starts one feeder thread of its own for the command's
stdin.

``ExecSession`` holds the four pipes the launcher hands back: the
command's stdin (to write), stdout and stderr (to read) and the status
pipe, on which the launcher's helper says the command's host pid and then
how it ended. ``communicate`` runs it to the end with the given input, the
way ``subprocess`` does; ``pump`` copies the caller's own stdio for an
interactive operator (``pyct-manage server exec``). Closing stdin is how
the command sees end of input.
"""

from __future__ import annotations

import json
import os
import threading
import time

from pyct_driver import exception
from pyct_driver.virt.kernel import files as kfiles


class ExecSession:
    """A running guest command, seen through its pipes."""

    def __init__(self, fds: list[int]) -> None:
        self.stdin, self.stdout, self.stderr, self._status = fds
        self._buf = b""
        self.pid: int | None = None
        self.returncode: int | None = None

    def _lines(self, timeout: float | None) -> None:
        """Read status lines until one is complete (or the deadline)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline -
                                                     time.monotonic())
            ready = kfiles.wait_readable([self._status], left)
            if not ready:
                raise TimeoutError("guest command still running")
            chunk = os.read(self._status, 4096)
            if not chunk:
                raise exception.ProcessError(
                    reason="the exec helper died without a status",
                    step="exec")
            self._buf += chunk

    def _next(self, timeout: float | None) -> dict:
        self._lines(timeout)
        line, _, self._buf = self._buf.partition(b"\n")
        message = json.loads(line)
        if "error" in message:
            raise exception.ProcessError(
                reason=message["error"], step=message.get("step"),
                errno=message.get("errno"))
        return message

    def host_pid(self, timeout: float | None = 30.0) -> int:
        """The command's pid on the host, once it was exec'd."""
        if self.pid is None:
            self.pid = int(self._next(timeout)["pid"])
        return self.pid

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: killed by that signal)."""
        if self.returncode is None:
            self.host_pid(timeout)
            self.returncode = int(self._next(timeout)["exit"])
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except TimeoutError:
            return None

    def communicate(self, data: bytes = b"", timeout: float | None = None
                    ) -> tuple[int, bytes, bytes]:
        """Feed ``data``, close stdin, collect output until the end."""
        out: dict[int, bytes] = {self.stdout: b"", self.stderr: b""}
        feeder = threading.Thread(target=self._feed, args=(data,),
                                  daemon=True)
        feeder.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        open_fds = [self.stdout, self.stderr]
        while open_fds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("guest command still running")
            ready = kfiles.wait_readable(open_fds, left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    out[fd] += chunk
                else:
                    open_fds.remove(fd)
        left = None if deadline is None else max(0.0, deadline -
                                                 time.monotonic())
        code = self.wait(left)
        feeder.join(5)
        return code, out[self.stdout], out[self.stderr]

    def _feed(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.stdin, view):]
        except OSError:
            pass  # the command stopped reading
        finally:
            self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1

    def close(self) -> None:
        self.close_stdin()
        for name in ("stdout", "stderr", "_status"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
