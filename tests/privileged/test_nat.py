"""Egress NAT and floating IPs on the real kernel (nf_tables, conntrack).

A ``NetworkPlumber`` with ``egress_nat`` whose external interface is the
host end of a veth to an ``Outside`` namespace (a random /28 of
203.0.113.0/24); guests are ``unshare --net`` sleepers on two networks of
10.247.0.0/16 ("projects" A and B). The plumber's NAT table has a name of
this test's own, so a deployment running beside it keeps its own. Checked
by real TCP connections: who gets through, and which source address the
other side sees. The real uplink is never a destination.
"""

from __future__ import annotations

import os
import random
import re
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.network import antispoof
from pyct_driver.virt.network import bridge as bridge_mod
from pyct_driver.virt.network import nat as nat_mod
from pyct_driver.virt.network import nft
from tests.leak_check_tool import leak_check
from tests.privileged.nat_fixtures import (
    Outside, Sleepers, connect, finish, in_ns, nft_tables, serve_in)

PORT = random.randrange(20000, 30000)


def _vif(net_id: str, prefix: str, host: int) -> VifSpec:
    return VifSpec(port_id=uuid.uuid4().hex, network_id=net_id,
                   mac=f"fa:16:3e:{random.randrange(256):02x}:"
                       f"{random.randrange(256):02x}:{host:02x}",
                   ip=f"{prefix}.{host}", prefixlen=24,
                   gateway=f"{prefix}.1", mtu=1500, device_index=0)


@pytest.fixture(scope="module")
def world():
    """(outside, plumber, guests: name -> (pid, vif), table name)."""
    outside = Outside()
    sleepers = Sleepers()
    table = f"pyct_nat_t{uuid.uuid4().hex[:8]}"
    plumber = None
    try:
        outside.start()
        plumber = bridge_mod.NetworkPlumber(
            metadata_port=0, egress_nat=True,
            external_interface=outside.ifname, nat_table=table)
        # (the e2e test's pool is 10.247.0.0/17: no overlap beside it)
        thirds = random.sample(range(130, 250), 2)
        nets = {p: (uuid.uuid4().hex, f"10.247.{t}")
                for p, t in zip("AB", thirds)}
        guests = {}
        for name, project, host in (("a1", "A", 10), ("a2", "A", 11),
                                    ("b1", "B", 10)):
            net_id, prefix = nets[project]
            pid = sleepers.new()
            vif = _vif(net_id, prefix, host)
            br = plumber.ensure_bridge(net_id, vif.gateway, 24)
            plumber.plug(pid, vif, br)
            guests[name] = (pid, vif)
        yield outside, plumber, guests, table
    finally:
        sleepers.close()
        if plumber is not None:
            plumber.flush()
            plumber.remove_networks({v.network_id for _, v in
                                     (guests.values() if plumber else [])})
            plumber.close()
        outside.close()
        leftover = table in nft_tables()
        if leftover:
            nft.apply([{"delete": {"table": {"family": "ip",
                                             "name": table}}}])
        assert not leftover, f"table {table} outlived its networks"


def test_refuses_nat_without_external_interface():
    with pytest.raises(exception.NetworkError, match="external_interface"):
        bridge_mod.NetworkPlumber(egress_nat=True)


def test_guest_reaches_outside_as_the_host(world):
    outside, plumber, guests, table = world
    for name in ("a1", "b1"):
        pid, _ = guests[name]
        server = serve_in(outside.pid, PORT)
        assert connect(pid, outside.ip, PORT) == "hello", name
        assert finish(server) == outside.host_ip, name
    assert table in nft_tables()
    # the suite's leak check sees the table while it exists
    assert f"ip {table}" in leak_check.nft_tables()


def test_outside_cannot_reach_fixed_ips(world):
    outside, _, guests, _ = world
    a1_pid, a1 = guests["a1"]
    outside.route_to_host("10.247.0.0/16")
    server = serve_in(a1_pid, PORT)
    try:
        assert connect(outside.pid, a1.ip, PORT, timeout=2) == ""
    finally:
        server.kill()
        server.communicate()


def test_other_project_and_host_addresses_unreachable(world):
    outside, _, guests, _ = world
    a1_pid, a1 = guests["a1"]
    b1_pid, b1 = guests["b1"]
    a2_pid, _ = guests["a2"]
    server = serve_in(a1_pid, PORT)
    try:
        # B's guest routes to A's subnet through its gateway: dropped.
        assert connect(b1_pid, a1.ip, PORT, timeout=2) == ""
        # the same project's guest, on-link, still gets through
        assert connect(a2_pid, a1.ip, PORT) == "hello"
    finally:
        server.kill()
        server.communicate()
    # The host's own addresses other than the guest's gateway: its
    # external address, the other network's gateway (all local: nothing
    # here leaves the host).
    host_server = serve_in(os.getpid(), PORT)  # the host
    try:
        # every IPv4 address of the host (uplink included: local, so
        # nothing is sent on the real network) but a1's own gateway
        local = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", in_ns(
            os.getpid(), "ip", "-4", "-o", "addr", "show").stdout)
        targets = {outside.host_ip, b1.gateway, *local} - {
            a1.gateway, "127.0.0.1"}
        for target in sorted(targets):
            assert connect(a1_pid, target, PORT, timeout=2) == "", target
        assert in_ns(a1_pid, "ping", "-c", "1", "-W", "1",
                     outside.host_ip).returncode != 0
    finally:
        host_server.kill()
        host_server.communicate()


def test_floating_ip_one_to_one(world):
    outside, plumber, guests, _ = world
    a1_pid, a1 = guests["a1"]
    b1_pid, _ = guests["b1"]
    fip = outside.spare[0]
    outside.route_to_host(f"{fip}/32")
    plumber.nat.add_floating(fip, a1.ip)
    try:
        assert plumber.nat.floating() == {fip: a1.ip}
        # in: the outside reaches the guest's listener on the floating IP
        server = serve_in(a1_pid, PORT)
        assert connect(outside.pid, fip, PORT) == "hello"
        assert finish(server) == outside.ip
        # out: the guest leaves as its floating IP, not the host's
        server = serve_in(outside.pid, PORT)
        assert connect(a1_pid, outside.ip, PORT) == "hello"
        assert finish(server) == fip
        # another project's guest can't use A's floating IP to reach it
        server = serve_in(a1_pid, PORT)
        try:
            assert connect(b1_pid, fip, PORT, timeout=2) == ""
        finally:
            server.kill()
            server.communicate()
    finally:
        plumber.nat.remove_floating(fip, a1.ip)
    assert plumber.nat.floating() == {}
    server = serve_in(a1_pid, PORT)
    try:
        assert connect(outside.pid, fip, PORT, timeout=2) == ""
    finally:
        server.kill()
        server.communicate()


def test_rules_go_with_the_networks(world):
    """Last: removing every network removes the table."""
    outside, plumber, guests, table = world
    nets = {v.network_id for _, v in guests.values()}
    rules = nft.list_ruleset({"family": "ip", "name": table})
    elems = nat_mod._elements(rules)["egress"]
    assert sorted(elems) == sorted(bridge_mod.bridge_name(n) for n in nets)
    plumber.flush()
    plumber.remove_networks(nets)
    assert table not in nft_tables()
    assert f"ip {table}" not in leak_check.nft_tables()
    with pytest.raises(exception.NftError):
        nft.list_ruleset({"family": "ip", "name": table})


def test_port_and_bridge_filters_with_egress():
    """With NAT on, the port's program lets unicast beyond the subnet be
    routed, still only from the port's own addresses; the bridge's keeps
    subnet broadcasts and multicast off the host's stack."""
    from tests.privileged.test_network_plumbing import (
        GW, IP, MAC, META, OK, SHOT, TCP, _frame, _verdicts)
    import ipaddress
    code = antispoof.program(MAC, IP, 24, GW, META, 8775, outside=True)
    _verdicts(code, {
        "outside": (_frame("203.0.113.9", 6, TCP), OK),
        "other project": (_frame("10.241.8.10", 6, TCP), OK),  # nft drops
        "sibling": (_frame("10.241.7.11", 6, TCP), OK),
        "spoofed source": (_frame("203.0.113.9", 6, TCP,
                                  src="10.241.7.99"), SHOT),
        "floating IP as source": (_frame("203.0.113.9", 6, TCP,
                                         src="203.0.113.5"), SHOT),
        "multicast": (_frame("224.0.0.1", 17, TCP[:8]), SHOT),
        "limited broadcast": (_frame("255.255.255.255", 17, TCP[:8]), SHOT),
        "gateway SYN still": (_frame(GW, 6, TCP), SHOT),
    })
    without = antispoof.program(MAC, IP, 24, GW, META, 8775)
    _verdicts(without, {"outside": (_frame("203.0.113.9", 6, TCP), SHOT)})
    net = ipaddress.IPv4Network("10.241.7.0/24")
    bridge = antispoof.bridge_program(GW, META, 8775, outside=net)
    _verdicts(bridge, {
        "outside": (_frame("203.0.113.9", 6, TCP), OK),
        "subnet broadcast": (_frame("10.241.7.255", 17, TCP[:8]), SHOT),
        "sibling copy": (_frame("10.241.7.11", 6, TCP), SHOT),
        "multicast": (_frame("224.0.0.1", 17, TCP[:8]), SHOT),
    })
