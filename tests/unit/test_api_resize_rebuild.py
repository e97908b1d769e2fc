"""Resize, confirm, revert and rebuild at the API: validation, Nova's
faults and states, and that a refused request changes nothing."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.api import flavors
from pyct_driver.db import catalog, instances, quotas
from pyct_driver.db.models_hosts import Migration
from pyct_driver.db.resize_models import FlavorChange
from tests.unit.test_api_app import Harness


@pytest.fixture
def h():
    h = Harness()
    h.add_host()
    flavors.create_flavor(h.db, "m1.big", 2, 1024, 2, flavorid="2")
    flavors.create_flavor(h.db, "nodisk", 1, 512, 0, flavorid="0disk")
    flavors.create_flavor(h.db, "secret", 2, 1024, 2, flavorid="priv",
                          is_public=False)
    h.sid = h.boot()["id"]
    instances.update(h.db, h.sid, {"vm_state": states.ACTIVE,
                                   "task_state": None, "power_state": 1})
    h.compute.calls.clear()
    return h


def act(h, body, version="2.1", token="alice:p1", sid=None):
    return h.request("POST", f"/v2.1/servers/{sid or h.sid}/action", body,
                     token=token, version=version)


def state(h) -> tuple:
    with h.db.engine.connect() as conn:
        changes = conn.execute(sa.select(sa.func.count()).select_from(
            FlavorChange)).scalar()
        migs = conn.execute(sa.select(sa.func.count()).select_from(
            Migration)).scalar()
    return (instances.get(h.db, h.sid), changes, migs,
            list(h.compute.calls))


def refused(h, body, status, fault, **kw) -> dict:
    before = state(h)
    resp = act(h, body, **kw)
    assert resp.status_int == status, resp.text
    assert list(resp.json) == [fault]
    assert state(h) == before
    return resp.json[fault]


@pytest.mark.parametrize("body", [
    {"resize": None}, {"resize": {}}, {"resize": {"flavorRef": ""}},
    {"resize": {"flavorRef": ["2"]}}, {"resize": {"flavorRef": {}}},
    {"resize": {"flavorRef": "2", "frob": 1}},
    {"resize": {"flavorRef": "2", "OS-DCF:diskConfig": "SOMETIMES"}},
    {"resize": "2"}, {"confirmResize": {}}, {"revertResize": 1},
    {"resize": {"flavorRef": "2"}, "rebuild": {}}])
def test_malformed_bodies_are_400_and_change_nothing(h, body):
    refused(h, body, 400, "badRequest")


@pytest.mark.parametrize("ref,message", [
    ("nope", "Flavor nope could not be found."),
    ("-1", "Flavor -1 could not be found."),
    ("priv", "Flavor priv could not be found."),  # not given to p1
    ("1", "When resizing, instances must change flavor!"),
    ("0disk", "Resize to zero disk flavor is not allowed.")])
def test_flavor_checks_are_novas_400s(h, ref, message):
    assert message in refused(h, {"resize": {"flavorRef": ref}}, 400,
                              "badRequest")["message"]


def test_disabled_flavor_is_not_found(h):
    catalog.flavor_update(h.db, "2", {"disabled": True})
    refused(h, {"resize": {"flavorRef": "2"}}, 400, "badRequest")


def test_growth_over_quota_is_403(h):
    quotas.project_set(h.db, "p1", None, {"cores": 1})
    fault = refused(h, {"resize": {"flavorRef": "2"}}, 403, "forbidden")
    assert fault["message"] == ("Quota exceeded for cores: Requested 1, "
                                "but already used 1 of 1 cores")


def test_other_projects_server_is_404(h):
    refused(h, {"resize": {"flavorRef": "2"}}, 404, "itemNotFound",
            token="bob:p2")
    refused(h, {"rebuild": {"imageRef": h.image["id"]}}, 404,
            "itemNotFound", token="bob:p2")


@pytest.mark.parametrize("vm_state,task_state", [
    (states.PAUSED, None), (states.ACTIVE, states.REBOOTING),
    (states.ERROR, None), (states.RESIZED, None)])
def test_resize_from_a_wrong_state_is_409(h, vm_state, task_state):
    instances.update(h.db, h.sid, {"vm_state": vm_state,
                                   "task_state": task_state})
    refused(h, {"resize": {"flavorRef": "2"}}, 409, "conflictingRequest")


def test_resize_records_action_migration_and_casts(h):
    assert act(h, {"resize": {"flavorRef": "2"}}).status_int == 202
    inst, changes, migs, calls = state(h)
    assert inst["task_state"] == states.RESIZE_PREP
    assert inst["flavor_id"] == "1"  # the compute host switches it
    assert (changes, migs) == (1, 1)
    assert calls[0][0] == "resize_instance"
    server = h.request("GET", f"/v2.1/servers/{h.sid}").json["server"]
    assert server["status"] == "RESIZE"


def test_confirm_and_revert_need_a_finished_resize(h):
    for body in ({"confirmResize": None}, {"revertResize": None}):
        refused(h, body, 409, "conflictingRequest")
    # VERIFY_RESIZE with no resize row left: Nova's 400
    instances.update(h.db, h.sid, {"vm_state": states.RESIZED})
    for body in ({"confirmResize": None}, {"revertResize": None}):
        fault = refused(h, body, 400, "badRequest")
        assert fault["message"] == "Instance has not been resized."


@pytest.mark.parametrize("rebuild,version", [
    ({}, "2.1"), ({"imageRef": "not-a-uuid"}, "2.1"),
    ({"imageRef": "{image}", "frob": 1}, "2.1"),
    ({"imageRef": "{image}", "name": ""}, "2.1"),
    ({"imageRef": "{image}", "name": 5}, "2.1"),
    ({"imageRef": "{image}", "metadata": {"k": 1}}, "2.1"),
    ({"imageRef": "{image}", "preserve_ephemeral": "maybe"}, "2.1"),
    ({"imageRef": "{image}", "description": "d"}, "2.18"),
    ({"imageRef": "{image}", "key_name": "k"}, "2.53"),
    ({"imageRef": "{image}", "user_data": "eA=="}, "2.56"),
    ({"imageRef": "{image}", "user_data": "not base64!"}, "2.57"),
    ({"imageRef": "{image}", "personality": []}, "2.57"),
    ({"imageRef": "{image}", "hostname": "h"}, "2.89"),
    ({"imageRef": "{image}", "hostname": "-bad-"}, "2.90"),
    ({"imageRef": "{image}", "key_name": "nokey"}, "2.54"),
    ({"imageRef": "00000000-0000-0000-0000-000000000000"}, "2.1")])
def test_bad_rebuild_bodies_are_400(h, rebuild, version):
    body = {k: (v.replace("{image}", h.image["id"])
                if isinstance(v, str) else v) for k, v in rebuild.items()}
    refused(h, {"rebuild": body}, 400, "badRequest", version=version)


def test_rebuild_metadata_over_quota_is_403(h):
    quotas.project_set(h.db, "p1", None, {"metadata_items": 1})
    refused(h, {"rebuild": {"imageRef": h.image["id"],
                            "metadata": {"a": "1", "b": "2"}}},
            403, "forbidden")


def test_rebuild_in_a_wrong_state_is_409(h):
    instances.update(h.db, h.sid, {"vm_state": states.PAUSED})
    refused(h, {"rebuild": {"imageRef": h.image["id"]}}, 409,
            "conflictingRequest")


def test_rebuild_writes_the_new_values_and_answers_per_microversion(h):
    user_data = base64.b64encode(b"#!/bin/sh\n").decode()
    resp = act(h, {"rebuild": {
        "imageRef": h.image["id"], "name": "n2", "metadata": {"m": "v"},
        "description": "new", "user_data": user_data, "key_name": None,
        "hostname": "host2"}}, version="2.90")
    assert resp.status_int == 202, resp.text
    server = resp.json["server"]
    assert server["status"] == "REBUILD" and len(server["adminPass"]) == 12
    assert server["OS-EXT-STS:task_state"] == states.REBUILDING
    inst = instances.get(h.db, h.sid)
    assert (inst["name"], inst["metadata"], inst["description"],
            inst["user_data"], inst["key_name"], inst["hostname"]) == (
        "n2", {"m": "v"}, "new", user_data, None, "host2")
    assert h.compute.calls[-1][0] == "rebuild_instance"
    instances.update(h.db, h.sid, {"task_state": None})
    old = act(h, {"rebuild": {"imageRef": h.image["id"],
                              "adminPass": "pw"}}, version="2.74")
    assert old.status_int == 202
    body = old.json["server"]
    assert body["adminPass"] == "pw"
    assert not any(k.startswith("OS-EXT-STS") for k in body)
