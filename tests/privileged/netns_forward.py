"""Loopback services seen from a test's network namespace.

A compute service run in a namespaced "host" must reach the machine's
RabbitMQ and PostgreSQL, which listen on the machine's loopback only.
``Forwarder`` opens a listening socket *inside* the namespace on
127.0.0.1:<port> (a short-lived thread enters the namespace with
setns(2), makes the socket and ends; the socket stays in that
namespace), and relays each connection to the same port on the
machine's own loopback. So the namespaced service uses the very URLs
the rest of the deployment does. No address outside loopback is used.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

_CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def _listener_in(netns: str, port: int) -> socket.socket:
    box: dict = {}

    def make() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns")
                return
            # this thread ends right after: nothing else runs in there
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            box["sock"] = sock
        except OSError as err:
            box["error"] = err
        finally:
            os.close(fd)
    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Forwarder:
    """127.0.0.1:<port> in ``netns`` → 127.0.0.1:<port> of the machine,
    for each of ``ports``; ``close`` stops it and its connections."""

    def __init__(self, netns: str, ports: tuple[int, ...]) -> None:
        self._socks: list[socket.socket] = []
        self._closed = False
        for port in ports:
            sock = _listener_in(netns, port)
            self._socks.append(sock)
            threading.Thread(target=self._accept, args=(sock, port),
                             daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._closed:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", port),
                                                    timeout=10)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            self._socks += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(a, b),
                                 daemon=True).start()

    def close(self) -> None:
        self._closed = True
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
