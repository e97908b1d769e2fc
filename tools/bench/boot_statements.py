"""SQL statements, transactions and CPU per boot, API to ACTIVE, in process.

Usage: ``.venv/bin/python tools/bench/boot_statements.py [--runs 50]
[--top 40] [--json]``

The whole pipeline in one process (``tests/functional/compute_fixtures``:
SQLite, oslo.messaging's fake bus, a ComputeService with the fake driver,
the API WSGI app called directly; quota limits -1, so the quota lock and
count run as on every real boot). ``--runs`` servers are created one
after the other (POST /v2.1/servers, microversion 2.37, ``networks:
none``) and each waited for until ACTIVE. Counted with SQLAlchemy events
on the engine: the statements and COMMITs the API and the compute service
run per boot (the waiting loop's own reads are left out), and the
process's CPU time per boot. These do not depend on the machine's load,
unlike the wall-clock numbers of ``api_boot.py``; ``--top`` lists the most
frequent statements.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import time

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
import sqlalchemy as sa  # noqa: E402
import webob  # noqa: E402

from pyct_driver.api import app as api_app  # noqa: E402
from pyct_driver.db import models  # noqa: E402
from pyct_driver.rpc import client as rpc_client  # noqa: E402
from pyct_driver.rpc import transport as rpc_transport  # noqa: E402
from tests.functional import compute_fixtures as fx  # noqa: E402


@contextlib.contextmanager
def pipeline(tmp: pathlib.Path):
    conf = fx.make_conf()
    for resource in ("instances", "cores", "ram"):
        conf.set_override(resource, -1, group="quota")
    db = fx.make_db(tmp)
    fx.seed_catalog(db, tmp)
    url = f"fake://{tmp.name}/"
    service = fx.start_compute(conf, db, "bench-host", url)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=30)
    try:
        yield db, api_app.create_app(conf, db, client)
    finally:
        service.stop()
        rpc_transport.cleanup()
        conf.reset()


def post(app, image: str) -> str:
    req = webob.Request.blank("/v2.1/servers", method="POST")
    req.headers["X-Auth-Token"] = "demo:demo"
    req.headers["OpenStack-API-Version"] = "compute 2.37"
    req.body = json.dumps({"server": {
        "name": "bench", "imageRef": image, "flavorRef": "1",
        "networks": "none"}}).encode()
    req.content_type = "application/json"
    resp = req.get_response(app)
    if resp.status_int != 202:
        raise RuntimeError(f"POST /servers: {resp.status} {resp.text}")
    return resp.json["server"]["id"]


class Counter:
    """Statements and commits on an engine, except the waiting thread's
    while ``waiting`` is set."""

    def __init__(self, engine) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.waiting = False
        self.waiter = threading.get_ident()
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)

    def _ignored(self) -> bool:
        return self.waiting and threading.get_ident() == self.waiter

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        if not self._ignored():
            self.statements.append(statement)

    def _commit(self, _conn) -> None:
        if not self._ignored():
            self.commits += 1


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 50)
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pyct-bench-stmts-"))
    try:
        with pipeline(tmp) as (db, app):
            with db.session() as session:
                image = session.scalars(sa.select(models.Image.id)).first()
            warm = [post(app, image) for _ in range(3)]
            for uuid in warm:
                fx.wait_for_row(db, uuid, lambda r: r["vm_state"] == "active")
            counter = Counter(db.engine)
            cpu0, t0 = time.process_time(), time.perf_counter()
            walls = []
            for _ in range(args.runs):
                t1 = time.perf_counter()
                uuid = post(app, image)
                counter.waiting = True
                fx.wait_for_row(db, uuid,
                                lambda r: r["vm_state"] == "active"
                                and r["task_state"] is None, timeout=60)
                counter.waiting = False
                walls.append(time.perf_counter() - t1)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.runs
    extra = {"SQL statements per boot": len(counter.statements) / n,
             "transactions (COMMIT) per boot": counter.commits / n,
             "process CPU ms per boot (API + compute + fake driver + "
             "waiting loop)": round(cpu * 1000 / n, 1),
             "boots/s (one at a time)": n / wall}
    shapes = collections.Counter(
        re.sub(r"\s+", " ", s)[:110] for s in counter.statements)
    for shape, count in shapes.most_common(args.top):
        extra[f"  {count / n:4.1f} x {shape}"] = ""
    report.emit("Boot cost in process (fake driver, SQLite)",
                {"POST -> ACTIVE (in process)": report.summarize(walls)},
                extra, args.json)


if __name__ == "__main__":
    main()
