"""GET /servers/detail and paged GET /servers with 1,000 servers.

Usage: ``.venv/bin/python tools/bench/list_scale.py [--servers 1000]
[--runs 20] [--backend sqlite|postgresql|both] [--json]``

For each backend: a throw-away database (a SQLite file in a temp dir, or
a database created on the PostgreSQL at 127.0.0.1:5432, user postgres,
and dropped at exit, ``PYCT_TEST_POSTGRES_URL`` overrides the admin URL),
migrated with ``pyct-manage db sync``, then ``--servers`` instance rows
inserted directly (``tests/server_rows``: no driver, no guests; project
``demo``, metadata and one port each on a DB-only network in
10.247.0.0/16, every tenth in ERROR with a fault, every fifth tagged,
every seventh locked). A real ``pyct-api`` process
(``tests/services.Deployment``, fake driver, the in-process bus: nothing
is booted) serves them; over keep-alive HTTP it times, phase by phase:
``GET /v2.1/servers/detail`` (microversion 2.96, member ``demo``; and
admin with ``all_tenants=1``, which adds ``host_status``), and every page
of ``GET /v2.1/servers?limit=100`` and ``/servers/detail?limit=100``
followed through the ``next`` links. Prints p50/p95 and PASS/FAIL against
issue #16's targets (detail of 1,000 <= 150 ms p50, a 100-server page of
the summary list <= 30 ms p50), and the service's CPU time per request
(utime + stime of the ``pyct-api`` process / requests), which other
load on the machine barely moves. The SQL statements per page are
``tests/unit/test_server_list_query_count.py``'s to count.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import uuid as uuid_mod

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from pyct_driver.db.engine import Database  # noqa: E402
from tests.server_rows import insert_servers  # noqa: E402
from tests.services import Deployment  # noqa: E402

VERSION = "2.96"
TARGETS = {"detail": 0.150, "page": 0.030}


def headers(token: str) -> dict:
    return {"X-Auth-Token": token,
            "OpenStack-API-Version": f"compute {VERSION}"}


def get(conn: http.client.HTTPConnection, path: str, token: str
        ) -> tuple[float, dict]:
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers(token))
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {data[:300]!r}")
    return elapsed, json.loads(data)


def populate(url: str, count: int, image: str) -> None:
    """``count`` servers of project demo (``tests/server_rows``)."""
    db = Database(url)
    try:
        insert_servers(db, count, image)
    finally:
        db.dispose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``: what a request costs the service
    whatever else loads the machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def walk(conn, path: str, token: str) -> tuple[list[float], int]:
    """Every page of ``path`` (limit=100) via its next links."""
    times, seen = [], 0
    while path:
        elapsed, body = get(conn, path, token)
        times.append(elapsed)
        seen += len(body["servers"])
        links = body.get("servers_links") or []
        path = links[0]["href"].split("://", 1)[1].split("/", 1)[1] \
            if links else ""
        path = "/" + path if path else ""
    return times, seen


def measure(dep: Deployment, pid: int, runs: int, count: int
            ) -> tuple[dict[str, list[float]], dict]:
    """Each phase ``runs`` times, one after the other, with the service's
    CPU time per request."""
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=120)
    member, admin = "demo:demo", "admin:admin"
    samples: dict[str, list[float]] = {}
    facts: dict = {}
    # warm-up: imports, caches, the connection pool
    get(conn, "/v2.1/servers/detail", member)
    walk(conn, "/v2.1/servers?limit=100", member)

    def one(key: str, path: str, token: str) -> list[float]:
        if "limit=" in path:
            times, seen = walk(conn, path, token)
        else:
            elapsed, body = get(conn, path, token)
            times, seen = [elapsed], len(body["servers"])
        if seen != count:
            raise RuntimeError(f"{path} answered {seen}, not {count}")
        return times
    for key, path, token in (
            ("detail", "/v2.1/servers/detail", member),
            ("detail admin", "/v2.1/servers/detail?all_tenants=1", admin),
            ("page", "/v2.1/servers?limit=100", member),
            ("detail page", "/v2.1/servers/detail?limit=100", member)):
        cpu0 = cpu_seconds(pid)
        samples[key] = [t for _ in range(runs)
                        for t in one(key, path, token)]
        facts[f"service CPU ms per request: {key}"] = round(
            (cpu_seconds(pid) - cpu0) * 1000 / len(samples[key]), 1)
    conn.close()
    return samples, facts


def run_backend(backend: str, url: str, args, rows: dict, extra: dict
                ) -> None:
    tmp = tempfile.mkdtemp(prefix="pyct-bench-list-")
    dep = Deployment(tmp, url or f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="fake")
    try:
        dep.manage("db", "sync")
        dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
                   "1", "--ram", "512", "--disk", "1")
        t0 = time.perf_counter()
        populate(dep.db_url, args.servers, str(uuid_mod.uuid4()))
        extra[f"{backend}: insert {args.servers} rows (s)"] = \
            time.perf_counter() - t0
        svc = dep.start("pyct-api")
        samples, facts = measure(dep, svc.pid, args.runs, args.servers)
        labels = {
            "detail": f"GET /servers/detail ({args.servers}, member)",
            "detail admin": f"GET /servers/detail ({args.servers}, admin, "
                            "all_tenants)",
            "page": "GET /servers?limit=100 (each page)",
            "detail page": "GET /servers/detail?limit=100 (each page)"}
        for key, label in labels.items():
            rows[f"{backend}: {label}"] = report.summarize(samples[key])
        for key, target in TARGETS.items():
            p50 = report.summarize(samples[key])["median"]
            extra[f"{backend}: {labels[key]} p50 <= "
                  f"{target * 1000:.0f} ms"] = \
                f"{'PASS' if p50 <= target else 'FAIL'} " \
                f"({p50 * 1000:.1f} ms)"
        for key, value in facts.items():
            extra[f"{backend}: {key}"] = value
    finally:
        dep.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--backend", default="both",
                   choices=("sqlite", "postgresql", "both"))
    args = p.parse_args()
    report.interrupt_on_term()
    rows: dict[str, dict] = {}
    extra: dict = {}
    if args.backend in ("sqlite", "both"):
        run_backend("sqlite", "", args, rows, extra)
    if args.backend in ("postgresql", "both"):
        from tests.dbfixtures import make_postgres_url
        with make_postgres_url() as url:
            run_backend("postgresql", url, args, rows, extra)
    report.emit(f"Server list at {args.servers} servers through pyct-api "
                f"(microversion {VERSION})", rows, extra, args.json)


if __name__ == "__main__":
    main()
