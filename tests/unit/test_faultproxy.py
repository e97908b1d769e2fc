"""The test harness's fault-injecting proxy (``tests.faultproxy``) does
each fault it promises, against a local echo server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.faultproxy import FaultProxy


@pytest.fixture
def echo():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve(conn):
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass  # the proxy reset it: what the tests do

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def _talk(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


def _broken(sock: socket.socket, payload: bytes = b"z") -> bool:
    """Whether ``sock`` no longer echoes: a reset, or an EOF."""
    try:
        sock.sendall(payload)
        return sock.recv(4096) == b""
    except OSError:
        return True


def _refused(port: int) -> bool:
    try:
        return _talk(port) == b""
    except OSError:
        return True


def test_forwards_both_ways(echo):
    with FaultProxy(echo) as proxy:
        assert _talk(proxy.port, b"hello" * 1000) == b"hello" * 1000
        assert proxy.accepted == 1


def test_cut_resets_open_connections(echo):
    with FaultProxy(echo) as proxy:
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(b"a")
        assert s.recv(1) == b"a"
        assert proxy.cut() == 1
        assert _broken(s)
        s.close()
        assert _talk(proxy.port) == b"ping"  # new ones still work


def test_refuse_then_restore(echo):
    with FaultProxy(echo) as proxy:
        with proxy.outage():
            assert _refused(proxy.port)
        assert _talk(proxy.port) == b"ping"


def test_delay(echo):
    with FaultProxy(echo) as proxy:
        proxy.delay(0.3)
        start = time.monotonic()
        assert _talk(proxy.port) == b"ping"
        # once on the way there, once back
        assert time.monotonic() - start >= 0.6


def test_reset_mid_stream(echo):
    with FaultProxy(echo) as proxy:
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        proxy.reset_after(10)
        s.sendall(b"y" * 100)
        got = b""
        with pytest.raises(ConnectionResetError):
            while chunk := s.recv(4096):
                got += chunk
        assert len(got) <= 10
        s.close()
        deadline = time.monotonic() + 5
        while proxy.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.open_connections() == 0
