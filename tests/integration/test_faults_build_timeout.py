"""Build and action timeouts with two ``pyct-api`` processes on PostgreSQL.

``pyct-compute`` on compute-a is SIGKILLed while the scheduler still
counts it up; five boots and a reboot cast to it sit in its queue. Both
API processes run the stuck-work task every second: each build goes to
ERROR and the reboot gives its task state back, each with one fault
naming compute-a and one ``api_*_timeout`` event, failed by exactly one
of the two processes. When compute-a comes back, RabbitMQ hands it the
old casts: the request claims stop every one of them, so nothing is
built or rebooted after its failure was reported. Then four tasks race
over twenty stuck builds on PostgreSQL and on MariaDB: each is failed
once.
"""

from __future__ import annotations

import datetime
import os
import re
import threading

import pytest
import sqlalchemy as sa

from pyct_driver.api.stuck_work import StuckWorkTask
from pyct_driver.db import actions, instances, migration
from pyct_driver.db.engine import Database
from pyct_driver.db.models import utcnow
from tests.functional import compute_fixtures as fx
from tests.integration.conftest import (BACKENDS, FLAVOR_ID, wait_status,
                                        wait_until)
from tests.integration.faulty_pipeline import DriverCalls, live_rows
from tests.services import free_port

N = 5


def test_cast_to_dead_host_times_out_once_across_two_apis(
        pipeline_factory, tmp_path):
    call_log = str(tmp_path / "calls.log")
    dep = pipeline_factory("postgresql", extra={
        "DEFAULT": {"instance_build_timeout": 6,
                    "instance_action_timeout": 6, "stuck_work_interval": 1,
                    "service_down_time": 4},
        "fake_driver": {"call_log": call_log}})
    compute, = dep.start_all("compute-a")
    api2 = dep.start("pyct-api", host="api-2",
                     extra={"api": {"port": free_port()}})
    conn = dep.sdk_connection("user")
    alive = conn.compute.create_server(
        name="alive", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    wait_status(conn, alive.id, "ACTIVE")

    compute.kill()  # the scheduler sees it up for service_down_time
    doomed = [conn.compute.create_server(
        name=f"doomed{i}", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none") for i in range(N)]
    conn.compute.reboot_server(alive, "HARD")
    for s in doomed:
        server = wait_status(conn, s.id, "ERROR", timeout=30)
        assert "compute-a is down" in server.fault["message"], server.fault
        assert "timed out after 6 s" in server.fault["message"]
    server = wait_status(conn, alive.id, "ACTIVE", timeout=30)
    assert server.task_state is None

    ids = [s.id for s in doomed] + [alive.id]
    quoted = ", ".join(f"'{i}'" for i in ids)
    faults = live_rows(dep, "SELECT instance_uuid, message, host FROM "
                            f"instance_faults WHERE instance_uuid IN "
                            f"({quoted})")
    assert sorted(f["instance_uuid"] for f in faults) == sorted(ids)
    assert {f["host"] for f in faults} == {"compute-a"}
    events = live_rows(dep, "SELECT a.instance_uuid, e.event FROM "
                            "instance_actions_events e JOIN "
                            "instance_actions a ON a.id = e.action_id "
                            "WHERE e.event LIKE 'api_%'")
    assert sorted((e["instance_uuid"], e["event"]) for e in events) == \
        sorted([(i, "api_build_timeout") for i in ids[:-1]]
               + [(alive.id, "api_action_timeout")])
    # the two processes' logs together: one failure per instance
    api1 = dep.processes[1]
    pattern = re.compile(r"timed out after 6 s: compute host compute-a")
    counts = [len(pattern.findall(p.output())) for p in (api1, api2)]
    assert sum(counts) == N + 1, counts
    # and what the tenant sees: the reboot's event says why
    action = [a for a in conn.compute.server_actions(alive.id)
              if a.action == "reboot"][0]
    detail = conn.compute.get_server_action(action.request_id, alive.id)
    assert [e["event"] for e in detail.events] == ["api_action_timeout"]

    # compute-a returns and gets the old casts: none of them runs
    restarted = dep.start_compute("compute-a")
    wait_until(lambda: restarted.output().count(
        "already ran, runs or was given up") >= N + 1, 20,
        "compute-a to refuse the casts that were given up")
    calls = DriverCalls(call_log)
    for s in doomed:
        assert calls.count("spawn", s.id) == 0
    assert calls.count("spawn", alive.id) == 1
    assert calls.count("reboot", alive.id) == 0
    for s in doomed:
        assert conn.compute.get_server(s.id).status == "ERROR"
    # the failed servers can be deleted, and their quota goes with them
    for s in doomed + [alive]:
        conn.compute.delete_server(s)
    for s in doomed + [alive]:
        conn.compute.wait_for_delete(s, interval=0.3, wait=30)
    assert dep.live_instances() == []
    assert os.path.exists(call_log)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_racing_tasks_fail_each_instance_once(backend, tmp_path):
    """Four stuck-work tasks, each with its own connection pool as an API
    process has, run at the same instant over 20 stuck builds: each
    instance is failed by exactly one of them."""
    with BACKENDS[backend]() as url:
        migration.upgrade(url)
        dbs = [Database(url) for _ in range(4)]
        try:
            flavor, image = fx.seed_catalog(dbs[0], tmp_path)
            stuck = []
            for _ in range(20):
                inst = fx.new_instance(dbs[0], flavor, image, "gone-host")
                actions.action_start(dbs[0], inst["uuid"], "create",
                                     f"req-{inst['uuid']}", "u", "p1")
                stuck.append(inst["uuid"])
            with dbs[0].engine.begin() as conn:
                conn.execute(sa.text(
                    "UPDATE instances SET created_at = :t"),
                    {"t": utcnow() - datetime.timedelta(seconds=120)})
            counts = race(dbs)
            assert sum(counts) == len(stuck), counts
            faults = live_rows_of(dbs[0], "SELECT instance_uuid FROM "
                                          "instance_faults")
            assert sorted(faults) == sorted(stuck)
            claims = live_rows_of(dbs[0], "SELECT instance_uuid FROM "
                                          "request_claims WHERE state = "
                                          "'timed_out'")
            assert sorted(claims) == sorted(stuck)
            for uuid in stuck:
                assert instances.get(dbs[0], uuid)["vm_state"] == "error"
        finally:
            for db in dbs:
                db.dispose()


def race(dbs: list[Database]) -> list[int]:
    """One stuck-work task per database handle, run at the same instant:
    how many instances each failed."""
    tasks = [StuckWorkTask(db, f"api-{i}", 60, 60, 1, 10)
             for i, db in enumerate(dbs)]
    barrier = threading.Barrier(len(tasks))
    counts = [0] * len(tasks)

    def run(i):
        barrier.wait()
        counts[i] = tasks[i].run_once()
    threads = [threading.Thread(target=run, args=(i,))
               for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return counts


def live_rows_of(db, sql: str) -> list:
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text(sql))]
