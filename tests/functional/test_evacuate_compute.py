"""Evacuation through the in-process pipeline (API → fake bus → two
compute services with fake drivers): the dead host's server is rebuilt
on the other with its ports, the evacuation is recorded, and the dead
host's compute service, started again with the guest it still had,
destroys that copy and nothing else. The kernel side:
tests/privileged/test_evacuate_hosts.py."""

from __future__ import annotations

import pytest

from pyct_driver import states
from pyct_driver.compute import evacuate, recovery
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import actions, catalog, evacuations, instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import port_batch
from pyct_driver.db import services as db_services
from tests.functional import compute_fixtures as fx
from tests.functional.test_resize_rebuild import act, call

ADMIN = "admin:adminproj"


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as (db, service_a, app):
        conf = fx.make_conf()
        service_b = None
        try:
            net = db_networks.create_network(
                db, "p1", "n", db_networks.IpamSettings(
                    pool_cidr="10.246.0.0/16"), list)
            image = catalog.image_list(db)[0]
            resp = call(app, "POST", "/v2.1/servers", {"server": {
                "name": "vm", "imageRef": image["id"], "flavorRef": "1",
                "metadata": {"k": "v"}, "user_data": "aGk=",
                "networks": [{"uuid": net["id"]}]}})
            assert resp.status_int == 202, resp.text
            sid = resp.json["server"]["id"]  # on host-a, the only host
            fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
            service_b = fx.start_compute(conf, db, "host-b",
                                         f"fake://{tmp_path.name}/")
            yield db, service_a, service_b, app, sid
        finally:
            if service_b is not None:
                service_b.stop()


def _ports(db, sid) -> list:
    return [(p["id"], p["mac_address"], p["ip_address"])
            for p in port_batch.ports_by_instance(db, [sid])[sid]]


def kill_a(db, service_a) -> None:
    """host-a's service dies (its guests stay) and is forced down."""
    service_a.stop()
    db_services.service_update(db, {"forced_down": True}, host="host-a",
                               binary="pyct-compute")


def evacuated(db, sid, vm_state="active") -> dict:
    return fx.wait_for_row(db, sid, lambda r: r["host"] == "host-b" and
                           r["vm_state"] == vm_state and
                           r["task_state"] is None)


def test_evacuate_then_the_dead_host_returns(env):
    db, service_a, service_b, app, sid = env
    ports = _ports(db, sid)
    assert ports
    before = instances.get(db, sid)
    # refused while host-a is up
    resp = act(app, sid, {"evacuate": {}}, token=ADMIN, version="2.14")
    assert resp.status_int == 400
    kill_a(db, service_a)
    resp = act(app, sid, {"evacuate": {}}, token=ADMIN, version="2.14")
    assert resp.status_int == 200, resp.text
    row = evacuated(db, sid)
    for key in ("name", "key_name", "metadata", "user_data", "flavor",
                "image_ref", "hostname"):
        assert row[key] == before[key], key
    assert _ports(db, sid) == ports
    driver_a, driver_b = service_a.manager.driver, service_b.manager.driver
    assert sid in driver_b.list_instances()
    assert sid in driver_a.list_instances()  # the dead host's copy
    [mig] = evacuations.left_on(db, "host-a")
    assert (mig["status"], mig["dest_compute"]) == ("done", "host-b")
    [evac] = [a for a in actions.action_list(db, sid)
              if a["action"] == "evacuate"]
    full = actions.action_get(db, sid, evac["request_id"])
    assert [(e["event"], e["result"]) for e in full["events"]] == [
        ("compute_rebuild_instance", "Success")]
    # host-a's service starts again with the guest it still has
    db_services.service_update(db, {"forced_down": False}, host="host-a",
                               binary="pyct-compute")
    manager = ComputeManager(db, driver_a, "host-a", shutdown_timeout=1)
    recovery.recover_host(manager)
    assert sid not in driver_a.list_instances()
    assert sid in driver_b.list_instances()
    assert evacuations.left_on(db, "host-a") == []
    assert instances.get(db, sid)["host"] == "host-b"
    assert instances.get(db, sid)["vm_state"] == states.ACTIVE


def test_stopped_at_295_and_a_server_given_back_is_kept(env):
    db, service_a, service_b, app, sid = env
    kill_a(db, service_a)
    resp = act(app, sid, {"evacuate": {"host": "host-b"}}, token=ADMIN,
               version="2.95")
    assert resp.status_int == 200, resp.text
    evacuated(db, sid, states.STOPPED)
    # say the database gives the server back to host-a: host-a's start
    # must leave its guest alone
    instances.update(db, sid, {"host": "host-a"})
    manager = ComputeManager(db, service_a.manager.driver, "host-a",
                             shutdown_timeout=1)
    assert evacuate.destroy_evacuated(manager) == 0
    assert sid in service_a.manager.driver.list_instances()


def test_a_failed_rebuild_leaves_error_on_the_destination(env):
    db, service_a, service_b, app, sid = env
    image = instances.get(db, sid)["image_ref"]
    catalog.image_update(db, image, {"properties": {"fake_fail": "spawn"}})
    kill_a(db, service_a)
    resp = act(app, sid, {"evacuate": {}}, token=ADMIN, version="2.14")
    assert resp.status_int == 200, resp.text
    row = fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "error")
    assert row["host"] == "host-b" and row["task_state"] is None
    assert sid not in service_b.manager.driver.list_instances()
    [mig] = evacuations.left_on(db, "host-a")
    assert mig["status"] == "failed"
    server = call(app, "GET", f"/v2.1/servers/{sid}", token=ADMIN).json
    assert "injected spawn failure" in server["server"]["fault"]["message"]
