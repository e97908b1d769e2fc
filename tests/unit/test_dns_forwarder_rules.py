"""The gateway DNS forwarder's rules, without a network: what a guest's
query must look like, what is refused, what goes upstream, how replies
are cut, and what guests are told to use.

The forwarder on the real kernel, attacked from real guests, is
tests/privileged/test_dns_forwarder.py.
"""

from __future__ import annotations

import json
import struct

import pytest

from pyct_driver import exception
from pyct_driver.compute.specs import instance_spec
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.metadata import content, lookup
from pyct_driver.virt.network import dnslimits, dnsmsg, dnsupstream
from tests.fixtures import metadata_rows
from tests.fixtures.dns_upstream import parse, query


def _parse(msg: bytes) -> dnsmsg.Query:
    return dnsmsg.parse_query(msg)


def _rcode(msg: bytes) -> int | None:
    """What the forwarder does with ``msg``: None forwards it, else the
    rcode it answers with (or raises BadQuery(None): no answer)."""
    try:
        return dnsmsg.refusal(_parse(msg))
    except dnsmsg.BadQuery as bad:
        return bad.rcode


OPT_TSIG = b"\0" + struct.pack("!HHIH", 250, 255, 0, 0)


@pytest.mark.parametrize("msg,want", [
    (query("www.example.org"), None),
    (query("WwW.Example.ORG", 28, edns=1232), None),
    (query("example.org", 15), None),
    (query("8.8.8.8.in-addr.arpa", 12), None),  # a public address
    # what the host's resolver answers from host-local state
    (query("localhost"), dnsmsg.REFUSED),
    (query("ubuntu.localhost"), dnsmsg.REFUSED),
    (query("_gateway"), dnsmsg.REFUSED),
    (query("hostname", 28), dnsmsg.REFUSED),
    (query("LOCALHOST", 16), dnsmsg.REFUSED),
    (query("printer.local"), dnsmsg.REFUSED),
    (query("PRINTER.LOCAL"), dnsmsg.REFUSED),
    (query(""), dnsmsg.REFUSED),  # the root's address
    # what a validating resolver in the guest asks: the root, TLDs, the
    # public reverse zones
    (query("", 48, edns=1232), None),  # root DNSKEY
    (query("", 2), None),               # root NS
    (query("com", 43), None),           # DS of a TLD
    (query("in-addr.arpa", 43), None),
    (query("arpa", 2), None),
    (query("172.in-addr.arpa", 2), None),  # 172/8 is mostly public
    (query("ip6.arpa", 43), None),
    (query("1.0.0.127.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("2.2.0.10.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("10.in-addr.arpa", 2), dnsmsg.REFUSED),
    (query("5.168.192.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("1.254.169.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("20.172.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("1.64.100.in-addr.arpa", 12), dnsmsg.REFUSED),
    (query("1." + ".".join("0" * 31) + ".ip6.arpa", 12), dnsmsg.REFUSED),
    (query("d.f.ip6.arpa", 12), dnsmsg.REFUSED),        # fd00::/8
    (query("0.8.e.f.ip6.arpa", 12), dnsmsg.REFUSED),    # fe80::/10
    (query("8.b.d.0.1.0.0.2.ip6.arpa", 12), dnsmsg.REFUSED),  # 2001:db8
    (query("2.0.0.192.in-addr.arpa", 12), dnsmsg.REFUSED),  # TEST-NET-1
    (query("0.0.a.2.ip6.arpa", 12), None),              # 2a00::/16
    # types and classes that amplify, transfer zones or are not DNS data
    (query("example.org", 252), dnsmsg.REFUSED),  # AXFR
    (query("example.org", 251), dnsmsg.REFUSED),  # IXFR
    (query("example.org", 255), dnsmsg.REFUSED),  # ANY
    (query("example.org", 41), dnsmsg.REFUSED),   # OPT as a question
    (query("version.bind", 16, qclass=3), dnsmsg.REFUSED),  # CHAOS
    # smuggling: anything but one question and an EDNS record
    (query("example.org", flags=0x2800), dnsmsg.NOTIMP),  # UPDATE
    (query("example.org", flags=0x2000), dnsmsg.NOTIMP),  # NOTIFY
    (query("example.org", extra=b"\0"), dnsmsg.FORMERR),  # trailing
    (query("example.org", arcount=1, extra=OPT_TSIG), dnsmsg.FORMERR),
    (query("example.org", edns=1232, arcount=2,
           extra=b"\0" + struct.pack("!HHIH", 41, 512, 0, 0)),
     dnsmsg.FORMERR),
    (query("example.org", edns=1232) [:-11] + b"\0" + struct.pack(
        "!HHIH", 41, 1232, 0x00010000, 0), dnsmsg.FORMERR),  # EDNS v1
    (struct.pack("!HHHHHH", 1, 0x100, 2, 0, 0, 0) + b"\0\0\1\0\1" * 2,
     dnsmsg.FORMERR),  # two questions
    (struct.pack("!HHHHHH", 1, 0x100, 1, 1, 0, 0) + b"\0\0\1\0\1",
     dnsmsg.FORMERR),  # an answer in a query
    (struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1",
     dnsmsg.FORMERR),  # a compression pointer (a loop)
    (struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\x3fab",
     dnsmsg.FORMERR),  # a label past the end
    (struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0)
     + (b"\x3f" + b"a" * 63) * 4 + b"\0\0\1\0\1", dnsmsg.FORMERR),  # >255
])
def test_what_is_forwarded_refused_or_malformed(msg, want):
    assert _rcode(msg) == want


@pytest.mark.parametrize("msg", [
    b"", b"\0" * 11,
    query("example.org", flags=0x8180),      # a response: no loops
    query("x" * 60 + ".org", extra=b"\0" * 500),  # over 512 bytes
])
def test_no_answer_at_all(msg):
    with pytest.raises(dnsmsg.BadQuery) as err:
        _parse(msg)
    assert err.value.rcode is None


def test_upstream_gets_a_fresh_query_without_the_guests_options():
    cookie = struct.pack("!HH", 10, 8) + b"c" * 8
    ecs = struct.pack("!HHHBB", 8, 7, 1, 24, 0) + b"\x0a\x00\x00"
    guest = query("WWW.example.org", 28, ident=0xBEEF, edns=4096,
                  options=cookie + ecs, flags=0x0110)  # RD, CD
    q = _parse(guest)
    out = dnsmsg.upstream_query(q, 0x1111)
    p = parse(out)
    assert p["id"] == 0x1111 and p["rd"] and p["qd"] == 1 and p["ar"] == 1
    assert p["name"] == "WWW.example.org" and p["qtype"] == 28
    # our own OPT: 1232 bytes, no options (no cookie, no client subnet)
    assert p["rest"] == b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    assert struct.unpack_from("!H", out, 2)[0] == 0x0110
    # no EDNS from the guest: none upstream (no OPT may come back to it)
    plain = dnsmsg.upstream_query(_parse(query("example.org")), 7)
    assert parse(plain)["ar"] == 0 and parse(plain)["rest"] == b""


def _reply(q: dnsmsg.Query, ident: int, size: int) -> bytes:
    head = struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0)
    body = head + q.question
    return body + b"\xc0\x0c" + b"x" * (size - len(body) - 2)


def test_replies_match_the_question_and_fit_the_guest():
    q = _parse(query("www.example.org", ident=0x4242))
    good = _reply(q, 0x1111, 100)
    assert dnsmsg.matches(good, q, 0x1111)
    assert not dnsmsg.matches(good, q, 0x1112)  # not our id
    other = _parse(query("evil.example.org"))
    assert not dnsmsg.matches(_reply(other, 0x1111, 100), q, 0x1111)
    assert not dnsmsg.matches(query("www.example.org", ident=0x1111), q,
                              0x1111)  # not a reply
    assert not dnsmsg.matches(good[:20], q, 0x1111)
    out = dnsmsg.for_client(good, q, q.limit)
    assert out == struct.pack("!H", 0x4242) + good[2:]
    # no EDNS: 512 bytes at most, else header + question with TC
    big = _reply(q, 0x1111, 513)
    cut = dnsmsg.for_client(big, q, q.limit)
    p = parse(cut)
    assert (p["id"], p["tc"], p["an"], p["rest"]) == (0x4242, True, 0, b"")
    assert len(cut) < 512
    # EDNS: what the guest asked for, never above 1232
    assert _parse(query("a.b", edns=4096)).limit == 1232
    assert _parse(query("a.b", edns=100)).limit == 512
    assert _parse(query("a.b", edns=900)).limit == 900


def test_error_replies_are_no_bigger_than_the_query():
    msg = query("printer.local", ident=9)
    q = _parse(msg)
    out = dnsmsg.error_reply(q, dnsmsg.REFUSED)
    p = parse(out)
    assert (p["id"], p["qr"], p["rcode"], p["an"], p["name"]) == (
        9, True, dnsmsg.REFUSED, 0, "printer.local")
    assert len(out) <= len(msg)


def test_upstream_addresses_and_the_hosts_resolvers(tmp_path):
    assert dnsupstream.parse_upstream("192.0.2.53") == ("192.0.2.53", 53)
    assert dnsupstream.parse_upstream("127.0.0.1:5353") == ("127.0.0.1",
                                                            5353)
    assert dnsupstream.parse_upstream("[::1]:53") == ("::1", 53)
    assert dnsupstream.parse_upstream("::1") == ("::1", 53)
    for bad in ("dns.example.org", "1.2.3.4:0", "1.2.3.4:x", "[::1]:99999",
                "1.2.3:53"):
        with pytest.raises(exception.NetworkError):
            dnsupstream.parse_upstream(bad)
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nsearch example.org\nnameserver 127.0.0.53\n"
                    "nameserver fe80::1%eth0\nnameserver bogus\n"
                    "options edns0\n")
    assert dnsupstream.host_resolvers(str(conf)) == [("127.0.0.53", 53),
                                                     ("fe80::1", 53)]
    assert dnsupstream.host_resolvers(str(tmp_path / "none")) == []


def test_rate_per_guest_with_bursts_of_twice_it():
    buckets = dnslimits.Buckets(10)
    took = [buckets.take("10.0.0.5", 100.0) for _ in range(30)]
    assert took.count(True) == 20  # the burst
    assert buckets.take("10.0.0.6", 100.0)  # another guest is not held up
    assert not buckets.take("10.0.0.5", 100.05)
    assert buckets.take("10.0.0.5", 100.15)  # 10 a second come back


def test_guests_are_told_the_network_servers_else_the_gateway():
    net = {"gateway": "10.241.9.1", "dns_nameservers": []}
    assert db_networks.guest_nameservers(net, True) == ["10.241.9.1"]
    assert db_networks.guest_nameservers(net, False) == []
    own = dict(net, dns_nameservers=["192.0.2.53"])
    assert db_networks.guest_nameservers(own, True) == ["192.0.2.53"]


@pytest.mark.parametrize("configured", [[], ["192.0.2.53", "192.0.2.54"]])
def test_metadata_config_drive_and_injection_agree(configured):
    """The issue: a network without nameservers (the default) gave guests
    none at all, through every path."""
    db = metadata_rows.make_db()
    try:
        uuid = metadata_rows.add_instance(db, "10.241.250.7", dns=configured)
        db_instances.update(db, uuid, {"config_drive": True})
        want = configured or ["10.241.250.1"]
        spec = instance_spec(db, db_instances.get(db, uuid),
                             gateway_dns=True)
        assert list(spec.vifs[0].dns_nameservers) == want
        files = dict(spec.config_drive_files)
        src = lookup.source_for_address(db, "10.241.250.7",
                                        gateway_dns=True)
        served = json.loads(content.respond(
            src, "/openstack/latest/network_data.json")[1])
        for doc in (served, json.loads(
                files["openstack/latest/network_data.json"])):
            assert doc["services"] == [{"type": "dns", "address": a}
                                       for a in want]
        seed = json.loads(files["nocloud/network-config"])
        assert seed["ethernets"]["eth0"]["nameservers"] == {
            "addresses": want}
        # the forwarder off: only what the network names
        spec = instance_spec(db, db_instances.get(db, uuid))
        assert list(spec.vifs[0].dns_nameservers) == configured
    finally:
        db.dispose()
