"""The stuck-work timeout and request claims of the long operations, in
process (API → fake bus → two compute services → fake drivers, SQLite).

For each of resize, cold migrate, revert, confirm, rebuild, evacuate,
createImage, createBackup, shelve, shelveOffload and unshelve: the cast
goes to a compute service that is stopped, whose heartbeat then ages
past ``service_down_time``; one run of the API's stuck-work task fails
the operation once (a second API process finds nothing), with a fault
naming the host and an ``api_action_timeout`` event, leaving the server
where Nova leaves it (``db.stuck_moves``); the same request delivered
again afterwards (RabbitMQ's redelivery, or the queue drained when the
host returns) changes nothing on the host. A host that took the request
and still beats is left alone; when it dies the task takes it over. The
two-host flows are judged by the host the row names: a revert whose
destination gave the row back waits on the source, a migration whose
destination took the row waits on the destination. A doubled delivery
on a healthy host runs the operation once.
"""

from __future__ import annotations

import datetime

import pytest

from pyct_driver import context, states
from pyct_driver.api.stuck_work import StuckWorkTask
from pyct_driver.db import actions, catalog, claims, instances
from pyct_driver.db.models import utcnow
from tests.functional import compute_fixtures as fx
from tests.functional.test_migrate_hosts import (  # noqa: F401 (fixture)
    act, boot, call, env, idle)

OLD = 120  # seconds: past the 60 s timeouts of ``_task``


def _task(db, owner="api-1"):
    return StuckWorkTask(db, owner, build_timeout=60, action_timeout=60,
                         interval=1, service_down_time=10)


def _age(db, sid, host=None):
    """The row (and its resize) last changed long ago; ``host``'s last
    heartbeat too (it is down)."""
    then = utcnow() - datetime.timedelta(seconds=OLD)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE instances SET updated_at = ? WHERE "
                             "uuid = ?", (then, sid))
        conn.exec_driver_sql("UPDATE instance_flavor_changes SET "
                             "updated_at = ? WHERE instance_uuid = ?",
                             (then, sid))
        if host is not None:
            conn.exec_driver_sql("UPDATE services SET last_seen_up = ? "
                                 "WHERE host = ?", (then, host))


def _request(db, sid, name):
    """The context of the request ``name`` on ``sid``, as the cast
    carried it (same request id)."""
    action = next(a for a in actions.action_list(db, sid)
                  if a["action"] == name)
    return context.RequestContext("admin", "adminproj", ["admin"],
                                  request_id=action["request_id"])


def _fails_once(db, sid, host, name, words="is down"):
    """One task fails ``sid``; a second finds nothing; the fault and the
    action's event say why."""
    assert _task(db).run_once() == 1
    assert _task(db, "api-2").run_once() == 0
    fault = actions.fault_latest(db, [sid])[sid]
    assert f"compute host {host} {words}" in fault["message"], fault
    assert fault["host"] == host
    action = actions.action_get(db, sid, _request(db, sid, name).request_id)
    assert ("api_action_timeout", "Error") in [
        (e["event"], e["result"]) for e in action["events"]]
    return instances.get(db, sid)


def _migrations(app):
    return call(app, "GET", "/v2.1/os-migrations",
                version="2.59").json["migrations"]


def _open_status(app, sid):
    migs = _migrations(app)
    return [m["status"] for m in migs if m["instance_uuid"] == sid]


def _guest(svcs, host, sid):
    return dict(svcs[host].manager.driver._instances.get(sid) or {})


@pytest.mark.parametrize("body,name", [
    ({"resize": {"flavorRef": "2"}}, "resize"),
    ({"migrate": {"host": "host-b"}}, "migrate"),
], ids=["resize", "migrate"])
def test_resize_or_migrate_never_started_goes_back(env, body, name):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].stop()
    assert act(app, sid, body).status_int == 202
    _age(db, sid, "host-a")
    row = _fails_once(db, sid, "host-a", name)
    # Nova's start-up clears resize_prep: the server as it was
    assert (row["vm_state"], row["task_state"], row["flavor_id"],
            row["host"]) == (states.ACTIVE, None, "1", "host-a")
    assert _open_status(app, sid) == ["error"]
    # the cast delivered late (the host is back): not run
    before = _guest(svcs, "host-a", sid)
    manager = svcs["host-a"].manager
    mig = _migrations(app)[0]
    handler = manager.resize_instance if name == "resize" \
        else manager.migrate_instance
    handler(_request(db, sid, name), sid, mig["uuid"])
    assert _guest(svcs, "host-a", sid) == before
    assert _guest(svcs, "host-b", sid) == {}
    assert instances.get(db, sid)["vm_state"] == states.ACTIVE


def _migrate_unseen(env):
    """A migration to host-b cast to host-a, which is stopped: the server
    and the request's context."""
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].stop()
    assert act(app, sid, {"migrate": {"host": "host-b"}}).status_int == 202
    return sid, _request(db, sid, "migrate")


def _taken_then_lost(db, sid, ctxt, host, method, values):
    """``host`` claimed the request under ``method`` and wrote
    ``values``: left alone while it beats, failed once when it is down;
    the row after."""
    assert claims.claim(db, sid, ctxt.request_id, method, host)
    instances.update(db, sid, values)
    _age(db, sid)
    assert _task(db).run_once() == 0  # it still beats: left alone
    _age(db, sid, host)
    return _fails_once(db, sid, host, "migrate",
                       "is down (it had started it)")


def test_migration_under_way_on_a_dead_source_goes_to_error(env):
    db, svcs, app = env
    sid, ctxt = _migrate_unseen(env)
    # host-a took it and was sending when it died
    row = _taken_then_lost(db, sid, ctxt, "host-a", "migrate_instance",
                           {"task_state": states.RESIZE_MIGRATING})
    assert (row["vm_state"], row["task_state"]) == (states.ERROR, None)
    assert _open_status(app, sid) == ["error"]
    claim, = [c for c in claims.for_instance(db, sid)
              if c["method"] == "migrate_instance"]
    assert (claim["state"], claim["owner"]) == ("timed_out", "api-1")


def _verify_resize(env):
    db, svcs, app = env
    sid = boot(app, db)
    assert act(app, sid, {"migrate": {"host": "host-b"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    return sid


@pytest.mark.parametrize("body,name,status", [
    ({"revertResize": None}, "revertResize", 202),
    ({"confirmResize": None}, "confirmResize", 204),
], ids=["revert", "confirm"])
def test_revert_or_confirm_on_a_dead_destination_goes_to_error(
        env, body, name, status):
    db, svcs, app = env
    sid = _verify_resize(env)
    svcs["host-b"].stop()
    assert act(app, sid, body).status_int == status
    _age(db, sid, "host-b")
    row = _fails_once(db, sid, "host-b", name)
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.ERROR, None, "host-b")
    assert _open_status(app, sid) == ["error"]
    # delivered again: host-b neither drops its guest nor gives the row
    # back, and host-a's copy is untouched
    before = {h: _guest(svcs, h, sid) for h in svcs}
    mig = _migrations(app)[0]
    manager = svcs["host-b"].manager
    if name == "revertResize":
        manager.revert_resize(_request(db, sid, name), sid, mig["uuid"])
    else:
        manager.confirm_resize(_request(db, sid, name), sid, mig["uuid"])
    assert {h: _guest(svcs, h, sid) for h in svcs} == before
    assert instances.get(db, sid)["host"] == "host-b"


def test_rebuild_on_a_dead_host_goes_to_error(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].stop()
    image = catalog.image_list(db)[0]["id"]
    assert act(app, sid, {"rebuild": {"imageRef": image}}).status_int == 202
    _age(db, sid, "host-a")
    row = _fails_once(db, sid, "host-a", "rebuild")
    assert (row["vm_state"], row["task_state"]) == (states.ERROR, None)
    boots = _guest(svcs, "host-a", sid)["boots"]
    svcs["host-a"].manager.rebuild_instance(
        _request(db, sid, "rebuild"), sid, states.ACTIVE)
    assert _guest(svcs, "host-a", sid)["boots"] == boots


def test_evacuation_to_a_dead_destination_fails(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].stop()
    svcs["host-b"].stop()
    _age(db, sid, "host-a")  # the server's own host is down
    resp = act(app, sid, {"evacuate": {"host": "host-b"}}, version="2.29")
    assert resp.status_int == 200, resp.text
    _age(db, sid, "host-b")  # and so is the destination, afterwards
    row = _fails_once(db, sid, "host-b", "evacuate")
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.ERROR, None, "host-b")
    evac = [m for m in _migrations(app) if m["migration_type"] == "evacuation"]
    # failed, not error: host-a still destroys its copy when it returns
    assert [m["status"] for m in evac] == ["failed"]
    svcs["host-b"].manager.evacuate_instance(
        _request(db, sid, "evacuate"), sid, evac[0]["uuid"], states.ACTIVE)
    assert _guest(svcs, "host-b", sid) == {}


@pytest.mark.parametrize("body,name", [
    ({"createImage": {"name": "snap"}}, "createImage"),
    ({"createBackup": {"name": "bak", "backup_type": "daily",
                       "rotation": 1}}, "createBackup"),
    ({"shelve": None}, "shelve"),
], ids=["snapshot", "backup", "shelve"])
def test_capture_on_a_dead_host_leaves_server_as_it_was(env, body, name):
    db, svcs, app = env
    sid = boot(app, db)
    images_before = {i["id"] for i in catalog.image_list(db)}
    svcs["host-a"].stop()
    assert act(app, sid, body).status_int == 202
    (image,) = [i for i in catalog.image_list(db)
                if i["id"] not in images_before]
    assert image["status"] == "queued"
    _age(db, sid, "host-a")
    row = _fails_once(db, sid, "host-a", name)
    # Nova: ACTIVE with a fault; the failed snapshot's image deleted
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)
    assert {i["id"] for i in catalog.image_list(db)} == images_before
    manager = svcs["host-a"].manager
    ctxt = _request(db, sid, name)
    if name == "createImage":
        manager.snapshot_instance(ctxt, sid, image["id"])
    elif name == "createBackup":
        manager.backup_instance(ctxt, sid, image["id"], "daily", 1)
    else:
        manager.shelve_instance(ctxt, sid, image["id"])
    assert _guest(svcs, "host-a", sid)["power_state"] == states.RUNNING
    assert image["id"] not in manager.driver._images
    assert instances.get(db, sid)["vm_state"] == states.ACTIVE


def test_unshelve_and_offload_on_a_dead_host(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].manager.shelved_offload_time = -1  # stays SHELVED
    assert act(app, sid, {"shelve": None}).status_int == 202
    idle(db, sid, states.SHELVED)
    svcs["host-a"].stop()
    assert act(app, sid, {"shelveOffload": None}).status_int == 202
    _age(db, sid, "host-a")
    row = _fails_once(db, sid, "host-a", "shelveOffload")
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.SHELVED, None, "host-a")
    svcs["host-a"].manager.shelve_offload_instance(
        _request(db, sid, "shelveOffload"), sid)
    assert _guest(svcs, "host-a", sid) != {}  # not offloaded after all

    # offloaded for real, then unshelved onto host-b, which is down
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE instances SET vm_state = 'shelved_offloaded', "
            "host = NULL WHERE uuid = ?", (sid,))
    assert act(app, sid, {"unshelve": {"host": "host-b"}},
               version="2.91").status_int == 202
    svcs["host-b"].stop()
    _age(db, sid, "host-b")
    row = _fails_once(db, sid, "host-b", "unshelve")
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.SHELVED_OFFLOADED, None, None)
    svcs["host-b"].manager.unshelve_instance(_request(db, sid, "unshelve"),
                                             sid)
    assert _guest(svcs, "host-b", sid) == {}


def test_doubled_resize_and_snapshot_run_once(env):
    """RabbitMQ redelivers a message the host already ran (its ack was
    lost): the request claims stop the second run even when the server
    is back in the state the message expects."""
    db, svcs, app = env
    sid = boot(app, db)
    manager = svcs["host-a"].manager
    applied = []
    real_apply = manager.driver.apply_flavor
    manager.driver.apply_flavor = lambda spec, flavor: (
        applied.append(flavor.memory_mb), real_apply(spec, flavor))
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"revertResize": None}).status_int == 202
    idle(db, sid, states.ACTIVE)
    assert len(applied) == 2  # the resize, then the revert
    mig = _migrations(app)[0]
    # the resize message again, with the row as that message expects it
    instances.update(db, sid, {"task_state": states.RESIZE_PREP})
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE instance_flavor_changes SET status = "
                             "'pre-migrating' WHERE migration_uuid = ?",
                             (mig["uuid"],))
    manager.resize_instance(_request(db, sid, "resize"), sid, mig["uuid"])
    assert len(applied) == 2
    assert instances.get(db, sid)["flavor_id"] == "1"
    instances.update(db, sid, {"task_state": None})

    assert act(app, sid, {"createImage": {"name": "s"}}).status_int == 202
    idle(db, sid, states.ACTIVE)
    (image,) = [i for i in catalog.image_list(db) if i["name"] == "s"]
    assert image["status"] == "active"
    instances.update(db, sid,
                     {"task_state": states.IMAGE_SNAPSHOT_PENDING})
    manager.snapshot_instance(_request(db, sid, "createImage"), sid,
                              image["id"])
    assert instances.get(db, sid)["task_state"] == \
        states.IMAGE_SNAPSHOT_PENDING  # untouched: not run again
    assert [c["state"] for c in claims.for_instance(db, sid)
            if c["method"] in ("resize_instance", "snapshot_instance")] \
        == ["done", "done"]


def test_revert_waiting_on_a_dead_source_goes_to_error(env):
    """The destination dropped its copy and gave the row back; the
    source's half (``finish_revert_migration``) is what is stuck, and the
    source is whom the fault names."""
    db, svcs, app = env
    sid = _verify_resize(env)
    svcs["host-a"].stop()
    assert act(app, sid, {"revertResize": None}).status_int == 202
    fx.wait_for_row(db, sid, lambda r: r["host"] == "host-a")
    assert instances.get(db, sid)["task_state"] == states.RESIZE_REVERTING
    _age(db, sid, "host-a")
    row = _fails_once(db, sid, "host-a", "revertResize")
    assert (row["vm_state"], row["task_state"]) == (states.ERROR, None)
    assert {(c["method"], c["state"]) for c in claims.for_instance(db, sid)
            } >= {("revert_resize", "done"),
                  ("finish_revert_migration", "timed_out")}
    mig = _migrations(app)[0]
    svcs["host-a"].manager.finish_revert_migration(
        _request(db, sid, "revertResize"), sid, mig["uuid"], True)
    assert _guest(svcs, "host-a", sid)["power_state"] == states.SHUTDOWN


def test_destination_dying_while_taking_the_row_is_named(env):
    """``resize_finish``: the destination took the row (and the claim of
    its ``finish_migration``) and died; the source's call timed out."""
    db, svcs, app = env
    sid, ctxt = _migrate_unseen(env)
    assert claims.claim(db, sid, ctxt.request_id, "migrate_instance",
                        "host-a")
    claims.finish(db, sid, ctxt.request_id, "migrate_instance")
    row = _taken_then_lost(db, sid, ctxt, "host-b", "finish_migration", {
        "task_state": states.RESIZE_FINISH, "host": "host-b"})
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.ERROR, None, "host-b")
    assert _open_status(app, sid) == ["error"]
