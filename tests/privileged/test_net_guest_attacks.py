"""Network attacks from inside guests, run as real guest processes.

One ``ContainerDriver`` with ``[metadata] port = 0`` (the service off)
boots three escape-agent guests (``escape_fixtures``: their PID 1 runs
each command, so every attack is a descendant of the guest's init, with
its seccomp filter and user namespace): ``a1`` and ``a2`` on network A,
``b1`` on network B, another project's network with its own bridge. A
second plumber with the service on sets up a third bridge, so the host
owns 169.254.169.254 as it does when any other network (another pyct, an
earlier configuration) has it. The attacks:

- metadata off: TCP to 169.254.169.254:80 (and to a port a host listener
  on 0.0.0.0 holds) must vanish (time out, not even a reset), no
  metadata address is on the guests' bridges, no route in the guest;
- ARP: b1 asks about network A's gateway, the uplink address, loopback
  and the metadata address: no answer; about its own gateway: answered;
- VLAN hopping: a1 sends 802.1Q, 802.1ad, QinQ and priority-tagged
  frames (and a tagged ARP request) that an AF_PACKET listener in a2 and
  one on the host's bridge must never see, while the untagged controls
  arrive at both.

Networks are free /24s of 10.244.0.0/16 (checked against host routes);
the module checks that none of its links is left.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid as uuid_mod

import pytest

from pyct_driver.virt import base
from pyct_driver.virt.network import bridge as bridge_mod
from tests.privileged import frames
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    agent_run, boot_agent, escape_image, guest_file, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, container_driver, wait_for)
from tests.privileged.net_e2e_fixtures import links
from tests.privileged.test_debian_ssh import free_pool
from tests.privileged.test_network_plumbing import (
    _addresses, _drained, _listener, _uplink_address)
from tests.waiting import wait_gone

META = "169.254.169.254"


@pytest.fixture(scope="module")
def driver():
    with container_driver({"metadata": {"port": 0}}) as drv:
        yield drv


class Net:
    """A free /24: its id, gateway and bridge; hands out ports."""

    def __init__(self, taken: list[str]) -> None:
        cidr = free_pool()
        while cidr in taken:
            cidr = free_pool()
        taken.append(cidr)
        self.id = uuid_mod.uuid4().hex
        self.net = ipaddress.IPv4Network(cidr)
        self.gateway = str(self.net.network_address + 1)
        self.bridge = bridge_mod.bridge_name(self.id)
        self.ports: list[base.VifSpec] = []

    def vif(self, host: int, dns: bool = False) -> base.VifSpec:
        """A port at ``host``; ``dns``: the gateway as its nameserver."""
        port = uuid_mod.uuid4().hex
        vif = base.VifSpec(
            port_id=port, network_id=self.id,
            mac="fa:16:3e:" + ":".join(port[i:i + 2] for i in (0, 2, 4)),
            ip=str(self.net.network_address + host), prefixlen=24,
            gateway=self.gateway,
            dns_nameservers=(self.gateway,) if dns else ())
        self.ports.append(vif)
        return vif


def boot_three(guests, net_a: Net, net_b: Net, dns: bool = False) -> dict:
    """Agent guests a1, a2 on ``net_a`` and b1 on ``net_b``: name ->
    (spec, vif)."""
    out = {}
    for name, net, host in (("a1", net_a, 11), ("a2", net_a, 12),
                            ("b1", net_b, 11)):
        vif = net.vif(host, dns)
        out[name] = (boot_agent(guests, vifs=(vif,)), vif)
    return out


def assert_links_gone(nets: list[Net]) -> None:
    """No bridge of ``nets`` and no veth of their ports is left (deferred
    deletions are waited for, bounded)."""
    ours = ({n.bridge for n in nets}
            | {bridge_mod.veth_name(v.port_id) for n in nets for v in n.ports})
    left = wait_gone(lambda: ours & links(), 15.0)
    assert not left, f"links left: {left}"


@pytest.fixture(scope="module")
def vms(driver, escape_image):
    """name -> (spec, vif) of a1, a2 (network A) and b1 (network B), plus
    "A", "B": the networks and "meta_bridge": a metadata-on bridge."""
    taken: list[str] = []
    net_a, net_b, net_m = Net(taken), Net(taken), Net(taken)
    guests = Guests(driver)
    meta_on = bridge_mod.NetworkPlumber(metadata_port=80)
    out: dict = {"A": net_a, "B": net_b}
    try:
        meta_on.ensure_bridge(net_m.id, net_m.gateway, 24)
        out["meta_bridge"] = net_m.bridge
        out.update(boot_three(guests, net_a, net_b))
        yield out
    finally:
        try:
            guests.close()
        finally:
            meta_on.remove_bridge_if_unused(net_m.id)
            meta_on.flush()
            meta_on.close()
            driver.net.flush()
            assert_links_gone([net_a, net_b, net_m])


def _run(driver, vms, name: str, script: str, timeout: float = 60) -> str:
    return agent_run(driver, vms[name][0].uuid, script, timeout=timeout)


def _free_listener(port: int):
    """A TCP listener on 0.0.0.0:port, or None when the port is taken
    (another deployment's metadata service on 169.254.169.254:80)."""
    try:
        return _listener(socket.SOCK_STREAM, port=port)
    except OSError:
        return None


def test_metadata_off_host_port_unreachable_no_address_no_route(driver,
                                                                vms):
    """The issue: with port 0 the filters still let TCP to
    169.254.169.254:80 through (the host answered with a reset; a host
    service on *:80 was reachable from every guest)."""
    assert f"inet {META}/32" in _addresses(vms["meta_bridge"]), \
        "set-up: the host must own the metadata address elsewhere"
    listeners = [s for s in (_free_listener(80), _free_listener(0)) if s]
    ports = sorted({80} | {s.getsockname()[1] for s in listeners})
    try:
        script = "".join(f"pyct-probe connect {META} {p} 2000\n"
                         for p in ports)
        out = _run(driver, vms, "a1", script + "ip route\n")
        results = [line for line in out.splitlines()
                   if line.startswith("connect")]
        assert results == ["connect timeout"] * len(ports), \
            f"a guest reached {META} on ports {ports}: {out}"
        time.sleep(0.2)
        assert [_drained(s) for s in listeners] == [0] * len(listeners)
        assert META not in out, f"metadata route in the guest: {out}"
        for net in (vms["A"], vms["B"]):
            assert META not in _addresses(net.bridge)
            assert f"inet {net.gateway}/24" in _addresses(net.bridge)
    finally:
        for sock in listeners:
            sock.close()


def _arp_answers(driver, vms, name: str, targets: list[str]) -> dict:
    script = "".join(
        f"arping -c 1 -w 2 -I eth0 {t} >/dev/null 2>&1; echo \"arp {t} $?\"\n"
        for t in targets)
    out = _run(driver, vms, name, script)
    found = dict(line.split()[1:3] for line in out.splitlines()
                 if line.startswith("arp "))
    assert set(found) == set(targets), out
    return {t: found[t] == "0" for t in targets}


def test_arp_answered_only_for_own_gateway(driver, vms):
    """b1 (project B) resolves nothing of the host but its own gateway:
    not project A's gateway, not the uplink, not loopback, not the
    metadata address (off). a1 still resolves its sibling."""
    b_gw, a_gw = vms["B"].gateway, vms["A"].gateway
    answers = _arp_answers(driver, vms, "b1", [
        a_gw, _uplink_address(), "127.0.0.1", META, b_gw])
    assert answers == {a_gw: False, _uplink_address(): False,
                       "127.0.0.1": False, META: False, b_gw: True}
    assert _arp_answers(driver, vms, "a1", [vms["a2"][1].ip]) == \
        {vms["a2"][1].ip: True}


def _host_sniffer(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                         socket.htons(0x0003))
    sock.bind((ifname, 0))
    sock.setblocking(False)
    return sock


def _sniffed(sock: socket.socket, prefix: bytes) -> set[str]:
    got = set()
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return got
        at = data.find(prefix)
        if at >= 0:
            token = data[at:].split(b"\0", 1)[0]
            got.add(token.decode("ascii", "replace"))


def test_vlan_tagged_frames_reach_no_sibling_and_not_the_host(driver, vms):
    """a1 sends tagged copies of a frame its filter passes untagged (UDP
    from its own MAC and IP to the subnet broadcast; an ARP request for
    a2): a2's AF_PACKET listener and one on the host's bridge get only
    the untagged controls."""
    vif1, (a2, vif2) = vms["a1"][1], vms["a2"]
    prefix = f"PYCTV{uuid_mod.uuid4().hex[:8]}"
    src = frames.mac_bytes(vif1.mac)
    bcast = str(vms["A"].net.broadcast_address)
    bridge_mac = frames.mac_bytes(open(
        f"/sys/class/net/{vms['A'].bridge}/address").read().strip())
    q, ad = (frames.DOT1Q, 5), (frames.DOT1AD, 5)

    def udp(kind, tags=(), dst_mac=frames.BROADCAST):
        return frames.ipv4(src, vif1.ip, bcast, 17,
                           frames.udp(f"{prefix}-{kind}".encode()),
                           dst_mac=dst_mac, tags=tags)

    sent = {
        "plain": udp("plain"),
        "arp": frames.arp(src, vif1.ip, vif2.ip,
                          trailer=f"{prefix}-arp".encode()),
        "dot1q": udp("dot1q", [q]),
        "dot1ad": udp("dot1ad", [ad]),
        "qinq": udp("qinq", [ad, q]),
        "prio": udp("prio", [(frames.DOT1Q, 0)]),
        "dot1qToA2": udp("dot1qToA2", [q], frames.mac_bytes(vif2.mac)),
        "dot1qToGw": udp("dot1qToGw", [q], bridge_mac),
        "dot1qArp": frames.arp(src, vif1.ip, vif2.ip, tags=[q],
                               trailer=f"{prefix}-dot1qArp".encode()),
    }
    controls = {"plain", "arp"}
    rx = "/run/pyct/rx.out"
    _run(driver, vms, "a2",
         f"pyct-probe rawrecv eth0 {prefix} 6000 > {rx} 2>&1 &\n")
    rx_host = guest_file(driver, a2.uuid, rx)
    wait_for(lambda: "listening" in _read(rx_host), timeout=10,
             what="a2's listener")
    sniffer = _host_sniffer(vms["A"].bridge)
    try:
        out = _run(driver, vms, "a1", "".join(
            f"pyct-probe rawsend eth0 {raw.hex()} 2\n"
            for raw in sent.values()))
        sends = [line for line in out.splitlines()
                 if line.startswith("rawsend")]
        assert len(sends) == len(sent) and all(
            "errno=0 ok" in line for line in sends), out
        wait_for(lambda: "done" in _read(rx_host), timeout=20,
                 what="a2's listener to finish")
        host = {t.rsplit("-", 1)[1] for t in _sniffed(sniffer,
                                                      prefix.encode())}
    finally:
        sniffer.close()
    sibling = {line.split()[1].rsplit("-", 1)[1]
               for line in _read(rx_host).splitlines()
               if line.startswith("got ")}
    assert sibling >= controls and "plain" in host, (
        f"controls missing: sibling {sibling}, host {host}")
    assert sibling - controls == set(), \
        f"tagged frames reached the sibling a2: {sibling - controls}"
    assert host - controls == set(), \
        f"tagged frames reached the host's bridge: {host - controls}"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""
