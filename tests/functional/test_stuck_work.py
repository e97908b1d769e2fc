"""The API's stuck-work task and the compute side's request claims, in
process on SQLite with the fake driver (the PostgreSQL run with two API
processes is tests/integration/test_faults_build_timeout.py).

A build no host took is failed once, with a fault naming the host and an
``api_build_timeout`` event; a build a live host took is left alone; one
whose host is down is taken over; a second task (another API process)
finds nothing left to do; a build cast delivered after the timeout is
not run; a doubled cast runs once; a delete stuck on a dead host is
finished by the API.
"""

from __future__ import annotations

import datetime

from pyct_driver import context, states
from pyct_driver.api.stuck_work import StuckWorkTask
from pyct_driver.compute import recovery
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import actions, claims, instances, services
from pyct_driver.db.models import utcnow
from pyct_driver.virt.fake import FakeDriver
from tests.functional import compute_fixtures as fx


def _setup(tmp_path, host="host-a"):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)
    driver = FakeDriver(conf)
    driver.init_host(host)
    manager = ComputeManager(db, driver, host, shutdown_timeout=1)
    return db, flavor, image, manager


def _stuck_build(db, flavor, image, host="host-a", age_s=120):
    inst = fx.new_instance(db, flavor, image, host)
    ctxt = context.RequestContext("u", "p1", ["member"])
    actions.action_start(db, inst["uuid"], "create", ctxt.request_id,
                         "u", "p1")
    with db.engine.begin() as conn:  # created long ago
        conn.exec_driver_sql(
            "UPDATE instances SET created_at = ? WHERE uuid = ?",
            (utcnow() - datetime.timedelta(seconds=age_s), inst["uuid"]))
    return inst, ctxt


def _task(db, owner="api-1"):
    return StuckWorkTask(db, owner, build_timeout=60, action_timeout=60,
                         interval=1, service_down_time=10)


def _beat(db, host, age_s=0):
    services.heartbeat(db, host, "pyct-compute", "pyct-compute")
    if age_s:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE services SET last_seen_up = ? WHERE host = ?",
                (utcnow() - datetime.timedelta(seconds=age_s), host))


def test_unclaimed_build_fails_once_with_host_in_fault(tmp_path):
    db, flavor, image, manager = _setup(tmp_path)
    _beat(db, "host-a")  # up, but the cast never reached it
    inst, ctxt = _stuck_build(db, flavor, image)
    fresh, _ = _stuck_build(db, flavor, image, age_s=1)  # not yet due
    assert _task(db).run_once() == 1
    assert _task(db, "api-2").run_once() == 0  # nothing left to fail
    row = instances.get(db, inst["uuid"])
    assert (row["vm_state"], row["task_state"]) == (states.ERROR, None)
    fault = actions.fault_latest(db, [inst["uuid"]])[inst["uuid"]]
    assert "host-a did not take the request" in fault["message"]
    assert fault["host"] == "host-a"
    action = actions.action_get(db, inst["uuid"], ctxt.request_id)
    assert [(e["event"], e["result"]) for e in action["events"]] == [
        ("api_build_timeout", "Error")]
    assert action["message"] == "Error"
    assert instances.get(db, fresh["uuid"])["vm_state"] == states.BUILDING
    # the cast arrives late: the claim says it was given up, nothing runs
    manager.build_and_run_instance(ctxt, inst["uuid"])
    assert manager.driver.list_instances() == []
    assert instances.get(db, inst["uuid"])["vm_state"] == states.ERROR


def test_build_on_live_host_is_left_alone_taken_over_when_down(tmp_path):
    db, flavor, image, manager = _setup(tmp_path)
    _beat(db, "host-a")
    inst, ctxt = _stuck_build(db, flavor, image)
    # host-a took it (claimed) and is still spawning
    assert claims.claim(db, inst["uuid"], ctxt.request_id,
                        "build_and_run_instance", "host-a")
    instances.update(db, inst["uuid"], {"task_state": states.SPAWNING})
    assert _task(db).run_once() == 0
    assert instances.get(db, inst["uuid"])["vm_state"] == states.BUILDING
    _beat(db, "host-a", age_s=60)  # and then it died
    assert _task(db).run_once() == 1
    fault = actions.fault_latest(db, [inst["uuid"]])[inst["uuid"]]
    assert "host-a is down (it had started it)" in fault["message"]
    claim, = claims.for_instance(db, inst["uuid"])
    assert (claim["state"], claim["owner"]) == ("timed_out", "api-1")


def test_doubled_cast_runs_once(tmp_path):
    db, flavor, image, manager = _setup(tmp_path)
    inst, ctxt = _stuck_build(db, flavor, image, age_s=0)
    manager.build_and_run_instance(ctxt, inst["uuid"])
    instances.update(db, inst["uuid"], {"task_state": states.REBOOTING},
                     expected_task_state=None)
    reboot = context.RequestContext("u", "p1", ["member"])
    actions.action_start(db, inst["uuid"], "reboot", reboot.request_id,
                         "u", "p1")
    manager.reboot_instance(reboot, inst["uuid"], "SOFT")
    # the same message again (a publish confirmed too late, resent), after
    # another reboot request put the task state back
    instances.update(db, inst["uuid"], {"task_state": states.REBOOTING},
                     expected_task_state=None)
    manager.reboot_instance(reboot, inst["uuid"], "SOFT")
    console = manager.driver.get_console_output(
        manager.spec(instances.get(db, inst["uuid"])))
    assert console.count("soft reboot") == 1
    assert instances.get(db, inst["uuid"])["task_state"] == \
        states.REBOOTING  # left for the request that set it
    assert [c["state"] for c in claims.for_instance(db, inst["uuid"])] \
        == ["done", "done"]


def test_delete_stuck_on_dead_host_is_finished(tmp_path):
    db, flavor, image, manager = _setup(tmp_path)
    inst, ctxt = _stuck_build(db, flavor, image, age_s=0)
    manager.build_and_run_instance(ctxt, inst["uuid"])
    instances.update(db, inst["uuid"], {"task_state": states.DELETING},
                     expected_task_state=None)
    delete = context.RequestContext("u", "p1", ["member"])
    actions.action_start(db, inst["uuid"], "delete", delete.request_id,
                         "u", "p1")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE instances SET updated_at = ? WHERE uuid = ?",
            (utcnow() - datetime.timedelta(seconds=120), inst["uuid"]))
    _beat(db, "host-a", age_s=60)
    assert _task(db).run_once() == 1
    row = instances.get(db, inst["uuid"], read_deleted=True)
    assert row["deleted"] and row["vm_state"] == states.DELETED
    # the host comes back: the guest whose row is gone is destroyed
    recovery.recover_host(manager)
    assert manager.driver.list_instances() == []
