"""The metadata service: HTTP on ``[metadata] address:port`` for the guests.

One threaded HTTP server per compute host. A request is answered from the
instance that holds the request's TCP source address as a fixed IP (see
``lookup.source_for_address``) and from nothing else: headers such as
``X-Forwarded-For`` or ``Host`` and query arguments are ignored, so a guest
can read only its own data, and an address no instance holds gets 404. The
socket is bound with ``IP_FREEBIND`` because the address lives on pyct's
project bridges, which may not exist yet when the service starts. Handlers
have a socket timeout, so a guest that opens connections and stays silent
ties up a thread only for that long.
"""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.parse
from typing import Callable

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.db.engine import Database
from pyct_driver.metadata import content, lookup

LOG = logging.getLogger(__name__)

# Not exported by Python's socket module; the same value on every Linux
# architecture (linux/in.h, linux/in6.h).
IP_FREEBIND = 15
IPV6_FREEBIND = 78

Resolver = Callable[[str], "lookup.Source | None"]


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "pyct-metadata"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 15

    def _answer(self, send_body: bool) -> None:
        # the source address is the guest's identity; nothing it sends is
        source = self.client_address[0]
        if source.startswith("::ffff:"):
            source = source[len("::ffff:"):]
        path = urllib.parse.urlsplit(self.path).path
        try:
            src = self.server.resolve(source)  # type: ignore[attr-defined]
            status, body, ctype = (content.NOT_FOUND if src is None
                                   else content.respond(src, path))
        except Exception:  # noqa: B902 - a broken DB must not kill the thread
            LOG.exception("metadata request %s from %s failed", path, source)
            status, body, ctype = 500, b"Internal Server Error\n", \
                content.TEXT_TYPE
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def _refuse(self) -> None:
        body = b"Method Not Allowed\n"
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", content.TEXT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def log_message(self, fmt: str, *args: object) -> None:
        LOG.debug("metadata %s: " + fmt, self.client_address[0], *args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], resolve: Resolver) -> None:
        self.resolve = resolve
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            self.socket.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        super().server_bind()


class MetadataServer:
    """The service's lifecycle: ``start`` binds and serves in a thread,
    ``stop`` closes. ``resolve`` maps a source address to its instance's
    ``lookup.Source`` (or None)."""

    def __init__(self, address: str, port: int, resolve: Resolver) -> None:
        self.address = address
        self.port = port
        self.resolve = resolve
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_db(cls, db: Database, address: str, port: int,
                host: str | None = None,
                gateway_dns: bool = False) -> "MetadataServer":
        """Serve the instances the database places on ``host``
        (``gateway_dns``: ``[network] dns_forwarder``)."""
        return cls(address, port, lambda ip: lookup.source_for_address(
            db, ip, host, gateway_dns))

    @property
    def bound_address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise exception.PyctError("metadata server is not running")
        return self._httpd.server_address[:2]

    def start(self) -> None:
        try:
            self._httpd = _HTTPServer((self.address, self.port), self.resolve)
        except OSError as err:
            raise exception.PyctError(
                f"metadata service cannot bind {self.address}:{self.port}: "
                f"{err.strerror or err}") from err
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5},
            daemon=True, name="metadata-server")
        self._thread.start()
        LOG.info("metadata service listening on %s:%s", *self.bound_address)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
