"""What the gateway's DNS forwarder costs: a query's round trip through it
and a network's first plug.

Usage (root): ``.venv/bin/python tools/bench/dns_forwarder.py [--runs 500]
[--json]``

A ``NetworkPlumber`` with the forwarder, its upstream the test DNS server
on loopback (``tests/fixtures/dns_upstream``), and a guest stand-in: a
``sleep`` in a fresh network namespace plugged into a random /24 of
10.244.0.0/16. A client in that namespace asks ``www.pyct.test``
``--runs`` times over UDP through the gateway; the peer, in the same run
and interleaved in blocks of 50, is the same client in the host's
namespace asking the upstream directly (what a guest would pay with NAT
and no forwarder, minus the NAT). Then ``ensure_bridge`` of 20 fresh
networks with the forwarder and 20 without (interleaved): the
forwarder's share of a network's first plug (two sockets bound). At exit
everything made here is removed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid as uuid_mod

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from pyct_driver.virt.base import VifSpec  # noqa: E402
from pyct_driver.virt.network import bridge as bridge_mod  # noqa: E402
from tests.fixtures import dns_upstream  # noqa: E402
from tests.privileged.test_debian_ssh import free_pool  # noqa: E402

BLOCK = 50
CLIENT = r"""
import json, socket, sys, time
server, port, n, query = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    bytes.fromhex(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, port))
out = []
for _ in range(n):
    t = time.perf_counter()
    s.send(query)
    s.recv(4096)
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""


def _ask(server: str, port: int, n: int, netns_pid: int | None) -> list:
    argv = [sys.executable, "-c", CLIENT, server, str(port), str(n),
            dns_upstream.query("www.pyct.test").hex()]
    if netns_pid:
        argv = ["nsenter", "-t", str(netns_pid), "-n"] + argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True,
                         timeout=120)
    return json.loads(out.stdout)


def _bridges(plumber, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        net_id = uuid_mod.uuid4().hex
        cidr = ipaddress.IPv4Network(free_pool())
        t = time.perf_counter()
        plumber.ensure_bridge(net_id, str(cidr.network_address + 1), 24)
        samples.append(time.perf_counter() - t)
        plumber.remove_bridge_if_unused(net_id)
        plumber.flush()
    return samples


def main() -> int:
    args = report.parser(__doc__.splitlines()[0], 500).parse_args()
    up = dns_upstream.Upstream()
    with_dns = bridge_mod.NetworkPlumber(
        metadata_port=0, dns_upstreams=[("127.0.0.1", up.port)],
        dns_rate=1e6)
    without = bridge_mod.NetworkPlumber(metadata_port=0)
    guest = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    net_id = uuid_mod.uuid4().hex
    cidr = ipaddress.IPv4Network(free_pool())
    gateway = str(cidr.network_address + 1)
    vif = VifSpec(port_id=uuid_mod.uuid4().hex, network_id=net_id,
                  mac="fa:16:3e:be:0c:01", ip=str(cidr.network_address + 10),
                  prefixlen=24, gateway=gateway)
    rows: dict = {}
    queries: dict = {}
    try:
        time.sleep(0.2)
        with_dns.plug(guest.pid, vif, with_dns.ensure_bridge(
            net_id, gateway, 24))
        via, direct = [], []
        _ask(gateway, 53, 20, guest.pid)  # warm-up (ARP, caches)
        for _ in range(max(1, args.runs // BLOCK)):
            via += _ask(gateway, 53, BLOCK, guest.pid)
            direct += _ask("127.0.0.1", up.port, BLOCK, None)
        first_on, first_off = [], []
        for _ in range(2):
            first_on += _bridges(with_dns, 10)
            first_off += _bridges(without, 10)
        queries = {
            "query via the gateway's forwarder":
                report.summarize([t * 1e6 for t in via]),
            "query straight to the upstream (peer)":
                report.summarize([t * 1e6 for t in direct])}
        rows = {
            "first ensure_bridge, forwarder on": report.summarize(first_on),
            "first ensure_bridge, forwarder off":
                report.summarize(first_off)}
    finally:
        with_dns.unplug(vif)
        with_dns.remove_bridge_if_unused(net_id)
        for plumber in (with_dns, without):
            plumber.flush()
            plumber.close()
        guest.kill()
        guest.wait()
        up.close()
    report.emit("DNS forwarder: one UDP query's round trip", queries,
                {"upstream_questions": len(up.seen)}, args.json, unit="us")
    report.emit("DNS forwarder: a network's first plug", rows, None,
                args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
