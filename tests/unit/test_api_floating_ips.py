"""Neutron's floatingips and Nova's add/removeFloatingIp through the API
(fake compute host that records the sync calls): body shapes, Neutron's
faults, and bad input that must change nothing."""

from __future__ import annotations

import pytest

from pyct_driver import exception, states
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from tests.unit.test_api_app import Harness

RANGE = "203.0.113.0/29"
FIP = "/networking/v2.0/floatingips"
ALICE, BOB = "alice:p1", "bob:p2"


def _server(h, token: str) -> tuple[str, dict]:
    uuid = h.boot("vm", token=token, networks="auto")["id"]
    db_instances.update(h.db, uuid, {
        "vm_state": states.ACTIVE, "task_state": None, "host": "node1",
        "power_state": 1})
    return uuid, db_networks.list_ports(h.db, instance_uuids=[uuid])[0]


@pytest.fixture
def h():
    # 10.246/16: the fake-driver range, which no privileged test routes
    h = Harness(network__floating_ip_range=RANGE,
                network__pool_cidr="10.246.0.0/16")
    h.add_host()
    return h


def _external(h) -> str:
    nets = h.request("GET", "/networking/v2.0/networks?name=public",
                     token=ALICE).json["networks"]
    assert len(nets) == 1 and nets[0]["router:external"] is True, nets
    return nets[0]["id"]


def _create(h, token=ALICE, status=201, **extra):
    body = {"floatingip": {"floating_network_id": _external(h), **extra}}
    resp = h.request("POST", FIP, body, token=token)
    assert resp.status_int == status, resp.text
    return resp.json


def _syncs(h) -> list:
    return [c for c in h.compute.calls if c[0] == "sync_floating_ips"]


def test_create_list_show_and_neutron_shapes(h):
    fip = _create(h)["floatingip"]
    assert fip["floating_ip_address"] == "203.0.113.1"
    assert fip["status"] == "DOWN" and fip["port_id"] is None
    assert fip["project_id"] == "p1" and fip["router_id"] is None
    assert _create(h)["floatingip"]["floating_ip_address"] == "203.0.113.2"
    listed = h.request("GET", FIP, token=ALICE).json["floatingips"]
    assert [f["floating_ip_address"] for f in listed] == [
        "203.0.113.1", "203.0.113.2"]
    assert h.request("GET", FIP, token=BOB).json["floatingips"] == []
    resp = h.request("GET", f"{FIP}/{fip['id']}", token=BOB)
    assert resp.status_int == 404
    assert resp.json["NeutronError"]["type"] and \
        fip["id"] in resp.json["NeutronError"]["message"]
    assert h.request("GET", f"{FIP}/{fip['id']}",
                     token=ALICE).json["floatingip"] == fip


def test_associate_disassociate_and_delete_sync_the_host(h):
    _, port = _server(h, ALICE)
    fip = _create(h, port_id=port["id"])["floatingip"]
    assert fip["port_id"] == port["id"] and fip["status"] == "ACTIVE"
    assert fip["fixed_ip_address"] == port["ip_address"]
    assert len(_syncs(h)) == 1 and _syncs(h)[0][1] == "node1"
    resp = h.request("PUT", f"{FIP}/{fip['id']}",
                     {"floatingip": {"port_id": None}}, token=ALICE)
    assert resp.status_int == 200, resp.text
    assert resp.json["floatingip"]["port_id"] is None
    assert len(_syncs(h)) == 2
    resp = h.request("PUT", f"{FIP}/{fip['id']}",
                     {"floatingip": {"port_id": port["id"]}}, token=ALICE)
    assert resp.status_int == 200, resp.text
    assert h.request("DELETE", f"{FIP}/{fip['id']}",
                     token=ALICE).status_int == 204
    assert len(_syncs(h)) == 4  # associate, and the delete's disassociate
    assert h.request("GET", FIP, token=ALICE).json["floatingips"] == []


def test_another_projects_port_is_not_found_and_nothing_changes(h):
    _, bob_port = _server(h, BOB)
    fip = _create(h)["floatingip"]
    resp = h.request("PUT", f"{FIP}/{fip['id']}",
                     {"floatingip": {"port_id": bob_port["id"]}},
                     token=ALICE)
    assert resp.status_int == 404, resp.text
    assert resp.json["NeutronError"]["type"] == "PortNotFound" or \
        bob_port["id"] in resp.json["NeutronError"]["message"]
    # created straight onto it: refused, and no address is held
    _create(h, status=404, port_id=bob_port["id"])
    listed = h.request("GET", FIP, token=ALICE).json["floatingips"]
    assert [(f["id"], f["port_id"]) for f in listed] == [(fip["id"], None)]
    assert _syncs(h) == []
    # and bob can't touch alice's floating IP
    resp = h.request("PUT", f"{FIP}/{fip['id']}",
                     {"floatingip": {"port_id": bob_port["id"]}}, token=BOB)
    assert resp.status_int == 404
    assert h.request("DELETE", f"{FIP}/{fip['id']}",
                     token=BOB).status_int == 404


def test_conflicts_and_bad_input(h):
    _, port = _server(h, ALICE)
    first = _create(h, port_id=port["id"])["floatingip"]
    second = _create(h)["floatingip"]
    resp = h.request("PUT", f"{FIP}/{second['id']}",
                     {"floatingip": {"port_id": port["id"]}}, token=ALICE)
    assert resp.status_int == 409, resp.text
    assert "NeutronError" in resp.json
    _create(h, status=409, floating_ip_address=first["floating_ip_address"])
    _create(h, status=400, floating_ip_address="198.51.100.7")
    resp = h.request("PUT", f"{FIP}/{second['id']}", {"floatingip": {
        "port_id": port["id"], "fixed_ip_address": "10.9.9.9"}},
        token=ALICE)
    assert resp.status_int in (400, 409), resp.text
    for bad in ({"floatingip": {}}, {"floatingip": {
            "floating_network_id": "nope"}}, {"nope": {}}):
        resp = h.request("POST", FIP, bad, token=ALICE)
        assert resp.status_int == 400, resp.text
        assert "NeutronError" in resp.json
    resp = h.request("POST", FIP, {"floatingip": {
        "floating_network_id": port["network_id"]}}, token=ALICE)
    assert resp.status_int == 404  # a project network is not external
    # the range is used up (.1-.6): Neutron's 409
    for _ in range(4):
        _create(h)
    _create(h, status=409)
    listed = h.request("GET", FIP, token=ALICE).json["floatingips"]
    assert [f["port_id"] for f in listed].count(port["id"]) == 1


def test_host_that_cannot_nat_undoes_the_association(h):
    _, port = _server(h, ALICE)
    fip = _create(h)["floatingip"]

    def refuse(ctxt, host):
        raise exception.NetworkError(reason="no egress_nat")
    h.compute.sync_floating_ips = refuse
    resp = h.request("PUT", f"{FIP}/{fip['id']}",
                     {"floatingip": {"port_id": port["id"]}}, token=ALICE)
    assert resp.status_int == 409, resp.text
    shown = h.request("GET", f"{FIP}/{fip['id']}", token=ALICE).json
    assert shown["floatingip"]["port_id"] is None


def test_nova_add_and_remove_floating_ip(h):
    uuid, port = _server(h, ALICE)
    fip = _create(h)["floatingip"]
    act = f"/v2.1/servers/{uuid}/action"
    resp = h.request("POST", act, {"removeFloatingIp": {
        "address": fip["floating_ip_address"]}}, token=ALICE)
    assert resp.status_int == 409, resp.text  # not on this server
    resp = h.request("POST", act, {"addFloatingIp": {
        "address": "203.0.113.6"}}, token=ALICE)
    assert resp.status_int == 404, resp.text
    resp = h.request("POST", act, {"addFloatingIp": {
        "address": fip["floating_ip_address"],
        "fixed_address": "10.9.9.9"}}, token=ALICE)
    assert resp.status_int == 400, resp.text
    resp = h.request("POST", act, {"addFloatingIp": {
        "address": fip["floating_ip_address"]}}, token=ALICE)
    assert resp.status_int == 202, resp.text
    shown = h.request("GET", f"{FIP}/{fip['id']}", token=ALICE).json
    assert shown["floatingip"]["port_id"] == port["id"]
    # gone from 2.44, as in Nova
    resp = h.request("POST", act, {"removeFloatingIp": {
        "address": fip["floating_ip_address"]}}, token=ALICE,
        version="2.44")
    assert resp.status_int == 404, resp.text
    resp = h.request("POST", act, {"removeFloatingIp": {
        "address": fip["floating_ip_address"]}}, token=ALICE)
    assert resp.status_int == 202, resp.text
    shown = h.request("GET", f"{FIP}/{fip['id']}", token=ALICE).json
    assert shown["floatingip"]["port_id"] is None
    # another project's server: 404 before anything
    resp = h.request("POST", act, {"addFloatingIp": {
        "address": fip["floating_ip_address"]}}, token=BOB)
    assert resp.status_int == 404


def test_no_range_no_external_network(h):
    bare = Harness()
    nets = bare.request("GET", "/networking/v2.0/networks",
                        token=ALICE).json["networks"]
    assert not any(n["router:external"] for n in nets)


def test_quota_counts_floating_ips(h):
    resp = h.request("PUT", "/v2.1/os-quota-sets/p1",
                     {"quota_set": {"floating_ips": 1}},
                     token="admin:ad0001", version="2.35")
    assert resp.status_int == 200, resp.text
    _create(h)
    resp = h.request("POST", FIP, {"floatingip": {
        "floating_network_id": _external(h)}}, token=ALICE)
    assert resp.status_int == 409, resp.text
    assert "Quota exceeded" in resp.json["NeutronError"]["message"]
    assert len(h.request("GET", FIP, token=ALICE).json["floatingips"]) == 1
    quota = h.request("GET", "/networking/v2.0/quotas/p1/details",
                      token=ALICE).json["quota"]
    assert quota["floatingip"] == {"limit": 1, "used": 1, "reserved": 0}
    # another project is not held back by it
    _create(h, token=BOB)
