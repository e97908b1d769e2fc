"""Boot N guests through the all-in-one API, then time the API at N.

Usage (root): ``.venv/bin/python tools/bench/api_density.py [--guests 500]
[--in-flight 8] [--runs 20] [--json]``

Starts ``pyct-all-in-one`` (SQLite, in-process bus, container driver,
sparse disks, allocation ratios raised so N m1.tiny fit on this host) as
``api_boot`` does, boots ``--guests`` busybox servers over HTTP with
``--in-flight`` at a time (each waited for ACTIVE), then with all N
running times ``--runs`` of each: ``GET /servers/detail`` (the first page,
Nova's default 1,000), ``GET /servers?limit=100``, ``GET /servers/{id}``,
and finally ``DELETE`` -> 404 of every server (8 at a time). Prints
medians and p95s and the boot rate; everything is removed at exit.
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import time
import uuid as uuid_mod

import api_boot
import report
from tests.services import Deployment


def timed(client: api_boot.Client, path: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        status, _ = client.call("GET", path)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
    return out


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    p.add_argument("--guests", type=int, default=500)
    p.add_argument("--in-flight", type=int, default=8)
    args = p.parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-apidense-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    ratio = max(64, args.guests)
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     extra={"quota": {"instances": -1, "cores": -1,
                                      "ram": -1},
                            "DEFAULT": {"service_down_time": 120},
                            "container": {"cgroup_parent": parent,
                                          "preallocate_images": "none"},
                            "compute": {"ram_allocation_ratio": ratio,
                                        "cpu_allocation_ratio": ratio,
                                        "disk_allocation_ratio": ratio}})
    client, rows, extra = None, {}, {"guests": args.guests}
    try:
        client, image = api_boot.start_all_in_one(dep)
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.in_flight) as pool:
            boots = list(pool.map(lambda _: api_boot.boot(client, image),
                                  range(args.guests)))
        took = time.perf_counter() - t0
        extra["boot rate (servers/s)"] = round(args.guests / took, 1)
        rows[f"POST -> ACTIVE, {args.in_flight} in flight"] = \
            report.summarize([b["active"] for b in boots])
        ids = api_boot.list_ids(client)
        extra["listed (GET /servers, default page)"] = len(ids)
        at = f"at {args.guests}"
        rows[f"GET /servers/detail {at}"] = report.summarize(
            timed(client, "/v2.1/servers/detail", args.runs))
        rows[f"GET /servers?limit=100 {at}"] = report.summarize(
            timed(client, "/v2.1/servers?limit=100", args.runs))
        shows = []
        for num in range(args.runs):
            shows += timed(client, f"/v2.1/servers/"
                           f"{boots[num % len(boots)]['id']}", 1)
        rows[f"GET /servers/id {at}"] = report.summarize(shows)
        t0 = time.perf_counter()
        dels = api_boot.delete_all(client, [b["id"] for b in boots])
        extra["delete all (s)"] = round(time.perf_counter() - t0, 1)
        rows[f"DELETE -> 404 from {args.guests}"] = report.summarize(dels)
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    extra["load average"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    report.emit(f"API at {args.guests} guests", rows, extra, args.json)


if __name__ == "__main__":
    main()
