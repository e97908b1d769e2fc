"""What security groups cost: a request/response round trip between two
guests with no filtering (no pyct table at all), with filtering and the default group's rules
("0 rules"), and with 100 more rules in front; a new connection's cost
the same three ways; and the time a rule change takes to reach the
kernel.

Usage (root): ``.venv/bin/python tools/bench/secgroups.py [--runs 20]
[--json]``

The guests are network namespaces plugged into a bridge the way pyct
plugs guests (``tests/privileged/sg_lab``: a private "host" namespace,
veths named like pyct's ports, 10.248.1.0/24), so the kernel path is the
one a guest's packets take, and the client's and server's costs are the
same in every case. One run is a block of 2,000 one-byte TCP
request/responses on one connection (TCP_RR) and a block of 200 connects
(TCP_CRR); the three cases are interleaved run by run. The update time is
``secgroup_nft.apply`` for two ports with 100 rules each, one rule
changed each time (what an API call's refresh does). At exit the
namespaces are deleted, which takes pyct's tables with them.
"""

from __future__ import annotations

import json
import os
import sys

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from pyct_driver.virt.port_filter import FilterRule  # noqa: E402
from tests.privileged.sg_lab import SgLab  # noqa: E402

PORT = 7000
RR, CRR = 2000, 200
CLIENT = r"""
import json, socket, sys, time
host, port, rr, crr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4])
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = time.perf_counter()
for _ in range(rr):
    s.sendall(b"x")
    s.recv(1)
per_rr = (time.perf_counter() - t) / rr
s.close()
t = time.perf_counter()
for _ in range(crr):
    c = socket.create_connection((host, port))
    c.sendall(b"x")
    c.recv(1)
    c.close()
print(json.dumps([per_rr, (time.perf_counter() - t) / crr]))
"""


def _rules(a_ip: str, b_ip: str, extra: int) -> list[FilterRule]:
    """The default group's two rules, after ``extra`` that never match
    (tcp ports no one uses, from addresses no one has)."""
    out = [FilterRule("ingress", "tcp", 10000 + i, 10000 + i,
                      (f"192.0.2.{i % 250}/32",)) for i in range(extra)]
    return out + [FilterRule("ingress", remotes=(a_ip, b_ip)),
                  FilterRule("egress")]


def _measure(lab: SgLab) -> tuple[float, float]:
    a, b = lab.guests
    out = a.exec(sys.executable, "-c", CLIENT, b.ip, str(PORT), str(RR),
                 str(CRR))
    return tuple(json.loads(out.stdout))


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 20).parse_args()
    report.interrupt_on_term()
    lab = SgLab(2)
    try:
        a, b = lab.guests
        b.serve(PORT)
        cases = {"no filtering": None, "filtered, 0 rules": 0,
                 "filtered, 100 rules": 100}
        rr = {k: [] for k in cases}
        crr = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, extra in cases.items():
                if extra is None:
                    lab.remove()  # no pyct table: no conntrack either
                else:
                    lab.apply({g: _rules(a.ip, b.ip, extra)
                               for g in (a, b)})
                one_rr, one_crr = _measure(lab)
                rr[name].append(one_rr)
                crr[name].append(one_crr)
        updates = []
        for i in range(args.runs):
            rules = _rules(a.ip, b.ip, 100)
            rules[0] = FilterRule("ingress", "tcp", 20000 + i, 20000 + i)
            updates.append(lab.apply({g: rules for g in (a, b)}))
    finally:
        lab.close()
    report.emit("security groups: one TCP request/response (TCP_RR)",
                {k: report.summarize([t * 1e6 for t in v])
                 for k, v in rr.items()}, None, args.json, unit="us")
    report.emit("security groups: one new connection (TCP_CRR)",
                {k: report.summarize([t * 1e6 for t in v])
                 for k, v in crr.items()}, None, args.json, unit="us")
    report.emit("security groups: a rule change reaching the kernel "
                "(2 ports x 100 rules, one batch)",
                {"secgroup_nft.apply": report.summarize(updates)}, None,
                args.json)


if __name__ == "__main__":
    main()
