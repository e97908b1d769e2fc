"""Rescue, unrescue, suspend and resume through the whole in-process
pipeline (API → fake bus → compute manager → fake driver): Nova's state
table and its 409s (nothing changes), the rescue body and answer, the
image checks, locks, event details, and the compute restart's recovery
and power sync."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from pyct_driver import states
from pyct_driver.compute import recovery
from pyct_driver.db import actions, catalog, instances
from tests.functional import compute_fixtures as fx
from tests.functional import test_resize_rebuild as rr

ADMIN = "admin:adminproj"


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as (db, service, app):
        yield db, service, app


def status(app, sid):
    return rr.call(app, "GET", f"/v2.1/servers/{sid}").json["server"][
        "status"]


def refused(app, db, sid, body, token="alice:p1"):
    """The action is a 409 conflictingRequest and changes nothing."""
    before = instances.get(db, sid)
    resp = rr.act(app, sid, body, token=token)
    assert resp.status_int == 409, (body, resp.text)
    assert "conflictingRequest" in resp.json
    after = instances.get(db, sid)
    assert (after["vm_state"], after["task_state"], after["updated_at"]) \
        == (before["vm_state"], before["task_state"], before["updated_at"])


def test_rescue_unrescue_state_machine(env):
    db, service, app = env
    sid = rr.boot(app, db)
    own_image = instances.get(db, sid)["image_ref"]
    boots = rr.guest(service, sid)["boots"]
    resp = rr.act(app, sid, {"rescue": {"adminPass": "s3cret-pw"}})
    assert resp.status_int == 200, resp.text
    assert resp.json == {"adminPass": "s3cret-pw"}
    row = rr.idle(db, sid, states.RESCUED)
    assert status(app, sid) == "RESCUE"
    assert row["power_state"] == states.RUNNING
    g = rr.guest(service, sid)
    assert g["rescue"] == {"image_id": own_image,
                           "root_password": "s3cret-pw"}
    assert rr.events(db, sid, "rescue") == [
        ("compute_rescue_instance", "Success")]
    # Nova's table: no second rescue, no reboot of either kind, no stop,
    # suspend, pause, resize or rebuild of a rescued server
    for body in ({"rescue": None}, {"reboot": {"type": "HARD"}},
                 {"reboot": {"type": "SOFT"}}, {"os-stop": None},
                 {"suspend": None}, {"pause": None}, {"resume": None},
                 {"rebuild": {"imageRef": own_image}}):
        refused(app, db, sid, body)
    assert rr.act(app, sid, {"unrescue": None}).status_int == 202
    rr.idle(db, sid, states.ACTIVE)
    assert status(app, sid) == "ACTIVE"
    g = rr.guest(service, sid)
    assert "rescue" not in g and g["boots"] == boots + 1
    assert rr.events(db, sid, "unrescue") == [
        ("compute_unrescue_instance", "Success")]
    refused(app, db, sid, {"unrescue": None})


def test_rescue_generates_password_and_takes_an_image(env):
    db, service, app = env
    sid = rr.boot(app, db)
    other = catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="rescue-img", status="active",
        location=catalog.image_list(db)[0]["location"]))
    resp = rr.act(app, sid, {"rescue": {"rescue_image_ref": other["id"]}})
    assert resp.status_int == 200, resp.text
    password = resp.json["adminPass"]
    assert len(password) == 12 and password.isalnum()
    rr.idle(db, sid, states.RESCUED)
    assert rr.guest(service, sid)["rescue"] == {
        "image_id": other["id"], "root_password": password}


def test_rescue_image_checks_and_body(env):
    db, service, app = env
    sid = rr.boot(app, db)
    location = catalog.image_list(db)[0]["location"]
    hidden = catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="theirs", status="active",
        visibility="private", owner="p2", location=location))
    gone = catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="deactivated", status="deactivated",
        location=location))
    before = instances.get(db, sid)
    for ref in (hidden["id"], gone["id"], str(uuidlib.uuid4())):
        resp = rr.act(app, sid, {"rescue": {"rescue_image_ref": ref}})
        assert resp.status_int == 400, resp.text
        assert "badRequest" in resp.json
    for body in ({"rescue": {"bogus": 1}},
                 {"rescue": {"rescue_image_ref": "not-a-uuid"}},
                 {"rescue": {"adminPass": 5}}):
        assert rr.act(app, sid, body).status_int == 400, body
    after = instances.get(db, sid)
    assert (after["vm_state"], after["task_state"], after["updated_at"]) \
        == (before["vm_state"], before["task_state"], before["updated_at"])
    assert "rescue" not in rr.guest(service, sid)


def test_rescue_from_shutoff_lock_and_delete(env):
    db, service, app = env
    sid = rr.boot(app, db)
    assert rr.act(app, sid, {"os-stop": None}).status_int == 202
    rr.idle(db, sid, states.STOPPED)
    assert rr.act(app, sid, {"lock": None}).status_int == 202
    refused(app, db, sid, {"rescue": None})
    # an admin is not held back by the lock
    resp = rr.act(app, sid, {"rescue": None}, token=ADMIN)
    assert resp.status_int == 200, resp.text
    row = rr.idle(db, sid, states.RESCUED)
    assert row["power_state"] == states.RUNNING
    refused(app, db, sid, {"unrescue": None})
    assert rr.act(app, sid, {"unlock": None}).status_int == 202
    resp = rr.call(app, "DELETE", f"/v2.1/servers/{sid}")
    assert resp.status_int == 204
    fx.wait_for_row(db, sid, lambda r: r["deleted"])
    assert sid not in service.manager.driver.list_instances()


def test_failed_rescue_is_error(env, tmp_path):
    db, service, app = env
    image = catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="failing", status="active",
        location=catalog.image_list(db)[0]["location"],
        properties={"fake_fail": "rescue"}))
    resp = rr.call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}})
    sid = resp.json["server"]["id"]
    rr.idle(db, sid, states.ACTIVE)
    assert rr.act(app, sid, {"rescue": None}).status_int == 200
    rr.idle(db, sid, states.ERROR)
    assert rr.events(db, sid, "rescue") == [
        ("compute_rescue_instance", "Error")]
    # Nova rescues an ERROR server too
    assert rr.act(app, sid, {"rescue": {
        "rescue_image_ref": catalog.image_list(db)[0]["id"]}}
    ).status_int == 200


def test_suspend_resume_and_event_details(env):
    db, service, app = env
    sid = rr.boot(app, db)
    assert rr.act(app, sid, {"suspend": None}).status_int == 202
    row = rr.idle(db, sid, states.SUSPENDED)
    assert row["power_state"] == states.SUSPENDED_POWER
    assert status(app, sid) == "SUSPENDED"
    for body in ({"suspend": None}, {"pause": None}, {"unpause": None},
                 {"rescue": None}, {"os-stop": None},
                 {"reboot": {"type": "SOFT"}}, {"unrescue": None}):
        refused(app, db, sid, body)
    req_id = next(a["request_id"] for a in actions.action_list(db, sid)
                  if a["action"] == "suspend")
    path = f"/v2.1/servers/{sid}/os-instance-actions/{req_id}"
    event = rr.call(app, "GET", path, token=ADMIN,
                    version="2.84").json["instanceAction"]["events"][0]
    assert event["event"] == "compute_suspend_instance"
    assert event["result"] == "Success"
    assert event["details"] == "fake: suspended in memory"
    # before 2.84 there is no details field
    event = rr.call(app, "GET", path, token=ADMIN,
                    version="2.83").json["instanceAction"]["events"][0]
    assert "details" not in event
    assert rr.act(app, sid, {"resume": None}).status_int == 202
    row = rr.idle(db, sid, states.ACTIVE)
    assert row["power_state"] == states.RUNNING
    assert rr.events(db, sid, "resume") == [
        ("compute_resume_instance", "Success")]
    refused(app, db, sid, {"resume": None})
    # a paused server cannot be suspended (Nova: ACTIVE only)
    assert rr.act(app, sid, {"pause": None}).status_int == 202
    rr.idle(db, sid, states.PAUSED)
    refused(app, db, sid, {"suspend": None})


def test_hard_reboot_of_suspended_server_is_allowed(env):
    """Nova's ALLOW_HARD_REBOOT has SUSPENDED (not RESCUED)."""
    db, service, app = env
    sid = rr.boot(app, db)
    assert rr.act(app, sid, {"suspend": None}).status_int == 202
    rr.idle(db, sid, states.SUSPENDED)
    assert rr.act(app, sid, {"reboot": {"type": "HARD"}}).status_int == 202
    row = rr.idle(db, sid, states.ACTIVE)
    assert row["power_state"] == states.RUNNING


def test_restart_keeps_rescued_and_suspended(env):
    db, service, app = env
    rescued, suspended = rr.boot(app, db), rr.boot(app, db)
    assert rr.act(app, rescued, {"rescue": None}).status_int == 200
    assert rr.act(app, suspended, {"suspend": None}).status_int == 202
    rr.idle(db, rescued, states.RESCUED)
    rr.idle(db, suspended, states.SUSPENDED)
    manager = service.manager
    recovery.recover_host(manager)
    assert recovery.sync_power_states(manager) == 0
    assert instances.get(db, rescued)["vm_state"] == states.RESCUED
    assert "rescue" in rr.guest(service, rescued)
    assert instances.get(db, suspended)["vm_state"] == states.SUSPENDED
    assert rr.guest(service, suspended)["power_state"] == \
        states.SUSPENDED_POWER
    assert rr.act(app, rescued, {"unrescue": None}).status_int == 202
    rr.idle(db, rescued, states.ACTIVE)


def test_recovery_of_interrupted_operations(env):
    db, service, app = env
    manager = service.manager
    sids = [rr.boot(app, db) for _ in range(3)]
    # a rescue cut short: undone (its password was only in the message)
    instances.update(db, sids[0], {"task_state": states.RESCUING})
    # a suspend cut short: redone
    instances.update(db, sids[1], {"task_state": states.SUSPENDING})
    # an unrescue cut short: redone
    manager.driver.rescue(manager.spec(instances.get(db, sids[2])),
                          "img", "pw")
    instances.update(db, sids[2], {"vm_state": states.RESCUED,
                                   "task_state": states.UNRESCUING})
    recovery.recover_host(manager)
    row = instances.get(db, sids[0])
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)
    assert "rescue" not in rr.guest(service, sids[0])
    assert "interrupted" in actions.fault_latest(db, [sids[0]])[sids[0]][
        "message"]
    row = instances.get(db, sids[1])
    assert (row["vm_state"], row["task_state"], row["power_state"]) == (
        states.SUSPENDED, None, states.SUSPENDED_POWER)
    row = instances.get(db, sids[2])
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)
    assert "rescue" not in rr.guest(service, sids[2])


def test_rescue_answer_without_instance_password(tmp_path, monkeypatch):
    make_conf = fx.make_conf

    def conf_without_password():
        conf = make_conf()
        conf.set_override("enable_instance_password", False, "api")
        return conf

    monkeypatch.setattr(fx, "make_conf", conf_without_password)
    with fx.api_with_compute(tmp_path) as (db, service, app):
        sid = rr.boot(app, db)
        resp = rr.act(app, sid, {"rescue": {"adminPass": "x"}})
        assert resp.status_int == 200 and resp.json == {}
        rr.idle(db, sid, states.RESCUED)
        assert rr.guest(service, sid)["rescue"]["root_password"] == "x"
