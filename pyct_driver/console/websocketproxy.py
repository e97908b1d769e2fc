"""``pyct-serialproxy``'s core: a websocket before guests' serial consoles.

A client (a browser page, ``websocat``, a script) opens the URL the API
gave it, ``ws://proxy/?token=T``. Before the websocket upgrade the proxy
checks, in this order: a subprotocol it speaks (websockify's: ``binary``
-- raw frames -- or ``base64`` -- text frames of base64; none offered means
binary), a browser's ``Origin`` naming this proxy's own host (or one of
``[serial_console] allowed_origins``) over the scheme of ``base_url``
(403 otherwise: another site's page must not drive a console with a
token it stole), and the one-time token (401 if unknown, expired or
used; ``db.console_tokens`` consumes it). It then connects to the guest's
compute host, presents the compute host's own one-time key
(``compute.console_endpoint``; 503 if it refuses) and, once upgraded,
copies bytes both ways until either side closes. One thread per
connection (websockets' threaded server), no eventlet.
"""

from __future__ import annotations

import base64
import binascii
import socket
import threading
import urllib.parse
from typing import Sequence

from oslo_log import log as logging
from websockets import exceptions as ws_exc
from websockets.http11 import Request, Response
from websockets.sync import server as ws_server

from pyct_driver import exception
from pyct_driver.db import console_tokens
from pyct_driver.db.engine import Database

LOG = logging.getLogger(__name__)
SUBPROTOCOLS = ("binary", "base64")
_CHUNK = 65536


def _choose(_conn: ws_server.ServerConnection,
            offered: Sequence[str]) -> str | None:
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    return None


class SerialProxy:
    """The websocket server; ``port`` is known once it listens."""

    def __init__(self, db: Database, host: str, port: int, base_url: str,
                 allowed_origins: Sequence[str] = ()) -> None:
        self.db = db
        self.host, self.port = host, port
        self.scheme = urllib.parse.urlsplit(base_url).scheme or "ws"
        self.allowed_origins = set(allowed_origins)
        self._server: ws_server.Server | None = None
        self._thread: threading.Thread | None = None
        self._targets: dict[int, socket.socket] = {}
        self._guard = threading.Lock()

    def start(self) -> None:
        """Listen, and serve in a thread."""
        try:
            self._server = ws_server.serve(
                self._session, self.host, self.port,
                process_request=self._check, process_response=self._drop,
                select_subprotocol=_choose,
                compression=None, max_size=1 << 20)
        except OSError as err:
            raise exception.PyctError(
                f"serial console proxy cannot listen on {self.host}:"
                f"{self.port}: {err}") from err
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True, name="serialproxy")
        self._thread.start()
        LOG.info("serial console proxy on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- before the upgrade --------------------------------------------
    def _check(self, conn: ws_server.ServerConnection, request: Request
               ) -> Response | None:
        offered = [p.strip() for p in request.headers.get(
            "Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        if offered and _choose(conn, offered) is None:
            return conn.respond(400, "Unsupported subprotocol: use binary "
                                     "or base64.\n")
        if not self._origin_ok(request):
            return conn.respond(403, "Origin header does not match this "
                                     "host.\n")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(
            request.path).query)
        token = (query.get("token") or [""])[0]
        info = console_tokens.consume(self.db, token)
        if info is None:
            LOG.info("console token refused (unknown, expired or used)")
            return conn.respond(401, "The token is invalid or has "
                                     "expired.\n")
        target = self._connect(info)
        if target is None:
            return conn.respond(503, "The console is not available.\n")
        with self._guard:
            self._targets[id(conn)] = target
        return None

    def _drop(self, conn: ws_server.ServerConnection, _request: Request,
              response: Response) -> None:
        """A handshake that failed after the check: let its console go."""
        if response.status_code != 101:
            with self._guard:
                target = self._targets.pop(id(conn), None)
            if target is not None:
                target.close()

    def _origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser
        parts = urllib.parse.urlsplit(origin)
        own = urllib.parse.urlsplit(
            "//" + request.headers.get("Host", "")).hostname
        scheme = request.headers.get("X-Forwarded-Proto") or parts.scheme
        secure = self.scheme in ("wss", "https")
        schemes = ("wss", "https") if secure else ("ws", "http")
        return bool(parts.hostname) and scheme in schemes and (
            parts.hostname == own or parts.hostname in self.allowed_origins)

    @staticmethod
    def _connect(info: console_tokens.ConnectInfo) -> socket.socket | None:
        try:
            sock = socket.create_connection((info.host, info.port),
                                            timeout=5.0)
        except OSError as err:
            LOG.warning("console of %s: compute host %s:%d: %s",
                        info.instance_uuid, info.host, info.port, err)
            return None
        try:
            sock.sendall(info.internal_access_path.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n") and len(reply) < 64:
                chunk = sock.recv(1)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            reply = b""
        if reply != b"ok\n":
            LOG.warning("console of %s: compute host answered %r",
                        info.instance_uuid, reply)
            sock.close()
            return None
        sock.settimeout(None)
        LOG.info("console of %s attached", info.instance_uuid)
        return sock

    # -- after the upgrade ---------------------------------------------
    def _session(self, conn: ws_server.ServerConnection) -> None:
        with self._guard:
            target = self._targets.pop(id(conn), None)
        if target is None:
            conn.close(1011, "no console")
            return
        as_text = conn.subprotocol == "base64"
        pump = threading.Thread(target=self._to_client,
                                args=(target, conn, as_text), daemon=True)
        pump.start()
        try:
            for message in conn:
                if isinstance(message, str):
                    data = (base64.b64decode(message, validate=True)
                            if as_text else message.encode())
                else:
                    data = message
                target.sendall(data)
        except (ws_exc.ConnectionClosed, OSError, binascii.Error):
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pump.join(timeout=5)
            target.close()
            conn.close()

    @staticmethod
    def _to_client(target: socket.socket,
                   conn: ws_server.ServerConnection, as_text: bool) -> None:
        try:
            while data := target.recv(_CHUNK):
                conn.send(base64.b64encode(data).decode() if as_text
                          else data)
        except (ws_exc.ConnectionClosed, OSError):
            pass
        finally:
            conn.close()
