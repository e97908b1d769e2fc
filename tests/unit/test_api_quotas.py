"""os-quota-sets, os-quota-class-sets and /limits through the WSGI app.

Bodies per microversion (2.1, 2.35, 2.36, 2.56, 2.57, 2.96 and the class
sets' 2.50), the policy of each route (a member reads its own project's
quotas, not another's; only admins write), and bad input on every write
-- malformed JSON, wrong types, negative limits, unknown keys, limits
below usage -- answered with Nova's fault body and nothing stored.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pyct_driver.api import microversion
from pyct_driver.api.quota_check import RESOURCES
from tests.unit.test_api_app import Harness

ADMIN = "admin:adminproj"
NETWORK = {"fixed_ips", "floating_ips", "security_groups",
           "security_group_rules"}
FILES = {"injected_files", "injected_file_content_bytes",
         "injected_file_path_bytes"}
ALL = set(RESOURCES)
# the resources a quota set shows at each microversion
SHOWN = {"2.1": ALL, "2.35": ALL, "2.36": ALL - NETWORK,
         "2.56": ALL - NETWORK, "2.57": ALL - NETWORK - FILES,
         "2.96": ALL - NETWORK - FILES}


@pytest.fixture(autouse=True)
def _up_to_296(monkeypatch):
    # the quota routes are exact up to 2.96 whatever the advertised max
    monkeypatch.setattr(microversion, "MAX_VERSION", (2, 96))


def _rows(h: Harness, table: str) -> list:
    with h.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM {table}")).all()


def _put(h, body, token=ADMIN, path="/v2.1/os-quota-sets/p1", **kw):
    return h.request("PUT", path, body, token=token, **kw)


@pytest.mark.parametrize("version", sorted(SHOWN))
def test_quota_set_bodies_per_microversion(version):
    h = Harness()
    keys = SHOWN[version]
    show = h.request("GET", "/v2.1/os-quota-sets/p1", version=version)
    assert show.status_int == 200
    assert set(show.json["quota_set"]) == keys | {"id"}
    assert show.json["quota_set"]["id"] == "p1"
    assert show.json["quota_set"]["instances"] == 10
    defaults = h.request("GET", "/v2.1/os-quota-sets/p1/defaults",
                         version=version).json["quota_set"]
    assert set(defaults) == keys | {"id"}
    detail = h.request("GET", "/v2.1/os-quota-sets/p1/detail",
                       version=version).json["quota_set"]
    assert set(detail) == keys | {"id"}
    assert detail["ram"] == {"in_use": 0, "limit": 51200, "reserved": 0}
    updated = _put(h, {"quota_set": {"cores": 7}}, version=version)
    assert updated.status_int == 200
    assert set(updated.json["quota_set"]) == keys   # no id in update
    assert updated.json["quota_set"]["cores"] == 7
    for gone in ALL - keys:     # a hidden resource cannot be set either
        resp = _put(h, {"quota_set": {gone: 1}}, version=version)
        assert resp.status_int == 400
        assert "Additional properties are not allowed" in \
            resp.json["badRequest"]["message"]


@pytest.mark.parametrize("version,keys", [
    ("2.1", ALL - {"server_groups", "server_group_members"}),
    ("2.49", ALL - {"server_groups", "server_group_members"}),
    ("2.50", ALL - NETWORK), ("2.56", ALL - NETWORK),
    ("2.57", ALL - NETWORK - FILES), ("2.96", ALL - NETWORK - FILES)])
def test_quota_class_bodies_per_microversion(version, keys):
    h = Harness()
    show = h.admin("GET", "/v2.1/os-quota-class-sets/default",
                   version=version)
    assert set(show.json["quota_class_set"]) == keys | {"id"}
    resp = h.admin("PUT", "/v2.1/os-quota-class-sets/default",
                   {"quota_class_set": {"instances": 4}}, version=version)
    assert resp.status_int == 200
    assert set(resp.json["quota_class_set"]) == keys
    # the default class is every project's default now
    assert h.request("GET", "/v2.1/os-quota-sets/p1").json[
        "quota_set"]["instances"] == 4
    # server groups are settable at every version, shown from 2.50
    resp = h.admin("PUT", "/v2.1/os-quota-class-sets/default",
                   {"quota_class_set": {"server_groups": 3}},
                   version=version)
    assert resp.status_int == 200
    assert h.request("GET", "/v2.1/os-quota-sets/p1").json[
        "quota_set"]["server_groups"] == 3


_LIMITS_21 = {
    "maxImageMeta", "maxPersonality", "maxPersonalitySize",
    "maxSecurityGroups", "maxSecurityGroupRules", "maxServerMeta",
    "maxServerGroups", "maxServerGroupMembers", "maxTotalCores",
    "maxTotalFloatingIps", "maxTotalInstances", "maxTotalKeypairs",
    "maxTotalRAMSize", "totalCoresUsed", "totalFloatingIpsUsed",
    "totalInstancesUsed", "totalRAMUsed", "totalSecurityGroupsUsed",
    "totalServerGroupsUsed"}
_LIMITS_236 = _LIMITS_21 - {
    "maxSecurityGroups", "maxSecurityGroupRules", "maxTotalFloatingIps",
    "totalFloatingIpsUsed", "totalSecurityGroupsUsed"}
_LIMITS_239 = _LIMITS_236 - {"maxImageMeta"}
_LIMITS_257 = _LIMITS_239 - {"maxPersonality", "maxPersonalitySize"}


@pytest.mark.parametrize("version,keys", [
    ("2.1", _LIMITS_21), ("2.35", _LIMITS_21), ("2.36", _LIMITS_236),
    ("2.38", _LIMITS_236), ("2.39", _LIMITS_239), ("2.56", _LIMITS_239),
    ("2.57", _LIMITS_257), ("2.96", _LIMITS_257)])
def test_limits_bodies_per_microversion(version, keys):
    h = Harness()
    h.add_host()
    h.boot(version="2.37")
    resp = h.request("GET", "/v2.1/limits", version=version)
    assert resp.status_int == 200
    limits = resp.json["limits"]
    assert limits["rate"] == []
    assert set(limits["absolute"]) == keys
    absolute = limits["absolute"]
    assert (absolute["maxTotalInstances"], absolute["totalInstancesUsed"],
            absolute["totalCoresUsed"], absolute["totalRAMUsed"]) == (
        10, 1, 1, 512)


def test_member_reads_own_quotas_only_and_writes_none():
    h = Harness()
    for path in ("/v2.1/os-quota-sets/p2", "/v2.1/os-quota-sets/p2/detail"):
        resp = h.request("GET", path)
        assert resp.status_int == 403
        rule = "detail" if path.endswith("detail") else "show"
        assert resp.json == {"forbidden": {"code": 403, "message": (
            f"Policy doesn't allow os_compute_api:os-quota-sets:{rule} to "
            "be performed.")}}
    # defaults are anyone's (Nova's rule "@"), and admins read any project
    assert h.request("GET", "/v2.1/os-quota-sets/p2/defaults"
                     ).status_int == 200
    assert h.admin("GET", "/v2.1/os-quota-sets/p2").status_int == 200
    for method, body in (("PUT", {"quota_set": {"instances": 1}}),
                         ("DELETE", None)):
        for project in ("p1", "p2"):
            resp = h.request(method, f"/v2.1/os-quota-sets/{project}",
                             body)
            assert resp.status_int == 403
            assert "forbidden" in resp.json
    for method, body in (("GET", None), ("PUT", {"quota_class_set": {
            "instances": 1}})):
        resp = h.request(method, "/v2.1/os-quota-class-sets/default", body)
        assert resp.status_int == 403
    assert _rows(h, "quotas") == [] and _rows(h, "quota_classes") == []


@pytest.mark.parametrize("raw,message", [
    (b'{"quota_set": {', "Malformed request body"),
    (b'[]', "[] is not of type 'object'"),
    (b'{"quota_set": 5}', "5 is not of type 'object'"),
    (b'{"quota": {"instances": 5}}', "'quota_set' is a required property"),
    (b'{"quota_set": {"instances": "ten"}}', "does not match"),
    (b'{"quota_set": {"instances": 1.5}}', "is not of type"),
    (b'{"quota_set": {"instances": [1]}}', "is not of type"),
    (b'{"quota_set": {"instances": -2}}',
     "-2 is less than the minimum of -1"),
    (b'{"quota_set": {"instances": "-7"}}',
     "-7 is less than the minimum of -1"),
    (b'{"quota_set": {"instances": 2147483648}}',
     "is greater than the maximum of 2147483647"),
    (b'{"quota_set": {"bogus": 1}}',
     "Additional properties are not allowed ('bogus' was unexpected)"),
    (b'{"quota_set": {"force": "maybe"}}', "is not one of"),
])
def test_bad_quota_updates_are_400_and_change_nothing(raw, message):
    h = Harness()
    resp = h.admin("PUT", "/v2.1/os-quota-sets/p1", raw=raw)
    assert resp.status_int == 400, resp.text
    assert set(resp.json) == {"badRequest"}
    assert resp.json["badRequest"]["code"] == 400
    assert message in resp.json["badRequest"]["message"]
    assert _rows(h, "quotas") == []
    resp = h.admin("PUT", "/v2.1/os-quota-class-sets/default",
                   raw=raw.replace(b"quota_set", b"quota_class_set"))
    if b"force" not in raw:     # class sets take no force at all
        assert resp.status_int == 400
        assert _rows(h, "quota_classes") == []


def test_update_accepts_minus_one_strings_and_force():
    h = Harness()
    resp = _put(h, {"quota_set": {"instances": "-1", "cores": "5",
                                  "force": "true"}})
    assert resp.status_int == 200
    assert (resp.json["quota_set"]["instances"],
            resp.json["quota_set"]["cores"]) == (-1, 5)


def test_limit_below_usage_needs_force():
    h = Harness()
    h.add_host()
    for name in ("a", "b"):
        h.boot(name)
    resp = _put(h, {"quota_set": {"instances": 1}})
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Quota limit 1 for instances must be greater than or equal to "
        "already used and reserved 2.")
    assert _rows(h, "quotas") == []
    resp = _put(h, {"quota_set": {"instances": 1, "force": True}})
    assert resp.json["quota_set"]["instances"] == 1
    refused = h.request("POST", "/v2.1/servers", {"server": {
        "name": "c", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert refused.status_int == 403
    assert refused.json["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 2 of "
        "1 instances")


def test_user_quotas_within_the_project():
    h = Harness()
    h.add_host()
    _put(h, {"quota_set": {"instances": 5}})
    resp = _put(h, {"quota_set": {"instances": 6}},
                path="/v2.1/os-quota-sets/p1?user_id=alice")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Quota limit 6 for instances must be less than or equal to 5.")
    assert _put(h, {"quota_set": {"instances": 1}},
                path="/v2.1/os-quota-sets/p1?user_id=alice").json[
        "quota_set"]["instances"] == 1
    shown = h.request("GET", "/v2.1/os-quota-sets/p1?user_id=alice").json
    assert shown["quota_set"]["instances"] == 1
    assert h.request("GET", "/v2.1/os-quota-sets/p1").json[
        "quota_set"]["instances"] == 5
    h.boot("a")
    # alice is at her own limit; bob (same project) is not
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "b", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert resp.status_int == 403
    assert h.boot("c", token="bob:p1")["id"]
    detail = h.request("GET", "/v2.1/os-quota-sets/p1/detail?user_id=alice"
                       ).json["quota_set"]
    assert detail["instances"] == {"in_use": 1, "limit": 1, "reserved": 0}
    # the user's delete drops only the user's limits
    assert h.admin("DELETE", "/v2.1/os-quota-sets/p1?user_id=alice"
                   ).status_int == 202
    assert {(r.user_id, r.resource) for r in _rows(h, "quotas")} == {
        ("", "instances")}
    resp = h.admin("DELETE", "/v2.1/os-quota-sets/p1")
    assert resp.status_int == 202 and resp.body == b""
    assert _rows(h, "quotas") == []


def test_unknown_query_parameters_from_275():
    h = Harness()
    path = "/v2.1/os-quota-sets/p1?frob=1"
    assert h.request("GET", path, version="2.74").status_int == 200
    resp = h.request("GET", path, version="2.75")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Additional properties are not allowed ('frob' was unexpected)")
    assert h.request("GET", "/v2.1/limits?frob=1",
                     version="2.75").status_int == 400


def test_limits_of_another_project_are_admin_only():
    h = Harness()
    resp = h.request("GET", "/v2.1/limits?tenant_id=p2")
    assert resp.status_int == 403
    assert resp.json["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:limits:other_project to be "
        "performed.")
    _put(h, {"quota_set": {"instances": 3}}, path="/v2.1/os-quota-sets/p2")
    resp = h.admin("GET", "/v2.1/limits?tenant_id=p2")
    assert resp.json["limits"]["absolute"]["maxTotalInstances"] == 3


def test_class_name_too_long_is_400():
    h = Harness()
    resp = h.admin("PUT", "/v2.1/os-quota-class-sets/" + "c" * 256,
                   {"quota_class_set": {"instances": 1}})
    assert resp.status_int == 400
    assert _rows(h, "quota_classes") == []
