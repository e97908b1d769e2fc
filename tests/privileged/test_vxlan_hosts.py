"""Project networks across two "hosts" over VXLAN, on the real kernel.

Each host is a network namespace this test makes (``vxh-a-*``,
``vxh-b-*``), joined by a veth underlay on 10.244.0.0/24; in each, a real
``NetworkPlumber`` with that host's tunnel address runs in its own
process (``vxlan_host``). Guests are sleepers in fresh network
namespaces plugged into the hosts' bridges, as test_network_plumbing's.
Two projects each have one network (own subnet of 10.245.0.0/16, own
VNI) with a guest on each host: a guest pings and opens TCP to its peer
on the other host; nothing reaches the other project's guests; the
guests' MTU is the network's less the VXLAN overhead. A second test
takes VNIs, ports and tunnel addresses from a database and has each
host's compute side (``compute.tunnels``) program its links. Everything is
removed at the end and the hosts' leak check must list nothing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid

import pytest

from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db import services as db_services
from pyct_driver.db.engine import Database
from pyct_driver.virt.network import vxlan
from tests.server_rows import FLAVOR

UNDERLAY = {"a": "10.244.0.1", "b": "10.244.0.2"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _run(*cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)


def _in(pid: int, *cmd: str, timeout: float = 10
        ) -> subprocess.CompletedProcess:
    return _run("nsenter", "-t", str(pid), "-n", *cmd, timeout=timeout)


class Host:
    """A vxlan_host process in its namespace."""

    def __init__(self, netns: str, address: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m",
             "tests.privileged.vxlan_host", address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the host process died"
        return json.loads(line)

    def quit(self) -> list[str]:
        out, _ = self.proc.communicate(json.dumps({"op": "quit"}) + "\n",
                                       timeout=60)
        return json.loads(out.strip().splitlines()[-1])["links"]


@pytest.fixture(scope="module")
def hosts():
    tag = uuid.uuid4().hex[:6]
    names = {h: f"vxh-{h}-{tag}" for h in UNDERLAY}
    made: list[str] = []
    started: list[Host] = []
    try:
        for netns in names.values():
            assert _run("ip", "netns", "add", netns).returncode == 0
            made.append(netns)
        # the underlay: one veth whose ends are the hosts' uplinks
        assert _run("ip", "link", "add", f"vxu-a-{tag}", "netns",
                    names["a"], "type", "veth", "peer", "name",
                    f"vxu-b-{tag}", "netns", names["b"]).returncode == 0
        for h, netns in names.items():
            for cmd in (["ip", "addr", "add", f"{UNDERLAY[h]}/24", "dev",
                         f"vxu-{h}-{tag}"],
                        ["ip", "link", "set", f"vxu-{h}-{tag}", "up"],
                        ["ip", "link", "set", "lo", "up"]):
                assert _run("ip", "-n", netns, *cmd[1:]).returncode == 0
        for h, netns in names.items():
            started.append(Host(netns, UNDERLAY[h]))
        yield dict(zip(UNDERLAY, started))
        leaks = [host.quit() for host in started]
        started.clear()
        assert leaks == [[], []]
    finally:
        for host in started:
            host.proc.kill()
            host.proc.wait()
        for netns in made:  # with it go the underlay and anything left
            _run("ip", "netns", "del", netns)


def _network(prefix: str) -> dict:
    return {"network_id": uuid.uuid4().hex, "vni": random.randrange(
        1000, vxlan.MAX_VNI), "prefix": prefix}


def _guest(host: Host, net: dict, last: int) -> dict:
    mac = "fa:16:3e:%02x:%02x:%02x" % tuple(
        random.randrange(256) for _ in range(3))
    vif = dict(port_id=uuid.uuid4().hex, network_id=net["network_id"],
               mac=mac, ip=f"{net['prefix']}.{last}", prefixlen=24,
               gateway=f"{net['prefix']}.1", mtu=1500, vni=net["vni"])
    answer = host.ask(op="guest", **vif)
    return {**vif, "pid": answer["pid"], "link_mtu": answer["mtu"]}


def _ping(guest: dict, ip: str) -> bool:
    return _in(guest["pid"], "busybox", "ping", "-c", "1", "-W", "1",
               ip).returncode == 0


def _reaches(guest: dict, ip: str, tries: int = 5) -> bool:
    return any(_ping(guest, ip) for _ in range(tries))


SERVER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001))
srv.listen(1)
print("ready", flush=True)
srv.settimeout(10)
conn, _ = srv.accept()
conn.settimeout(10)
data = b""
while chunk := conn.recv(100):
    data += chunk
print(data.decode(), flush=True)
"""
CLIENT = """
import socket, sys
sock = socket.create_connection((sys.argv[1], 5001), timeout=5)
sock.sendall(b"across")
sock.shutdown(socket.SHUT_WR)
"""


def _tcp(client: dict, server: dict) -> str:
    """What a TCP connection from ``client`` to ``server`` carried (plain
    Python sockets in the guests' namespaces: busybox nc's client now and
    then closed without sending)."""
    listener = subprocess.Popen(
        ["nsenter", "-t", str(server["pid"]), "-n", sys.executable, "-c",
         SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        sent = _in(client["pid"], sys.executable, "-c", CLIENT,
                   server["ip"])
        assert sent.returncode == 0, sent.stderr
        out, _ = listener.communicate(timeout=15)
        return out.strip()
    finally:
        listener.kill()
        listener.wait()


def test_guests_across_hosts(hosts):
    a, b = hosts["a"], hosts["b"]
    third = random.randrange(0, 120)
    nets = [_network(f"10.245.{third}"), _network(f"10.245.{third + 120}")]
    guests = [(_guest(a, net, 10), _guest(b, net, 20)) for net in nets]
    for net, (on_a, on_b) in zip(nets, guests):
        for host, other in ((a, on_b), (b, on_a)):
            ports = [(on_a["mac"], UNDERLAY["a"]),
                     (on_b["mac"], UNDERLAY["b"])]
            assert host.ask(op="tunnels", network_id=net["network_id"],
                            ports=ports)["done"]
    (a1, b1), (a2, b2) = guests
    fdb = a.ask(op="fdb", network_id=nets[0]["network_id"])
    assert fdb["self"] == sorted([[vxlan.FLOOD_MAC, UNDERLAY["b"]],
                                  [b1["mac"], UNDERLAY["b"]]])
    # the bridge learns nothing from the tunnel: B's MAC is static
    assert fdb["bridged"] == [b1["mac"]] and not fdb["learning"]
    assert a1["link_mtu"] == 1500 - vxlan.OVERHEAD
    # (not /sys/class/net: that sysfs is the test's own namespace's)
    shown = _in(a1["pid"], "ip", "-o", "link", "show", "eth0").stdout
    assert " mtu 1450 " in shown, shown
    # one segment per network across the hosts: ping and TCP both ways
    assert _reaches(a1, b1["ip"])
    assert _reaches(b1, a1["ip"])
    assert _reaches(a2, b2["ip"])
    assert _tcp(a1, b1) == "across"
    assert _tcp(b2, a2) == "across"
    # the other project's guests, on the same hosts, are out of reach
    for src, dst in ((a1, b2), (a1, a2), (b1, a2), (b2, a1)):
        assert not _ping(src, dst["ip"]), (src["ip"], dst["ip"])
    # a host's entries go when the other host has no port left there
    assert a.ask(op="tunnels", network_id=nets[0]["network_id"],
                 ports=[(a1["mac"], UNDERLAY["a"])])["done"]
    assert not _ping(a1, b1["ip"])
    links = a.ask(op="links")["links"]
    assert sum(name.startswith("pyx-") for name in links) == 2


def test_entries_follow_the_database(hosts, tmp_path):
    """VNIs from network creation, ports and tunnel addresses from the
    tables: each host's compute side programs its links from them, and a
    server deleted on B takes B out of A's entries."""
    url = f"sqlite:///{tmp_path}/cloud.sqlite"
    db = Database(url)
    models.Base.metadata.create_all(db.engine)
    settings = db_networks.IpamSettings(pool_cidr="10.245.240.0/20")
    try:
        net = db_networks.create_network(db, "p1", "n", settings, list)
        other = db_networks.create_network(db, "p2", "n", settings, list)
        assert net["vni"] != other["vni"]
        for name, address in UNDERLAY.items():
            db_services.heartbeat(db, name, "pyct-compute", "t", address)
        guests = {}
        for name, row, last in (("a", net, 10), ("b", net, 20),
                                ("b", other, 30)):
            prefix = row["cidr"].rsplit(".", 1)[0]
            guest = _guest(hosts[name], {"network_id": row["id"],
                                         "vni": row["vni"],
                                         "prefix": prefix}, last)
            guests[(name, row["id"])] = guest
            _bind(db, row, name, guest)
        for name, host in hosts.items():
            assert host.ask(op="sync", db=url, host=name)["done"]
        a1, b1 = guests[("a", net["id"])], guests[("b", net["id"])]
        b2 = guests[("b", other["id"])]
        assert _reaches(a1, b1["ip"]) and _reaches(b1, a1["ip"])
        assert _tcp(b1, a1) == "across"
        assert not _ping(a1, b2["ip"])
        with db.session() as session:  # the server on B is deleted
            session.query(models.Instance).filter_by(
                uuid=b1["uuid"]).update({"deleted": 1})
        assert hosts["a"].ask(op="sync", db=url, host="a")["done"]
        assert not _ping(a1, b1["ip"])
        # B's last port of the other network goes: its bridge and VXLAN
        # link go with it
        left = hosts["b"].ask(op="unplug", port_id=b2["port_id"],
                              network_id=other["id"])["links"]
        assert not [n for n in left if n.endswith(other["id"][:11])], left
        assert any(n.startswith("pyx-") for n in left)  # net's stays
    finally:
        db.dispose()


def _bind(db, net: dict, host: str, guest: dict) -> None:
    """The server row on ``host`` and its port (the plugged guest's)."""
    guest["uuid"] = str(uuid.uuid4())
    with db.session() as session:
        session.add(models.Instance(
            uuid=guest["uuid"], name="g", hostname="g",
            project_id=net["project_id"], user_id="u", host=host,
            image_ref="i", flavor_id="1", flavor=FLAVOR, vm_state="active",
            power_state=1, reservation_id="r-1"))
        session.add(models.Port(
            id=guest["port_id"], network_id=net["id"],
            project_id=net["project_id"], instance_uuid=guest["uuid"],
            mac_address=guest["mac"], ip_address=guest["ip"],
            device_index=0, status="ACTIVE"))
