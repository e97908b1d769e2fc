"""Evacuate at the API: only an admin, only off a host that is down, to
a host that is up with room; Nova's bodies per microversion; a refused
request changes nothing (row, migrations, actions, casts)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.db import instances, models, services
from pyct_driver.db.models_hosts import Migration
from tests.unit.test_api_app import Harness

ADMIN = "admin:adminproj"


@pytest.fixture
def h():
    h = Harness()
    h.add_host("node1")
    h.sid = h.boot()["id"]  # the scheduler's only host: node1
    h.add_host("node2")
    instances.update(h.db, h.sid, {"vm_state": states.ACTIVE,
                                   "task_state": None, "power_state": 1})
    h.compute.calls.clear()
    return h


def down(h, host="node1") -> None:
    services.service_update(h.db, {"forced_down": True}, host=host,
                            binary="pyct-compute")


def act(h, args, version="2.1", token=ADMIN):
    return h.request("POST", f"/v2.1/servers/{h.sid}/action",
                     {"evacuate": args}, token=token, version=version)


def state(h) -> tuple:
    with h.db.engine.connect() as conn:
        migs = conn.execute(sa.select(Migration.migration_type,
                                      Migration.status)).all()
        acts = conn.execute(sa.select(models.InstanceAction.action)).all()
    return (instances.get(h.db, h.sid), migs, acts, list(h.compute.calls))


def refused(h, args, status, fault, **kw) -> str:
    before = state(h)
    resp = act(h, args, **kw)
    assert resp.status_int == status, resp.text
    assert list(resp.json) == [fault]
    assert state(h) == before
    return resp.json[fault]["message"]


def test_evacuates_to_the_scheduled_host(h):
    down(h)
    resp = act(h, {"onSharedStorage": False, "adminPass": "pw"})
    assert resp.status_int == 200, resp.text
    assert resp.json == {"adminPass": "pw"}
    inst = instances.get(h.db, h.sid)
    assert (inst["host"], inst["task_state"]) == ("node2", "rebuilding")
    mig = state(h)[1]
    assert mig == [("evacuation", "accepted")]
    name, host, uuid, kwargs = h.compute.calls[0]
    assert (name, host, uuid) == ("evacuate_instance", "node2", h.sid)
    assert kwargs["vm_state"] == states.ACTIVE
    listed = h.admin("GET", "/v2.1/os-migrations",
                     version="2.23").json["migrations"]
    assert listed[0]["migration_type"] == "evacuation"
    assert (listed[0]["source_compute"], listed[0]["dest_compute"]) == (
        "node1", "node2")
    acts = h.admin("GET", f"/v2.1/servers/{h.sid}/os-instance-actions")
    assert acts.json["instanceActions"][0]["action"] == "evacuate"


@pytest.mark.parametrize("version,before,settles", [
    ("2.14", states.ACTIVE, states.ACTIVE),
    ("2.94", states.STOPPED, states.STOPPED),
    ("2.95", states.ACTIVE, states.STOPPED)])
def test_microversions(h, version, before, settles):
    instances.update(h.db, h.sid, {"vm_state": before})
    down(h)
    resp = act(h, {"host": "node2"}, version=version)
    assert resp.status_int == 200 and not resp.body, resp.text
    assert h.compute.calls[0][3]["vm_state"] == settles


def test_a_stale_heartbeat_is_down_too(h):
    with h.db.session() as session:
        session.execute(sa.update(models.Service).where(
            models.Service.host == "node1").values(
            last_seen_up=models.utcnow() - __import__(
                "datetime").timedelta(hours=1)))
    assert act(h, {}, version="2.14").status_int == 200


def test_refused_while_the_host_is_up(h):
    msg = refused(h, {"host": "node2"}, 400, "badRequest", version="2.14")
    assert msg == "Compute service of node1 is still in use."


def test_bad_inputs_change_nothing(h):
    down(h)
    assert refused(h, {"host": "node2"}, 403, "forbidden",
                   version="2.14", token="alice:p1")
    assert refused(h, {"host": "nowhere"}, 404, "itemNotFound",
                   version="2.14") == "Compute host nowhere not found."
    assert refused(h, {"host": "node1"}, 400, "badRequest",
                   version="2.14") == "The target host can't be the " \
                                      "same one."
    refused(h, {"host": "node2", "onSharedStorage": True}, 400,
            "badRequest", version="2.14")  # gone in 2.14
    assert "share no storage" in refused(
        h, {"onSharedStorage": True}, 400, "badRequest")
    refused(h, {}, 400, "badRequest")  # onSharedStorage required < 2.14
    refused(h, {"host": "node2", "force": True}, 400, "badRequest",
            version="2.68")
    refused(h, {"host": ""}, 400, "badRequest", version="2.14")
    services.service_update(h.db, {"disabled": True}, host="node2",
                            binary="pyct-compute")
    assert "No valid host" in refused(h, {}, 400, "badRequest",
                                      version="2.14")


@pytest.mark.parametrize("values", [
    {"vm_state": states.PAUSED}, {"task_state": states.REBOOTING}])
def test_wrong_state_is_409(h, values):
    instances.update(h.db, h.sid, values)
    down(h)
    assert refused(h, {}, 409, "conflictingRequest",
                   version="2.14").startswith(
        f"Cannot 'evacuate' instance {h.sid}")


def test_no_room_on_the_target(h):
    down(h)
    with h.db.session() as session:
        session.execute(sa.update(models.ComputeNode).where(
            models.ComputeNode.host == "node2").values(memory_mb=100))
    assert "No valid host was found on host node2" in refused(
        h, {"host": "node2"}, 400, "badRequest", version="2.14")
    # forced (2.29-2.67): the scheduler's room check is skipped
    assert act(h, {"host": "node2", "force": True},
               version="2.29").status_int == 200
