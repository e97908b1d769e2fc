"""A fault-injecting TCP proxy the tests put between pyct and a real service.

``FaultProxy(target_port)`` listens on 127.0.0.1 (a free port) and
forwards every connection to 127.0.0.1:``target_port`` (the machine's
RabbitMQ or PostgreSQL), one pair of threads per connection. The faults
never touch the shared service itself, only the connections through the
proxy:

- ``cut()``: close every open connection (a broker or database restart
  as the clients see it); new ones are accepted.
- ``refuse(True)``: new connections are closed at once with a reset
  (connection refused, as seen by a client's handshake) until
  ``refuse(False)``.
- ``delay(seconds)``: hold every chunk in both directions that long.
- ``reset_after(nbytes)``: each open connection is reset (RST, not FIN)
  once that many more bytes passed through it: a drop mid-stream, e.g.
  in the middle of a transaction.

``outage()`` is the common combination: cut everything and refuse new
connections for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from typing import Iterator

_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST: SO_LINGER on with a zero timeout."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One client connection and its upstream one."""

    def __init__(self, proxy: "FaultProxy", client: socket.socket,
                 upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.budget: int | None = None  # bytes until a reset
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        for src, dst in ((self.client, self.upstream),
                         (self.upstream, self.client)):
            threading.Thread(target=self._pump, args=(src, dst),
                             daemon=True, name="faultproxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed:
                # poll, not select(): descriptors may be above 1024
                poller = select.poll()
                poller.register(src, select.POLLIN)
                if not poller.poll(200):
                    continue
                data = src.recv(_CHUNK)
                if not data:
                    break
                if self.proxy.delay_s:
                    time.sleep(self.proxy.delay_s)
                with self.lock:
                    if self.budget is not None:
                        if len(data) >= self.budget:
                            dst.sendall(data[:self.budget])
                            self.close(reset=True)
                            return
                        self.budget -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        self.close()

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy.forget(self)


class FaultProxy:
    """A TCP proxy on 127.0.0.1 to 127.0.0.1:``target_port``."""

    def __init__(self, target_port: int,
                 target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay_s = 0.0
        self.refusing = False
        self.accepted = 0  # connections forwarded, for tests and benches
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="faultproxy-accept")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if self.refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            pair = _Pair(self, client, upstream)
            with self._lock:
                self._pairs.add(pair)
                self.accepted += 1
            pair.start()

    def forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> int:
        """Reset every open connection; return how many there were."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close(reset=True)
        return len(pairs)

    def refuse(self, on: bool = True) -> None:
        self.refusing = on

    def delay(self, seconds: float) -> None:
        self.delay_s = seconds

    def reset_after(self, nbytes: int) -> None:
        """Reset each connection open now after ``nbytes`` more bytes."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            with pair.lock:
                pair.budget = nbytes

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """No service inside the block: open connections cut, new ones
        refused."""
        self.refuse(True)
        self.cut()
        try:
            yield
        finally:
            self.refuse(False)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)
        self.cut()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
