"""What one build or delete costs the host's security-group filters as
the host fills: the kernel work of a port joining and leaving the default
group (every member admits every other) with N ports already filtered.

Usage (root): ``.venv/bin/python tools/bench/secgroup_scale.py
[--runs 10] [--ports 100,500,1000,2000] [--whole-up-to 500] [--json]``

"delta" is the compute service's path (``secgroup_delta.FilterState``:
the joining port's chains plus one element in the group's set, and the
reverse on delete). "whole rewrite, inline members" is what every build
did before groups had named sets: all N ports' chains rewritten, each
with the members' addresses inline (N² addresses); it is measured up to
``--whole-up-to`` ports only, as it grows quadratically. No links or
guests are needed (chains are keyed by veth name); everything happens in
a private network namespace that is deleted at exit, which takes pyct's
tables with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from pyct_driver.virt.network import secgroup_delta, secgroup_nft  # noqa
from pyct_driver.virt.port_filter import FilterRule, PortFilter  # noqa

GROUP = "bench-default"


def _ports(count: int) -> list[PortFilter]:
    ips = [f"10.230.{i // 250}.{i % 250 + 2}" for i in range(count)]
    rules = (FilterRule("ingress", remotes=tuple(ips), remote_group=GROUP),
             FilterRule("egress"))
    return [PortFilter(f"{i:08d}-0000-4000-8000-{i:012d}", ip, "10.230.0.1",
                       rules) for i, ip in enumerate(ips)]


def _inline(ports: list[PortFilter]) -> list[PortFilter]:
    return [dataclasses.replace(p, rules=tuple(
        dataclasses.replace(r, remote_group=None) for r in p.rules))
        for p in ports]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def inner(runs: int, sizes: list[int], whole_up_to: int) -> dict:
    rows: dict[str, dict] = {}
    for size in sizes:
        before, after = _ports(size), _ports(size + 1)
        with tempfile.TemporaryDirectory() as tmp:
            state = secgroup_delta.FilterState(os.path.join(tmp, "f.json"))
            state.apply(before)
            build, delete = [], []
            for _ in range(runs):
                build.append(_timed(lambda: state.apply(after)))
                delete.append(_timed(lambda: state.apply(before)))
            state.apply([])
        rows[f"{size} ports: delta, build"] = report.summarize(build)
        rows[f"{size} ports: delta, delete"] = report.summarize(delete)
        if size <= whole_up_to:
            old = _inline(after)
            whole = [_timed(lambda: secgroup_nft.apply(old))
                     for _ in range(max(1, runs // 3))]
            secgroup_nft.remove()
            rows[f"{size} ports: whole rewrite, inline members"] = \
                report.summarize(whole)
    return rows


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 10)
    p.add_argument("--ports", default="100,500,1000,2000")
    p.add_argument("--whole-up-to", type=int, default=500)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [int(n) for n in args.ports.split(",")]
    if args.inner:
        json.dump(inner(args.runs, sizes, args.whole_up_to), sys.stdout)
        return
    report.interrupt_on_term()
    ns = "sgscale-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--inner",
             "--runs", str(args.runs), "--ports", args.ports,
             "--whole-up-to", str(args.whole_up_to)],
            check=True, capture_output=True, text=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    report.emit("security groups at density: one build/delete's filter "
                "update (default group)", json.loads(out.stdout), None,
                args.json)


if __name__ == "__main__":
    main()
