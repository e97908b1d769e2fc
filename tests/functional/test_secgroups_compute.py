"""Security groups through the whole pipeline in process: API -> RPC cast
(1.8) -> compute manager -> the driver's port filters (fake driver), with
a remote group resolved to its members' addresses."""

from __future__ import annotations

import json

import pytest
import webob

from pyct_driver.db import catalog
from pyct_driver.db import networks as db_networks
from tests.functional import compute_fixtures as fx
from tests.waiting import wait_for


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as env:
        yield env


def call(app, method, path, body=None):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = "alice:p1"
    req.headers["OpenStack-API-Version"] = "compute 2.37"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def _boot(app, db, name, **extra):
    image = catalog.image_list(db)[0]["id"]
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": name, "imageRef": image, "flavorRef": "1",
        "networks": "auto", **extra}})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    return sid, db_networks.list_ports(db, instance_uuids=[sid])[0]


def _filters(service) -> dict:
    return {f.port_id: f for f in getattr(
        service.manager.driver, "port_filters", [])}


def test_boot_rule_change_and_delete_reach_the_driver(env):
    db, service, app = env
    a, port_a = _boot(app, db, "a")
    b, port_b = _boot(app, db, "b")
    filters = _filters(service)
    assert set(filters) == {port_a["id"], port_b["id"]}
    ingress = [r for r in filters[port_b["id"]].rules
               if r.direction == "ingress"]
    # default group: ingress from members only, their addresses resolved
    assert [sorted(r.remotes) for r in ingress] == [
        sorted([port_a["ip_address"], port_b["ip_address"]])]
    assert filters[port_b["id"]].gateway == port_b["network"]["gateway"]

    group = call(app, "GET", "/networking/v2.0/security-groups"
                 "?name=default").json["security_groups"][0]
    resp = call(app, "POST", "/networking/v2.0/security-group-rules", {
        "security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress",
            "protocol": "tcp", "port_range_min": 8000,
            "port_range_max": 8080, "remote_ip_prefix": "10.9.0.0/16"}})
    assert resp.status_int == 201, resp.text

    def has_rule():
        rules = _filters(service)[port_a["id"]].rules
        return any(r.port_min == 8000 and r.remotes == ("10.9.0.0/16",)
                   for r in rules)
    wait_for(has_rule, 5, what="the new rule on the host")

    assert call(app, "DELETE", f"/v2.1/servers/{a}").status_int == 204
    wait_for(lambda: set(_filters(service)) == {port_b["id"]}, 10,
             what="the deleted server's port leaving the filters")
    members = [r.remotes for r in _filters(service)[port_b["id"]].rules
               if r.direction == "ingress" and r.protocol is None]
    assert members == [(port_b["ip_address"],)]
