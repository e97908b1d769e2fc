"""Server groups: the API's forms at 2.1, 2.13, 2.15 and 2.64, bad input
(nothing made), other projects' groups, quotas (``server_groups``,
``server_group_members``) and the scheduler honouring the ``group`` hint
on two hosts: affinity on one, anti-affinity on different ones (then
NoValidHost), the soft policies as preferences."""

from __future__ import annotations

import pytest

from pyct_driver.api.group_placement import GroupPlacement
from pyct_driver.db import instances as db_instances
from pyct_driver.db import server_groups as db_groups
from tests.unit.test_api_app import Harness

G = "/v2.1/os-server-groups"


@pytest.fixture()
def h():
    h = Harness()
    h.add_host("node1")
    h.add_host("node2")
    return h


def _group(h, policy: str, version: str = "2.64", token="alice:p1",
           **rules) -> dict:
    body = {"name": policy, "policy": policy}
    if rules:
        body["rules"] = rules
    resp = h.request("POST", G, {"server_group": body}, token=token,
                     version=version)
    assert resp.status_int == 200, resp.text
    return resp.json["server_group"]


def _boot(h, group: str, count: int = 1, token: str = "alice:p1"):
    body = {"server": {"name": "vm", "imageRef": h.image["id"],
                       "flavorRef": "1", "networks": "none",
                       "min_count": count, "max_count": count},
            "os:scheduler_hints": {"group": group}}
    return h.request("POST", "/v2.1/servers", body, token=token,
                     version="2.71")


def _hosts(h) -> list:
    return sorted((i["host"] for i in db_instances.list_(h.db)),
                  key=str)


def test_group_views_by_version(h):
    old = h.request("POST", G, {"server_group": {
        "name": "g", "policies": ["affinity"]}}).json["server_group"]
    assert set(old) == {"id", "name", "policies", "members", "metadata"}
    assert old["policies"] == ["affinity"] and old["members"] == []
    shown = h.request("GET", f"{G}/{old['id']}", version="2.13").json[
        "server_group"]
    assert shown["project_id"] == "p1" and shown["user_id"] == "alice"
    new = _group(h, "anti-affinity", max_server_per_host=2)
    assert new["policy"] == "anti-affinity"
    assert new["rules"] == {"max_server_per_host": 2}
    assert "policies" not in new and "metadata" not in new
    listed = h.request("GET", G).json["server_groups"]
    assert [g["id"] for g in listed] == [old["id"], new["id"]]
    assert h.request("GET", G, token="bob:p2").json == {"server_groups": []}
    assert h.request("GET", f"{G}/{old['id']}",
                     token="bob:p2").status_int == 404
    admin = h.admin("GET", G + "?all_projects=True").json["server_groups"]
    assert len(admin) == 2
    assert h.request("GET", G + "?limit=1&offset=1").json[
        "server_groups"][0]["id"] == new["id"]
    assert h.request("DELETE", f"{G}/{old['id']}",
                     token="bob:p2").status_int == 404
    assert h.request("DELETE", f"{G}/{old['id']}").status_int == 204
    resp = h.request("GET", f"{G}/{old['id']}")
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["message"] == \
        f"Instance group {old['id']} could not be found."


def test_group_bad_input_makes_nothing(h):
    for body, version in (
            ({"server_group": {"name": "g", "policies": ["soft-affinity"]}},
             "2.14"),
            ({"server_group": {"name": "g", "policies": ["x"]}}, "2.1"),
            ({"server_group": {"name": "g",
                               "policies": ["affinity", "anti-affinity"]}},
             "2.1"),
            ({"server_group": {"name": "g", "policies": []}}, "2.1"),
            ({"server_group": {"name": "", "policies": ["affinity"]}},
             "2.1"),
            ({"server_group": {"name": 5, "policies": ["affinity"]}}, "2.1"),
            ({"server_group": {"name": "g", "policies": ["affinity"]}},
             "2.64"),
            ({"server_group": {"name": "g", "policy": "affinity",
                               "rules": {"max_server_per_host": 2}}},
             "2.64"),
            ({"server_group": {"name": "g", "policy": "anti-affinity",
                               "rules": {"max_server_per_host": -1}}},
             "2.64"),
            ({"server_group": {"name": "g", "policy": "anti-affinity",
                               "rules": {"other": 1}}}, "2.64"),
            ({"server_group": {"name": "g", "policy": "affinity",
                               "x": 1}}, "2.64"),
            ({"group": {}}, "2.64")):
        resp = h.request("POST", G, body, version=version)
        assert resp.status_int == 400, (body, version)
        assert "badRequest" in resp.json
    resp = h.request("POST", G, {"server_group": {
        "name": "g", "policy": "affinity",
        "rules": {"max_server_per_host": 2}}}, version="2.64")
    assert resp.json["badRequest"]["message"] == \
        "Only anti-affinity policy supports rules."
    assert h.request("POST", G, raw=b"{x").status_int == 400
    assert db_groups.list_(h.db, None, None, 0) == []


def test_hint_naming_no_group_or_anothers_is_400(h):
    theirs = _group(h, "affinity", token="bob:p2")
    for group in ("3f1c4b4e-9c61-4a59-9d1e-1b0d6c7f0a11", theirs["id"]):
        resp = _boot(h, group)
        assert resp.status_int == 400
        assert resp.json["badRequest"]["message"] == \
            f"Instance group {group} could not be found."
    assert db_instances.list_(h.db) == []


def test_affinity_puts_all_on_one_host(h):
    group = _group(h, "affinity")
    assert _boot(h, group["id"], 2).status_int == 202
    assert _boot(h, group["id"]).status_int == 202
    hosts = _hosts(h)
    assert len(hosts) == 3 and len(set(hosts)) == 1 and hosts[0]
    members = h.request("GET", f"{G}/{group['id']}").json[
        "server_group"]["members"]
    assert sorted(members) == sorted(
        i["uuid"] for i in db_instances.list_(h.db))
    server = h.request("GET", f"/v2.1/servers/{members[0]}",
                       version="2.71").json["server"]
    assert server["server_groups"] == [group["id"]]


def test_anti_affinity_spreads_then_no_valid_host(h):
    group = _group(h, "anti-affinity")
    assert _boot(h, group["id"], 2).status_int == 202
    assert _hosts(h) == ["node1", "node2"]
    # a third cannot go anywhere: created in ERROR with NoValidHost
    assert _boot(h, group["id"]).status_int == 202
    assert _hosts(h)[0] is None
    # a multi-create that cannot all be placed makes nothing
    before = len(db_instances.list_(h.db))
    resp = _boot(h, group["id"], 2)
    assert resp.status_int == 500
    assert resp.json["computeFault"]["message"].startswith(
        "No valid host was found.")
    assert len(db_instances.list_(h.db)) == before


def test_anti_affinity_rule_allows_two_per_host(h):
    group = _group(h, "anti-affinity", max_server_per_host=2)
    assert _boot(h, group["id"], 4).status_int == 202
    hosts = _hosts(h)
    assert hosts.count("node1") == 2 and hosts.count("node2") == 2


def test_soft_policies_rank_hosts():
    soft = GroupPlacement("soft-affinity", {}, ["b", "b", "a"])
    assert sorted(["a", "b", "c"], key=soft.rank) == ["b", "a", "c"]
    anti = GroupPlacement("soft-anti-affinity", {}, ["b", "b", "a"])
    assert sorted(["a", "b", "c"], key=anti.rank) == ["c", "a", "b"]
    assert soft.allowed(["a", "c"]) == ["a", "c"]
    hard = GroupPlacement("anti-affinity", {}, ["a"])
    assert hard.allowed(["a", "c"]) == ["c"]


def test_soft_anti_affinity_spreads_but_never_refuses(h):
    group = _group(h, "soft-anti-affinity")
    assert _boot(h, group["id"], 3).status_int == 202
    hosts = _hosts(h)
    assert None not in hosts and set(hosts) == {"node1", "node2"}


def test_quotas_count_groups_and_members(h):
    h.admin("PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {
        "server_groups": 1, "server_group_members": 2}})
    group = _group(h, "soft-affinity")
    resp = h.request("POST", G, {"server_group": {
        "name": "g", "policies": ["affinity"]}})
    assert resp.status_int == 403
    assert resp.json["forbidden"]["message"] == \
        "Quota exceeded, too many server groups."
    assert len(db_groups.list_(h.db, "p1", None, 0)) == 1
    detail = h.request("GET", "/v2.1/os-quota-sets/p1/detail").json[
        "quota_set"]
    assert detail["server_groups"]["in_use"] == 1
    # Nova shows no usage for the per-group member limit
    assert detail["server_group_members"]["in_use"] == 0
    absolute = h.request("GET", "/v2.1/limits").json["limits"]["absolute"]
    assert absolute["totalServerGroupsUsed"] == 1
    assert _boot(h, group["id"], 2).status_int == 202
    resp = _boot(h, group["id"])
    assert resp.status_int == 403
    assert len(db_instances.list_(h.db)) == 2
