"""API request to ACTIVE with and without a project network, side by side.

Usage (root): ``.venv/bin/python tools/bench/api_boot_net.py [--runs 20]
[--json]``

The same set-up as ``api_boot.py`` (a real ``pyct-all-in-one``, SQLite,
in-process bus, container driver, busybox image, m1.tiny, raw HTTP with
token ``demo:demo`` at microversion 2.37, GET every 5 ms) plus a subnet
pool of a random /24 of 10.244.0.0/16 that no host route overlaps. Boots
alternate between ``networks: auto`` (the project network's port: IPAM,
veth in the guest's netns, anti-spoofing filters, addresses) and
``networks: none`` (api_boot.py's own series), one at a time, so both
share the machine's noise. One networked anchor server stays up so every
measured boot finds the network and its bridge in place (the first boot
of a project, which also creates the network and the bridge, is shown on
its own). Per boot: POST -> ACTIVE, POST -> compute pick-up, and the
compute's build event (instance action ``compute__build_and_run``-style
event start -> finish: the driver's spawn plus its DB writes). Servers
are deleted (and waited for) after each boot; at exit everything is torn
down as in api_boot.py and the host is checked for our links.
"""

from __future__ import annotations

import datetime
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuid_mod

import api_boot
import report

from tests.privileged.test_debian_ssh import free_pool  # noqa: E402
from tests.services import Deployment  # noqa: E402

WARMUP = 2


def _ts(value: str) -> float:
    return datetime.datetime.fromisoformat(value).timestamp()


def _admin_get(port: int, path: str) -> tuple[int, dict]:
    # events are admin-only (as in Nova)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=dict(
            api_boot.HEADERS, **{"X-Auth-Token": "admin:admin"}))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def build_event(client: api_boot.Client, sid: str) -> float | None:
    """Seconds between the create action's first event's start and
    finish, as the compute recorded them."""
    status, reply = client.call("GET",
                                f"/v2.1/servers/{sid}/os-instance-actions")
    actions = [a for a in reply.get("instanceActions", [])
               if a["action"] == "create"]
    if status != 200 or not actions:
        return None
    status, reply = _admin_get(
        client.port, f"/v2.1/servers/{sid}/os-instance-actions/"
                     f"{actions[0]['request_id']}")
    events = reply.get("instanceAction", {}).get("events") or []
    done = [e for e in events if e.get("finish_time")]
    if not done:
        return None
    return _ts(done[0]["finish_time"]) - _ts(done[0]["start_time"])


def boot(client: api_boot.Client, image: str, networks: str) -> dict:
    body = {"server": {"name": f"bench-{uuid_mod.uuid4().hex[:8]}",
                       "imageRef": image, "flavorRef": "1",
                       "networks": networks}}
    t0 = time.perf_counter()
    status, reply = client.call("POST", "/v2.1/servers", body)
    if status != 202:
        raise RuntimeError(f"POST /servers: {status} {reply}")
    sid = reply["server"]["id"]
    pickup = None
    while True:
        status, reply = client.call("GET", f"/v2.1/servers/{sid}")
        now = time.perf_counter() - t0
        server = reply.get("server", {})
        if server.get("status") == "ACTIVE":
            break
        if server.get("status") == "ERROR" or status != 200 or now > 120:
            raise RuntimeError(f"server {sid}: {status} {reply}")
        if pickup is None and server.get("OS-EXT-STS:task_state") not in (
                None, "scheduling"):
            pickup = now
        time.sleep(api_boot.POLL)
    return {"id": sid, "active": now, "pickup": pickup or now,
            "build": build_event(client, sid)}


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    args = p.parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-apinet-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    pool = free_pool()
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     # no limit, but the quota lock and count still run,
                     # as they do on every real boot
                     extra={"quota": {"instances": -1, "cores": -1,
                                      "ram": -1},
                            "container": {"cgroup_parent": parent},
                            "network": {"pool_cidr": pool},
                            "compute": {"ram_allocation_ratio": 64,
                                        "cpu_allocation_ratio": 256,
                                        "disk_allocation_ratio": 64}})
    rows: dict[str, dict] = {}
    extra: dict = {"subnet pool": pool}
    client = None
    bridge = None
    ok = False
    try:
        dep.manage("db", "sync")
        image = dep.manage("image", "create-busybox", "busybox").split()[-1]
        dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
                   "1", "--ram", "512", "--disk", "1")
        dep.start("pyct-all-in-one")
        client = api_boot.Client(dep.port)
        api_boot.delete(client, boot(client, image, "none")["id"])
        first = boot(client, image, "auto")  # creates network and bridge
        extra["first networked boot (creates network + bridge): POST -> "
              "ACTIVE ms"] = round(first["active"] * 1000, 1)
        status, nets = client.call("GET", "/networking/v2.0/networks")
        bridge = "pyb-" + nets["networks"][0]["id"][:11]
        samples: dict[str, list[dict]] = {"auto": [], "none": []}
        for i in range(WARMUP + args.runs):
            for networks in (("auto", "none") if i % 2 else
                             ("none", "auto")):
                b = boot(client, image, networks)
                api_boot.delete(client, b["id"])
                if i >= WARMUP:
                    samples[networks].append(b)
        for networks, label in (("auto", "networks auto"),
                                ("none", "networks none")):
            runs = samples[networks]
            rows[f"{label}: POST -> ACTIVE"] = report.summarize(
                [b["active"] for b in runs])
            rows[f"{label}:   POST -> compute pick-up"] = report.summarize(
                [b["pickup"] for b in runs])
            builds = [b["build"] for b in runs if b["build"] is not None]
            rows[f"{label}:   compute build event (spawn)"] = \
                report.summarize(builds)
        for key, what in (("active", "POST -> ACTIVE"),
                          ("build", "build event")):
            a = [b[key] for b in samples["auto"] if b[key] is not None]
            n = [b[key] for b in samples["none"] if b[key] is not None]
            if a and n:
                extra[f"{what}: median auto - median none (ms)"] = round(
                    (statistics.median(a) - statistics.median(n)) * 1000, 1)
        ok = True
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
        links = subprocess.run(["ip", "-o", "link", "show"],
                               capture_output=True, text=True).stdout
        if bridge and bridge in links:
            print(f"WARNING: bridge {bridge} left", file=sys.stderr)
        if not ok:
            print("FAILED; results so far:", file=sys.stderr)
    report.emit("API boot with and without a project network "
                "(pyct-all-in-one, container driver, busybox)", rows, extra,
                args.json)


if __name__ == "__main__":
    main()
