"""A boot through the API costs a bounded number of SQL statements and
transactions.

The whole pipeline in one process (SQLite, the fake bus, a compute service
with the fake driver, the API app called directly; the default quotas, so
the quota lock and count run): each server is created (POST /servers,
``networks: none``) and waited for until ACTIVE. The statements and COMMITs
the API and the compute service run for it are counted on the engine; the
waiting loop's own reads and the compute service's periodic tasks
(heartbeat, power-state sync) are left out. ``tools/bench/boot_statements.py``
prints the same counts and the statements themselves. The bounds pin what
issue #16's throughput work removed (43 statements and 25 transactions a
boot before): the checks' reads in one transaction, the scheduler's in
one, spawning with its event's start and ACTIVE with its event's close,
usage summed by the database. A status poll (GET /servers/{id}) is one
transaction.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from pyct_driver.api import app as api_app
from pyct_driver.db import claims as db_claims
from pyct_driver.db.claim_models import DONE
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx
from tests.functional.test_resize_rebuild import call
from tests.waiting import wait_for

MAX_STATEMENTS = 38
MAX_COMMITS = 14
BOOTS = 4


class Counter:
    """Statements and commits of the request threads: not the waiting
    thread while ``waiting`` is set, never a ``periodic-*`` thread."""

    def __init__(self, engine: sa.engine.Engine,
                 this_thread_only: bool = False) -> None:
        self.engine = engine
        self.this_thread_only = this_thread_only
        self.statements: list[str] = []
        self.commits = 0
        self.waiting = False
        self.waiter = threading.get_ident()

    def _counted(self) -> bool:
        thread = threading.current_thread()
        if self.this_thread_only:
            return thread.ident == self.waiter
        if thread.name.startswith("periodic-"):
            return False
        return not (self.waiting and thread.ident == self.waiter)

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        if self._counted():
            self.statements.append(statement)

    def _commit(self, _conn) -> None:
        if self._counted():
            self.commits += 1

    def __enter__(self) -> "Counter":
        sa.event.listen(self.engine, "before_cursor_execute", self._statement)
        sa.event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._statement)
        sa.event.remove(self.engine, "commit", self._commit)


def _boot(app, image: str) -> str:
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "counted", "imageRef": image, "flavorRef": "1",
        "networks": "none"}}, token="demo:demo")
    assert resp.status_int == 202, resp.text
    return resp.json["server"]["id"]


@pytest.fixture
def pipeline(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    _flavor, image = fx.seed_catalog(db, tmp_path)
    url = f"fake://{tmp_path.name}/"
    service = fx.start_compute(conf, db, "count-host", url)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=30)
    try:
        yield db, api_app.create_app(conf, db, client), image["id"]
    finally:
        service.stop()
        rpc_transport.cleanup()
        conf.reset()
        db.engine.dispose()


def _active(row: dict) -> bool:
    return row["vm_state"] == "active" and row["task_state"] is None


def test_a_boot_through_the_api_is_few_statements_and_transactions(
        pipeline):
    db, app, image = pipeline
    # the first boot warms what is read once (the default security group
    # is made, the quota lock row too)
    fx.wait_for_row(db, _boot(app, image), _active)
    with Counter(db.engine) as counter:
        for _ in range(BOOTS):
            uuid = _boot(app, image)
            counter.waiting = True
            fx.wait_for_row(db, uuid, _active)
            # the build's last write (its request claim marked done)
            # lands just after ACTIVE: count it in this boot
            wait_for(lambda: all(c["state"] == DONE for c in
                                 db_claims.for_instance(db, uuid)))
            counter.waiting = False
    statements = len(counter.statements) / BOOTS
    commits = counter.commits / BOOTS
    assert statements <= MAX_STATEMENTS, counter.statements
    assert commits <= MAX_COMMITS, (commits, counter.statements)


def test_a_status_poll_is_one_transaction(pipeline):
    db, app, image = pipeline
    uuid = _boot(app, image)
    fx.wait_for_row(db, uuid, _active)
    with Counter(db.engine, this_thread_only=True) as counter:
        resp = call(app, "GET", f"/v2.1/servers/{uuid}", token="demo:demo")
    assert resp.status_int == 200 and resp.json["server"]["status"] == \
        "ACTIVE"
    # the row, its ports and its tags, all read in one transaction
    assert counter.commits == 1, counter.statements
    assert len(counter.statements) <= 3, counter.statements
