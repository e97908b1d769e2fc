"""API request to ACTIVE through ``pyct-all-in-one`` (container driver).

Usage (root): ``.venv/bin/python tools/bench/api_boot.py [--runs 20]
[--concurrent 10] [--sustained 200] [--in-flight 8] [--profile] [--json]``

Starts a real ``pyct-all-in-one`` process (SQLite, in-process bus, the
container driver, cgroup parent ``pyct-bench-*``) with
``tests/services.Deployment``, imports the busybox image and an m1.tiny
flavor (1 vCPU, 512 MiB, 1 GiB; allocation ratios raised so 200 fit), and
boots over raw HTTP (token ``demo:demo``, microversion 2.37,
``networks: none``): POST /v2.1/servers, then GET /v2.1/servers/{id}
every 5 ms until ACTIVE. Per boot it records the POST's own latency, the
first poll that shows ``task_state: spawning`` (compute picked it up) and
ACTIVE. Phases: ``--runs`` sequential boots, ``--concurrent`` boots
started together, ``--sustained`` boots with ``--in-flight`` at a time
(boots per second). Servers are deleted through the API after each phase;
at exit the service and its launcher are stopped and every guest cgroup,
mount, loop device and the temp dir are removed. ``--profile`` records
py-spy flame data of the service during the sequential phase.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuid_mod

import report
import teardown

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from pyct_driver.virt.process.client import LauncherClient  # noqa: E402
from tests.services import Deployment  # noqa: E402

HEADERS = {"X-Auth-Token": "demo:demo", "Content-Type": "application/json",
           "OpenStack-API-Version": "compute 2.37",
           "X-OpenStack-Nova-API-Version": "2.37"}
POLL = 0.005


class Client:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def call(self, method: str, path: str, body: dict | None = None
             ) -> tuple[int, dict]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path,
                         json.dumps(body) if body is not None else None,
                         HEADERS)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        return resp.status, (json.loads(data) if data else {})


def boot(client: Client, image: str) -> dict:
    name = f"bench-{uuid_mod.uuid4().hex[:8]}"
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1",
                       "networks": "none"}}
    t0 = time.perf_counter()
    status, reply = client.call("POST", "/v2.1/servers", body)
    t_post = time.perf_counter() - t0
    if status != 202:
        raise RuntimeError(f"POST /servers: {status} {reply}")
    sid = reply["server"]["id"]
    t_pickup = None
    while True:
        status, reply = client.call("GET", f"/v2.1/servers/{sid}")
        now = time.perf_counter() - t0
        server = reply.get("server", {})
        if server.get("status") == "ACTIVE":
            return {"id": sid, "post": t_post, "active": now,
                    "pickup": t_pickup if t_pickup is not None else now}
        if server.get("status") == "ERROR" or status != 200:
            raise RuntimeError(f"server {sid} failed: {status} {reply}")
        if t_pickup is None and \
                server.get("OS-EXT-STS:task_state") not in (None,
                                                            "scheduling"):
            t_pickup = now
        if now > 120:
            raise RuntimeError(f"server {sid} not ACTIVE after 120 s")
        time.sleep(POLL)


def delete(client: Client, sid: str) -> float:
    t0 = time.perf_counter()
    status, reply = client.call("DELETE", f"/v2.1/servers/{sid}")
    if status not in (204, 404):
        raise RuntimeError(f"DELETE {sid}: {status} {reply}")
    while True:
        status, _ = client.call("GET", f"/v2.1/servers/{sid}")
        if status == 404:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"server {sid} not gone after 120 s")
        time.sleep(POLL)


def delete_all(client: Client, ids: list[str], workers: int = 8
               ) -> list[float]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda s: delete(client, s), ids))


def list_ids(client: Client) -> list[str]:
    status, reply = client.call("GET", "/v2.1/servers")
    return [s["id"] for s in reply.get("servers", [])] if status == 200 \
        else []


def summarize_boots(prefix: str, boots: list[dict]) -> dict[str, dict]:
    return {
        f"{prefix}: POST -> ACTIVE": report.summarize(
            [b["active"] for b in boots]),
        f"{prefix}:   POST alone (202)": report.summarize(
            [b["post"] for b in boots]),
        f"{prefix}:   POST -> compute pick-up": report.summarize(
            [b["pickup"] for b in boots]),
        f"{prefix}:   pick-up -> ACTIVE seen": report.summarize(
            [b["active"] - b["pickup"] for b in boots]),
    }


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    p.add_argument("--concurrent", type=int, default=10)
    p.add_argument("--sustained", type=int, default=200)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--profile", action="store_true",
                   help="py-spy record the service in the sequential phase")
    args = p.parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-api-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     extra={"container": {"cgroup_parent": parent},
                            "compute": {"ram_allocation_ratio": 64,
                                        "disk_allocation_ratio": 64}})
    rows: dict[str, dict] = {}
    extra: dict = {}
    client = None
    try:
        dep.manage("db", "sync")
        image = dep.manage("image", "create-busybox", "busybox").split()[-1]
        dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
                   "1", "--ram", "512", "--disk", "1")
        svc = dep.start("pyct-all-in-one")
        client = Client(dep.port)
        # warm-up: first boot starts the launcher, warms caches
        delete_all(client, [boot(client, image)["id"] for _ in range(2)])

        spy = None
        if args.profile:
            spy_out = os.path.join(os.getcwd(), "api_boot.pyspy.txt")
            spy = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "py-spy"),
                 "record", "--pid", str(svc.pid), "--format", "raw",
                 "--threads", "--rate", "500", "--nonblocking",
                 "-o", spy_out], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        seq = [boot(client, image) for _ in range(args.runs)]
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
            extra["py-spy raw stacks"] = spy_out
        rows.update(summarize_boots(f"sequential x{args.runs}", seq))
        dels = delete_all(client, [b["id"] for b in seq], workers=1)
        rows["sequential delete -> 404"] = report.summarize(dels)

        barrier = threading.Barrier(args.concurrent)

        def together(_):
            barrier.wait()
            return boot(client, image)
        with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
            conc = list(pool.map(together, range(args.concurrent)))
        rows.update(summarize_boots(f"concurrent x{args.concurrent}", conc))
        delete_all(client, [b["id"] for b in conc])

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.in_flight) as pool:
            sus = list(pool.map(lambda _: boot(client, image),
                                range(args.sustained)))
        wall = time.perf_counter() - t0
        rows.update(summarize_boots(
            f"sustained x{args.sustained} ({args.in_flight} in flight)",
            sus))
        extra[f"sustained boots/s ({args.sustained} boots, "
              f"{args.in_flight} in flight)"] = args.sustained / wall
        t0 = time.perf_counter()
        delete_all(client, [b["id"] for b in sus], workers=args.in_flight)
        extra["sustained deletes/s"] = args.sustained / (
            time.perf_counter() - t0)
    finally:
        if client is not None:
            try:
                delete_all(client, list_ids(client))
            except Exception as err:
                print(f"WARNING: API cleanup: {err}")
        dep.stop_all()
        try:
            LauncherClient(os.path.join(tmp, "state", "container",
                                        "launcher")).shutdown()
        except Exception as err:
            print(f"WARNING: launcher shutdown: {err}")
        teardown.report_leftovers("cgroups",
                                  teardown.remove_cgroup_parent(parent))
        teardown.report_leftovers("mounts", teardown.unmount_under(tmp))
        teardown.report_leftovers(
            "loop devices", teardown.detach_loops_backed_under(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    report.emit("API boot through pyct-all-in-one (container driver, "
                "SQLite)", rows, extra, args.json)


if __name__ == "__main__":
    main()
