"""os-services through the WSGI app: bodies per microversion, disable,
enable, force down, delete, bad input, and the scheduler skipping the
hosts an operator took out."""

from __future__ import annotations

import pytest

from pyct_driver import states
from pyct_driver.api import microversion
from pyct_driver.db import aggregates as db_aggregates
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services
from tests.unit.test_api_app import Harness

V21 = {"binary", "host", "id", "zone", "status", "state", "updated_at",
       "disabled_reason"}


@pytest.fixture(autouse=True)
def _all_versions(monkeypatch):
    # the advertised maximum is raised elsewhere; these routes are exact
    # up to 2.96 already
    monkeypatch.setattr(microversion, "MAX_VERSION", (2, 96))


def _two_hosts() -> Harness:
    h = Harness()
    h.add_host("node1")
    h.add_host("node2")
    return h


def _svc(h: Harness, host: str) -> dict:
    return next(s for s in db_services.service_list(h.db)
                if s["host"] == host)


@pytest.mark.parametrize("version,keys,id_type", [
    ("2.1", V21, int), ("2.10", V21, int),
    ("2.11", V21 | {"forced_down"}, int),
    ("2.52", V21 | {"forced_down"}, int),
    ("2.53", V21 | {"forced_down"}, str),
    ("2.69", V21 | {"forced_down"}, str),
    ("2.96", V21 | {"forced_down"}, str)])
def test_list_body_per_microversion(version, keys, id_type):
    h = _two_hosts()
    resp = h.admin("GET", "/v2.1/os-services", version=version)
    assert resp.status_int == 200
    services = resp.json["services"]
    assert [s["host"] for s in services] == ["node1", "node2"]
    for svc in services:
        assert set(svc) == keys
        assert isinstance(svc["id"], id_type)
        assert (svc["binary"], svc["zone"], svc["status"], svc["state"]) \
            == ("nova-compute", "nova", "enabled", "up")
    if id_type is str:
        assert services[0]["id"] == _svc(h, "node1")["uuid"]


def test_list_filters_host_and_binary():
    h = _two_hosts()
    db_services.heartbeat(h.db, "node1", "pyct-other", "t")
    hosts = h.admin("GET", "/v2.1/os-services?host=node2").json["services"]
    assert [s["host"] for s in hosts] == ["node2"]
    for binary in ("nova-compute", "pyct-compute"):
        found = h.admin("GET", f"/v2.1/os-services?binary={binary}"
                        ).json["services"]
        assert [s["host"] for s in found] == ["node1", "node2"]
    other = h.admin("GET", "/v2.1/os-services?binary=pyct-other"
                    ).json["services"]
    assert [(s["binary"], s["zone"]) for s in other] == [
        ("pyct-other", "internal")]
    assert h.admin("GET", "/v2.1/os-services?host=nope").json == {
        "services": []}


def test_unknown_query_parameters_refused_from_275():
    h = _two_hosts()
    assert h.admin("GET", "/v2.1/os-services?frob=1",
                   version="2.74").status_int == 200
    resp = h.admin("GET", "/v2.1/os-services?frob=1", version="2.75")
    assert resp.status_int == 400
    assert "frob" in resp.json["badRequest"]["message"]


def test_members_may_not_list_or_change_services():
    h = _two_hosts()
    before = db_services.service_list(h.db)
    assert h.request("GET", "/v2.1/os-services").status_int == 403
    resp = h.request("PUT", "/v2.1/os-services/disable",
                     {"host": "node1", "binary": "nova-compute"})
    assert resp.status_int == 403
    assert "forbidden" in resp.json
    uuid = _svc(h, "node1")["uuid"]
    assert h.request("PUT", f"/v2.1/os-services/{uuid}",
                     {"status": "disabled"},
                     version="2.53").status_int == 403
    assert h.request("DELETE", "/v2.1/os-services/1").status_int == 403
    assert db_services.service_list(h.db) == before


def test_disable_enable_before_253():
    h = _two_hosts()
    body = {"host": "node1", "binary": "nova-compute"}
    resp = h.admin("PUT", "/v2.1/os-services/disable", body)
    assert resp.status_int == 200
    assert resp.json == {"service": dict(body, status="disabled")}
    assert _svc(h, "node1")["disabled"]
    resp = h.admin("PUT", "/v2.1/os-services/disable-log-reason",
                   dict(body, disabled_reason="maintenance"))
    assert resp.json == {"service": dict(body, status="disabled",
                                         disabled_reason="maintenance")}
    listed = h.admin("GET", "/v2.1/os-services?host=node1").json
    assert listed["services"][0]["status"] == "disabled"
    assert listed["services"][0]["disabled_reason"] == "maintenance"
    resp = h.admin("PUT", "/v2.1/os-services/enable", body)
    assert resp.json == {"service": dict(body, status="enabled")}
    svc = _svc(h, "node1")
    assert (svc["disabled"], svc["disabled_reason"]) == (False, None)


@pytest.mark.parametrize("path,body,version,code,message", [
    ("disable-log-reason", {"host": "node1", "binary": "nova-compute"},
     "2.1", 400, "Missing disabled reason field"),
    ("frob", {"host": "node1", "binary": "nova-compute"}, "2.1", 404,
     "Unknown action"),
    ("force-down", {"host": "node1", "binary": "nova-compute",
                    "forced_down": True}, "2.10", 400, "forced_down"),
    ("force-down", {"host": "node1", "binary": "nova-compute"}, "2.11",
     400, "Missing forced_down field"),
    ("disable", {"host": "node1", "binary": "nova-scheduler"}, "2.1", 400,
     "Updating a nova-scheduler service is not supported. Only "
     "nova-compute services can be updated."),
    ("disable", {"host": "nodeX", "binary": "nova-compute"}, "2.1", 404,
     "Could not find binary nova-compute on host nodeX."),
    ("disable", {"host": "node1"}, "2.1", 400, "binary"),
    ("disable", {"host": "node1", "binary": "nova-compute", "x": 1},
     "2.1", 400, "Additional properties"),
    ("disable", {"host": 7, "binary": "nova-compute"}, "2.1", 400,
     "host"),
    ("disable", {"host": "no de", "binary": "nova-compute"}, "2.1", 400,
     "host"),
    ("disable-log-reason", {"host": "node1", "binary": "nova-compute",
                            "disabled_reason": ""}, "2.1", 400,
     "disabled_reason"),
    ("force-down", {"host": "node1", "binary": "nova-compute",
                    "forced_down": "maybe"}, "2.11", 400, "forced_down"),
])
def test_bad_updates_before_253_change_nothing(path, body, version, code,
                                               message):
    h = _two_hosts()
    before = db_services.service_list(h.db)
    resp = h.admin("PUT", f"/v2.1/os-services/{path}", body,
                   version=version)
    assert resp.status_int == code, resp.text
    fault = resp.json["badRequest" if code == 400 else "itemNotFound"]
    assert fault["code"] == code and message in fault["message"]
    assert db_services.service_list(h.db) == before


def test_malformed_body_is_400():
    h = _two_hosts()
    resp = h.admin("PUT", "/v2.1/os-services/disable", raw=b"{nope")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == "Malformed request body"


def test_force_down_at_211_marks_down_and_scheduler_skips():
    h = _two_hosts()
    body = {"host": "node1", "binary": "nova-compute", "forced_down": True}
    resp = h.admin("PUT", "/v2.1/os-services/force-down", body,
                   version="2.11")
    assert resp.json == {"service": body}
    listed = h.admin("GET", "/v2.1/os-services?host=node1",
                     version="2.11").json["services"][0]
    assert (listed["state"], listed["forced_down"]) == ("down", True)
    server = h.boot()
    assert db_instances.get(h.db, server["id"])["host"] == "node2"
    assert h.admin("GET", f"/v2.1/servers/{server['id']}",
                             version="2.16").json["server"][
        "host_status"] == "UP"


def test_update_by_uuid_from_253():
    h = _two_hosts()
    uuid = _svc(h, "node1")["uuid"]
    resp = h.admin("PUT", f"/v2.1/os-services/{uuid}",
                   {"status": "disabled", "disabled_reason": "rack 4"},
                   version="2.53")
    assert resp.status_int == 200
    svc = resp.json["service"]
    assert set(svc) == V21 | {"forced_down"}
    assert (svc["id"], svc["status"], svc["disabled_reason"]) == (
        uuid, "disabled", "rack 4")
    resp = h.admin("PUT", f"/v2.1/os-services/{uuid}",
                   {"forced_down": True}, version="2.53")
    assert (resp.json["service"]["forced_down"],
            resp.json["service"]["state"]) == (True, "down")
    resp = h.admin("PUT", f"/v2.1/os-services/{uuid}",
                   {"status": "enabled", "forced_down": "false"},
                   version="2.53")
    svc = resp.json["service"]
    assert (svc["status"], svc["disabled_reason"], svc["forced_down"],
            svc["state"]) == ("enabled", None, False, "up")


@pytest.mark.parametrize("path,body,code,message", [
    ("{uuid}", {"status": "enabled", "disabled_reason": "x"}, 400,
     "Specifying 'disabled_reason' with status 'enabled' is invalid."),
    ("{uuid}", {}, 400, "No updates were requested. Fields 'status' or "
     "'forced_down' should be specified."),
    ("{uuid}", {"disabled_reason": "only"}, 400, "No updates"),
    ("{uuid}", {"status": "off"}, 400, "status"),
    ("{uuid}", {"status": "disabled", "host": "node1"}, 400,
     "Additional properties"),
    ("{uuid}", {"forced_down": "perhaps"}, 400, "forced_down"),
    ("disable", {"status": "disabled"}, 400, "Invalid uuid disable"),
    ("1", {"status": "disabled"}, 400, "Invalid uuid 1"),
    ("8a1bd3c5-1e7a-4f30-9a43-a9c5f1c5b6f0", {"status": "disabled"}, 404,
     "Service 8a1bd3c5-1e7a-4f30-9a43-a9c5f1c5b6f0 could not be found."),
])
def test_bad_updates_from_253_change_nothing(path, body, code, message):
    h = _two_hosts()
    before = db_services.service_list(h.db)
    path = path.format(uuid=_svc(h, "node1")["uuid"])
    resp = h.admin("PUT", f"/v2.1/os-services/{path}", body,
                   version="2.53")
    assert resp.status_int == code, resp.text
    fault = resp.json["badRequest" if code == 400 else "itemNotFound"]
    assert message in fault["message"]
    assert db_services.service_list(h.db) == before


def test_non_compute_service_cannot_be_updated_from_253():
    h = _two_hosts()
    other = db_services.heartbeat(h.db, "node1", "pyct-other", "t")
    resp = h.admin("PUT", f"/v2.1/os-services/{other['uuid']}",
                   {"status": "disabled"}, version="2.53")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Updating a pyct-other service is not supported. Only "
        "nova-compute services can be updated.")


def test_delete_refused_while_hosting_instances():
    h = _two_hosts()
    server = h.boot()
    host = db_instances.get(h.db, server["id"])["host"]
    svc = _svc(h, host)
    before = db_services.service_list(h.db)
    resp = h.admin("DELETE", f"/v2.1/os-services/{svc['id']}")
    assert resp.status_int == 409
    assert resp.json["conflictingRequest"]["message"] == (
        "Unable to delete compute service that is hosting instances. "
        "Migrate or delete the instances first.")
    assert db_services.service_list(h.db) == before


def test_delete_takes_node_and_aggregate_membership():
    h = _two_hosts()
    agg = db_aggregates.create(h.db, "a", None)
    db_aggregates.add_host(h.db, agg["id"], "node2")
    svc = _svc(h, "node2")
    resp = h.admin("DELETE", f"/v2.1/os-services/{svc['uuid']}",
                   version="2.53")
    assert resp.status_int == 204 and resp.body == b""
    assert [s["host"] for s in db_services.service_list(h.db)] == ["node1"]
    assert [n["host"] for n in db_services.compute_node_list(h.db)] == [
        "node1"]
    assert db_aggregates.get(h.db, agg["id"])["hosts"] == []


@pytest.mark.parametrize("path,version,code,message", [
    ("abc", "2.1", 400, "id must be an integer"),
    ("99", "2.1", 404, "Service 99 not found."),
    ("1", "2.53", 400, "Invalid uuid 1"),
    ("8a1bd3c5-1e7a-4f30-9a43-a9c5f1c5b6f0", "2.53", 404, "not found")])
def test_bad_deletes(path, version, code, message):
    h = _two_hosts()
    resp = h.admin("DELETE", f"/v2.1/os-services/{path}", version=version)
    assert resp.status_int == code
    assert message in resp.json[
        "badRequest" if code == 400 else "itemNotFound"]["message"]
    assert len(db_services.service_list(h.db)) == 2


def test_boot_lands_only_on_enabled_host():
    h = _two_hosts()
    h.admin("PUT", "/v2.1/os-services/disable",
            {"host": "node2", "binary": "nova-compute"})
    hosts = {db_instances.get(h.db, h.boot(name=f"v{i}")["id"])["host"]
             for i in range(4)}
    assert hosts == {"node1"}


def test_all_hosts_disabled_is_no_valid_host():
    h = _two_hosts()
    for host in ("node1", "node2"):
        h.admin("PUT", "/v2.1/os-services/disable",
                {"host": host, "binary": "nova-compute"})
    server = h.boot()
    inst = db_instances.get(h.db, server["id"])
    assert (inst["vm_state"], inst["host"]) == (states.ERROR, None)
    shown = h.request("GET", f"/v2.1/servers/{server['id']}").json["server"]
    assert shown["fault"]["message"].startswith("No valid host was found")
    assert h.compute.calls == []


def test_host_status_of_servers_follows_the_service():
    h = Harness()
    h.add_host("node1")
    sid = h.boot()["id"]

    def status():
        return h.admin("GET", f"/v2.1/servers/{sid}",
                       version="2.16").json["server"]["host_status"]
    assert status() == "UP"
    body = {"host": "node1", "binary": "nova-compute"}
    h.admin("PUT", "/v2.1/os-services/disable", body)
    assert status() == "MAINTENANCE"
    h.admin("PUT", "/v2.1/os-services/force-down",
            dict(body, forced_down=True), version="2.11")
    assert status() == "DOWN"
