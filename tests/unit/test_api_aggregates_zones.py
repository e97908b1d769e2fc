"""os-aggregates and os-availability-zone through the WSGI app, and
booting into a zone: Nova's bodies and zone rules, bad input leaves the
database as it was."""

from __future__ import annotations

import pytest

from pyct_driver.api import microversion
from pyct_driver.db import aggregates as db_aggregates
from pyct_driver.db import instances as db_instances
from tests.unit.test_api_app import Harness

AGG = {"availability_zone", "created_at", "deleted", "deleted_at", "id",
       "name", "updated_at", "hosts", "metadata"}


@pytest.fixture(autouse=True)
def _all_versions(monkeypatch):
    monkeypatch.setattr(microversion, "MAX_VERSION", (2, 96))


def _hosts(**overrides) -> Harness:
    h = Harness(**overrides)
    for host in ("node1", "node2", "node3"):
        h.add_host(host)
    return h


def _create(h, name="a1", zone=None, version=None) -> dict:
    body = {"name": name}
    if zone is not None:
        body["availability_zone"] = zone
    resp = h.admin("POST", "/v2.1/os-aggregates", {"aggregate": body},
                   version=version)
    assert resp.status_int == 200, resp.text
    return resp.json["aggregate"]


def _act(h, agg_id, body, **kw):
    return h.admin("POST", f"/v2.1/os-aggregates/{agg_id}/action", body,
                   **kw)


@pytest.mark.parametrize("version,uuid", [("2.1", False), ("2.40", False),
                                          ("2.41", True), ("2.96", True)])
def test_bodies_per_microversion(version, uuid):
    h = _hosts()
    made = _create(h, zone="az1", version=version)
    extra = {"uuid"} if uuid else set()
    assert set(made) == AGG - {"hosts", "metadata"} | extra
    assert (made["name"], made["availability_zone"], made["deleted"],
            made["deleted_at"]) == ("a1", "az1", False, None)
    shown = h.admin("GET", f"/v2.1/os-aggregates/{made['id']}",
                    version=version).json["aggregate"]
    assert set(shown) == AGG | extra
    assert (shown["hosts"], shown["metadata"]) == (
        [], {"availability_zone": "az1"})
    listed = h.admin("GET", "/v2.1/os-aggregates",
                     version=version).json["aggregates"]
    assert listed == [shown]


def test_hosts_metadata_update_delete():
    h = _hosts()
    agg = _create(h, zone="az1")
    resp = _act(h, agg["id"], {"add_host": {"host": "node1"}})
    assert resp.status_int == 200
    assert resp.json["aggregate"]["hosts"] == ["node1"]
    resp = _act(h, agg["id"], {"set_metadata": {"metadata": {
        "ssd": "true", "rack": "4"}}})
    assert resp.json["aggregate"]["metadata"] == {
        "availability_zone": "az1", "ssd": "true", "rack": "4"}
    resp = _act(h, agg["id"], {"set_metadata": {"metadata": {
        "ssd": None, "nope": None}}})
    assert resp.json["aggregate"]["metadata"] == {
        "availability_zone": "az1", "rack": "4"}
    assert resp.json["aggregate"]["updated_at"] is not None
    resp = h.admin("PUT", f"/v2.1/os-aggregates/{agg['id']}",
                   {"aggregate": {"name": "renamed",
                                  "availability_zone": "az2"}})
    assert resp.status_int == 200
    assert (resp.json["aggregate"]["name"],
            resp.json["aggregate"]["availability_zone"]) == ("renamed",
                                                             "az2")
    resp = h.admin("DELETE", f"/v2.1/os-aggregates/{agg['id']}")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        f"Cannot remove host from aggregate {agg['id']}. Reason: Host "
        "aggregate is not empty.")
    resp = _act(h, agg["id"], {"remove_host": {"host": "node1"}})
    assert resp.json["aggregate"]["hosts"] == []
    resp = h.admin("DELETE", f"/v2.1/os-aggregates/{agg['id']}")
    assert resp.status_int == 200 and resp.body == b""
    assert db_aggregates.list_(h.db) == []


def test_host_in_one_zone_only():
    h = _hosts()
    az1 = _create(h, "a1", "az1")
    az2 = _create(h, "a2", "az2")
    plain = _create(h, "a3")
    _act(h, az1["id"], {"add_host": {"host": "node1"}})
    resp = _act(h, az2["id"], {"add_host": {"host": "node1"}})
    assert resp.status_int == 409
    assert resp.json["conflictingRequest"]["message"] == (
        f"Cannot add host to aggregate {az2['id']}. Reason: One or more "
        "hosts already in availability zone(s) ['az1'].")
    # an aggregate without a zone takes any host; then it may not get a
    # zone its hosts are not in
    assert _act(h, plain["id"], {"add_host": {"host": "node1"}}
                ).status_int == 200
    resp = _act(h, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az2"}}})
    assert resp.status_int == 400
    assert "One or more hosts already in availability zone(s) ['az1']" \
        in resp.json["badRequest"]["message"]
    resp = h.admin("PUT", f"/v2.1/os-aggregates/{plain['id']}",
                   {"aggregate": {"availability_zone": "az2"}})
    assert resp.status_int == 400
    assert db_aggregates.get(h.db, plain["id"])["availability_zone"] is None
    assert _act(h, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az1"}}}).status_int == 200


def test_hosts_with_instances_keep_their_zone():
    h = _hosts()
    server = h.boot()
    host = db_instances.get(h.db, server["id"])["host"]
    agg = _create(h, zone="az1")
    resp = _act(h, agg["id"], {"add_host": {"host": host}})
    assert resp.status_int == 409
    assert "availability zone of the host would change from 'None' to " \
        "'az1' but the host already has 1 instance(s)" in resp.json[
        "conflictingRequest"]["message"]
    plain = _create(h, "plain")
    assert _act(h, plain["id"], {"add_host": {"host": host}}
                ).status_int == 200
    resp = _act(h, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az9"}}})
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"].endswith(
        "One or more hosts contain instances in this zone.")
    assert db_aggregates.get(h.db, agg["id"])["hosts"] == []


@pytest.mark.parametrize("method,path,body,code,message", [
    ("POST", "", {"aggregate": {}}, 400, "name"),
    ("POST", "", {"aggregate": {"name": "x", "zone": "a"}}, 400,
     "Additional properties"),
    ("POST", "", {"aggregate": {"name": 5}}, 400, "name"),
    ("POST", "", {"aggregate": {"name": " x"}}, 400, "name"),
    ("POST", "", {"aggregate": {"name": "x", "availability_zone": "a:b"}},
     400, "availability_zone"),
    ("POST", "", {"aggregate": {"name": "x", "availability_zone": ""}},
     400, "availability_zone"),
    ("POST", "", {"aggregate": {"name": "a1"}}, 409,
     "Aggregate a1 already exists."),
    ("PUT", "/{id}", {"aggregate": {}}, 400, "aggregate"),
    ("PUT", "/{id}", {"aggregate": {"name": "a2"}}, 409,
     "Aggregate a2 already exists."),
    ("PUT", "/abc", {"aggregate": {"name": "n"}}, 400,
     "id must be an integer"),
    ("PUT", "/99", {"aggregate": {"name": "n"}}, 404,
     "Aggregate 99 could not be found."),
    ("POST", "/{id}/action", {"add_host": {"host": "nodeX"}}, 404,
     "Compute host nodeX could not be found."),
    ("POST", "/{id}/action", {"add_host": {"host": "node1"}}, 409,
     "already has host node1"),
    ("POST", "/{id}/action", {"add_host": {}}, 400, "host"),
    ("POST", "/{id}/action", {"add_host": {"host": "a b"}}, 400, "host"),
    ("POST", "/{id}/action", {"remove_host": {"host": "node2"}}, 404,
     "Cannot remove host node2 in aggregate"),
    ("POST", "/{id}/action", {"remove_host": {"host": "nodeX"}}, 404,
     "Cannot remove host nodeX in aggregate"),
    ("POST", "/{id}/action", {"set_metadata": {"metadata": {"k": 1}}},
     400, "Invalid input for field/attribute k. Value: 1."),
    ("POST", "/{id}/action", {"set_metadata": {"metadata": {"k": "v"},
                                               "x": 1}}, 400,
     "Additional properties"),
    ("POST", "/{id}/action", {"set_metadata": {"metadata": "k=v"}}, 400,
     "metadata"),
    ("POST", "/{id}/action", {"set_metadata": {"metadata": {
        "availability_zone": ""}}}, 400,
     "does not support empty named availability zone"),
    ("POST", "/{id}/action", {"frob": {}}, 400,
     "There is no such action: frob"),
    ("POST", "/99/action", {"add_host": {"host": "node1"}}, 404,
     "Aggregate 99 could not be found."),
    ("DELETE", "/x", None, 400, "id must be an integer"),
    ("DELETE", "/99", None, 404, "Aggregate 99 could not be found."),
    ("GET", "/99", None, 404, "Aggregate 99 could not be found."),
])
def test_bad_input_changes_nothing(method, path, body, code, message):
    h = _hosts()
    agg = _create(h, "a1", "az1")
    _create(h, "a2")
    _act(h, agg["id"], {"add_host": {"host": "node1"}})
    before = db_aggregates.list_(h.db)
    resp = h.admin(method, f"/v2.1/os-aggregates{path}".format(
        id=agg["id"]), body)
    assert resp.status_int == code, resp.text
    name = {400: "badRequest", 404: "itemNotFound",
            409: "conflictingRequest"}[code]
    assert message in resp.json[name]["message"]
    assert db_aggregates.list_(h.db) == before


def test_malformed_body_and_members():
    h = _hosts()
    resp = h.admin("POST", "/v2.1/os-aggregates", raw=b"[")
    assert resp.status_int == 400
    for method, path, body in (
            ("GET", "", None), ("POST", "", {"aggregate": {"name": "m"}}),
            ("GET", "/1", None), ("DELETE", "/1", None),
            ("POST", "/1/action", {"add_host": {"host": "node1"}})):
        resp = h.request(method, f"/v2.1/os-aggregates{path}", body)
        assert resp.status_int == 403, (method, path)
    assert db_aggregates.list_(h.db) == []


def test_zone_list_and_detail():
    h = _hosts()
    agg = _create(h, "a1", "az1")
    _act(h, agg["id"], {"add_host": {"host": "node1"}})
    h.admin("PUT", "/v2.1/os-services/disable",
            {"host": "node3", "binary": "nova-compute"})
    # any project lists zones, without hosts
    resp = h.request("GET", "/v2.1/os-availability-zone")
    assert resp.json == {"availabilityZoneInfo": [
        {"zoneName": "az1", "zoneState": {"available": True},
         "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True},
         "hosts": None}]}
    assert h.request("GET", "/v2.1/os-availability-zone/detail"
                     ).status_int == 403
    info = h.admin("GET", "/v2.1/os-availability-zone/detail").json[
        "availabilityZoneInfo"]
    assert [z["zoneName"] for z in info] == ["az1", "nova"]
    assert set(info[0]["hosts"]) == {"node1"}
    assert set(info[1]["hosts"]) == {"node2"}   # node3 is disabled
    svc = info[0]["hosts"]["node1"]["nova-compute"]
    assert (svc["available"], svc["active"]) == (True, True)
    services = h.admin("GET", "/v2.1/os-services").json["services"]
    assert [s["zone"] for s in services] == ["az1", "nova", "nova"]


def test_zone_of_disabled_hosts_only_is_unavailable():
    h = _hosts()
    agg = _create(h, "a1", "az1")
    _act(h, agg["id"], {"add_host": {"host": "node1"}})
    h.admin("PUT", "/v2.1/os-services/disable",
            {"host": "node1", "binary": "nova-compute"})
    zones = h.request("GET", "/v2.1/os-availability-zone").json[
        "availabilityZoneInfo"]
    assert zones[-1] == {"zoneName": "az1",
                         "zoneState": {"available": False}, "hosts": None}
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "v", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none", "availability_zone": "az1"}}, version="2.37")
    assert resp.status_int == 400


def test_boot_into_zone():
    h = _hosts()
    agg = _create(h, "a1", "az1")
    _act(h, agg["id"], {"add_host": {"host": "node2"}})
    for i in range(3):
        server = h.boot(name=f"z{i}", availability_zone="az1")
        inst = db_instances.get(h.db, server["id"])
        assert (inst["host"], inst["availability_zone"]) == ("node2", "az1")
    shown = h.request("GET", f"/v2.1/servers/{server['id']}").json["server"]
    assert shown["OS-EXT-AZ:availability_zone"] == "az1"
    plain = h.boot(name="plain")
    inst = db_instances.get(h.db, plain["id"])
    assert inst["host"] in ("node1", "node3")
    assert h.request("GET", f"/v2.1/servers/{plain['id']}").json[
        "server"]["OS-EXT-AZ:availability_zone"] == "nova"
    nova = h.boot(name="n", availability_zone="nova")
    assert db_instances.get(h.db, nova["id"])["host"] != "node2"


def test_unknown_zone_is_400_and_creates_nothing():
    h = _hosts()
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "v", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none", "availability_zone": "mars"}}, version="2.37")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "The requested availability zone is not available")
    assert db_instances.list_(h.db) == []


def test_default_zone_is_configurable():
    h = _hosts(default_availability_zone="home")
    zones = h.request("GET", "/v2.1/os-availability-zone").json
    assert [z["zoneName"] for z in zones["availabilityZoneInfo"]] == [
        "home"]
    server = h.boot(availability_zone="home")
    assert db_instances.get(h.db, server["id"])["availability_zone"] == \
        "home"
    assert h.request("POST", "/v2.1/servers", {"server": {
        "name": "v", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none", "availability_zone": "nova"}},
        version="2.37").status_int == 400


def test_host_with_instances_stays_in_its_zone_aggregate():
    h = _hosts()
    agg = _create(h, zone="az1")
    _act(h, agg["id"], {"add_host": {"host": "node2"}})
    h.boot(availability_zone="az1")
    resp = _act(h, agg["id"], {"remove_host": {"host": "node2"}})
    assert resp.status_int == 409
    assert "cannot be removed from the aggregate as the availability " \
        "zone of the host would change from 'az1' to 'None' but the host " \
        "already has 1 instance(s)" in resp.json["conflictingRequest"][
            "message"]
    assert db_aggregates.get(h.db, agg["id"])["hosts"] == ["node2"]
    # another aggregate of the same zone keeps it there: then it may go
    twin = _create(h, "twin", "az1")
    assert _act(h, twin["id"], {"add_host": {"host": "node2"}}
                ).status_int == 200
    assert _act(h, agg["id"], {"remove_host": {"host": "node2"}}
                ).status_int == 200
