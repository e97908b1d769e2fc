"""Networks at server create, Nova's ``addresses``, and /networking."""

from __future__ import annotations

from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from tests.unit.test_api_app import Harness


def _ready():
    h = Harness()
    h.add_host("node1")
    return h


def _net(h, project="p1", name="net1"):
    return db_networks.create_network(h.db, project, name,
                                      db_networks.IpamSettings(), list)


def _create(h, token="alice:p1", version="2.37", **server):
    body = {"name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
            **server}
    return h.request("POST", "/v2.1/servers", {"server": body},
                     token=token, version=version)


def _nothing_left(h):
    assert db_instances.list_(h.db, include_deleted=True) == []
    assert db_networks.list_ports(h.db) == []


def test_auto_creates_the_default_network_once_and_shows_addresses():
    h = _ready()
    first = h.boot(networks="auto")
    second = h.boot(name="vm2", networks="auto")
    nets = db_networks.list_networks(h.db, project_id="p1")
    assert len(nets) == 1 and nets[0]["name"] == "private"
    assert first["security_groups"] == [{"name": "default"}]
    port = db_networks.list_ports(h.db, instance_uuids=[first["id"]])[0]
    server = h.request("GET", f"/v2.1/servers/{first['id']}",
                       version="2.37").json["server"]
    assert server["addresses"] == {"private": [{
        "addr": port["ip_address"], "version": 4,
        "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}]}
    assert server["security_groups"] == [{"name": "default"}]
    detail = h.request("GET", "/v2.1/servers/detail",
                       version="2.37").json["servers"]
    addrs = {s["id"]: s["addresses"]["private"][0]["addr"] for s in detail}
    assert addrs == {first["id"]: "10.241.0.2", second["id"]: "10.241.0.3"}


def test_none_gives_no_port_and_no_security_groups():
    h = _ready()
    sid = h.boot(networks="none")["id"]
    server = h.request("GET", f"/v2.1/servers/{sid}",
                       version="2.37").json["server"]
    assert server["addresses"] == {} and "security_groups" not in server
    assert db_networks.list_ports(h.db) == []
    assert db_networks.list_networks(h.db) == []


def test_list_with_fixed_ip_and_two_nics():
    h = _ready()
    a, b = _net(h, name="a"), _net(h, name="b")
    sid = h.boot(networks=[{"uuid": a["id"], "fixed_ip": "10.241.0.50"},
                           {"uuid": b["id"]}])["id"]
    ports = db_networks.list_ports(h.db, instance_uuids=[sid])
    assert [(p["network_id"], p["ip_address"], p["device_index"])
            for p in ports] == [(a["id"], "10.241.0.50", 0),
                                (b["id"], "10.241.1.2", 1)]
    server = h.request("GET", f"/v2.1/servers/{sid}",
                       version="2.37").json["server"]
    assert sorted(server["addresses"]) == ["a", "b"]


def test_bad_network_requests_leave_nothing_behind():
    h = _ready()
    mine, theirs = _net(h), _net(h, project="p2", name="theirs")
    cases = [
        ([{"uuid": theirs["id"]}], 400, "could not be found"),
        ([{"uuid": "6e9b6c5e-2d0a-4c4b-9f59-0a6e6e3b9a11"}], 400,
         "could not be found"),
        ([{"uuid": mine["id"], "fixed_ip": "10.9.9.9"}], 400,
         "is not a valid address"),
        ([{"uuid": mine["id"], "fixed_ip": mine["gateway"]}], 400,
         "is not a valid address"),
        ([{"port": "6e9b6c5e-2d0a-4c4b-9f59-0a6e6e3b9a11"}], 400,
         "Port id"),
    ]
    for networks, code, text in cases:
        resp = _create(h, networks=networks)
        assert resp.status_int == code, (networks, resp.text)
        assert text in resp.text
        _nothing_left(h)
    resp = _create(h, networks=[{"uuid": mine["id"],
                                 "fixed_ip": "10.241.0.7"}], max_count=2)
    assert resp.status_int == 400 and "max_count" in resp.text
    _nothing_left(h)
    # a taken address fails the second server, and only that one
    h.boot(networks=[{"uuid": mine["id"], "fixed_ip": "10.241.0.7"}])
    resp = _create(h, networks=[{"uuid": mine["id"],
                                 "fixed_ip": "10.241.0.7"}])
    assert resp.status_int == 400 and "already in use" in resp.text
    assert len(db_instances.list_(h.db)) == 1
    assert len(db_networks.list_ports(h.db)) == 1


def test_exhausted_network_creates_no_server():
    h = Harness(network__pool_cidr="10.241.0.0/29",
                network__subnet_prefixlen=29)
    h.add_host("node1")
    resp = _create(h, networks="auto", min_count=6, max_count=6)
    assert resp.status_int == 409
    assert "No more IP addresses" in resp.text
    assert db_instances.list_(h.db) == []
    assert db_networks.list_ports(h.db) == []
    assert _create(h, networks="auto", min_count=5,
                   max_count=5).status_int == 202


def test_before_237_the_only_network_is_used():
    h = _ready()
    sid = _create(h, version="2.1").json["server"]["id"]
    assert db_networks.list_ports(h.db, instance_uuids=[sid]) == []
    net = _net(h)
    sid = _create(h, version="2.1").json["server"]["id"]
    assert [p["network_id"] for p in db_networks.list_ports(
        h.db, instance_uuids=[sid])] == [net["id"]]
    _net(h, name="second")
    assert _create(h, version="2.1").status_int == 409


def test_delete_releases_ports_exactly_once():
    h = _ready()
    sid = h.boot(networks="auto")["id"]
    assert len(db_networks.list_ports(h.db)) == 1
    # no host: the API deletes locally (the compute side's delete_now
    # goes through the same soft_delete)
    db_instances.update(h.db, sid, {"host": None})
    assert h.request("DELETE", f"/v2.1/servers/{sid}").status_int == 204
    assert db_networks.list_ports(h.db) == []
    assert db_networks.release_ports(h.db, sid) == 0
    again = h.boot(networks="auto")["id"]
    assert db_networks.list_ports(h.db, instance_uuids=[again])[0][
        "ip_address"] == "10.241.0.2"


def test_networking_versions_are_public_and_lists_need_auth():
    h = Harness()
    for path in ("/networking", "/networking/"):
        doc = h.request("GET", path, token=None).json
        assert doc["versions"][0]["id"] == "v2.0"
    res = h.request("GET", "/networking/v2.0", token=None).json
    assert {r["collection"] for r in res["resources"]} == {
        "networks", "subnets", "ports", "security-groups",
        "security-group-rules"}
    assert h.request("GET", "/networking/v2.0/networks",
                     token=None).status_int == 401


def test_networking_reads_filters_and_isolation():
    h = _ready()
    sid = h.boot(networks="auto")["id"]
    net = db_networks.list_networks(h.db, project_id="p1")[0]
    other = _net(h, project="p2", name="other")
    listed = h.request("GET", "/networking/v2.0/networks").json["networks"]
    assert [n["id"] for n in listed] == [net["id"]]
    body = listed[0]
    assert body["name"] == "private" and body["tenant_id"] == "p1"
    assert body["subnets"] == [net["subnet_id"]]
    assert body["shared"] is False and body["router:external"] is False
    for query, expect in [
            ("?name=private", [net["id"]]), ("?name=nope", []),
            (f"?id={net['id']}", [net["id"]]), ("?shared=True", []),
            ("?shared=False", [net["id"]]),
            ("?router%3Aexternal=True", []),
            ("?project_id=p1", [net["id"]]), ("?tenant_id=p2", [])]:
        got = h.request("GET", "/networking/v2.0/networks" + query).json
        assert [n["id"] for n in got["networks"]] == expect, query
    assert h.request("GET", f"/networking/v2.0/networks/{net['id']}"
                     ).json["network"]["id"] == net["id"]
    missing = h.request("GET", f"/networking/v2.0/networks/{other['id']}")
    assert missing.status_int == 404
    assert missing.json["NeutronError"]["type"] == "NotFound"
    admin = h.admin("GET", "/networking/v2.0/networks").json["networks"]
    assert {n["id"] for n in admin} == {net["id"], other["id"]}

    subnet = h.request("GET", "/networking/v2.0/subnets").json["subnets"]
    assert [(s["id"], s["cidr"], s["gateway_ip"], s["network_id"])
            for s in subnet] == [(net["subnet_id"], "10.241.0.0/24",
                                  "10.241.0.1", net["id"])]
    ports = h.request("GET", f"/networking/v2.0/ports?device_id={sid}"
                      ).json["ports"]
    assert len(ports) == 1
    assert ports[0]["fixed_ips"] == [{"subnet_id": net["subnet_id"],
                                      "ip_address": "10.241.0.2"}]
    assert ports[0]["device_owner"] == "compute:nova"
    assert h.request("GET", "/networking/v2.0/ports", token="bob:p2"
                     ).json["ports"] == []
