"""Locks (2.73 reasons, the owner/admin rule, a locked server refusing a
member's actions but not an admin's), server metadata (Nova's limits and
faults, nothing changed on bad input), changePassword, os-server-password,
trigger_crash_dump, /ips and diagnostics through the API with the
recording fake compute."""

from __future__ import annotations

import pytest

from pyct_driver import states
from pyct_driver.db import instances as db_instances
from pyct_driver.db import locks as db_locks
from tests.unit.test_api_app import Harness

V = "2.96"
ADMIN = "admin:adminproj"


@pytest.fixture()
def h():
    h = Harness()
    h.add_host("node1")
    return h


def _active(h: Harness, token: str = "alice:p1", **extra) -> str:
    sid = h.boot("vm", token=token, version=V, **extra)["id"]
    db_instances.update(h.db, sid, {"vm_state": states.ACTIVE,
                                    "task_state": None})
    return sid


def _act(h, sid, body, token="alice:p1", version=V):
    return h.request("POST", f"/v2.1/servers/{sid}/action", body,
                     token=token, version=version)


def _fault(resp) -> tuple[str, dict]:
    return next(iter(resp.json.items()))


def test_lock_refuses_members_not_admins_and_shows_reason(h):
    sid = _active(h)
    assert _act(h, sid, {"lock": {"locked_reason": "maint"}}).status_int \
        == 202
    server = h.request("GET", f"/v2.1/servers/{sid}", version=V).json[
        "server"]
    assert server["locked"] is True and server["locked_reason"] == "maint"
    listed = h.request("GET", "/v2.1/servers/detail?locked=true",
                       version=V).json["servers"]
    assert [s["id"] for s in listed] == [sid]
    assert listed[0]["locked_reason"] == "maint"
    calls = len(h.compute.calls)
    for body in ({"os-stop": None}, {"reboot": {"type": "HARD"}},
                 {"changePassword": {"adminPass": "x"}},
                 {"resize": {"flavorRef": "2"}}, {"revertResize": None},
                 {"rebuild": {"imageRef": h.image["id"]}}):
        resp = _act(h, sid, body)
        assert resp.status_int == 409, body
        name, fault = _fault(resp)
        assert name == "conflictingRequest"
        assert fault["message"] == f"Instance {sid} is locked"
    resp = h.request("PUT", f"/v2.1/servers/{sid}/metadata/k",
                     {"meta": {"k": "v"}}, version=V)
    assert resp.status_int == 409
    assert h.request("DELETE", f"/v2.1/servers/{sid}",
                     version=V).status_int == 409
    resp = h.request("POST", f"/v2.1/servers/{sid}/os-interface",
                     {"interfaceAttachment": {}}, version=V)
    assert resp.status_int == 409
    assert len(h.compute.calls) == calls
    inst = db_instances.get(h.db, sid)
    assert inst["task_state"] is None and inst["metadata"] == {}
    # an admin is not held back by the lock
    assert _act(h, sid, {"os-stop": None}, token=ADMIN).status_int == 202
    assert h.compute.calls[-1][0] == "stop_instance"


def test_unlock_of_an_admins_lock_needs_the_override(h):
    sid = _active(h)
    assert _act(h, sid, {"lock": None}, token=ADMIN).status_int == 202
    assert db_locks.by_instance(h.db, [sid])[sid]["locked_by"] == "admin"
    resp = _act(h, sid, {"unlock": None})
    assert resp.status_int == 403
    assert db_instances.get(h.db, sid)["locked"] is True
    assert _act(h, sid, {"unlock": None}, token=ADMIN).status_int == 202
    assert db_instances.get(h.db, sid)["locked"] is False
    # the owner's own lock: the owner unlocks it
    assert _act(h, sid, {"lock": None}).status_int == 202
    assert _act(h, sid, {"unlock": None}).status_int == 202
    assert db_locks.by_instance(h.db, [sid]) == {}
    actions = [a["action"] for a in h.request(
        "GET", f"/v2.1/servers/{sid}/os-instance-actions",
        version=V).json["instanceActions"]]
    assert actions.count("lock") == 2 and actions.count("unlock") == 2


def test_lock_bad_input(h):
    sid = _active(h)
    for body, version in (({"lock": {"locked_reason": "x" * 256}}, V),
                          ({"lock": {"locked_reason": 5}}, V),
                          ({"lock": {"other": "x"}}, V),
                          ({"lock": {"locked_reason": ""}}, V),
                          ({"lock": None, "unlock": None}, V),
                          ({"lock": [1]}, V)):
        resp = _act(h, sid, body, version=version)
        assert resp.status_int == 400, body
        assert _fault(resp)[0] == "badRequest"
    assert db_instances.get(h.db, sid)["locked"] is False
    # before 2.73 Nova takes any value and no reason
    assert _act(h, sid, {"lock": {"locked_reason": "x"}},
                version="2.72").status_int == 202
    assert db_locks.by_instance(h.db, [sid])[sid]["reason"] is None
    assert _act(h, sid, {"unlock": {"x": 1}}).status_int == 202
    assert _act(h, "nosuch", {"lock": None}).status_int == 404
    assert _act(h, sid, {"lock": None}, token="bob:p2").status_int == 404
    assert db_instances.get(h.db, sid)["locked"] is False


def test_metadata_lifecycle(h):
    sid = _active(h, metadata={"a": "1"})
    url = f"/v2.1/servers/{sid}/metadata"
    assert h.request("GET", url).json == {"metadata": {"a": "1"}}
    resp = h.request("POST", url, {"metadata": {"b": "2"}})
    assert resp.status_int == 200
    assert resp.json == {"metadata": {"a": "1", "b": "2"}}
    resp = h.request("PUT", url, {"metadata": {"c": "3"}})
    assert resp.json == {"metadata": {"c": "3"}}
    resp = h.request("PUT", url + "/d", {"meta": {"d": "4"}})
    assert resp.status_int == 200 and resp.json == {"meta": {"d": "4"}}
    assert h.request("GET", url + "/d").json == {"meta": {"d": "4"}}
    assert h.request("DELETE", url + "/c").status_int == 204
    resp = h.request("GET", url + "/c")
    assert resp.status_int == 404
    assert _fault(resp)[1]["message"] == "Metadata item was not found"
    assert h.request("DELETE", url + "/c").status_int == 404
    server = h.request("GET", f"/v2.1/servers/{sid}").json["server"]
    assert server["metadata"] == {"d": "4"}


def test_metadata_bad_input_changes_nothing(h):
    sid = _active(h, metadata={"keep": "me"})
    url = f"/v2.1/servers/{sid}/metadata"
    for method, path, body in (
            ("POST", url, {"metadata": {"": "x"}}),
            ("POST", url, {"metadata": {"k" * 256: "x"}}),
            ("POST", url, {"metadata": {"k": "v" * 256}}),
            ("POST", url, {"metadata": {"k": 5}}),
            ("POST", url, {"metadata": ["k"]}),
            ("POST", url, {"meta": {"k": "v"}}),
            ("PUT", url, {"metadata": {"k/x": "v"}}),
            ("PUT", url, {"metadata": {"k": "v"}, "x": 1}),
            ("PUT", url + "/k", {"meta": {"other": "v"}}),
            ("PUT", url + "/k", {"meta": {"k": "v", "j": "w"}}),
            ("PUT", url + "/k", {"meta": {}}),
            ("PUT", url + "/k", {"meta": {"k": None}})):
        resp = h.request(method, path, body)
        assert resp.status_int == 400, (method, path, body)
        assert _fault(resp)[0] == "badRequest"
    resp = h.request("PUT", url + "/k", {"meta": {"other": "v"}})
    assert _fault(resp)[1]["message"] == "Request body and URI mismatch"
    resp = h.request("PUT", url + "/k", {"meta": {"k": "v", "j": "w"}})
    assert _fault(resp)[1]["message"] == \
        "Request body contains too many items"
    assert h.request("POST", url, raw=b"{bad").status_int == 400
    assert h.request("POST", url, {"metadata": {"k": "v"}},
                     token="bob:p2").status_int == 404
    assert db_instances.get(h.db, sid)["metadata"] == {"keep": "me"}


def test_metadata_quota_and_state(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/metadata"
    h.admin("PUT", "/v2.1/os-quota-sets/p1",
            {"quota_set": {"metadata_items": 2}})
    assert h.request("POST", url, {"metadata": {"a": "1", "b": "2"}}
                     ).status_int == 200
    resp = h.request("POST", url, {"metadata": {"c": "3"}})
    assert resp.status_int == 403
    assert _fault(resp)[1]["message"] == \
        "Maximum number of metadata items exceeds 2"
    # replacing stays within the limit
    assert h.request("PUT", url, {"metadata": {"c": "3"}}).status_int == 200
    db_instances.update(h.db, sid, {"task_state": states.REBOOTING})
    resp = h.request("PUT", url + "/d", {"meta": {"d": "4"}})
    assert resp.status_int == 409
    assert db_instances.get(h.db, sid)["metadata"] == {"c": "3"}


def test_change_password_casts_and_refuses_wrong_state(h):
    sid = _active(h)
    resp = _act(h, sid, {"changePassword": {"adminPass": "s3cret"}})
    assert resp.status_int == 202
    name, host, uuid, kwargs = h.compute.calls[-1]
    assert (name, host, uuid, kwargs) == (
        "set_admin_password", "node1", sid, {"new_pass": "s3cret"})
    assert db_instances.get(h.db, sid)["task_state"] is None
    calls = len(h.compute.calls)
    for body in ({"changePassword": {}}, {"changePassword": {"adminPass": 1}},
                 {"changePassword": {"adminPass": "x", "y": 1}},
                 {"changePassword": "x"}):
        assert _act(h, sid, body).status_int == 400, body
    db_instances.update(h.db, sid, {"vm_state": states.STOPPED})
    resp = _act(h, sid, {"changePassword": {"adminPass": "x"}})
    assert resp.status_int == 409
    assert _fault(resp)[0] == "conflictingRequest"
    assert len(h.compute.calls) == calls
    assert db_instances.get(h.db, sid)["task_state"] is None


def test_server_password_crash_dump_ips_diagnostics(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}"
    assert h.request("GET", url + "/os-server-password").json == \
        {"password": ""}
    assert h.request("DELETE", url + "/os-server-password").status_int == 204
    resp = _act(h, sid, {"trigger_crash_dump": None})
    assert resp.status_int == 400
    assert _fault(resp)[1]["message"] == \
        "Triggering crash dump is not supported"
    resp = _act(h, sid, {"trigger_crash_dump": None}, version="2.16")
    assert resp.status_int == 400
    db_instances.update(h.db, sid, {"vm_state": states.STOPPED})
    resp = _act(h, sid, {"trigger_crash_dump": None})
    assert resp.status_int == 409
    db_instances.update(h.db, sid, {"vm_state": states.ACTIVE})
    assert h.request("GET", url + "/ips").json == {"addresses": {}}
    resp = h.request("GET", url + "/ips/nosuch")
    assert resp.status_int == 404
    resp = h.request("GET", url + "/diagnostics", token=ADMIN,
                     version="2.48")
    assert resp.status_int == 200
    assert resp.json["cpu_details"][0]["time"] == 5
    assert h.compute.calls[-1][:3] == ("get_diagnostics", "node1", sid)
    assert h.request("GET", url + "/diagnostics").status_int == 403
