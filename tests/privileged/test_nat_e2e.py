"""Egress NAT and floating IPs end to end: busybox guests booted through
the API of an all-in-one with ``[network] egress_nat`` whose external
interface leads to an ``Outside`` namespace (the simulated internet).

Project networks come from 10.247.0.0/17; the outside and the floating
range are two free /28s of 203.0.113.0/24, the floating one routed by the
outside to the host's external address. Floating IPs are held and
associated with the real openstack CLI. Checked with real TCP from both
ends: the guest reaches the outside as the host (then as its floating IP),
the outside reaches the guest's listener on its floating IP and nothing on
its fixed IP, and a guest of another project reaches neither the first
project's guest nor the host's addresses. At the end nothing of it is
left: no link, no netns, no nft table.
"""

from __future__ import annotations

import random

import pytest

from tests.privileged.e2e_fixtures import E2E
from tests.privileged.nat_fixtures import (
    Outside, connect, finish, free_block, nft_tables, serve_in)
from tests.privileged.net_e2e_fixtures import NetE2E

POOL = "10.247.0.0/17"


class _NatConfig(E2E):
    """Adds ``self.nat_extra`` to the sections NetE2E passes on."""

    def __init__(self, tag: str, extra: dict | None = None) -> None:
        extra = dict(extra or {})
        for section, values in self.nat_extra.items():
            extra[section] = {**extra.get(section, {}), **values}
        super().__init__(tag, extra)


class NatE2E(NetE2E, _NatConfig):
    def __init__(self, outside: Outside, floating: str) -> None:
        self.nat_extra = {"network": {
            "pool_cidr": POOL, "egress_nat": True,
            "external_interface": outside.ifname,
            "floating_ip_range": floating}}
        super().__init__("nat", metadata_port=0)
        self.pool = POOL


@pytest.fixture(scope="module")
def world():
    outside = Outside()
    env = None
    try:
        outside.start()
        floating = free_block()
        while floating.overlaps(outside.block):
            floating = free_block()
        outside.route_to_host(str(floating))
        env = NatE2E(outside, str(floating))
        env.prepare()
        env.start()
        a1 = env.create("a1")
        b1 = env.create("b1", project="other")
        guests = {}
        for name, uuid, project in (("a1", a1, "demo"), ("b1", b1, "other")):
            env.wait_active(uuid, project)
            port = env.ports(uuid, project)[0]
            guests[name] = {"uuid": uuid, "port": port.id,
                            "ip": port.fixed_ips[0]["ip_address"]}
        yield env, outside, guests
    finally:
        try:
            if env is not None:
                env.close()
        finally:
            outside.close()
    assert "pyct_nat" not in nft_tables(), "the NAT table outlived its use"


def _from_guest(env, uuid: str, ip: str, port: int) -> str:
    result = env.sh(uuid, f"sleep 2 | nc -w 5 {ip} {port}", check=False,
                    timeout=30)
    return result.stdout.strip()


def _listen(env, uuid: str, port: int):
    """A one-shot "hello" listener inside the guest (busybox nc)."""
    proc = env.exec(uuid, ["sh", "-c", f"echo hello | nc -l -p {port}"],
                    background=True)
    env.sh(uuid, f"for i in $(seq 50); do netstat -ltn | grep -q ':{port} '"
                 f" && exit 0; sleep 0.1; done; exit 1")
    return proc


def test_guest_reaches_outside_as_the_host(world):
    env, outside, guests = world
    port = random.randrange(20000, 30000)
    for name in ("a1", "b1"):
        server = serve_in(outside.pid, port)
        assert _from_guest(env, guests[name]["uuid"], outside.ip,
                           port) == "hello", name
        assert finish(server) == outside.host_ip, name
    assert "pyct_nat" in nft_tables()


def test_floating_ip_through_the_cli(world):
    env, outside, guests = world
    a1, b1 = guests["a1"], guests["b1"]
    fip = env.cli_json("floating", "ip", "create", "public")
    address = fip["floating_ip_address"]
    port = random.randrange(20000, 30000)
    # held but not associated: nothing answers on it
    assert connect(outside.pid, address, port, timeout=2) == ""
    env.cli("floating", "ip", "set", "--port", a1["port"], address)
    shown = env.cli_json("floating", "ip", "show", address)
    assert shown["port_id"] == a1["port"]
    assert shown["fixed_ip_address"] == a1["ip"]
    listener = _listen(env, a1["uuid"], port)
    try:
        # the project's default group lets in only its own members
        assert connect(outside.pid, address, port, timeout=2) == ""
        env.cli("security", "group", "rule", "create", "--ingress",
                "--protocol", "tcp", "--dst-port", str(port),
                "--remote-ip", "0.0.0.0/0", "default")
        assert connect(outside.pid, address, port) == "hello"
    finally:
        listener.kill()
    # the guest leaves as its floating IP now
    server = serve_in(outside.pid, port)
    assert _from_guest(env, a1["uuid"], outside.ip, port) == "hello"
    assert finish(server) == address
    # the outside never reaches a fixed IP; the other project's guest
    # reaches neither a1's fixed IP nor its floating IP, nor the host
    outside.route_to_host(env.pool)
    listener = _listen(env, a1["uuid"], port)
    try:
        assert connect(outside.pid, a1["ip"], port, timeout=2) == ""
        assert _from_guest(env, b1["uuid"], a1["ip"], port) == ""
        assert _from_guest(env, b1["uuid"], address, port) == ""
    finally:
        listener.kill()
    assert not env.ping(b1["uuid"], outside.host_ip)
    # disassociated: gone from the kernel at once
    env.cli("floating", "ip", "unset", "--port", address)
    listener = _listen(env, a1["uuid"], port)
    try:
        assert connect(outside.pid, address, port, timeout=2) == ""
    finally:
        listener.kill()
    env.cli("floating", "ip", "delete", address)
    assert env.cli_json("floating", "ip", "list") == []


def test_another_projects_port_is_refused(world):
    env, _, guests = world
    fip = env.cli_json("floating", "ip", "create", "public")
    result = env.cli("floating", "ip", "set", "--port", guests["b1"]["port"],
                     fip["floating_ip_address"], check=False)
    assert result.returncode != 0
    assert "could not be found" in result.stderr or \
        "No Port found" in result.stderr, result.stderr
    shown = env.cli_json("floating", "ip", "show", fip["id"])
    assert shown["port_id"] is None
    env.cli("floating", "ip", "delete", fip["id"])
