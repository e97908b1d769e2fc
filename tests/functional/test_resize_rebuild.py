"""Resize, confirm, revert and rebuild through the whole in-process
pipeline (API → fake bus → compute manager → fake driver), with the
crash recovery and the auto-confirm of the compute service."""

from __future__ import annotations

import datetime
import json

import pytest
import sqlalchemy as sa
import webob

from pyct_driver import states
from pyct_driver.compute import recovery, resize
from pyct_driver.db import actions, catalog, instances, resizes
from pyct_driver.db.resize_models import FlavorChange
from tests.functional import compute_fixtures as fx


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as (db, service, app):
        catalog.flavor_create(db, dict(flavorid="2", name="m1.small",
                                       vcpus=2, memory_mb=1024, root_gb=2))
        catalog.flavor_create(db, dict(flavorid="3", name="m1.thin",
                                       vcpus=1, memory_mb=256, root_gb=1))
        catalog.flavor_create(db, dict(flavorid="huge", name="huge",
                                       vcpus=1, memory_mb=512,
                                       root_gb=1 << 20))
        yield db, service, app


def call(app, method, path, body=None, token="alice:p1", version="2.37"):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = token
    req.headers["OpenStack-API-Version"] = f"compute {version}"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def boot(app, db):
    image = catalog.image_list(db)[0]
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    return sid


def act(app, sid, body, **kw):
    return call(app, "POST", f"/v2.1/servers/{sid}/action", body, **kw)


def guest(service, sid) -> dict:
    return service.manager.driver._instances[sid]


def idle(db, sid, vm_state):
    return fx.wait_for_row(db, sid, lambda r: r["vm_state"] == vm_state
                       and r["task_state"] is None)


def events(db, sid, action):
    for a in actions.action_list(db, sid):
        if a["action"] == action:
            full = actions.action_get(db, sid, a["request_id"])
            return [(e["event"], e["result"]) for e in full["events"]]
    raise AssertionError(f"no {action} action")


def test_resize_revert_then_resize_confirm(env):
    db, service, app = env
    sid = boot(app, db)
    booted = guest(service, sid)["boots"]
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    row = idle(db, sid, states.RESIZED)
    server = call(app, "GET", f"/v2.1/servers/{sid}").json["server"]
    assert server["status"] == "VERIFY_RESIZE"
    assert server["flavor"]["id"] == "2"
    g = guest(service, sid)
    assert (g["flavor"].vcpus, g["flavor"].memory_mb, g["disk_gb"]) == \
        (2, 1024, 2)
    assert g["boots"] == booted and g["power_state"] == states.RUNNING
    assert events(db, sid, "resize") == [
        ("compute_resize_instance", "Success"),
        ("compute_finish_resize", "Success")]
    mig = call(app, "GET", "/v2.1/os-migrations", token="admin:adminproj",
               version="2.59").json["migrations"]
    assert [(m["status"], m["migration_type"]) for m in mig] == [
        ("finished", "resize")]
    # a second resize, a confirm racing a revert: one wins
    assert act(app, sid, {"resize": {"flavorRef": "3"}}).status_int == 409
    assert act(app, sid, {"revertResize": None}).status_int == 202
    assert act(app, sid, {"confirmResize": None}).status_int == 409
    row = idle(db, sid, states.ACTIVE)
    assert row["flavor_id"] == "1" and row["flavor"]["memory_mb"] == 512
    g = guest(service, sid)
    assert (g["flavor"].vcpus, g["flavor"].memory_mb) == (1, 512)
    assert g["disk_gb"] == 2  # a grown disk stays grown
    assert events(db, sid, "revertResize") == [
        ("compute_revert_resize", "Success")]
    # confirm without a resize, revert without a resize: 409, no change
    assert act(app, sid, {"confirmResize": None}).status_int == 409
    assert act(app, sid, {"revertResize": None}).status_int == 409
    assert instances.get(db, sid)["updated_at"] == row["updated_at"]

    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    row = idle(db, sid, states.ACTIVE)
    assert row["flavor_id"] == "2" and guest(service, sid)[
        "flavor"].memory_mb == 1024
    assert resizes.current.__name__  # the open resize is gone:
    with pytest.raises(Exception):
        resizes.current(db, sid)


def test_shrinking_the_disk_fails_back_to_the_old_flavor(env):
    db, service, app = env
    sid = boot(app, db)
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.ACTIVE)
    assert act(app, sid, {"resize": {"flavorRef": "3"}}).status_int == 202
    row = fx.wait_for_row(db, sid, lambda r: r["task_state"] is None and
                      r["vm_state"] == states.ACTIVE and
                      actions.fault_latest(db, [sid]))
    assert row["flavor_id"] == "2"
    assert guest(service, sid)["flavor"].memory_mb == 1024
    fault = actions.fault_latest(db, [sid])[sid]
    assert "Unable to resize disk down" in fault["message"]
    assert ("compute_resize_instance", "Error") in events(db, sid, "resize")


def test_no_room_on_the_host_is_novas_no_valid_host(env):
    db, service, app = env
    sid = boot(app, db)
    before = instances.get(db, sid)
    assert act(app, sid, {"resize": {"flavorRef": "huge"}}).status_int == 202
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"], row["flavor_id"]) == (
        states.ACTIVE, None, before["flavor_id"])
    fault = actions.fault_latest(db, [sid])[sid]
    assert fault["message"].startswith("No valid host was found.")
    assert events(db, sid, "resize") == [
        ("conductor_migrate_server", "Error")]
    assert guest(service, sid)["disk_gb"] == 1


def test_paused_is_409_stopped_resizes_and_stays_stopped(env):
    db, service, app = env
    sid = boot(app, db)
    assert act(app, sid, {"pause": None}).status_int == 202
    idle(db, sid, states.PAUSED)
    resp = act(app, sid, {"resize": {"flavorRef": "2"}})
    assert resp.status_int == 409
    assert "conflictingRequest" in resp.json
    assert act(app, sid, {"unpause": None}).status_int == 202
    idle(db, sid, states.ACTIVE)
    assert act(app, sid, {"os-stop": None}).status_int == 202
    idle(db, sid, states.STOPPED)
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.STOPPED)
    assert guest(service, sid)["power_state"] == states.SHUTDOWN


def test_rebuild_new_image_same_server(env, tmp_path):
    db, service, app = env
    sid = boot(app, db)
    path = tmp_path / "other.tar"
    path.write_bytes(b"another image")
    other = catalog.image_create(db, dict(
        id="9b0f6a3e-3c43-4d89-8d8e-0d2a4a6f1a11", name="other",
        status="active", location=str(path), properties={}))
    resp = act(app, sid, {"rebuild": {
        "imageRef": other["id"], "name": "reborn", "metadata": {"a": "b"},
        "description": "d", "adminPass": "s3cret",
        "preserve_ephemeral": False}}, version="2.75")
    assert resp.status_int == 202, resp.text
    body = resp.json["server"]
    assert body["adminPass"] == "s3cret" and body["id"] == sid
    assert body["name"] == "reborn" and body["status"] == "REBUILD"
    row = idle(db, sid, states.ACTIVE)
    assert row["image_ref"] == other["id"] and row["metadata"] == {"a": "b"}
    assert guest(service, sid)["image_id"] == other["id"]
    assert events(db, sid, "rebuild") == [
        ("compute_rebuild_instance", "Success")]


def test_crash_mid_resize_recovers_consistently(env):
    db, service, app = env
    manager = service.manager
    sid = boot(app, db)
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"revertResize": None}).status_int == 202
    idle(db, sid, states.ACTIVE)
    # killed after applying the new limits, before the row moved on
    change = _open_resize(db, sid, manager)
    resizes.set_status(db, change["migration_uuid"], "migrating")
    instances.update(db, sid, {"task_state": states.RESIZE_MIGRATED})
    manager._apply(instances.get(db, sid), change["new_flavor"])
    recovery.recover_host(manager)
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"], row["flavor_id"]) == (
        states.ACTIVE, None, "1")
    assert guest(service, sid)["flavor"].memory_mb == 512
    # killed after the row took the new flavor: finished on restart
    change = _open_resize(db, sid, manager)
    instances.update(db, sid, {"task_state": states.RESIZE_FINISH,
                               "flavor": change["new_flavor"],
                               "flavor_id": "2"})
    recovery.recover_host(manager)
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"]) == (states.RESIZED, None)
    assert guest(service, sid)["flavor"].memory_mb == 1024


def _open_resize(db, sid, manager):
    inst = instances.get(db, sid)
    flavor = catalog.flavor_get(db, "2")
    snap = {k: flavor[k] for k in ("flavorid", "name", "vcpus", "memory_mb",
                                   "root_gb", "ephemeral_gb", "swap",
                                   "rxtx_factor", "is_public",
                                   "extra_specs")}
    return resizes.start(db, inst, "2", snap, None, flavor["id"])


def test_auto_confirm_after_the_window(env):
    db, service, app = env
    manager = service.manager
    sid = boot(app, db)
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert resize.confirm_due(manager) == 0  # window 0: never
    manager.resize_confirm_window = 60
    assert resize.confirm_due(manager) == 0  # not yet due
    past = datetime.datetime(2000, 1, 1)
    with db.session() as session:
        session.execute(sa.update(FlavorChange).values(updated_at=past))
    assert resize.confirm_due(manager) == 1
    row = idle(db, sid, states.ACTIVE)
    assert row["flavor_id"] == "2"
    assert events(db, sid, "confirmResize") == [
        ("compute_confirm_resize", "Success")]
