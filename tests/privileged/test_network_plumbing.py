"""NetworkPlumber on the real kernel, with plain ``unshare --net`` guests.

Every guest is a ``sleep`` in a fresh network namespace this test started
(killed by pid); every link is pyb-/pyv- and made here; addresses come from
a random /24 of 10.241.0.0/16 which ensure_bridge checks against the host's
routes. The module ends with a leak check.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.kernel import bpf
from pyct_driver.virt.network import antispoof
from pyct_driver.virt.network import bridge as bridge_mod
from pyct_driver.virt.network import tcfilter
from tests.privileged import frames


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
        # On-link (answers ARP), but takes only TCP to its port: no ping.
        assert _in(a, "busybox", "arping", "-c", "1", "-w", "2", "-I",
                   "eth0", "169.254.169.254").returncode == 0, \
            "metadata address not on-link"
        assert not _ping(a, "169.254.169.254")
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


def _arping(pid: int, target: str) -> bool:
    """Whether the host (or anyone) answers ARP for ``target`` on eth0."""
    return _in(pid, "busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0",
               target).returncode == 0


def _addresses(ifname: str) -> str:
    return subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", ifname],
                          capture_output=True, text=True, check=True).stdout


def _two_nets() -> tuple[tuple[str, str], tuple[str, str]]:
    first, second = _net(), _net()
    while second[1] == first[1]:
        second = _net()
    return first, second


def test_bridge_answers_arp_only_for_its_own_addresses(plumber, guests):
    """The kernel's half of the ARP rule (arp_ignore on the bridge), with
    the port filter out of the way: a test-owned veth without filters,
    straight on network B's bridge, asks the host about B's gateway and
    the metadata address (answered) and about network A's gateway and
    the uplink address (not)."""
    (net_a, pre_a), (net_b, pre_b) = _two_nets()
    a, vif_a = _plugged(plumber, guests, net_a, pre_a, 80)
    br_b = plumber.ensure_bridge(net_b, f"{pre_b}.1", 24)
    pid = guests.new()
    host_end = bridge_mod.veth_name(uuid.uuid4().hex)
    try:
        subprocess.run(["ip", "link", "add", host_end, "type", "veth",
                        "peer", "name", "eth0", "netns", str(pid)],
                       check=True)
        subprocess.run(["ip", "link", "set", host_end, "master", br_b, "up"],
                       check=True)
        _in(pid, "ip", "addr", "add", f"{pre_b}.90/24", "dev", "eth0",
            check=True)
        _in(pid, "ip", "link", "set", "eth0", "up", check=True)
        assert _arping(pid, f"{pre_b}.1"), "control: own gateway unanswered"
        assert _arping(pid, plumber.metadata_address)
        assert not _arping(pid, vif_a.gateway), \
            "the host answered ARP for another network's gateway"
        assert not _arping(pid, _uplink_address()), \
            "the host answered ARP for its uplink address"
        with open(f"/proc/sys/net/ipv4/conf/{br_b}/arp_ignore") as f:
            assert f.read().strip() == "1"
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        plumber.unplug(vif_a)
        plumber.remove_bridge_if_unused(net_a)
        plumber.remove_bridge_if_unused(net_b)
        assert plumber.flush()


def _bridge_prog_id(bridge: str) -> str:
    out = subprocess.run(["tc", "filter", "show", "dev", bridge, "ingress"],
                         capture_output=True, text=True, check=True).stdout
    return out.split(" id ", 1)[1].split()[0]


def test_metadata_off_removes_every_trace(plumber, guests):
    """A plumber with ``metadata_port=0`` on a bridge an earlier one (the
    service on) set up: the metadata address leaves the bridge, the new
    guest gets no route to it, and the bridge's filter is replaced."""
    net, pre = _net()
    a, vif_a = _plugged(plumber, guests, net, pre, 85)
    br = bridge_mod.bridge_name(net)
    meta = plumber.metadata_address
    assert f"inet {meta}/32" in _addresses(br)
    before = _bridge_prog_id(br)
    off = bridge_mod.NetworkPlumber(metadata_port=0)
    vif_b = _vif(net, pre, 86)
    try:
        b = guests.new()
        off.plug(b, vif_b, off.ensure_bridge(net, vif_b.gateway, 24))
        assert meta not in _addresses(br)
        assert _bridge_prog_id(br) != before, "bridge filter not replaced"
        routes = _in(b, "ip", "route", check=True).stdout
        assert meta not in routes
        assert f"default via {vif_b.gateway} dev eth0" in routes
        assert not _arping(b, meta)
        assert _arping(b, vif_b.gateway), "control: the gateway answers"
        assert _ping(b, vif_a.ip) and _ping(b, vif_b.gateway)
        # Ensured again (the next plug): still nothing, filter kept.
        kept = _bridge_prog_id(br)
        off.ensure_bridge(net, vif_b.gateway, 24)
        assert meta not in _addresses(br) and _bridge_prog_id(br) == kept
    finally:
        off.unplug(vif_b)
        assert off.flush()
        off.close()
        plumber.unplug(vif_a)
        plumber.remove_bridge_if_unused(net)
        assert plumber.flush()


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


# -- where a guest's packets may go (antispoof's destination rules) --------

_PROBE = r"""
import socket, sys
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "tcp":
    try:
        socket.create_connection((host, port), timeout=1.5).close()
        print("connected")
    except OSError as err:
        print("failed", err)
elif mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    for _ in range(3):
        s.sendto(host.encode(), (host, port))
    print("sent")
else:  # udp listener: print the first datagram
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    print("ready", flush=True)
    s.settimeout(float(sys.argv[4]))
    try:
        print(s.recvfrom(100)[0].decode(), flush=True)
    except OSError:
        print("nothing", flush=True)
"""


def _probe(pid: int, mode: str, host: str, port: int) -> str:
    out = _in(pid, sys.executable, "-c", _PROBE, mode, host, str(port),
              timeout=15)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _uplink_address() -> str:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[3].split("/")[0]


def _listener(kind: int, address: str = "0.0.0.0", port: int = 0,
              freebind: bool = False):
    sock = socket.socket(socket.AF_INET, kind)
    if freebind:
        sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    sock.setblocking(False)
    return sock


def _drained(sock) -> int:
    """How many connections (TCP) or datagrams (UDP) came to ``sock``."""
    got = 0
    while True:
        try:
            if sock.type == socket.SOCK_STREAM:
                sock.accept()[0].close()
            else:
                sock.recvfrom(100)
        except BlockingIOError:
            return got
        got += 1


@pytest.fixture
def metadata_listener(plumber):
    """(plumber, port, listening socket) for 169.254.169.254: port 80 and
    the module's plumber, or, when something else holds that port, another
    port and a plumber whose filters allow that one."""
    try:
        sock = _listener(socket.SOCK_STREAM, plumber.metadata_address, 80,
                         freebind=True)
        yield plumber, 80, sock
        sock.close()
        return
    except OSError as err:
        if err.errno != 98:  # EADDRINUSE
            raise
    sock = _listener(socket.SOCK_STREAM, plumber.metadata_address,
                     freebind=True)
    port = sock.getsockname()[1]
    other = bridge_mod.NetworkPlumber(metadata_port=port)
    yield other, port, sock
    sock.close()
    other.flush()
    other.close()


def test_guest_reaches_siblings_gateway_ping_and_metadata_port_only(
        metadata_listener, guests):
    plumber, meta_port, meta_sock = metadata_listener
    net, pre = _net()
    a, vif_a = _plugged(plumber, guests, net, pre, 70)
    b, vif_b = _plugged(plumber, guests, net, pre, 71)
    tcp = _listener(socket.SOCK_STREAM)
    udp = _listener(socket.SOCK_DGRAM)
    port, uport = tcp.getsockname()[1], udp.getsockname()[1]
    uplink = _uplink_address()
    meta = plumber.metadata_address
    try:
        assert _ping(a, vif_b.ip) and _ping(b, vif_a.ip)
        assert _ping(a, vif_a.gateway), "ping of the gateway must work"
        # The host's own services on 0.0.0.0: not via the gateway, not via
        # the uplink address (the guest's default route is the gateway).
        assert _probe(a, "tcp", vif_a.gateway, port).startswith("failed")
        assert _probe(a, "tcp", uplink, port).startswith("failed")
        # The metadata address: its port only.
        assert _probe(a, "tcp", meta, meta_port) == "connected"
        assert _drained(meta_sock) == 1
        assert _probe(a, "tcp", meta, port).startswith("failed")
        assert _drained(tcp) == 0, "a guest connected to a host service"
        # UDP to the host: nothing arrives, not even the host's copy of a
        # subnet broadcast (the bridge's filter); the sibling gets it.
        recv = subprocess.Popen(
            ["nsenter", "-t", str(b), "-n", sys.executable,
             "-c", _PROBE, "recv", "0.0.0.0", str(uport), "5"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert recv.stdout.readline().strip() == "ready"
            for host in (vif_a.gateway, uplink, meta, "255.255.255.255"):
                assert _probe(a, "udp", host, uport) == "sent"
            broadcast = f"{pre}.255"
            assert _probe(a, "udp", broadcast, uport) == "sent"
            assert recv.stdout.readline().strip() == broadcast
        finally:
            recv.kill()
            recv.wait()
        time.sleep(0.2)
        assert _drained(udp) == 0, "a guest's datagram reached the host"
    finally:
        for sock in (tcp, udp):
            sock.close()
        plumber.unplug_all([vif_a, vif_b])
        plumber.remove_bridge_if_unused(net)
        assert plumber.flush()


def _verdict(fd: int, frame: bytes) -> int:
    """The program's return value for ``frame`` (BPF_PROG_TEST_RUN)."""
    # (test runs refuse an IPv4 frame shorter than an IP header: EINVAL)
    try:
        return bpf.prog_test_run(fd, frame)
    except OSError as err:
        raise AssertionError(f"{err}: {frame.hex()}") from err


MAC, IP, GW, META = ("fa:16:3e:01:02:03", "10.241.7.10", "10.241.7.1",
                     "169.254.169.254")
HW = bytes.fromhex(MAC.replace(":", ""))
OK, SHOT = antispoof.TC_ACT_OK, antispoof.TC_ACT_SHOT


def _frame(dst, proto=1, l4=b"\x08\x00" + b"\x00" * 6, vhl=0x45, frag=0,
           src=IP, src_mac=HW, cut=None, tags=()):
    """An IPv4 frame from the port (MAC, IP) unless told otherwise."""
    return frames.ipv4(src_mac, src, dst, proto, l4, vhl, frag, tags=tags,
                       cut=cut)


def _arp(target, sender=IP, op=1, sha=HW, head=(1, 0x0800, 6, 4), tags=()):
    """An ARP frame from the port asking (op 1) or answering (op 2)."""
    return frames.arp(HW, sender, target, op, sha, head, tags)


def _verdicts(code: bytes, cases: dict) -> None:
    """Load ``code``, run it on every frame of ``cases`` (name -> (frame,
    wanted verdict)) and compare all verdicts at once."""
    fd = tcfilter.load(code, "pyct_test")
    try:
        got = {name: _verdict(fd, raw) for name, (raw, _) in cases.items()}
    finally:
        os.close(fd)
    assert got == {name: want for name, (_, want) in cases.items()}


TCP = struct.pack("!HHIIHHHH", 40000, 8775, 0, 0, 0x5002, 1000, 0, 0)
TCP80 = struct.pack("!HHIIHHHH", 40000, 80, 0, 0, 0x5002, 1000, 0, 0)
ACK = struct.pack("!HHIIHHHH", 22, 40000, 1, 1, 0x5010, 1000, 0, 0)
UDP = struct.pack("!HHHH", 40000, 8775, 8, 0)


def test_filter_verdicts_fragments_options_and_runts():
    """The destination rules frame by frame, through the kernel's own
    run of the loaded (verified) program."""
    code = antispoof.program(MAC, IP, 24, GW, META, 8775)
    assert len(code) // 8 < 96, "keep the program small"
    synack = struct.pack("!HHIIHHHH", 22, 40000, 0, 1, 0x5012, 1000, 0, 0)
    gw, meta, frame = GW, META, _frame
    ok, shot = OK, SHOT
    _verdicts(code, {
        "echo to gateway": (frame(gw), ok),
        "echo reply to gateway": (frame(gw, l4=b"\x00" * 8), ok),
        "other icmp to gateway": (frame(gw, l4=b"\x0d" + b"\x00" * 7), shot),
        "syn-ack to gateway (host-opened)": (frame(gw, 6, synack), ok),
        "ack to gateway (host-opened)": (frame(gw, 6, ACK), ok),
        "echo to gateway, more fragments": (frame(gw, frag=0x2000), shot),
        "echo to gateway, later fragment": (frame(gw, frag=0x0010), shot),
        "echo to gateway with IP options": (frame(gw, vhl=0x46), shot),
        "echo to gateway, truncated": (frame(gw, cut=14 + 20 + 4), shot),
        "tcp to gateway": (frame(gw, 6, TCP), shot),
        "udp to gateway": (frame(gw, 17, UDP), shot),
        "tcp to metadata port": (frame(meta, 6, TCP), ok),
        "tcp to metadata, port 80": (frame(meta, 6, TCP80), shot),
        "udp to metadata port": (frame(meta, 17, UDP), shot),
        "tcp to metadata, truncated": (frame(meta, 6, TCP, cut=14 + 20 + 3),
                                       shot),
        "tcp to metadata, fragment": (frame(meta, 6, TCP, frag=0x2000), shot),
        "tcp to metadata, IP options": (frame(meta, 6, TCP, vhl=0x47), shot),
        "tcp to sibling": (frame("10.241.7.11", 6, TCP), ok),
        "udp to subnet broadcast": (frame("10.241.7.255", 17, UDP), ok),
        "later fragment to sibling": (frame("10.241.7.11", 17, UDP,
                                            frag=0x00B9), ok),
        "sibling with IP options": (frame("10.241.7.11", vhl=0x46), ok),
        "limited broadcast": (frame("255.255.255.255", 17, UDP), shot),
        "multicast": (frame("224.0.0.1", 17, UDP), shot),
        "another network": (frame("10.241.8.1"), shot),
        "host uplink": (frame(_uplink_address(), 6, TCP), shot),
        "spoofed source IP": (frame("10.241.7.11", src="10.241.7.12"), shot),
        "spoofed source MAC": (frame("10.241.7.11", src_mac=b"\x02" * 6),
                               shot),
        "IPv6": (b"\x33\x33\x00\x00\x00\x01" + HW + b"\x86\xdd"
                 + b"\x60" + b"\x00" * 39, shot),
    })
    # The bridge's own filter: the host stack gets only its two services.
    _verdicts(antispoof.bridge_program(gw, meta, 8775), {
        "echo to gateway": (frame(gw), ok),
        "tcp to metadata port": (frame(meta, 6, TCP), ok),
        "ARP": (_arp(gw), ok),
        "udp to subnet broadcast": (frame("10.241.7.255", 17, UDP), shot),
        "limited broadcast": (frame("255.255.255.255", 17, UDP), shot),
        "tcp to gateway": (frame(gw, 6, TCP), shot),
        "ack to gateway (host-opened)": (frame(gw, 6, ACK), ok),
        "echo to gateway, later fragment": (frame(gw, frag=0x0010), shot),
        "to a sibling": (frame("10.241.7.11", 6, TCP), shot),
        "802.1Q-tagged echo to gateway": (frame(gw, tags=[(0x8100, 5)]),
                                          shot),
    })


def test_filter_verdicts_arp_targets_and_vlan_tags():
    """ARP only about the port's own subnet (and the metadata address),
    only Ethernet/IPv4 requests and replies; no tagged frame. (A tag in
    the frame, as here, is moved into skb->vlan_tci by the receiving
    device before tc runs on a real port: test_net_guest_attacks sends
    real tagged frames.)"""
    code = antispoof.program(MAC, IP, 24, GW, META, 80)
    dot1q, dot1ad = (frames.DOT1Q, 5), (frames.DOT1AD, 7)
    _verdicts(code, {
        "ARP for the gateway": (_arp(GW), OK),
        "ARP for a sibling": (_arp("10.241.7.11"), OK),
        "ARP reply to the gateway": (_arp(GW, op=2), OK),
        "gratuitous ARP for its own IP": (_arp(IP), OK),
        "gratuitous ARP reply for its own IP": (_arp(IP, op=2), OK),
        "ARP probe (sender 0.0.0.0)": (_arp(IP, sender="0.0.0.0"), OK),
        "ARP for the metadata address": (_arp(META), OK),
        "ARP for another network's gateway": (_arp("10.241.8.1"), SHOT),
        "ARP for the host uplink": (_arp(_uplink_address()), SHOT),
        "ARP for loopback": (_arp("127.0.0.1"), SHOT),
        "ARP for 169.254.169.253": (_arp("169.254.169.253"), SHOT),
        "ARP reply to another network's gateway": (
            _arp("10.241.8.1", op=2), SHOT),
        "ARP with another sender IP": (_arp(GW, sender="10.241.7.11"),
                                       SHOT),
        "ARP with another sender MAC": (_arp(GW, sha=b"\x02" * 6), SHOT),
        "RARP-style op 3": (_arp(GW, op=3), SHOT),
        "ARP op 0": (_arp(GW, op=0), SHOT),
        "ARP for IPv6 protocol": (_arp(GW, head=(1, 0x86DD, 6, 4)), SHOT),
        "ARP with 16-byte addresses": (_arp(GW, head=(1, 0x0800, 6, 16)),
                                       SHOT),
        "ARP, truncated": (_arp(GW)[:14 + 27], SHOT),
        "802.1Q-tagged IPv4 to a sibling": (
            _frame("10.241.7.11", tags=[dot1q]), SHOT),
        "802.1ad-tagged IPv4 to a sibling": (
            _frame("10.241.7.11", tags=[dot1ad]), SHOT),
        "QinQ IPv4 to a sibling": (
            _frame("10.241.7.11", tags=[dot1ad, dot1q]), SHOT),
        "priority-tagged (VID 0) IPv4": (
            _frame("10.241.7.11", tags=[(0x8100, 0)]), SHOT),
        "802.1Q-tagged ARP for the gateway": (_arp(GW, tags=[dot1q]), SHOT),
        "control: untagged IPv4 to a sibling": (_frame("10.241.7.11"), OK),
    })


def test_filter_verdicts_metadata_off():
    """[metadata] port = 0: no rule for the metadata address is left, in
    the port's filter or the bridge's."""
    code = antispoof.program(MAC, IP, 24, GW, META, 0)
    _verdicts(code, {
        "tcp to metadata, port 80": (_frame(META, 6, TCP80), SHOT),
        "tcp to metadata, port 8775": (_frame(META, 6, TCP), SHOT),
        "ARP for the metadata address": (_arp(META), SHOT),
        "control: ARP for the gateway": (_arp(GW), OK),
        "control: echo to gateway": (_frame(GW), OK),
        "control: tcp to sibling": (_frame("10.241.7.11", 6, TCP80), OK),
    })
    _verdicts(antispoof.bridge_program(GW, META, 0), {
        "tcp to metadata, port 80": (_frame(META, 6, TCP80), SHOT),
        "control: echo to gateway": (_frame(GW), OK),
    })
    with pytest.raises(exception.NetworkError, match="metadata port"):
        antispoof.program(MAC, IP, 24, GW, META, 65536)
    with pytest.raises(exception.NetworkError, match="metadata port"):
        bridge_mod.NetworkPlumber(metadata_port=-1)


def _dns_grid() -> dict:
    """Frames from the port to each place, for each protocol and port a
    guest might try, and port 53 bent every way the rules care about."""
    def udp(port):
        return struct.pack("!HHHH", 40000, port, 8, 0)

    def tcp(port, flags=0x5002):
        return struct.pack("!HHIIHHHH", 40000, port, 0, 0, flags, 1000, 0,
                           0)
    places = {"gateway": GW, "metadata": META, "sibling": "10.241.7.11",
              "broadcast": "10.241.7.255", "other gateway": "10.241.8.1",
              "uplink": _uplink_address()}
    grid = {}
    for where, dst in places.items():
        for port in (53, 52, 54, 67, 80, 853, 5353, 8775):
            grid[f"udp {port} to {where}"] = _frame(dst, 17, udp(port))
            grid[f"tcp syn {port} to {where}"] = _frame(dst, 6, tcp(port))
        grid[f"tcp ack 53 to {where}"] = _frame(dst, 6, tcp(53, 0x5010))
        grid[f"tcp rst 53 to {where}"] = _frame(dst, 6, tcp(53, 0x5004))
    grid.update({
        "udp 53 to gateway, more fragments": _frame(GW, 17, udp(53),
                                                    frag=0x2000),
        "udp 53 to gateway, later fragment": _frame(GW, 17, udp(53),
                                                    frag=0x0010),
        "udp 53 to gateway, IP options": _frame(GW, 17, udp(53), vhl=0x46),
        "udp 53 to gateway, truncated": _frame(GW, 17, udp(53),
                                               cut=14 + 20 + 4),
        "tcp 53 to gateway, truncated": _frame(GW, 6, tcp(53),
                                               cut=14 + 20 + 12),
        "tcp 53 to gateway, IP options": _frame(GW, 6, tcp(53), vhl=0x46),
        "udp 53 to gateway, spoofed source": _frame(GW, 17, udp(53),
                                                    src="10.241.7.11"),
        "udp 53 to gateway, 802.1Q": _frame(GW, 17, udp(53),
                                            tags=[(frames.DOT1Q, 5)]),
        "udp from port 53 to gateway": _frame(
            GW, 17, struct.pack("!HHHH", 53, 40000, 8, 0)),
        "icmp echo to gateway": _frame(GW),
    })
    return grid


def _run_all(code: bytes, grid: dict) -> dict:
    fd = tcfilter.load(code, "pyct_test")
    try:
        return {name: _verdict(fd, raw) for name, raw in grid.items()}
    finally:
        os.close(fd)


def test_filter_verdicts_dns_opens_port_53_to_the_gateway_only():
    """With the DNS forwarder on, the port's and the bridge's filters
    differ from the forwarder-off ones in exactly two verdicts: UDP and
    TCP (a SYN: a guest opens the connection) to port 53 of the gateway.
    Every other place, port, protocol and bent packet keeps its verdict,
    and the forwarder-off filters pass nothing to port 53 a guest could
    open."""
    grid = _dns_grid()
    opened = {"udp 53 to gateway", "tcp syn 53 to gateway",
              "tcp rst 53 to gateway"}
    for meta_port in (8775, 0):
        port_off = _run_all(antispoof.program(MAC, IP, 24, GW, META,
                                              meta_port), grid)
        port_on = _run_all(antispoof.program(MAC, IP, 24, GW, META,
                                             meta_port, dns=True), grid)
        assert {n for n in grid if port_on[n] != port_off[n]} == opened
        assert {port_on[n] for n in opened} == {OK}
        assert {port_off[n] for n in opened} == {SHOT}
        bridge_off = _run_all(antispoof.bridge_program(GW, META, meta_port),
                              grid)
        bridge_on = _run_all(antispoof.bridge_program(GW, META, meta_port,
                                                      dns=True), grid)
        # (sources are the ports' business: the bridge sees them checked)
        from_any = opened | {"udp 53 to gateway, spoofed source"}
        assert {n for n in grid if bridge_on[n] != bridge_off[n]} == \
            from_any
        assert {bridge_on[n] for n in from_any} == {OK}
    # (the rest stays as it was: e.g. nothing else of the gateway's)
    assert port_on["udp 54 to gateway"] == port_on["udp 5353 to gateway"] \
        == port_on["tcp syn 853 to gateway"] == SHOT
    assert port_on["udp 53 to other gateway"] == SHOT
    assert port_on["udp 53 to gateway, later fragment"] == SHOT
    assert len(antispoof.program(MAC, IP, 24, GW, META, 80, dns=True)) \
        // 8 < 96, "keep the program small"
