"""Neutron's security groups API: the default group on first use, groups
and rules with Neutron's bodies and faults, servers' ports carrying their
groups, and the refresh casts to the hosts that enforce them."""

from __future__ import annotations

import pytest

from pyct_driver.db import networks as db_networks
from pyct_driver.db import secgroups as db_secgroups
from tests.unit.test_api_app import Harness

SG = "/networking/v2.0/security-groups"
SGR = "/networking/v2.0/security-group-rules"


@pytest.fixture
def h():
    harness = Harness()
    harness.add_host("node1")
    return harness


def _group(h, name="web", token="alice:p1"):
    resp = h.request("POST", SG, {"security_group": {"name": name}},
                     token=token)
    assert resp.status_int == 201, resp.text
    return resp.json["security_group"]


def _rule(h, group_id, token="alice:p1", **fields):
    body = {"security_group_id": group_id, "direction": "ingress",
            **fields}
    return h.request("POST", SGR, {"security_group_rule": body},
                     token=token)


def test_default_group_made_on_first_use_with_neutron_rules(h):
    found = h.request("GET", SG + "?name=default").json["security_groups"]
    assert len(found) == 1
    group = found[0]
    rules = {r["direction"]: r for r in group["security_group_rules"]}
    assert rules["ingress"]["remote_group_id"] == group["id"]
    assert rules["egress"]["remote_ip_prefix"] is None
    assert rules["egress"]["protocol"] is None
    again = h.request("GET", SG + "?name=default").json["security_groups"]
    assert [g["id"] for g in again] == [group["id"]]
    assert h.request("POST", SG, {"security_group": {
        "name": "default"}}).status_int == 409


def test_rules_created_listed_and_deleted(h):
    group = _group(h)
    assert [r["direction"] for r in group["security_group_rules"]] == [
        "egress"]
    resp = _rule(h, group["id"], protocol="tcp", port_range_min=22,
                 port_range_max=22, remote_ip_prefix="10.0.0.0/8")
    assert resp.status_int == 201, resp.text
    rule = resp.json["security_group_rule"]
    assert (rule["protocol"], rule["port_range_min"],
            rule["port_range_max"], rule["remote_ip_prefix"],
            rule["ethertype"]) == ("tcp", 22, 22, "10.0.0.0/8", "IPv4")
    listed = h.request("GET", SGR + f"?security_group_id={group['id']}")
    assert len(listed.json["security_group_rules"]) == 2
    shown = h.request("GET", f"{SGR}/{rule['id']}").json
    assert shown["security_group_rule"]["id"] == rule["id"]
    assert h.request("DELETE", f"{SGR}/{rule['id']}").status_int == 204
    resp = h.request("GET", f"{SGR}/{rule['id']}")
    assert resp.status_int == 404
    assert resp.json["NeutronError"]["type"] == "SecurityGroupRuleNotFound"


@pytest.mark.parametrize("fields, kind", [
    ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
     "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "remote_ip_prefix": "10.0.0.300/8"},
     "InvalidInput"),
    ({"protocol": "gre"}, "SecurityGroupRuleInvalidProtocol"),
    ({"port_range_min": 22}, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "udp", "port_range_min": 70000}, "InvalidInput"),
    ({"direction": "sideways"}, "InvalidInput"),
    ({"protocol": "icmp", "port_range_min": 300},
     "SecurityGroupInvalidIcmpValue"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "x"},
     "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
    ({"remote_ip_prefix": "fd00::/8"},
     "SecurityGroupRuleParameterConflict"),
])
def test_malformed_rules_are_neutron_faults_and_change_nothing(h, fields,
                                                              kind):
    group = _group(h)
    before = db_secgroups.list_rules(h.db)
    resp = _rule(h, group["id"], **fields)
    assert resp.status_int == 400, resp.text
    assert resp.json["NeutronError"]["type"] == kind
    assert db_secgroups.list_rules(h.db) == before


def test_duplicate_rule_is_a_conflict_naming_the_first(h):
    group = _group(h)
    first = _rule(h, group["id"], protocol="tcp", port_range_min=80)
    assert first.status_int == 201
    before = db_secgroups.list_rules(h.db)
    twin = _rule(h, group["id"], protocol="6", port_range_min=80,
                 port_range_max=80)
    assert twin.status_int == 409
    assert twin.json["NeutronError"]["type"] == "SecurityGroupRuleExists"
    assert first.json["security_group_rule"]["id"] in \
        twin.json["NeutronError"]["message"]
    assert db_secgroups.list_rules(h.db) == before


def test_another_projects_group_is_not_found_and_untouched(h):
    theirs = _group(h, "theirs", token="bob:p2")
    before = db_secgroups.list_rules(h.db)
    for resp in (
            h.request("GET", f"{SG}/{theirs['id']}"),
            h.request("PUT", f"{SG}/{theirs['id']}",
                      {"security_group": {"name": "x"}}),
            h.request("DELETE", f"{SG}/{theirs['id']}"),
            _rule(h, theirs["id"], protocol="tcp"),
            _rule(h, _group(h)["id"], remote_group_id=theirs["id"])):
        assert resp.status_int == 404, resp.text
        assert resp.json["NeutronError"]["type"] == "SecurityGroupNotFound"
    assert [r for r in db_secgroups.list_rules(h.db)
            if r["project_id"] == "p2"] == [
        r for r in before if r["project_id"] == "p2"]
    assert db_secgroups.get_group(h.db, theirs["id"])["name"] == "theirs"
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "auto", "security_groups": [{"name": theirs["id"]}]}},
        version="2.37")
    assert resp.status_int == 400


def test_server_ports_carry_their_groups_and_changes_reach_the_host(h):
    web = _group(h)
    server = h.boot(networks="auto", security_groups=[{"name": "web"}])
    port = db_networks.list_ports(h.db, instance_uuids=[server["id"]])[0]
    shown = h.request("GET", f"/networking/v2.0/ports/{port['id']}").json
    assert shown["port"]["security_groups"] == [web["id"]]
    view = h.request("GET", f"/v2.1/servers/{server['id']}",
                     version="2.37").json["server"]
    assert view["security_groups"] == [{"name": "web"}]
    plain = h.boot(name="vm2", networks="auto")
    port2 = db_networks.list_ports(h.db, instance_uuids=[plain["id"]])[0]
    default = h.request("GET", SG + "?name=default").json[
        "security_groups"][0]
    assert h.request("GET", f"/networking/v2.0/ports/{port2['id']}").json[
        "port"]["security_groups"] == [default["id"]]

    h.compute.calls.clear()
    assert _rule(h, web["id"], protocol="tcp",
                 port_range_min=8080).status_int == 201
    assert [c[:2] for c in h.compute.calls] == [
        ("refresh_security_groups", "node1")]
    resp = h.request("DELETE", f"{SG}/{web['id']}")
    assert resp.status_int == 409
    assert resp.json["NeutronError"]["type"] == "SecurityGroupInUse"


def test_nova_reads_and_server_actions(h):
    web = _group(h)
    assert _rule(h, web["id"], protocol="tcp", port_range_min=22,
                 remote_ip_prefix="10.0.0.0/8").status_int == 201
    server = h.boot(networks="auto")
    listed = h.request("GET", "/v2.1/os-security-groups").json
    names = {g["name"]: g for g in listed["security_groups"]}
    assert set(names) == {"default", "web"}
    assert names["web"]["rules"] == [{
        "id": names["web"]["rules"][0]["id"],
        "parent_group_id": web["id"], "ip_protocol": "tcp",
        "from_port": 22, "to_port": 22,
        "ip_range": {"cidr": "10.0.0.0/8"}, "group": {}}]
    assert h.request("GET", "/v2.1/os-security-groups",
                     version="2.36").status_int == 404
    url = f"/v2.1/servers/{server['id']}"
    h.compute.calls.clear()
    assert h.request("POST", url + "/action", {
        "addSecurityGroup": {"name": "web"}}).status_int == 202
    assert ("refresh_security_groups", "node1") in [
        c[:2] for c in h.compute.calls]
    mine = h.request("GET", url + "/os-security-groups").json
    assert {g["name"] for g in mine["security_groups"]} == {"default",
                                                             "web"}
    again = h.request("POST", url + "/action", {
        "addSecurityGroup": {"name": "web"}})
    assert again.status_int == 400
    assert h.request("POST", url + "/action", {
        "removeSecurityGroup": {"name": "default"}}).status_int == 202
    mine = h.request("GET", url + "/os-security-groups").json
    assert [g["name"] for g in mine["security_groups"]] == ["web"]
    assert h.request("POST", url + "/action", {
        "removeSecurityGroup": {"name": "default"}}).status_int == 400
    assert h.request("POST", url + "/action", {
        "addSecurityGroup": {"name": "nope"}}).status_int == 400


def test_quotas_count_groups_and_rules(h):
    details = h.request("GET", "/networking/v2.0/quotas/p1/details").json
    assert details["quota"]["security_group"]["limit"] == 10
    for index in range(9):  # default + 9 = Neutron's 10
        _group(h, f"g{index}")
    resp = h.request("POST", SG, {"security_group": {"name": "one-more"}})
    assert resp.status_int == 409
    assert resp.json["NeutronError"]["type"] == "OverQuota"
    used = h.request("GET", "/networking/v2.0/quotas/p1/details").json[
        "quota"]
    assert used["security_group"]["used"] == 10
    assert used["security_group_rule"]["used"] == 11  # 9 + default's 2
