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

The compute service runs it ``per_device``: one listener per project
bridge, bound to that device (``up`` when the driver sets a bridge up,
``down`` when it goes), instead of one for the whole host. The kernel lets
sockets bound to different devices share an address and port, so several
pyct deployments on one host (``make run`` beside the test suite) each
serve their own guests on 169.254.169.254:80, and a listener never hears
anyone but the guests on its bridge.
"""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
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

    def __init__(self, address: tuple[str, int], resolve: Resolver,
                 device: str | None = None) -> None:
        self.resolve = resolve
        self.device = device
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            self.socket.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        if self.device:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                   self.device.encode())
        super().server_bind()


class _Listener:
    """One HTTP server and its thread; ``index`` is its device's ifindex
    when it was bound (a device made again has a new one)."""

    def __init__(self, httpd: _HTTPServer, index: int = 0) -> None:
        self.httpd = httpd
        self.index = index
        self.thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
            daemon=True, name=f"metadata-{httpd.device or 'server'}")
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class MetadataServer:
    """The service's lifecycle: ``start`` binds and serves in a thread,
    ``stop`` closes. ``resolve`` maps a source address to its instance's
    ``lookup.Source`` (or None). With ``per_device``, ``start`` binds
    nothing: ``up``/``down`` add and drop one listener per device."""

    def __init__(self, address: str, port: int, resolve: Resolver,
                 per_device: bool = False) -> None:
        self.address = address
        self.port = port
        self.resolve = resolve
        self.per_device = per_device
        self._guard = threading.Lock()
        self._running = False
        self._main: _Listener | None = None
        self._devices: dict[str, _Listener] = {}

    @classmethod
    def from_db(cls, db: Database, address: str, port: int,
                host: str | None = None,
                gateway_dns: bool = False,
                per_device: bool = False,
                overhead: int = 0) -> "MetadataServer":
        """Serve the instances the database places on ``host``
        (``gateway_dns``: ``[network] dns_forwarder``; ``overhead``: the
        MTU VXLAN takes on this host)."""
        return cls(address, port, lambda ip: lookup.source_for_address(
            db, ip, host, gateway_dns, overhead), per_device=per_device)

    @property
    def bound_address(self) -> tuple[str, int]:
        if self._main is None:
            raise exception.PyctError("metadata server is not running")
        return self._main.httpd.server_address[:2]

    @property
    def devices(self) -> list[str]:
        """The devices served now (``per_device``)."""
        with self._guard:
            return sorted(self._devices)

    def start(self) -> None:
        with self._guard:
            self._running = True
        if self.per_device:
            LOG.info("metadata service on %s:%s, on each project network's "
                     "bridge", self.address, self.port)
            return
        try:
            self._main = _Listener(_HTTPServer((self.address, self.port),
                                               self.resolve))
        except OSError as err:
            raise exception.PyctError(
                f"metadata service cannot bind {self.address}:{self.port}: "
                f"{err.strerror or err}") from err
        LOG.info("metadata service listening on %s:%s", *self.bound_address)

    def up(self, device: str) -> None:
        """Serve the guests behind ``device`` (again, if it was made anew).
        Never raises: a guest without the service still boots (config
        drive), and the error is logged."""
        try:
            index = socket.if_nametoindex(device)
        except OSError:
            return  # gone meanwhile
        with self._guard:
            if not (self._running and self.per_device):
                return
            held = self._devices.get(device)
            if held is not None and held.index == index:
                return  # the common case: a dictionary look per spawn
            stale = self._devices.pop(device, None)
            try:
                listener = _Listener(_HTTPServer(
                    (self.address, self.port), self.resolve, device), index)
            except OSError as err:
                LOG.error("metadata service cannot listen on %s:%s on %s: "
                          "%s", self.address, self.port, device,
                          err.strerror or err)
                listener = None
            if listener is not None:
                self._devices[device] = listener
        if stale is not None:
            stale.close()
        if listener is not None:
            LOG.info("metadata service listening on %s:%s on %s",
                     self.address, self.port, device)

    def down(self, device: str) -> None:
        """Stop serving on ``device`` once it is gone (a device of that
        name made again meanwhile keeps the listener ``up`` gave it)."""
        try:
            index = socket.if_nametoindex(device)
        except OSError:
            index = None
        with self._guard:
            held = self._devices.get(device)
            if held is None or held.index == index:
                return
            del self._devices[device]
        held.close()

    def stop(self) -> None:
        with self._guard:
            self._running = False
            listeners = list(self._devices.values())
            self._devices.clear()
            main, self._main = self._main, None
        if main is not None:
            listeners.append(main)
        if listeners:  # each takes up to a poll interval: all at once
            with ThreadPoolExecutor(min(len(listeners), 32)) as pool:
                list(pool.map(_Listener.close, listeners))
