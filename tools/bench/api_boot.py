"""API request to ACTIVE through ``pyct-all-in-one`` (container driver).

Usage (root): ``.venv/bin/python tools/bench/api_boot.py [--runs 20]
[--concurrent 10] [--sustained 500] [--in-flight 8] [--split]
[--driver fake] [--profile FILE] [--json]``

Starts a real ``pyct-all-in-one`` process (SQLite, in-process bus, the
container driver, cgroup parent ``pyct-bench-*``) with
``tests/services.Deployment``, imports the busybox image and an m1.tiny
flavor (1 vCPU, 512 MiB, 1 GiB; CPU, RAM and disk allocation ratios
raised so 200 fit on 2 cores), and
boots over raw HTTP (token ``demo:demo``, microversion 2.37,
``networks: none``): POST /v2.1/servers, then GET /v2.1/servers/{id}
every 5 ms (``--poll-ms``) until ACTIVE. Per boot it records the POST's
own latency, the first poll that shows ``task_state: spawning`` (compute
picked it up) and ACTIVE. Phases: ``--runs`` sequential boots,
``--concurrent`` boots started together, ``--sustained`` boots with
``--in-flight`` at a time (boots per second, and GETs per boot). Each
poll's own round trip is reported too. The sustained phase's clients
poll every 50 ms (``--sustained-poll-ms``; 5 ms, like the other phases,
until 2026-12-06): a real client waits seconds between polls
(openstacksdk's ``wait_for_server``: 2 s), and at 5 ms eight waiting
clients sent ~50 GETs per boot -- the cheaper a poll got, the more of
them -- so the rate measured the pollers as much as the boots
(``--sustained-poll-ms 5`` gives the old figure). The service runs with
the production power-state sync interval (60 s, ``--sync-interval``),
not the 2 s the test fixtures use to see state changes quickly: with 500
guests accumulating, a 2 s sync was ~17 % of the service's CPU in the
sustained phase. Servers are deleted through the API
after each phase;
at exit the service and its launcher are stopped and every guest cgroup,
mount, loop device and the temp dir are removed. ``--driver fake`` boots
no guests (no root needed): the API -> RPC -> compute -> database path
alone. ``--profile FILE`` records py-spy raw stacks of the service during
all phases, only the thread holding the GIL (``--gil``: where its CPU
goes; a thread blocked on the SQLite lock may still show up there);
``--fast-fake-bus``, ``--backlog`` and ``--serialize-db`` are experiments (see
EXPERIMENT_WRAPPER). ``--split`` runs ``pyct-api`` and ``pyct-compute``
(host ``bench-compute``) as two processes over RabbitMQ (a throw-away
vhost, ``tests/integration/conftest.rabbit_transport``) and a throw-away
PostgreSQL database (``tests/dbfixtures``) instead of the all-in-one on
SQLite, and prints PASS/FAIL for issue #16's split targets (sequential
API -> ACTIVE p50 <= 200 ms, p95 <= 400 ms, delete -> gone <= 200 ms);
every run prints the sustained target (>= 40 boots/s) and the CPU per
boot of the service processes (API and compute summed when split), which
other load on the machine barely moves.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
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
from pyct_driver.virt.process.caller.client import LauncherClient  # noqa: E402
from tests.services import (Deployment, ServiceProcess,  # noqa: E402
                            wait_http)

EXPERIMENT_WRAPPER = """#!{python}
# Experiments only, to show what a fix would buy before making it:
# --fast-fake-bus: oslo.messaging's in-process fake driver polls its
#   queues every 50 ms; make it poll every 1 ms.
# --backlog N: socketserver's listen backlog is 5; SYNs past it are
#   dropped and the client retransmits after 1 s.
import socketserver, sys, time, types
if {fast_bus}:
    import oslo_messaging._drivers.impl_fake as impl_fake
    impl_fake.time = types.SimpleNamespace(
        time=time.time, sleep=lambda s: time.sleep(min(s, 0.001)))
if {backlog}:
    socketserver.TCPServer.request_queue_size = {backlog}
# --serialize-db: one process-wide lock around every SQLite transaction,
#   so threads queue on a Python lock (woken at once) instead of
#   sleeping in SQLite's busy handler (1, 2, 5, ... 100 ms steps).
if {serialize_db}:
    import contextlib, threading
    from pyct_driver.db import engine as db_engine
    _lock = threading.RLock()
    _session = db_engine.Database.session

    @contextlib.contextmanager
    def session(self):
        with _lock, _session(self) as s:
            yield s
    db_engine.Database.session = session
from pyct_driver.cmd.all_in_one import main
sys.exit(main())
"""
HEADERS = {"X-Auth-Token": "demo:demo", "Content-Type": "application/json",
           "OpenStack-API-Version": "compute 2.37",
           "X-OpenStack-Nova-API-Version": "2.37"}
POLL = 0.005
GET_TIMES: list[float] = []  # every poll's round trip (list.append is atomic)


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


def listen_drops() -> int:
    """TcpExt ListenOverflows of this network namespace: a SYN dropped by
    a full accept backlog costs the client a 1 s retransmit."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenOverflows"])


class CpuMeter:
    """CPU seconds used by the service (with the children it reaped, e.g.
    mkfs.ext4), the launcher (itself), the guests (their cgroup parent's
    cpuacct, which keeps deleted children's time) and this client -- a
    measure of cost per boot that other load on the machine barely moves."""

    def __init__(self, svc_pids: list[int], launcher: LauncherClient,
                 parent: str) -> None:
        self.svc_pids, self.launcher, self.parent = (svc_pids, launcher,
                                                     parent)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _stat(self, pid: int, children: bool) -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[11..14] = utime stime cutime cstime
        ticks = int(fields[11]) + int(fields[12])
        if children:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / self.tick

    def _system(self, pid: int) -> float:
        """The kernel's share (stime + cstime) of ``_stat(pid, True)``."""
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[12]) + int(fields[14])) / self.tick

    def read(self) -> dict[str, float]:
        out = {"service": sum(self._stat(pid, True)
                              for pid in self.svc_pids),
               "service in the kernel": sum(self._system(pid)
                                            for pid in self.svc_pids),
               "client": self._stat(os.getpid(), False)}
        lpid = self.launcher.launcher_pid()
        out["launcher"] = self._stat(lpid, False) if lpid else 0.0
        try:
            with open(f"/sys/fs/cgroup/cpuacct/{self.parent}/"
                      "cpuacct.usage") as f:
                out["guests"] = int(f.read()) / 1e9
        except OSError:
            out["guests"] = 0.0
        return out

    @staticmethod
    def per_boot(before: dict, after: dict, boots: int) -> dict:
        return {k: (after[k] - before[k]) / boots for k in before}


def boot(client: Client, image: str, poll: float | None = None) -> dict:
    """POST a server and GET it every ``poll`` s (``POLL``) until ACTIVE."""
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
        t_get = time.perf_counter()
        status, reply = client.call("GET", f"/v2.1/servers/{sid}")
        GET_TIMES.append(time.perf_counter() - t_get)
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
        time.sleep(POLL if poll is None else poll)


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
    gets = list(GET_TIMES)
    GET_TIMES.clear()
    return {
        f"{prefix}: POST -> ACTIVE": report.summarize(
            [b["active"] for b in boots]),
        f"{prefix}:   POST alone (202)": report.summarize(
            [b["post"] for b in boots]),
        f"{prefix}:   POST -> compute pick-up": report.summarize(
            [b["pickup"] for b in boots]),
        f"{prefix}:   pick-up -> ACTIVE seen": report.summarize(
            [b["active"] - b["pickup"] for b in boots]),
        f"{prefix}:   each poll GET /servers/id": report.summarize(gets),
    }



def targets(extra: dict, seq: list[dict], dels: list[float]) -> None:
    """Issue #16's targets for the split services (sequential boots)."""
    active = report.summarize([b["active"] for b in seq])
    gone = report.summarize(dels)
    for label, value, limit in (
            ("API -> ACTIVE p50 <= 200 ms", active["median"], 0.200),
            ("API -> ACTIVE p95 <= 400 ms", active["p95"], 0.400),
            ("delete -> gone p50 <= 200 ms", gone["median"], 0.200)):
        extra[f"target {label}"] = \
            f"{'PASS' if value <= limit else 'FAIL'} ({value * 1000:.1f} ms)"


def start_all_in_one(dep, disk_gb: int = 1) -> tuple[Client, str]:
    """db sync, the busybox image, m1.tiny (1 vCPU, 512 MiB, ``disk_gb``)
    and a started ``pyct-all-in-one``; (client, image id)."""
    dep.manage("db", "sync")
    image = dep.manage("image", "create-busybox", "busybox").split()[-1]
    dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus", "1",
               "--ram", "512", "--disk", str(disk_gb))
    dep.start("pyct-all-in-one")
    return Client(dep.port), image


def teardown_deployment(client, dep, tmp: str, parent: str) -> None:
    """Delete every server, stop the services and the launcher, and remove
    what is left under ``tmp`` and the cgroup ``parent`` (reports leftovers).
    Shared by the API benchmarks."""
    if client is not None:
        try:
            delete_all(client, list_ids(client))
        except Exception as err:
            print(f"WARNING: API cleanup: {err}", file=sys.stderr)
    dep.stop_all()
    try:
        LauncherClient(os.path.join(tmp, "state", "container",
                                    "launcher")).shutdown()
    except Exception as err:
        print(f"WARNING: launcher shutdown: {err}", file=sys.stderr)
    teardown.report_leftovers("cgroups",
                              teardown.remove_cgroup_parent(parent))
    teardown.report_leftovers("mounts", teardown.unmount_under(tmp))
    teardown.report_leftovers(
        "loop devices", teardown.detach_loops_backed_under(tmp))
    shutil.rmtree(tmp, ignore_errors=True)

def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    p.add_argument("--concurrent", type=int, default=10)
    p.add_argument("--sustained", type=int, default=500)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--poll-ms", type=float, default=5.0,
                   help="GET interval while waiting for ACTIVE or 404 "
                        "(default 5)")
    p.add_argument("--sustained-poll-ms", type=float, default=50.0,
                   help="GET interval of the sustained phase's clients "
                        "(default 50; 5 until 2026-12-06)")
    p.add_argument("--sync-interval", type=int, default=60,
                   help="the service's sync_power_state_interval, s "
                        "(default 60, the production default; the test "
                        "fixtures' 2 s before 2026-12-06)")
    p.add_argument("--profile", metavar="FILE",
                   help="py-spy record (raw stacks) the service during "
                        "all phases into FILE")
    p.add_argument("--fast-fake-bus", action="store_true",
                   help="experiment: run the all-in-one with oslo.messaging"
                        "'s fake driver polling every 1 ms, not 50 ms")
    p.add_argument("--serialize-db", action="store_true",
                   help="experiment: one process-wide lock around each "
                        "SQLite transaction")
    p.add_argument("--backlog", type=int, default=0,
                   help="experiment: the API's listen backlog (stdlib "
                        "socketserver default: 5)")
    p.add_argument("--split", action="store_true",
                   help="pyct-api and pyct-compute as two processes over "
                        "RabbitMQ (127.0.0.1:5672, a throw-away vhost) "
                        "and PostgreSQL (127.0.0.1:5432, a throw-away "
                        "database), not the all-in-one on SQLite")
    p.add_argument("--driver", default="container",
                   choices=("container", "fake"),
                   help="virt driver: 'fake' (no guests, no root needed) "
                        "measures the API -> RPC -> compute -> database "
                        "path alone")
    p.add_argument("--preallocate", default="space",
                   choices=("space", "none"),
                   help="[container] preallocate_images: 500 servers "
                        "with preallocated 1 GiB disks need 500 GiB free; "
                        "'none' makes them sparse")
    args = p.parse_args()
    global POLL
    POLL = args.poll_ms / 1000.0
    report.interrupt_on_term()
    with contextlib.ExitStack() as stack:
        db_url, transport, bus_extra = None, None, {}
        if args.split:
            from tests.dbfixtures import make_postgres_url
            from tests.integration.conftest import rabbit_transport
            db_url = stack.enter_context(make_postgres_url())
            transport, bus_extra = stack.enter_context(rabbit_transport())
        run(args, db_url, transport, bus_extra)


def run(args, db_url: str | None, transport: str | None,
        bus_extra: dict) -> None:
    tmp = tempfile.mkdtemp(prefix="pyct-bench-api-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    extra_conf = {k: dict(v) for k, v in bus_extra.items()}
    dep = Deployment(tmp, db_url or f"sqlite:///{tmp}/pyct.sqlite",
                     transport_url=transport,
                     virt_driver=args.driver,
                     # no limit, but the quota lock and count still run,
                     # as they do on every real boot
                     extra={"quota": {"instances": -1, "cores": -1,
                                      "ram": -1},
                            # a heartbeat starved by a loaded machine
                            # must not make the host "down" mid-run
                            "DEFAULT": {"service_down_time": 60,
                                        "sync_power_state_interval":
                                            args.sync_interval,
                                        **extra_conf.pop("DEFAULT", {})},
                            **({"container": {
                                "cgroup_parent": parent,
                                "preallocate_images": args.preallocate}}
                               if args.driver == "container" else {}),
                            "compute": {"ram_allocation_ratio": 64,
                                        "cpu_allocation_ratio": 256,
                                        "disk_allocation_ratio": 64},
                            **extra_conf})
    rows: dict[str, dict] = {}
    extra: dict = {}
    drops0 = listen_drops()
    client = None
    spy = None
    ok = False
    try:
        dep.manage("db", "sync")
        image = dep.manage("image", "create-busybox", "busybox").split()[-1]
        dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
                   "1", "--ram", "512", "--disk", "1")
        if args.fast_fake_bus or args.backlog or args.serialize_db:
            script = os.path.join(tmp, "all-in-one-experiment")
            with open(script, "w") as f:
                f.write(EXPERIMENT_WRAPPER.format(
                    python=sys.executable, fast_bus=args.fast_fake_bus,
                    backlog=args.backlog, serialize_db=args.serialize_db))
            os.chmod(script, 0o700)
            svc = ServiceProcess(script, dep.conf,
                                 os.path.join(tmp, "all-in-one.log"))
            dep.processes.append(svc)
            wait_http(dep.endpoint + "/")
            extra["experiment"] = (
                f"fake bus poll 1 ms: {args.fast_fake_bus}; "
                f"listen backlog: {args.backlog or 'stdlib 5'}; "
                f"SQLite transactions serialised: {args.serialize_db}")
        elif args.split:
            compute = dep.start("pyct-compute", host="bench-compute")
            compute.wait_output("compute service on bench-compute started")
            svc = dep.start("pyct-api")
            extra["deployment"] = ("split: pyct-api + pyct-compute, "
                                   "RabbitMQ + PostgreSQL")
        else:
            svc = dep.start("pyct-all-in-one")
        client = Client(dep.port)
        # warm-up: first boot starts the launcher, warms caches
        delete_all(client, [boot(client, image)["id"] for _ in range(2)])
        GET_TIMES.clear()

        if args.profile:
            spy_out = os.path.abspath(args.profile)
            spy = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "py-spy"),
                 "record", "--pid", str(svc.pid), "--format", "raw",
                 "--threads", "--rate", "500", "--nonblocking", "--gil",
                 "-o", spy_out], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        cpu = CpuMeter([svc.pid] + ([compute.pid] if args.split else []),
                       LauncherClient(
            os.path.join(tmp, "state", "container", "launcher")), parent)
        c0 = cpu.read()
        seq = [boot(client, image) for _ in range(args.runs)]
        for k, v in CpuMeter.per_boot(c0, cpu.read(), args.runs).items():
            extra[f"sequential CPU ms per boot: {k}"] = round(v * 1000, 1)
        rows.update(summarize_boots(f"sequential x{args.runs}", seq))
        dels = delete_all(client, [b["id"] for b in seq], workers=1)
        rows["sequential delete -> 404"] = report.summarize(dels)
        if args.split:
            targets(extra, seq, dels)

        barrier = threading.Barrier(args.concurrent)

        def together(_):
            barrier.wait()
            return boot(client, image)
        with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
            conc = list(pool.map(together, range(args.concurrent)))
        rows.update(summarize_boots(f"concurrent x{args.concurrent}", conc))
        delete_all(client, [b["id"] for b in conc])

        if args.sustained > 0:
            c0 = cpu.read()
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.in_flight) as pool:
                sus = list(pool.map(
                    lambda _: boot(client, image,
                                   args.sustained_poll_ms / 1000.0),
                    range(args.sustained)))
            wall = time.perf_counter() - t0
            extra["sustained: GETs per boot (poll every "
                  f"{args.sustained_poll_ms:g} ms)"] = round(
                len(GET_TIMES) / args.sustained, 1)
            rows.update(summarize_boots(
                f"sustained x{args.sustained} ({args.in_flight} in flight)",
                sus))
            extra[f"sustained boots/s ({args.sustained} boots, "
                  f"{args.in_flight} in flight)"] = args.sustained / wall
            rate = args.sustained / wall
            extra["target sustained >= 40 boots/s"] = \
                f"{'PASS' if rate >= 40 else 'FAIL'} ({rate:.1f})"
            for k, v in CpuMeter.per_boot(c0, cpu.read(),
                                          args.sustained).items():
                extra[f"sustained CPU ms per boot: {k}"] = round(v * 1000, 1)
            t0 = time.perf_counter()
            delete_all(client, [b["id"] for b in sus], workers=args.in_flight)
            extra["sustained deletes/s"] = args.sustained / (
                time.perf_counter() - t0)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
            extra["py-spy raw stacks"] = spy_out
        ok = True
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        extra["TCP ListenOverflows during run (whole netns)"] = \
            listen_drops() - drops0
        teardown_deployment(client, dep, tmp, parent)
        if not ok:
            print("FAILED; results so far:", file=sys.stderr)
            report.emit("API boot (partial)", rows, extra, args.json)
    report.emit(f"API boot through pyct-api + pyct-compute ({args.driver} "
                "driver, RabbitMQ, PostgreSQL)" if args.split else
                f"API boot through pyct-all-in-one ({args.driver} driver, "
                "SQLite)", rows, extra, args.json)


if __name__ == "__main__":
    main()
