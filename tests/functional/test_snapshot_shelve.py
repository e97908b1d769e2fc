"""createImage, createBackup, shelve, shelveOffload and unshelve through
the whole in-process pipeline (API → fake bus → compute manager → fake
driver): Nova's states, answers, image records and refusals, and the
crash recovery of the compute service."""

from __future__ import annotations

import threading
import time

import pytest

from pyct_driver import states
from pyct_driver.compute import recovery, shelve
from pyct_driver.db import catalog, instances, services
from tests.functional import compute_fixtures as fx
from tests.functional.test_resize_rebuild import act, boot, call, events
from tests.waiting import wait_for

IMG = "/image/v2/images"


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as (db, service, app):
        service.manager.image_dir = str(tmp_path / "images")
        yield db, service, app


def guest(service, sid) -> dict:
    return service.manager.driver._instances[sid]


def idle(db, sid, vm_state):
    return fx.wait_for_row(db, sid, lambda r: r["vm_state"] == vm_state
                       and r["task_state"] is None)


def image_of(app, image_id, token="alice:p1"):
    return call(app, "GET", f"{IMG}/{image_id}", token=token)


def wait_image(app, image_id, status):
    deadline = time.monotonic() + 10
    resp = None
    while time.monotonic() < deadline:
        resp = image_of(app, image_id)
        if resp.status_int == 200 and resp.json["status"] == status:
            return resp.json
        time.sleep(0.02)
    raise AssertionError(f"image {image_id} never {status}: {resp}")


def used(app) -> tuple[int, int, int]:
    absolute = call(app, "GET", "/v2.1/limits").json["limits"]["absolute"]
    return (absolute["totalInstancesUsed"], absolute["totalCoresUsed"],
            absolute["totalRAMUsed"])


def snapshot(app, sid, name="snap", version="2.45", token="alice:p1",
             **extra):
    return act(app, sid, {"createImage": {"name": name, **extra}},
               version=version, token=token)


def test_snapshot_answer_states_properties_and_boot(env):
    db, service, app = env
    sid = boot(app, db)
    guest(service, sid)["files"] = {"/root/marker": "before the snapshot"}
    seen = []
    recorder = threading.Thread(target=lambda: seen.extend(
        _watch_tasks(db, sid)), daemon=True)
    service.manager.driver.snapshot_hold.clear()
    recorder.start()
    resp = snapshot(app, sid, metadata={"purpose": "test"})
    assert resp.status_int == 202, resp.text
    image_id = resp.json["image_id"]
    assert resp.headers["Location"].endswith(f"{IMG}/{image_id}")
    # listed at once, while the guest is being captured
    fx.wait_for_row(db, sid, lambda r: r["task_state"]
                == states.IMAGE_PENDING_UPLOAD)
    assert image_of(app, image_id).json["status"] == "queued"
    service.manager.driver.snapshot_hold.set()
    image = wait_image(app, image_id, "active")
    row = idle(db, sid, states.ACTIVE)
    recorder.join(5)
    # in Nova's order (a poller may miss a short step, never reorder)
    order = [states.IMAGE_SNAPSHOT_PENDING, states.IMAGE_SNAPSHOT,
             states.IMAGE_PENDING_UPLOAD, states.IMAGE_UPLOADING]
    steps = [order.index(t) for t in seen if t]
    assert steps == sorted(steps) and order.index(
        states.IMAGE_PENDING_UPLOAD) in steps, seen
    assert seen[-1] is None
    assert image["image_type"] == "snapshot"
    assert image["instance_uuid"] == sid
    assert image["base_image_ref"] == row["image_ref"]
    assert image["owner"] == "p1" and image["user_id"]
    assert image["purpose"] == "test"
    assert image["visibility"] == "private"
    assert image["min_disk"] == 1
    assert events(db, sid, "createImage") == [
        ("compute_snapshot_instance", "Success")]
    # a server booted from it has the file and shows the snapshot
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "from-snap", "imageRef": image_id, "flavorRef": "1",
        "networks": "none"}})
    assert resp.status_int == 202, resp.text
    new = resp.json["server"]["id"]
    idle(db, new, states.ACTIVE)
    assert guest(service, new)["files"] == {
        "/root/marker": "before the snapshot"}
    shown = call(app, "GET", f"/v2.1/servers/{new}").json["server"]
    assert shown["image"]["id"] == image_id


def _watch_tasks(db, sid):
    out, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        task = instances.get(db, sid)["task_state"]
        if not out or out[-1] != task:
            out.append(task)
        if task is None and len(out) > 2:
            break
        time.sleep(0.002)
    return out


def test_snapshot_before_245_has_no_body_and_paused_works(env):
    db, service, app = env
    sid = boot(app, db)
    assert act(app, sid, {"pause": None}).status_int == 202
    idle(db, sid, states.PAUSED)
    resp = snapshot(app, sid, version="2.44")
    assert resp.status_int == 202 and not resp.body
    image_id = resp.headers["Location"].rsplit("/", 1)[-1]
    wait_image(app, image_id, "active")
    row = idle(db, sid, states.PAUSED)
    assert row["power_state"] == states.PAUSED_POWER


@pytest.mark.parametrize("body", [
    {"createImage": {}}, {"createImage": {"name": ""}},
    {"createImage": {"name": "x", "metadata": {"k": 1}}},
    {"createImage": {"name": "x", "bogus": 1}},
    {"createBackup": {"name": "b", "backup_type": "daily"}},
    {"createBackup": {"name": "b", "backup_type": "daily",
                      "rotation": -1}},
    {"createBackup": {"name": "b", "rotation": 1}},
])
def test_bad_bodies_are_400_and_change_nothing(env, body):
    db, service, app = env
    sid = boot(app, db)
    before = len(catalog.image_list(db))
    assert act(app, sid, body).status_int == 400
    assert len(catalog.image_list(db)) == before
    assert instances.get(db, sid)["task_state"] is None


def test_wrong_states_and_races_are_409_with_nothing_left(env):
    db, service, app = env
    sid = boot(app, db)
    before = len(catalog.image_list(db))
    assert act(app, sid, {"unshelve": None}).status_int == 409
    assert act(app, sid, {"shelveOffload": None},
               token="admin:admin").status_int == 409
    service.manager.driver.snapshot_hold.clear()
    assert snapshot(app, sid).status_int == 202
    # a second snapshot, a shelve and a resize race the first: refused
    assert snapshot(app, sid, name="two").status_int == 409
    assert act(app, sid, {"shelve": None}).status_int == 409
    service.manager.driver.snapshot_hold.set()
    idle(db, sid, states.ACTIVE)
    assert len(catalog.image_list(db)) == before + 1
    # while a resize waits for its confirm: no snapshot, no shelve
    catalog.flavor_create(db, dict(flavorid="2", name="m1.small", vcpus=1,
                                   memory_mb=1024, root_gb=1))
    assert act(app, sid, {"resize": {"flavorRef": "2"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert snapshot(app, sid, name="three").status_int == 409
    assert act(app, sid, {"shelve": None}).status_int == 409
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.ACTIVE)
    assert len(catalog.image_list(db)) == before + 1
    # locked: the project's members are refused, an admin is not
    assert act(app, sid, {"lock": None}).status_int == 202
    resp = snapshot(app, sid, token="bob:p1")
    assert resp.status_int == 409, resp.text
    assert act(app, sid, {"shelve": None}, token="bob:p1").status_int == 409
    assert len(catalog.image_list(db)) == before + 1


def test_failed_snapshot_deletes_the_image_and_keeps_the_server(env):
    db, service, app = env
    sid = boot(app, db)
    driver = service.manager.driver
    original = driver._fail

    def fail(instance, step):
        if step == "snapshot":
            raise RuntimeError("injected snapshot failure")
        original(instance, step)
    driver._fail = fail
    resp = snapshot(app, sid)
    image_id = resp.json["image_id"]
    idle(db, sid, states.ACTIVE)
    fx.wait_for_row(db, sid, lambda r: image_of(app, image_id).status_int
                == 404)
    assert events(db, sid, "createImage") == [
        ("compute_snapshot_instance", "Error")]


def test_backup_rotation(env):
    db, service, app = env
    sid = boot(app, db)
    ids = []
    for n in range(3):
        resp = act(app, sid, {"createBackup": {
            "name": f"b{n}", "backup_type": "daily", "rotation": 2}},
            version="2.45")
        assert resp.status_int == 202, resp.text
        ids.append(resp.json["image_id"])
        idle(db, sid, states.ACTIVE)
        wait_image(app, ids[-1], "active")
    image = image_of(app, ids[-1]).json
    assert image["image_type"] == "backup"
    assert image["backup_type"] == "daily"
    # the rotation follows the backup's end (as in Nova): wait for it
    wait_for(lambda: image_of(app, ids[0]).status_int == 404, 10,
             "the oldest backup rotated out")
    assert [image_of(app, i).status_int for i in ids[1:]] == [200, 200]
    # rotation 0: all backups of the type go, the new one too
    resp = act(app, sid, {"createBackup": {
        "name": "b", "backup_type": "daily", "rotation": 0}})
    assert resp.status_int == 202 and "Location" not in resp.headers
    idle(db, sid, states.ACTIVE)
    fx.wait_for_row(db, sid, lambda r: not [
        i for i in catalog.image_list(db)
        if (i["properties"] or {}).get("backup_type") == "daily"])


def test_shelve_offload_unshelve_keeps_data_and_ports(env):
    db, service, app = env
    service.manager.shelved_offload_time = -1
    sid = boot(app, db)
    counted = used(app)
    assert counted == (1, 1, 512)
    guest(service, sid)["files"] = {"/data": "kept"}
    assert act(app, sid, {"shelve": None}).status_int == 202
    row = idle(db, sid, states.SHELVED)
    assert row["host"] == "host-a"
    assert call(app, "GET", f"/v2.1/servers/{sid}").json["server"][
        "status"] == "SHELVED"
    shelved = shelve.shelved_image(db, row)
    assert shelved["name"] == "vm-shelved" and shelved["status"] == "active"
    # members may not offload; an admin may
    assert act(app, sid, {"shelveOffload": None}).status_int == 403
    assert act(app, sid, {"shelveOffload": None},
               token="admin:admin").status_int == 202
    row = idle(db, sid, states.SHELVED_OFFLOADED)
    assert row["host"] is None and sid not in service.manager.driver._instances
    # an offloaded server still counts, once (Nova counts it too), but
    # claims nothing on any host
    assert used(app) == counted
    assert instances.usage_by_host(db).get("host-a", {}).get(
        "instances", 0) == 0
    assert act(app, sid, {"shelve": None}).status_int == 409
    assert act(app, sid, {"unshelve": None}).status_int == 202
    row = idle(db, sid, states.ACTIVE)
    assert row["host"] == "host-a"
    assert guest(service, sid)["files"] == {"/data": "kept"}
    assert used(app) == counted
    # the shelved image is gone, the server shows its own image again
    fx.wait_for_row(db, sid, lambda r: shelve.shelved_image(db, r) is None)
    assert row["image_ref"] != shelved["id"]
    assert [a["action"] for a in
            call(app, "GET", f"/v2.1/servers/{sid}/os-instance-actions")
            .json["instanceActions"]][:3] == ["unshelve", "shelveOffload",
                                              "shelve"]


def test_shelve_with_offload_time_zero_offloads_at_once(env):
    db, service, app = env
    service.manager.shelved_offload_time = 0
    sid = boot(app, db)
    assert act(app, sid, {"os-stop": None}).status_int == 202
    idle(db, sid, states.STOPPED)
    assert act(app, sid, {"shelve": None}).status_int == 202
    row = idle(db, sid, states.SHELVED_OFFLOADED)
    assert row["host"] is None
    assert act(app, sid, {"unshelve": {"availability_zone": "nova"}},
               version="2.77").status_int == 202
    idle(db, sid, states.ACTIVE)


def test_periodic_offload(env):
    db, service, app = env
    service.manager.shelved_offload_time = 3600
    sid = boot(app, db)
    act(app, sid, {"shelve": None})
    idle(db, sid, states.SHELVED)
    assert shelve.offload_due(service.manager) == 0
    service.manager.shelved_offload_time = 1
    time.sleep(1.2)
    # due now: offloaded by this call or by the service's own periodic
    # run of the same task (its report interval), once either way
    offloads = []

    def offloaded():
        offloads.append(shelve.offload_due(service.manager))
        row = instances.get(db, sid)
        return row["vm_state"] == states.SHELVED_OFFLOADED and \
            row["task_state"] is None and row
    assert wait_for(offloaded, 10.0, "the offload")["host"] is None
    assert sum(offloads) <= 1


def test_restart_mid_snapshot_and_mid_shelve_settles(env):
    db, service, app = env
    sid = boot(app, db)
    for task, vm_state in ((states.IMAGE_UPLOADING, states.ACTIVE),
                           (states.SHELVING_IMAGE_UPLOADING,
                            states.ACTIVE)):
        row = instances.get(db, sid)
        image = catalog.image_create(db, {
            "id": f"00000000-0000-0000-0000-00000000000{len(task) % 9}",
            "name": "half", "status": "saving", "owner": "p1",
            "properties": {"instance_uuid": sid}})
        instances.update(db, sid, {"task_state": task})
        if task == states.SHELVING_IMAGE_UPLOADING:
            service.manager.driver.power_off(service.manager.spec(row))
        recovery.recover_host(service.manager)
        row = idle(db, sid, vm_state)
        assert row["power_state"] == states.RUNNING
        assert image["id"] not in [i["id"] for i in catalog.image_list(db)]


def test_unshelve_onto_another_host_as_admin(env, tmp_path):
    db, service, app = env
    service.manager.shelved_offload_time = 0
    other = fx.start_compute(fx.make_conf(), db, "host-b",
                             f"fake://{tmp_path.name}/")
    try:
        other.manager.image_dir = service.manager.image_dir
        sid = boot(app, db)
        guest(service, sid)["files"] = {"/data": "moved"}
        act(app, sid, {"shelve": None})
        idle(db, sid, states.SHELVED_OFFLOADED)
        # a member may not name a host; 2.91 is needed for it at all
        assert act(app, sid, {"unshelve": {"host": "host-b"}},
                   version="2.91").status_int == 403
        assert act(app, sid, {"unshelve": {"host": "host-b"}},
                   token="admin:admin", version="2.90").status_int == 400
        assert act(app, sid, {"unshelve": {"host": "host-b"}},
                   token="admin:admin", version="2.91").status_int == 202
        row = idle(db, sid, states.ACTIVE)
        assert row["host"] == "host-b"
        assert other.manager.driver._instances[sid]["files"] == {
            "/data": "moved"}
    finally:
        other.stop()


def test_deleting_a_shelved_server_deletes_its_image(env):
    db, service, app = env
    service.manager.shelved_offload_time = 0
    sid = boot(app, db)
    act(app, sid, {"shelve": None})
    row = idle(db, sid, states.SHELVED_OFFLOADED)
    image = shelve.shelved_image(db, row)
    assert image is not None
    assert call(app, "DELETE", f"/v2.1/servers/{sid}").status_int == 204
    fx.wait_for_row(db, sid, lambda r: r["deleted"])
    assert image_of(app, image["id"]).status_int == 404


def test_unshelve_with_no_host_is_accepted_and_leaves_it_offloaded(env):
    """Nova's answer when nothing can take the server: 202, the server
    stays SHELVED_OFFLOADED with no task, the action's schedule_instances
    event failed; once a host is back, unshelve works."""
    db, service, app = env
    service.manager.shelved_offload_time = 0
    sid = boot(app, db)
    act(app, sid, {"shelve": None})
    idle(db, sid, states.SHELVED_OFFLOADED)
    services.service_set_disabled(db, "host-a", "pyct-compute", True)
    assert act(app, sid, {"unshelve": None}).status_int == 202
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"], row["host"]) == (
        states.SHELVED_OFFLOADED, None, None)
    assert events(db, sid, "unshelve") == [("schedule_instances", "Error")]
    services.service_set_disabled(db, "host-a", "pyct-compute", False)
    assert act(app, sid, {"unshelve": None}).status_int == 202
    assert idle(db, sid, states.ACTIVE)["host"] == "host-a"
