"""A compute host that dies in the middle of a resize and of a snapshot.

``pyct-api`` and ``pyct-compute`` (compute-a, whose fake driver takes
30 s to apply a flavor or capture a snapshot) talk through a
``FaultProxy`` in front of the real RabbitMQ, on PostgreSQL. One server
is resized, another snapshotted; once compute-a has taken both (their
task states moved past what the API wrote), it is SIGKILLed by its pid.
The API's stuck-work task fails both after ``instance_action_timeout``
with a fault naming compute-a: the resized server goes to ERROR with its
task state cleared and the migration in ``error`` (Nova's lost resize),
the snapshotted one stays ACTIVE and its unfinished image is deleted
(Nova's failed snapshot). The bus is cut meanwhile, which the API rides
out. When compute-a comes back, nothing is redone: no claim runs again,
no task state comes back, and both servers can be deleted. Then four
stuck-work tasks race over twenty stuck long operations on PostgreSQL
and on MariaDB: each is failed once.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid as uuidlib

import pytest
import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.db import (actions, catalog, evacuations, instances,
                            migration, resizes)
from pyct_driver.db.engine import Database
from pyct_driver.db.models import utcnow
from tests.functional import compute_fixtures as fx
from tests.integration.conftest import (BACKENDS, FLAVOR_ID, wait_status,
                                        wait_until)
from tests.integration.faulty_pipeline import (DriverCalls, api_request,
                                               live_rows, open_faulty)
from tests.integration.test_faults_build_timeout import live_rows_of, race

TIMEOUT = 6


def test_compute_killed_mid_resize_and_mid_snapshot(tmp_path):
    with contextlib.ExitStack() as stack:
        f = open_faulty(stack, str(tmp_path / "dep"), bus=True, extra={
            "DEFAULT": {"instance_action_timeout": TIMEOUT,
                        "stuck_work_interval": 1, "service_down_time": 4}})
        dep = f.dep
        dep.manage("flavor", "create", "m1.small", "--id", "2", "--vcpus",
                   "1", "--ram", "1024", "--disk", "1")
        compute, = dep.start_all("compute-a", extra={
            "fake_driver": {"operation_delay": 30}})
        conn = dep.sdk_connection("user")
        resized, snapped = [conn.compute.create_server(
            name=name, image_id=dep.image_id, flavor_id=FLAVOR_ID,
            networks="none") for name in ("resized", "snapped")]
        for server in (resized, snapped):
            wait_status(conn, server.id, "ACTIVE")

        resp = api_request(dep, "POST", f"/servers/{resized.id}/action",
                           {"resize": {"flavorRef": "2"}})
        assert resp.status_code == 202, resp.text
        resp = api_request(dep, "POST", f"/servers/{snapped.id}/action",
                           {"createImage": {"name": "lost-snapshot"}})
        assert resp.status_code == 202, resp.text
        image_id = resp.headers["Location"].rsplit("/", 1)[-1]
        # compute-a took both: each is past the API's own task state
        wait_until(lambda: conn.compute.get_server(resized.id).task_state
                   == "resize_migrating", 20, "the resize to start")
        wait_until(lambda: conn.compute.get_server(snapped.id).task_state
                   == "image_snapshot", 20, "the snapshot to start")

        killed = time.monotonic()
        compute.kill()  # SIGKILL to its own pid
        assert f.bus.cut() > 0  # and the API's bus links go too

        server = wait_status(conn, resized.id, "ERROR", timeout=40)
        resize_s = time.monotonic() - killed
        assert "compute host compute-a is down (it had started it)" in \
            server.fault["message"], server.fault
        assert f"timed out after {TIMEOUT} s" in server.fault["message"]
        assert server.task_state is None
        server = wait_status(conn, snapped.id, "ACTIVE", timeout=40)
        snap_s = time.monotonic() - killed
        faults = live_rows(dep, "SELECT instance_uuid, message, host FROM "
                                "instance_faults WHERE instance_uuid = "
                                f"'{snapped.id}'")
        assert [(x["host"], "compute-a is down" in x["message"])
                for x in faults] == [("compute-a", True)], faults
        assert api_request(dep, "GET", f"/images/{image_id}").status_code \
            == 404  # the failed snapshot's image is gone
        migs = live_rows(dep, "SELECT status FROM migrations WHERE "
                              f"instance_uuid = '{resized.id}'")
        assert [m["status"] for m in migs] == ["error"]
        claims = live_rows(dep, "SELECT method, state FROM request_claims "
                                "WHERE method IN ('resize_instance', "
                                "'snapshot_instance') ORDER BY method")
        assert [(c["method"], c["state"]) for c in claims] == [
            ("resize_instance", "timed_out"),
            ("snapshot_instance", "timed_out")]
        print(f"\nkill -> resize ERROR {resize_s:.1f} s, snapshot "
              f"ACTIVE {snap_s:.1f} s (timeout {TIMEOUT} s, "
              "service_down_time 4 s, interval 1 s)")

        # compute-a returns: nothing is redone, nothing changes state
        restarted = dep.start_compute("compute-a")
        time.sleep(3)  # its recovery and first reports
        assert "Traceback" not in restarted.output()
        assert conn.compute.get_server(resized.id).status == "ERROR"
        server = conn.compute.get_server(snapped.id)
        # (the fake driver's guests die with its process, which the power
        # sync reports as SHUTOFF; a container outlives it and stays up)
        assert server.task_state is None
        assert server.status in ("ACTIVE", "SHUTOFF"), server.status
        claims = live_rows(dep, "SELECT state FROM request_claims WHERE "
                                "method IN ('resize_instance', "
                                "'snapshot_instance')")
        assert sorted(c["state"] for c in claims) == ["timed_out"] * 2
        calls = DriverCalls(f.call_log)
        for server in (resized, snapped):
            assert calls.count("spawn", server.id) == 1
            assert calls.count("destroy", server.id) == 0
        for server in (resized, snapped):
            conn.compute.delete_server(server)
        for server in (resized, snapped):
            conn.compute.wait_for_delete(server, interval=0.3, wait=30)
        assert dep.live_instances() == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_racing_tasks_fail_each_long_operation_once(backend, tmp_path):
    """Four stuck-work tasks, each with its own pool as an API process
    has, race over resizes under way, snapshots, confirms and
    evacuations whose host is gone, on the real PostgreSQL and MariaDB:
    each is failed once, with the outcome of its kind."""
    with BACKENDS[backend]() as url:
        migration.upgrade(url)
        dbs = [Database(url) for _ in range(4)]
        try:
            kinds = _stuck_long_operations(dbs[0], tmp_path)
            counts = race(dbs)
            assert sum(counts) == sum(map(len, kinds.values())), counts
            faults = live_rows_of(dbs[0], "SELECT instance_uuid FROM "
                                          "instance_faults")
            assert sorted(faults) == sorted(
                u for uuids in kinds.values() for u in uuids)
            for kind, vm_state in (("resize", "error"),
                                   ("snapshot", "active"),
                                   ("confirm", "error"),
                                   ("evacuate", "error")):
                for uuid in kinds[kind]:
                    row = instances.get(dbs[0], uuid)
                    assert (row["vm_state"], row["task_state"]) == (
                        vm_state, None), (kind, row)
            assert live_rows_of(dbs[0], "SELECT id FROM images WHERE "
                                        "status = 'queued'") == []
            statuses = live_rows_of(dbs[0], "SELECT status FROM migrations")
            assert sorted(statuses) == ["error"] * 10 + ["failed"] * 5
        finally:
            for db in dbs:
                db.dispose()


def _stuck_long_operations(db, tmp_path) -> dict[str, list[str]]:
    """Five servers of each kind on a host that never beat, in the state
    its request left them, last changed two minutes ago."""
    flavor, image = fx.seed_catalog(db, tmp_path)
    kinds: dict[str, list[str]] = {k: [] for k in (
        "resize", "snapshot", "confirm", "evacuate")}
    for kind, uuids in kinds.items():
        for _ in range(5):
            inst = fx.new_instance(db, flavor, image, "gone-host")
            uuid = inst["uuid"]
            action = {"resize": "migrate", "snapshot": "createImage",
                      "confirm": "confirmResize",
                      "evacuate": "evacuate"}[kind]
            actions.action_start(db, uuid, action, f"req-{uuid}", "u", "p1")
            values = {"vm_state": states.ACTIVE, "task_state": {
                "resize": states.RESIZE_MIGRATING,
                "snapshot": states.IMAGE_PENDING_UPLOAD,
                "confirm": None,
                "evacuate": states.REBUILDING}[kind]}
            if kind in ("resize", "confirm"):
                change = resizes.start(db, inst, flavor["flavorid"],
                                       inst["flavor"], None, None,
                                       "other-host", "migration")
                resizes.set_status(db, change["migration_uuid"],
                                   "migrating" if kind == "resize"
                                   else "confirming")
                if kind == "confirm":
                    values.update(vm_state=states.RESIZED)
            elif kind == "snapshot":
                catalog.image_create(db, {
                    "id": str(uuidlib.uuid4()), "name": "half",
                    "status": "queued", "owner": "p1",
                    "properties": {"instance_uuid": uuid}})
            else:
                evacuations.create(db, inst, "gone-host", "u")
            instances.update(db, uuid, values)
            uuids.append(uuid)
    then = utcnow() - datetime.timedelta(seconds=120)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE instances SET updated_at = :t"),
                     {"t": then})
        conn.execute(sa.text("UPDATE instance_flavor_changes SET "
                             "updated_at = :t"), {"t": then})
    return kinds
