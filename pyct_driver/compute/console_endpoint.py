"""The compute host's end of the serial console: where the proxy attaches.

When the API asks for a console URL, the compute service makes a one-time
key for that guest (``authorize``) and says where it listens; the API puts
both into the token's row. ``pyct-serialproxy`` consumes the token, connects
here, sends the key and a newline and, answered ``ok``, has a byte stream on
the guest's console (the driver's ``attach_console``). A key is good once
and for ``ttl`` seconds, so this port attaches nobody who did not get a
token through the API. One listener per compute service, on
``[serial_console] proxyclient_address`` and the first free port of
``port_range``; one thread per attached console copies bytes both ways.
"""

from __future__ import annotations

import secrets
import select
import socket
import threading
import time
from typing import Callable

from oslo_log import log as logging

from pyct_driver import exception

LOG = logging.getLogger(__name__)
Attach = Callable[[str], socket.socket]
_CHUNK = 65536


class ConsoleEndpoint:
    """The listener, its one-time keys and the attached consoles."""

    def __init__(self, address: str, port_range: tuple[int, int],
                 ttl: float, attach: Attach) -> None:
        self.address = address
        self.port_range = port_range
        self.ttl = ttl
        self.attach = attach
        self.port: int | None = None
        self._keys: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def parse_range(text: str) -> tuple[int, int]:
        low, _, high = text.partition(":")
        return int(low), int(high)

    def start(self) -> None:
        low, high = self.port_range
        for port in range(low, high + 1):
            sock = socket.socket(socket.AF_INET6 if ":" in self.address
                                 else socket.AF_INET)
            try:
                sock.bind((self.address, port))
            except OSError:
                sock.close()
                continue
            sock.listen(16)
            self._listener, self.port = sock, sock.getsockname()[1]
            break
        else:
            raise exception.PyctError(
                f"no free port for the console endpoint in {low}:{high} "
                f"on {self.address}")
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="console-endpoint")
        self._thread.start()
        LOG.info("serial consoles attach on %s:%d", self.address, self.port)

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def authorize(self, instance_uuid: str) -> dict:
        """A one-time key for the guest's console, and where to use it."""
        if self.port is None:
            raise exception.ConsoleTypeUnavailable(console_type="serial")
        key = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._guard:
            for old, (_, due) in list(self._keys.items()):
                if due <= now:
                    del self._keys[old]
            self._keys[key] = (instance_uuid, now + self.ttl)
        return {"host": self.address, "port": self.port,
                "internal_access_path": key}

    def _take(self, key: str) -> str | None:
        with self._guard:
            uuid, due = self._keys.pop(key, (None, 0.0))
        return uuid if due > time.monotonic() else None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="console-attach").start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            line = b""
            try:
                while b"\n" not in line and len(line) < 256:
                    chunk = conn.recv(256 - len(line))
                    if not chunk:
                        return
                    line += chunk
            except OSError:
                return
            key, _, early = line.partition(b"\n")
            uuid = self._take(key.decode(errors="replace").strip())
            if uuid is None:
                conn.sendall(b"refused\n")
                return
            try:
                guest = self.attach(uuid)
            except exception.PyctError as err:
                LOG.info("console of %s not attached: %s", uuid, err)
                conn.sendall(b"not ready\n")
                return
            LOG.info("serial console of %s attached", uuid)
            with guest:
                conn.sendall(b"ok\n")
                if early:
                    guest.sendall(early)
                conn.settimeout(None)
                splice(conn, guest)
            LOG.info("serial console of %s detached", uuid)


def splice(one: socket.socket, two: socket.socket) -> None:
    """Copy bytes both ways until either side ends (poll, not select:
    descriptor numbers may be high on a busy host)."""
    peer = {one.fileno(): two, two.fileno(): one}
    by_fd = {one.fileno(): one, two.fileno(): two}
    poll = select.poll()
    for fd in peer:
        poll.register(fd, select.POLLIN)
    while True:
        for fd, _ in poll.poll():
            try:
                data = by_fd[fd].recv(_CHUNK)
                if not data:
                    return
                peer[fd].sendall(data)
            except OSError:
                return
