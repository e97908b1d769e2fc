"""The upstream side of the gateway's DNS forwarder (``dnsforward``).

Which resolvers it asks (``chosen``: ``[network] dns_upstreams``, else
``host_resolvers``, the host's own) and how: over
UDP from a fresh socket connected to the upstream (``udp_ask``: a random
source port per question, and the kernel delivers only that upstream's
datagrams), over TCP for guests that asked over TCP (``tcp_ask``). Only
queries ``dnsmsg.upstream_query`` built go out, and only a reply that
``dnsmsg.matches`` the question is taken. ``read_message`` reads one
length-prefixed DNS message within a deadline, for both TCP sides.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time

from pyct_driver import exception
from pyct_driver.virt.network import dnsmsg

LOG = logging.getLogger(__name__)
PORT = 53
TIMEOUT = 2.0     # per upstream; the next one is tried after it
Upstream = tuple[str, int]


def parse_upstream(text: str) -> Upstream:
    """``IP``, ``IP:port`` or ``[IPv6]:port`` as (address, port)."""
    text = text.strip()
    host, port = text, PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(text, rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, rest = text.split(":")
        port = _port(text, rest)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError as err:
        raise exception.NetworkError(
            reason=f"bad DNS upstream {text!r}: {err}") from err


def _port(text: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise exception.NetworkError(reason=f"bad DNS upstream {text!r}")
    return int(value)


def host_resolvers(path: str = "/etc/resolv.conf") -> list[Upstream]:
    """The host's own nameservers (``nameserver`` lines of ``path``)."""
    found = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    try:
                        found.append((str(ipaddress.ip_address(
                            words[1].split("%")[0])), PORT))
                    except ValueError:
                        continue
    except OSError as err:
        LOG.warning("cannot read %s for DNS upstreams: %s", path, err)
    return found


def chosen(enabled: bool, configured: list[str]) -> list[Upstream] | None:
    """The forwarder's upstreams (None: no forwarder): ``configured``
    (``[network] dns_upstreams``; a bad entry raises), else the host's
    own resolvers."""
    if not enabled:
        return None
    if configured:
        return [parse_upstream(u) for u in configured]
    return host_resolvers()


def udp_ask(upstream: Upstream, query: dnsmsg.Query
            ) -> tuple[socket.socket, int]:
    """Send our query for ``query`` to ``upstream``; (the non-blocking
    socket its answer will come to, the id we chose). Raises OSError."""
    ident = secrets.randbits(16)
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                         | socket.SOCK_CLOEXEC)
    try:
        sock.connect(upstream)
        sock.send(dnsmsg.upstream_query(query, ident))
    except BaseException:
        sock.close()
        raise
    return sock, ident


def tcp_ask(upstreams: tuple[Upstream, ...], query: dnsmsg.Query
            ) -> bytes | None:
    """The first matching answer of ``upstreams`` asked in turn over
    TCP, under the guest's id; None when none answered."""
    for upstream in upstreams:
        ident = secrets.randbits(16)
        msg = dnsmsg.upstream_query(query, ident)
        try:
            with socket.create_connection(upstream, timeout=TIMEOUT) as up:
                up.sendall(len(msg).to_bytes(2, "big") + msg)
                reply = read_message(up, 65535, TIMEOUT)
        except OSError as err:
            LOG.debug("DNS upstream %s over TCP: %s", upstream, err)
            continue
        if reply is not None and dnsmsg.matches(reply, query, ident):
            return dnsmsg.for_client(reply, query, 65535)
    return None


def read_message(conn: socket.socket, limit: int,
                 within: float) -> bytes | None:
    """One length-prefixed DNS message, whole within ``within`` seconds
    (a byte now and then does not keep a connection); None at EOF or when
    longer than ``limit``. A timeout raises (OSError)."""
    deadline = time.monotonic() + within
    head = _read_exactly(conn, 2, deadline)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > limit:
        return None
    return _read_exactly(conn, size, deadline)


def _read_exactly(conn: socket.socket, size: int,
                  deadline: float) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("DNS message too slow")
        conn.settimeout(left)
        chunk = conn.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
