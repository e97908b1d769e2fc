"""NetworkPlumber on the real kernel, with plain ``unshare --net`` guests.

Every guest is a ``sleep`` in a fresh network namespace this test started
(killed by pid); every link is pyb-/pyv- and made here; addresses come from
a random /24 of 10.241.0.0/16 which ensure_bridge checks against the host's
routes. The module ends with a leak check.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.network import bridge as bridge_mod


def _net() -> tuple[str, str]:
    """A random network id and its 10.241.X /24 prefix."""
    return uuid.uuid4().hex, f"10.241.{random.randrange(100, 250)}"


def _in(pid: int, *cmd: str, check: bool = False,
        timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *cmd],
                          capture_output=True, text=True, check=check,
                          timeout=timeout)


def _ping(pid: int, ip: str, count: int = 1) -> bool:
    return _in(pid, "busybox", "ping", "-c", str(count), "-W", "1",
               ip).returncode == 0


class Guests:
    """Sleepers in fresh network namespaces; all killed at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def new(self) -> int:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.procs.append(proc)
        deadline = time.monotonic() + 5
        own = _netns_id("self")
        while _netns_id(str(proc.pid)) == own:
            assert time.monotonic() < deadline, "unshare did not happen"
            time.sleep(0.005)
        return proc.pid

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def _netns_id(pid: str) -> str:
    import os
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def plumber():
    plumber = bridge_mod.NetworkPlumber(mtu=1500)
    # links other tests or deployments own are not ours to touch
    before = set(plumber.list_links())
    yield plumber
    plumber.flush()
    for link in plumber.host.links(bridge_mod.VETH_PREFIX) + \
            plumber.host.links(bridge_mod.BRIDGE_PREFIX):
        if link["ifname"] not in before:  # what a failed test left
            plumber._delete_now(link["index"], link["ifname"])
    leaked = sorted(set(plumber.list_links()) - before)
    plumber.close()
    assert leaked == [], f"leaked links: {leaked}"


@pytest.fixture
def guests():
    g = Guests()
    yield g
    g.close()


def _vif(net_id: str, prefix: str, host: int, index: int = 0,
         mtu: int = 1500) -> VifSpec:
    return VifSpec(port_id=uuid.uuid4().hex, network_id=net_id,
                   mac=f"fa:16:3e:{random.randrange(256):02x}:"
                       f"{random.randrange(256):02x}:{host:02x}",
                   ip=f"{prefix}.{host}", prefixlen=24,
                   gateway=f"{prefix}.1", mtu=mtu, device_index=index)


def _plugged(plumber, guests, net_id, prefix, host, **kw):
    pid = guests.new()
    vif = _vif(net_id, prefix, host, **kw)
    br = plumber.ensure_bridge(net_id, vif.gateway, 24, vif.mtu)
    plumber.plug(pid, vif, br)
    return pid, vif


def test_same_bridge_talks_other_bridge_does_not(plumber, guests):
    net_a, pre_a = _net()
    net_b, pre_b = _net()
    while pre_b == pre_a:
        net_b, pre_b = _net()
    a, vif_a = _plugged(plumber, guests, net_a, pre_a, 10)
    b, vif_b = _plugged(plumber, guests, net_a, pre_a, 11)
    c, vif_c = _plugged(plumber, guests, net_b, pre_b, 10)
    try:
        assert _ping(a, vif_b.ip) and _ping(b, vif_a.ip)
        assert _ping(a, "169.254.169.254"), "metadata address not on-link"
        assert _ping(a, vif_a.gateway)
        # Another network: through its gateway the host must not forward.
        assert not _ping(c, vif_a.ip)
        assert not _ping(c, vif_b.ip)
        assert not _ping(a, vif_c.ip)
        with open(f"/proc/sys/net/ipv4/conf/"
                  f"{bridge_mod.bridge_name(net_a)}/forwarding") as f:
            assert f.read().strip() == "0"
        # Idempotent, and a second call keeps working.
        assert plumber.ensure_bridge(net_a, vif_a.gateway, 24) == \
            bridge_mod.bridge_name(net_a)
        assert _ping(a, vif_b.ip)
    finally:
        plumber.unplug_all([vif_a, vif_b, vif_c])
        plumber.remove_bridge_if_unused(net_a)
        plumber.remove_bridge_if_unused(net_b)
        assert plumber.flush()
    assert bridge_mod.bridge_name(net_a) not in plumber.list_links()


def test_spoofed_ip_mac_and_arp_get_nothing_through(plumber, guests):
    net, pre = _net()
    a, vif_a = _plugged(plumber, guests, net, pre, 20)
    b, vif_b = _plugged(plumber, guests, net, pre, 21)
    c, vif_c = _plugged(plumber, guests, net, pre, 22)
    try:
        assert _ping(a, vif_b.ip) and _ping(c, vif_b.ip)
        # IP spoof: a takes another address of the subnet.
        _in(a, "ip", "addr", "flush", "dev", "eth0", check=True)
        _in(a, "ip", "addr", "add", f"{pre}.99/24", "dev", "eth0",
            check=True)
        assert not _ping(a, vif_b.ip, count=2)
        _in(a, "ip", "addr", "flush", "dev", "eth0", check=True)
        _in(a, "ip", "addr", "add", f"{vif_a.ip}/24", "dev", "eth0",
            check=True)
        assert _ping(a, vif_b.ip), "control: the real address works again"
        # MAC spoof: same IP, another MAC.
        _in(a, "ip", "link", "set", "eth0", "address", "fa:16:3e:ee:ee:ee",
            check=True)
        _in(a, "ip", "neigh", "flush", "dev", "eth0")
        assert not _ping(a, vif_b.ip, count=2)
        _in(a, "ip", "link", "set", "eth0", "address", vif_a.mac, check=True)
        assert _ping(a, vif_b.ip), "control: the real MAC works again"
        # ARP spoof: a claims b's address towards c (gratuitous replies).
        time.sleep(1.1)  # past c's neighbour locktime for b's entry
        _in(a, "ip", "addr", "add", f"{vif_b.ip}/32", "dev", "eth0",
            check=True)
        _in(a, "busybox", "arping", "-c", "3", "-w", "2", "-A", "-I", "eth0",
            "-s", vif_b.ip, vif_c.ip)
        neigh = _in(c, "ip", "neigh", "show", vif_b.ip).stdout
        assert vif_a.mac not in neigh.lower(), neigh
        assert _ping(c, vif_b.ip)
    finally:
        plumber.unplug_all([vif_a, vif_b, vif_c])
        plumber.remove_bridge_if_unused(net)
        assert plumber.flush()


def test_mac_mtu_hotplug_and_unplug(plumber, guests):
    net, pre = _net()
    net2, pre2 = _net()
    while pre2 == pre:
        net2, pre2 = _net()
    a, vif_a = _plugged(plumber, guests, net, pre, 30, mtu=1400)
    b, vif_b = _plugged(plumber, guests, net2, pre2, 31)
    try:
        link = _in(a, "ip", "-o", "link", "show", "eth0", check=True).stdout
        assert "mtu 1400" in link and vif_a.mac in link
        routes = _in(a, "ip", "route", check=True).stdout
        assert f"default via {vif_a.gateway} dev eth0" in routes
        assert "169.254.169.254 dev eth0" in routes
        # Hot-plug eth1 on b's network into the running guest a.
        vif_a1 = _vif(net2, pre2, 40, index=1)
        br2 = plumber.ensure_bridge(net2, vif_a1.gateway, 24)
        plumber.plug(a, vif_a1, br2)
        addr = _in(a, "ip", "-o", "addr", "show", "eth1", check=True).stdout
        assert f"{vif_a1.ip}/24" in addr
        assert _ping(a, vif_b.ip) and _ping(b, vif_a1.ip)
        routes = _in(a, "ip", "route", check=True).stdout
        assert routes.count("default") == 1
        plumber.unplug(vif_a1)
        plumber.unplug(vif_a1)  # idempotent
        assert plumber.flush()
        assert _in(a, "ip", "link", "show", "eth1").returncode != 0
        assert bridge_mod.veth_name(vif_a1.port_id) not in \
            plumber.list_links()
        # Re-plug the same port (same host name) works.
        plumber.plug(a, vif_a1, br2)
        assert _ping(a, vif_b.ip)
    finally:
        plumber.unplug_all([vif_a, vif_b, vif_a1])
        plumber.remove_bridge_if_unused(net)
        plumber.remove_bridge_if_unused(net2)
        assert plumber.flush()


def test_refuses_overlap_with_host_routes_and_nat(plumber):
    routes = plumber.host.ipr.get_routes(family=2)
    host = next((r for r in routes if r["dst_len"] and r.get("dst")
                 and not r.get("dst", "").startswith("10.241.")), None)
    assert host is not None, "host has no non-default route to test with"
    net_id = uuid.uuid4().hex
    import ipaddress
    net = ipaddress.ip_network(f"{host.get('dst')}/{host['dst_len']}",
                               strict=False)
    gw = str(next(net.hosts())) if net.num_addresses > 2 else str(
        net.network_address)
    with pytest.raises(exception.NetworkError, match="overlaps"):
        plumber.ensure_bridge(net_id, gw, max(net.prefixlen, 24))
    assert bridge_mod.bridge_name(net_id) not in plumber.list_links()
    with pytest.raises(exception.NetworkError, match="NAT"):
        bridge_mod.NetworkPlumber(egress_nat=True)


def test_plug_into_dead_pid_fails_cleanly(plumber, guests):
    net, pre = _net()
    pid = guests.new()
    guests.close()
    vif = _vif(net, pre, 50)
    br = plumber.ensure_bridge(net, vif.gateway, 24)
    with pytest.raises(exception.NetworkError):
        plumber.plug(pid, vif, br)
    assert bridge_mod.veth_name(vif.port_id) not in plumber.list_links()
    plumber.remove_bridge_if_unused(net)
    assert plumber.flush()


def test_plumbing_timing(plumber, guests):
    net, pre = _net()
    pid = guests.new()
    br = plumber.ensure_bridge(net, f"{pre}.1", 24)
    plug_ms, unplug_ms = [], []
    started = time.perf_counter()
    for i in range(30):
        vif = _vif(net, pre, 60 + i)
        t0 = time.perf_counter()
        plumber.plug(pid, vif, br)
        t1 = time.perf_counter()
        plumber.unplug(vif)
        t2 = time.perf_counter()
        plug_ms.append((t1 - t0) * 1000)
        unplug_ms.append((t2 - t1) * 1000)
        assert plumber.flush()  # so eth0 is free for the next round
    total = time.perf_counter() - started
    plumber.remove_bridge_if_unused(net)
    assert plumber.flush()

    def p95(xs):
        return sorted(xs)[int(len(xs) * 0.95) - 1]

    print(f"\nplug   median {statistics.median(plug_ms):.2f} ms "
          f"p95 {p95(plug_ms):.2f} ms")
    print(f"unplug median {statistics.median(unplug_ms):.3f} ms "
          f"p95 {p95(unplug_ms):.3f} ms (request path; deletion deferred)")
    print(f"30 plug+unplug+flush rounds in {total:.2f} s")
    assert statistics.median(unplug_ms) < statistics.median(plug_ms)
