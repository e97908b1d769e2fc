"""DNS messages as the gateway's forwarder (``dnsforward``) handles them.

A guest's query is parsed strictly (``parse_query``: one question, no
answer or authority records, at most an EDNS OPT record, no compression,
nothing trailing) and judged (``refusal``) before anything leaves the
host; what goes upstream is a new message built here (``upstream_query``:
our id, the question, RD/CD and a DO bit, our own OPT), so a guest can
send its upstream resolver nothing but a well-formed question. Names the
host's resolver answers from host-local state are refused, as dnsmasq's
``--domain-needed`` and ``--bogus-priv`` do: addresses of single-label
names (LLMNR, systemd-resolved's ``_gateway``), ``localhost``, ``.local``
(mDNS) and reverse lookups within private, loopback, link-local and the
other special-purpose blocks (RFC 6303's locally served zones; the root,
TLDs and public reverse zones stay answerable, which a validating
resolver in the guest needs). Zone transfers, ANY and classes other than
IN are refused too. A
reply is passed back only when it answers the question we asked under
the id we chose (``matches``), resized to what the guest can take
(``for_client``: the TC bit when it does not fit).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

MAX_QUERY = 512        # a question of at most 255 bytes fits with room
EDNS_SIZE = 1232       # the DNS flag day's safe UDP payload size
CLASSIC_SIZE = 512     # a client without EDNS takes no more over UDP

FORMERR, SERVFAIL, NOTIMP, REFUSED = 1, 2, 4, 5
QTYPE_OPT = 41
_REFUSED_TYPES = frozenset({0, QTYPE_OPT, 249, 250, 251, 252, 253, 254, 255})
_QR, _TC, _RD, _RA, _CD = 0x8000, 0x0200, 0x0100, 0x0080, 0x0010
_DO = 0x8000
_LOCAL_SUFFIXES = (b"localhost", b"local")
_ADDRESS_TYPES = (1, 28)  # A, AAAA
_HEADER = struct.Struct("!HHHHHH")
# Reverse zones of addresses only the host's own networks know: private,
# shared, loopback, link-local and the other special-purpose blocks
_NOT_GLOBAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "240.0.0.0/4", "::/127", "::ffff:0:0/96", "100::/64", "2001:db8::/32",
    "fc00::/7", "fe80::/10")]


class BadQuery(Exception):
    """Not a query we forward; ``rcode`` is the answer, None: no answer
    at all (not even a header to answer)."""

    def __init__(self, rcode: int | None, query: "Query | None" = None
                 ) -> None:
        super().__init__(rcode)
        self.rcode = rcode
        self.query = query


@dataclasses.dataclass(frozen=True)
class Query:
    """A guest's question: ``question`` is its wire form (name, type,
    class); ``udp_size`` None when the guest sent no EDNS record."""

    id: int
    flags: int
    labels: tuple[bytes, ...]
    qtype: int
    qclass: int
    question: bytes
    udp_size: int | None = None
    dnssec_ok: bool = False

    @property
    def limit(self) -> int:
        """The largest UDP reply the guest takes."""
        if self.udp_size is None:
            return CLASSIC_SIZE
        return max(CLASSIC_SIZE, min(self.udp_size, EDNS_SIZE))


def _name(data: bytes, at: int) -> tuple[tuple[bytes, ...], int]:
    labels: list[bytes] = []
    start = at
    while True:
        if at >= len(data):
            raise ValueError("name runs past the message")
        size = data[at]
        if size & 0xC0:
            raise ValueError("compressed or extended label")
        at += 1
        if size == 0:
            break
        labels.append(data[at:at + size])
        at += size
    if at - start > 255:
        raise ValueError("name longer than 255 bytes")
    return tuple(labels), at


def parse_query(data: bytes) -> Query:
    """The guest's query, or ``BadQuery``."""
    if len(data) < _HEADER.size or len(data) > MAX_QUERY:
        raise BadQuery(None)
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & _QR:
        raise BadQuery(None)  # a response: never answered (no loops)
    try:
        labels, at = _name(data, _HEADER.size)
        qtype, qclass = struct.unpack_from("!HH", data, at)
    except (ValueError, struct.error):
        raise BadQuery(FORMERR, Query(ident, flags, (), 0, 0, b"")) from None
    question = data[_HEADER.size:at + 4]
    query = Query(ident, flags, labels, qtype, qclass, question)
    if (flags >> 11) & 0xF:
        raise BadQuery(NOTIMP, query)  # only QUERY, no UPDATE or NOTIFY
    if qd != 1 or an or ns or ar > 1:
        raise BadQuery(FORMERR, query)
    at += 4
    if ar:
        # the one additional record may only be EDNS's OPT at the root
        try:
            if data[at] != 0:
                raise ValueError("OPT not at the root")
            rtype, size, ttl, rdlen = struct.unpack_from("!HHIH", data,
                                                         at + 1)
            at += 11 + rdlen
        except (IndexError, ValueError, struct.error):
            raise BadQuery(FORMERR, query) from None
        if rtype != QTYPE_OPT or (ttl >> 16) & 0xFF or at > len(data):
            raise BadQuery(FORMERR, query)  # not OPT, or not version 0
        query = dataclasses.replace(query, udp_size=size,
                                    dnssec_ok=bool(ttl & _DO))
    if at != len(data):
        raise BadQuery(FORMERR, query)
    return query


def _reverse_network(labels: tuple[bytes, ...]
                     ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The address block a reverse name covers; None: not a reverse
    name."""
    low = [label.lower() for label in labels]
    try:
        if low[-2:] == [b"in-addr", b"arpa"] and len(low) <= 6:
            octets = [int(o) for o in reversed(low[:-2])]
            if any(not 0 <= o <= 255 for o in octets):
                return None
            raw = bytes(octets + [0] * (4 - len(octets)))
            return ipaddress.IPv4Network((raw, 8 * len(octets)))
        if low[-2:] == [b"ip6", b"arpa"] and len(low) <= 34:
            nibbles = "".join(n.decode() for n in reversed(low[:-2]))
            if any(len(n) != 1 for n in low[:-2]):
                return None
            raw = bytes.fromhex((nibbles + "0" * 32)[:32])
            return ipaddress.IPv6Network((raw, 4 * len(nibbles)))
    except ValueError:
        return None
    return None


def refusal(query: Query) -> int | None:
    """REFUSED for what the forwarder does not ask upstream, else None."""
    if query.qclass != 1 or query.qtype in _REFUSED_TYPES:
        return REFUSED
    labels = query.labels
    if labels and labels[-1].lower() in _LOCAL_SUFFIXES:
        return REFUSED
    if len(labels) < 2 and query.qtype in _ADDRESS_TYPES:
        return REFUSED
    block = _reverse_network(labels)
    if block is not None and any(block.version == n.version
                                 and block.subnet_of(n) for n in _NOT_GLOBAL):
        return REFUSED
    return None


def upstream_query(query: Query, ident: int) -> bytes:
    """Our own query for the guest's question, under id ``ident``."""
    flags = query.flags & (_RD | _CD)
    ar = 1 if query.udp_size is not None else 0
    out = _HEADER.pack(ident, flags, 1, 0, 0, ar) + query.question
    if ar:  # EDNS only for a guest that speaks it (RFC 6891: no OPT back)
        out += b"\0" + struct.pack("!HHIH", QTYPE_OPT, EDNS_SIZE,
                                   _DO if query.dnssec_ok else 0, 0)
    return out


def matches(reply: bytes, query: Query, ident: int) -> bool:
    """``reply`` answers ``query`` as we asked it under ``ident``."""
    if len(reply) < _HEADER.size + len(query.question):
        return False
    rid, flags, qd = struct.unpack_from("!HHH", reply)
    if rid != ident or not flags & _QR or (flags >> 11) & 0xF or qd != 1:
        return False
    asked = reply[_HEADER.size:_HEADER.size + len(query.question)]
    return asked.lower() == query.question.lower()


def for_client(reply: bytes, query: Query, limit: int) -> bytes:
    """The upstream's ``reply`` under the guest's id; cut to the header
    and question with TC set when it is longer than ``limit``."""
    if len(reply) <= limit:
        return struct.pack("!H", query.id) + reply[2:]
    flags = struct.unpack_from("!H", reply, 2)[0] | _TC
    return _HEADER.pack(query.id, flags, 1, 0, 0, 0) + query.question


def error_reply(query: Query, rcode: int) -> bytes:
    """A reply carrying only ``rcode`` (and the question, if parsed)."""
    flags = _QR | _RA | (query.flags & (0x7800 | _RD | _CD)) | rcode
    qd = 1 if query.question else 0
    return _HEADER.pack(query.id, flags, qd, 0, 0, 0) + query.question
