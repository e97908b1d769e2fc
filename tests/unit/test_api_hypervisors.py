"""os-hypervisors through the WSGI app: capacity from the compute nodes'
reports, use from the instances placed, bodies per microversion, the
routes Nova retired, paging, and bad input."""

from __future__ import annotations

import pytest

from pyct_driver.api import microversion
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services
from tests.unit.test_api_app import Harness

SUMMARY = {"id", "hypervisor_hostname", "state", "status"}
DETAIL = SUMMARY | {"hypervisor_type", "hypervisor_version", "host_ip",
                    "service"}
OLD = {"vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
       "local_gb_used", "free_ram_mb", "free_disk_gb", "current_workload",
       "running_vms", "disk_available_least", "cpu_info"}


@pytest.fixture(autouse=True)
def _all_versions(monkeypatch):
    monkeypatch.setattr(microversion, "MAX_VERSION", (2, 96))


def _hosts() -> Harness:
    h = Harness()
    h.add_host("node1", vcpus=8, memory_mb=16384, local_gb=100)
    h.add_host("node2", vcpus=4, memory_mb=8192, local_gb=50)
    db_services.compute_node_report(h.db, "node1", {
        "host_ip": "192.0.2.10", "hypervisor_type": "container",
        "hypervisor_version": 6001000, "reserved_host_memory_mb": 512,
        "uptime": " 10:00:00 up 1 day,  2:03,  load average: 0.1, 0.2, 0.3"})
    return h


def _node(h, host):
    return next(n for n in db_services.compute_node_list(h.db)
                if n["host"] == host)


@pytest.mark.parametrize("version,keys,cpu_info,id_type", [
    ("2.1", DETAIL | OLD, "", int), ("2.27", DETAIL | OLD, "", int),
    ("2.28", DETAIL | OLD, {}, int), ("2.52", DETAIL | OLD, {}, int),
    ("2.53", DETAIL | OLD, {}, str), ("2.87", DETAIL | OLD, {}, str),
    ("2.88", DETAIL | {"uptime"}, None, str),
    ("2.96", DETAIL | {"uptime"}, None, str)])
def test_detail_body_per_microversion(version, keys, cpu_info, id_type):
    h = _hosts()
    resp = h.admin("GET", "/v2.1/os-hypervisors/detail", version=version)
    assert resp.status_int == 200
    first = resp.json["hypervisors"][0]
    assert set(first) == keys
    assert isinstance(first["id"], id_type)
    assert isinstance(first["service"]["id"], id_type)
    assert (first["hypervisor_hostname"], first["hypervisor_type"],
            first["hypervisor_version"], first["host_ip"]) == (
        "node1", "container", 6001000, "192.0.2.10")
    if cpu_info is not None:
        assert first["cpu_info"] == cpu_info
    else:
        assert first["uptime"].startswith(" 10:00:00 up 1 day")
    listed = h.admin("GET", "/v2.1/os-hypervisors", version=version).json
    assert [set(x) for x in listed["hypervisors"]] == [SUMMARY, SUMMARY]


def test_usage_counts_placed_instances_and_reserved_memory():
    h = _hosts()
    h.admin("PUT", "/v2.1/os-services/disable",
            {"host": "node2", "binary": "nova-compute"})
    for i in range(2):
        h.boot(name=f"v{i}")  # m1.small: 1 vCPU, 512 MiB, 1 GiB
    node1 = _node(h, "node1")
    shown = h.admin("GET", f"/v2.1/os-hypervisors/{node1['id']}").json[
        "hypervisor"]
    assert {k: shown[k] for k in OLD - {"cpu_info"}} == {
        "vcpus": 8, "memory_mb": 16384, "local_gb": 100, "vcpus_used": 2,
        "memory_mb_used": 1024 + 512, "local_gb_used": 2,
        "free_ram_mb": 16384 - 1536, "free_disk_gb": 98,
        "current_workload": 2, "running_vms": 2,
        "disk_available_least": 98}
    assert shown["service"] == {"id": 1, "host": "node1",
                                "disabled_reason": None}
    stats = h.admin("GET", "/v2.1/os-hypervisors/statistics").json[
        "hypervisor_statistics"]
    # only enabled hosts count, as in Nova
    assert (stats["count"], stats["vcpus"], stats["vcpus_used"],
            stats["running_vms"]) == (1, 8, 2, 2)
    node2 = h.admin("GET", "/v2.1/os-hypervisors/2").json["hypervisor"]
    assert (node2["status"], node2["running_vms"]) == ("disabled", 0)


def test_state_follows_heartbeat_and_forced_down():
    h = _hosts()
    h.admin("PUT", "/v2.1/os-services/force-down",
            {"host": "node1", "binary": "nova-compute",
             "forced_down": True}, version="2.11")
    listed = h.admin("GET", "/v2.1/os-hypervisors").json["hypervisors"]
    assert [(x["hypervisor_hostname"], x["state"]) for x in listed] == [
        ("node1", "down"), ("node2", "up")]
    resp = h.admin("GET", "/v2.1/os-hypervisors/1/uptime")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Compute service of node1 is unavailable at this time.")
    up = h.admin("GET", "/v2.1/os-hypervisors/2/uptime").json["hypervisor"]
    assert set(up) == SUMMARY | {"uptime"}


def test_search_and_servers_routes_until_253():
    h = _hosts()
    server = h.boot()
    found = h.admin("GET", "/v2.1/os-hypervisors/node/search").json
    assert [x["hypervisor_hostname"] for x in found["hypervisors"]] == [
        "node1", "node2"]
    hosted = h.admin("GET", "/v2.1/os-hypervisors/de1/servers").json[
        "hypervisors"]
    assert hosted == [{"id": 1, "hypervisor_hostname": "node1",
                       "state": "up", "status": "enabled",
                       "servers": [{"name": "vm", "uuid": server["id"]}]}]
    resp = h.admin("GET", "/v2.1/os-hypervisors/zzz/search")
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["message"] == (
        "No hypervisor matching 'zzz' could be found.")
    for path in ("node/search", "node/servers"):
        assert h.admin("GET", f"/v2.1/os-hypervisors/{path}",
                       version="2.53").status_int == 404


def test_pattern_and_with_servers_from_253():
    h = _hosts()
    server = h.boot()
    resp = h.admin("GET", "/v2.1/os-hypervisors?hypervisor_hostname_"
                   "pattern=node1&with_servers=true", version="2.53")
    assert resp.json["hypervisors"][0]["servers"] == [
        {"name": "vm", "uuid": server["id"]}]
    both = h.admin("GET", "/v2.1/os-hypervisors/detail?with_servers=1",
                   version="2.74").json["hypervisors"]
    assert "servers" not in both[1]      # none on node2: left out < 2.75
    both = h.admin("GET", "/v2.1/os-hypervisors/detail?with_servers=1",
                   version="2.75").json["hypervisors"]
    assert both[1]["servers"] == []
    uuid = _node(h, "node1")["uuid"]
    shown = h.admin("GET", f"/v2.1/os-hypervisors/{uuid}?with_servers=yes",
                    version="2.53").json["hypervisor"]
    assert shown["servers"] == [{"name": "vm", "uuid": server["id"]}]


@pytest.mark.parametrize("path,version,code,message", [
    ("os-hypervisors/abc", "2.1", 404,
     "Hypervisor with ID 'abc' could not be found."),
    ("os-hypervisors/99", "2.1", 404,
     "Hypervisor with ID '99' could not be found."),
    ("os-hypervisors/1", "2.53", 400, "Invalid uuid 1"),
    ("os-hypervisors/8a1bd3c5-1e7a-4f30-9a43-a9c5f1c5b6f0", "2.53", 404,
     "could not be found"),
    ("os-hypervisors?hypervisor_hostname_pattern=zzz", "2.53", 404,
     "No hypervisor matching 'zzz' could be found."),
    ("os-hypervisors?hypervisor_hostname_pattern=n&limit=1", "2.53", 400,
     "Paging over hypervisors with the hypervisor_hostname_pattern query "
     "parameter is not supported."),
    ("os-hypervisors?with_servers=maybe", "2.53", 400, "with_servers"),
    ("os-hypervisors?frob=1", "2.53", 400, "frob"),
    ("os-hypervisors/detail?marker=77", "2.33", 400,
     "marker [77] not found"),
    ("os-hypervisors?limit=-1", "2.33", 400, "limit"),
    ("os-hypervisors?limit=x", "2.33", 400, "limit"),
    ("os-hypervisors/statistics", "2.88", 404, "could not be found"),
    ("os-hypervisors/1/uptime", "2.88", 404, "could not be found")])
def test_bad_requests(path, version, code, message):
    h = _hosts()
    resp = h.admin("GET", f"/v2.1/{path}", version=version)
    assert resp.status_int == code, resp.text
    assert message in resp.json[
        "badRequest" if code == 400 else "itemNotFound"]["message"]


def test_paging_from_233():
    h = _hosts()
    resp = h.admin("GET", "/v2.1/os-hypervisors?limit=1", version="2.33")
    body = resp.json
    assert [x["id"] for x in body["hypervisors"]] == [1]
    assert body["hypervisors_links"] == [{
        "rel": "next",
        "href": "http://localhost/v2.1/os-hypervisors?limit=1&marker=1"}]
    rest = h.admin("GET", "/v2.1/os-hypervisors?limit=1&marker=1",
                   version="2.33").json
    assert [x["id"] for x in rest["hypervisors"]] == [2]
    # before 2.33 limit is ignored
    old = h.admin("GET", "/v2.1/os-hypervisors?limit=1").json
    assert len(old["hypervisors"]) == 2 and "hypervisors_links" not in old


def test_members_are_refused():
    h = _hosts()
    for path in ("os-hypervisors", "os-hypervisors/detail",
                 "os-hypervisors/1", "os-hypervisors/statistics",
                 "os-hypervisors/1/uptime", "os-hypervisors/n/search",
                 "os-hypervisors/n/servers"):
        resp = h.request("GET", f"/v2.1/{path}")
        assert resp.status_int == 403, path
        assert resp.json["forbidden"]["code"] == 403


def test_node_without_service_is_not_listed():
    h = _hosts()
    db_services.compute_node_report(h.db, "ghost", {
        "vcpus": 1, "memory_mb": 1, "local_gb": 1,
        "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0})
    listed = h.admin("GET", "/v2.1/os-hypervisors").json["hypervisors"]
    assert [x["hypervisor_hostname"] for x in listed] == ["node1", "node2"]
    assert db_instances.usage_by_host(h.db) == {}
