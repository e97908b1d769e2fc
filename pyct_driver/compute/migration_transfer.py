"""The compute-to-compute channel of a cold migration: no SSH, one token.

The destination opens a ``Receiver`` for one migration: a TCP listener on
its management address (``[migration] address``, never a wildcard: a
guest's network reaches the host's bridges, not that address's port
unless routed there) on a port the kernel picks, and a fresh 256-bit
token that the source learns only through the RPC answer
(``open_migration``). The source connects, sends one header line
(``<token> <instance uuid>``) and then the stream. The token is bound to
that instance, good for one connection (the listener closes once a
sender is accepted; a wrong header is dropped and counted) and expires
after ``ttl`` seconds (the listener closes, unused). Both ends hash the
stream with SHA-256 as it passes; the source hands its digest to the
destination over RPC afterwards, and the destination's ``wait`` refuses
the data (``TransferError``) unless the two agree -- so a stream cut,
altered or replaced on the wire is never used. Nothing is buffered: the
receiving callback reads from the socket as the sender writes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import threading
import time
from typing import BinaryIO, Callable

from oslo_log import log as logging

from pyct_driver.exception import TransferError

LOG = logging.getLogger(__name__)
_HEADER_MAX = 200
_BUFFER = 1 << 20  # socket file buffers: fewer, larger system calls


class _Hashing:
    """A file-like view of a socket file that hashes what passes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class Receiver:
    """The destination's end of one migration's transfer."""

    def __init__(self, address: str, instance_uuid: str,
                 receive: Callable[[BinaryIO], None], ttl: float = 60,
                 idle_timeout: float = 300) -> None:
        if address in ("", "0.0.0.0", "::"):
            raise TransferError(reason="the migration address must be the "
                                "host's management address, not a "
                                "wildcard")
        self.instance_uuid = instance_uuid
        self.token = secrets.token_hex(32)
        self.refused = 0
        self._receive = receive
        self._idle = idle_timeout
        self._deadline = time.monotonic() + ttl
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        try:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.bind((address, 0))
            self._sock.listen(4)
        except OSError as err:
            raise TransferError(reason=f"listening on {address}: {err}") \
                from err
        self.address, self.port = self._sock.getsockname()[:2]
        self._thread = threading.Thread(
            target=self._serve, daemon=True,
            name=f"migration-in-{instance_uuid}")
        self._thread.start()

    def endpoint(self) -> dict:
        """What the source needs (the RPC answer)."""
        return {"address": self.address, "port": self.port,
                "token": self.token}

    def _accept(self) -> socket.socket | None:
        """The first connection with the right header; None on expiry."""
        while (left := self._deadline - time.monotonic()) > 0:
            self._sock.settimeout(left)
            try:
                conn, _peer = self._sock.accept()
            except (socket.timeout, OSError):
                return None
            conn.settimeout(min(5.0, max(left, 0.1)))
            try:
                header = conn.makefile("rb").readline(_HEADER_MAX)
            except OSError:
                header = b""
            want = f"{self.token} {self.instance_uuid}\n".encode()
            if hmac.compare_digest(header, want):
                conn.settimeout(self._idle)
                return conn
            self.refused += 1
            LOG.warning("migration listener for %s refused a sender "
                        "with a wrong token", self.instance_uuid)
            conn.close()
        return None

    def _serve(self) -> None:
        try:
            conn = self._accept()
            self._sock.close()  # one sender per token
            if conn is None:
                raise TransferError(reason="no sender came before the "
                                    "token expired")
            with conn, conn.makefile("rb", buffering=_BUFFER) as raw:
                # the header's reader may have read ahead: the sender
                # waits for this "go" before the stream, so it had none
                conn.sendall(b"go\n")
                stream = _Hashing(raw)
                try:
                    self._receive(stream)
                except Exception as err:  # the sender learns why
                    reason = getattr(err, "message", type(err).__name__)
                    conn.sendall(f"error {reason}"[:500].encode(
                        errors="replace").replace(b"\n", b" ") + b"\n")
                    raise
                self._digest = stream.digest.hexdigest()
                conn.sendall(b"ok\n")
        except BaseException as err:  # handed to wait()
            LOG.warning("migration stream of %s not taken: %s",
                        self.instance_uuid, err)
            self._error = err
        finally:
            self._sock.close()
            self._done.set()

    def wait(self, digest: str, timeout: float) -> None:
        """Block until the stream was received; TransferError unless it
        arrived whole and its SHA-256 is ``digest`` (the source's)."""
        if not self._done.wait(timeout):
            self.close()
            raise TransferError(reason="the stream did not end in time")
        if self._error is not None:
            raise TransferError(reason=str(self._error)) from self._error
        if not hmac.compare_digest(self._digest or "", digest):
            raise TransferError(reason="SHA-256 of the stream received "
                                "differs from the sender's")

    def close(self) -> None:
        self._deadline = 0
        self._sock.close()


def send(endpoint: dict, instance_uuid: str,
         write: Callable[[BinaryIO], None], timeout: float = 300) -> str:
    """Stream what ``write`` writes to the destination's receiver;
    returns the SHA-256 (hex) of the stream."""
    try:
        conn = socket.create_connection(
            (endpoint["address"], int(endpoint["port"])), timeout=timeout)
    except OSError as err:
        raise TransferError(reason=f"connecting to {endpoint['address']}: "
                            f"{err}") from err
    try:
        with conn, conn.makefile("wb", buffering=_BUFFER) as raw, \
                conn.makefile("rb") as back:
            raw.write(f"{endpoint['token']} {instance_uuid}\n".encode())
            raw.flush()
            if back.readline(16) != b"go\n":
                raise TransferError(reason="the receiver refused the token")
            stream = _Hashing(raw)
            try:
                write(stream)
                raw.flush()
                conn.shutdown(socket.SHUT_WR)
            except OSError as err:  # the destination may have said why
                raise TransferError(reason=_refusal(back) or str(err)) \
                    from err
            answer = _refusal(back)
            if answer:
                raise TransferError(reason=answer)
            return stream.digest.hexdigest()
    except OSError as err:
        raise TransferError(reason=f"sending: {err}") from err


def _refusal(back: BinaryIO) -> str:
    """The destination's closing line: "" for ok, else why not."""
    try:
        answer = back.readline(600)
    except OSError:
        answer = b""
    if answer == b"ok\n":
        return ""
    return "the destination did not take the stream: " + (
        answer[6:].decode(errors="replace").strip()
        if answer.startswith(b"error ") else "no answer")
