"""Time from a RabbitMQ reconnect to the first completed build.

Usage: ``.venv/bin/python tools/bench/bus_reconnect.py [--runs 5]
[--outage 3] [--json]``

Runs ``pyct-api`` and one ``pyct-compute`` (fake driver) over the real
RabbitMQ (a throw-away vhost) and PostgreSQL (a throw-away database),
with the bus reached through ``tests/faultproxy.FaultProxy``
(``tests/integration/faulty_pipeline``). Each run cuts every bus
connection and refuses new ones for ``--outage`` seconds, then restores
the proxy and at that instant boots a server over raw HTTP (microversion
2.37, ``networks: none``), polling every 20 ms until it is ACTIVE: the
time from the restore to ACTIVE is the sample (the API's send reconnects
inside the POST; the compute service's consumer reconnects on its own
schedule). Two deployments are measured side by side: oslo.messaging's
own reconnect timing (``rabbit_retry_interval`` 1 s, backoff 2 s, at
most 30 s) and the tight timing the fault tests use (1 s, backoff 1 s,
at most 2 s). Everything is removed at exit.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.integration.faulty_pipeline import (  # noqa: E402
    BUS_OPTIONS, api_request, open_faulty)


def _boot_to_active(dep, name: str, deadline_s: float = 120) -> float:
    """Boot; return when it is ACTIVE (time.monotonic())."""
    resp = api_request(dep, "POST", "/servers", {"server": {
        "name": name, "imageRef": dep.image_id, "flavorRef": "1",
        "networks": "none"}}, timeout=deadline_s)
    resp.raise_for_status()
    server_id = resp.json()["server"]["id"]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        server = api_request(dep, "GET", f"/servers/{server_id}").json()
        status = server["server"]["status"]
        if status == "ACTIVE":
            done = time.monotonic()
            api_request(dep, "DELETE", f"/servers/{server_id}")
            return done
        if status == "ERROR":
            raise RuntimeError(f"{server_id} went to ERROR: "
                               f"{server['server'].get('fault')}")
        time.sleep(0.02)
    raise RuntimeError(f"{server_id} not ACTIVE in {deadline_s} s")


def measure(workdir: str, runs: int, outage: float,
            bus_options) -> list[float]:
    with contextlib.ExitStack() as stack:
        f = open_faulty(stack, workdir, bus=True, bus_options=bus_options)
        f.dep.start_all("bench-compute")
        _boot_to_active(f.dep, "warm-up")
        samples = []
        for i in range(runs):
            with f.bus.outage():
                time.sleep(outage)
            restored = time.monotonic()
            samples.append(_boot_to_active(f.dep, f"run{i}") - restored)
        return samples


def main() -> int:
    p = report.parser(__doc__.splitlines()[0], 5)
    p.add_argument("--outage", type=float, default=3.0,
                   help="seconds the bus is away in each run (default 3)")
    args = p.parse_args()
    report.interrupt_on_term()
    with tempfile.TemporaryDirectory(prefix="pyct-bench-bus-") as tmp:
        rows = {
            "oslo defaults": report.summarize(measure(
                os.path.join(tmp, "defaults"), args.runs, args.outage,
                None)),
            "tight (1/1/2 s)": report.summarize(measure(
                os.path.join(tmp, "tight"), args.runs, args.outage,
                BUS_OPTIONS)),
        }
    report.emit("RabbitMQ restored -> first build ACTIVE", rows,
                {"outage_s": args.outage}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
