"""Policy as configuration: personas as named rules an operator's
policy.yaml overrides, ``is_admin`` from ``context_is_admin``, and the
noauth strategy's roles (implied as Keystone infers them, read-only users,
never taken from request headers).
"""

from __future__ import annotations

import json
import os
import types

import pytest
import yaml

from pyct_driver.api import policy, roles
from pyct_driver.api.policies import base
from pyct_driver.context import RequestContext
from tests.unit.test_api_app import Harness


def _harness(tmp_path, rules: dict, **overrides) -> Harness:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(rules))
    return Harness(oslo_policy__policy_file=str(path), **overrides)


def test_personas_are_named_rules_and_defaults_use_them():
    listed = {r.name: r.check_str for r in policy.list_rules()}
    assert listed["context_is_admin"] == "role:admin"
    assert listed["project_reader_api"] == \
        "role:reader and project_id:%(project_id)s"
    assert listed["project_member_api"] == \
        "role:member and project_id:%(project_id)s"
    assert listed["project_reader_or_admin"] == \
        "rule:project_reader_api or rule:context_is_admin"
    assert listed["project_member_or_admin"] == \
        "rule:project_member_api or rule:context_is_admin"
    assert listed["os_compute_api:servers:show"] == \
        base.PROJECT_READER_OR_ADMIN
    assert listed["os_compute_api:servers:delete"] == \
        base.PROJECT_MEMBER_OR_ADMIN
    assert listed["os_compute_api:os-flavor-manage:create"] == base.ADMIN
    # no default is a bare owner check any more
    assert not [n for n, c in listed.items()
                if c == "is_admin:True or project_id:%(project_id)s"
                and n != "admin_or_owner"]


def test_override_of_a_rule_takes_effect(tmp_path):
    h = _harness(tmp_path, {"os_compute_api:servers:index":
                            "rule:context_is_admin"})
    resp = h.request("GET", "/v2.1/servers")
    assert resp.status_int == 403, resp.text
    assert "os_compute_api:servers:index" in resp.text
    assert h.admin("GET", "/v2.1/servers").status_int == 200
    # rules the file does not name keep their defaults
    assert h.request("GET", "/v2.1/servers/detail").status_int == 200


def test_redefining_a_persona_changes_every_rule_built_on_it(tmp_path):
    h = _harness(tmp_path, {"project_reader_api":
                            "role:reader and project_id:%(project_id)s "
                            "and not user_id:alice"})
    h.add_host()
    sid = h.boot("vm", token="bob:p1")["id"]
    for path in (f"/v2.1/servers/{sid}", f"/v2.1/servers/{sid}/os-interface",
                 f"/v2.1/servers/{sid}/os-instance-actions"):
        assert h.request("GET", path).status_int == 403, path
        assert h.request("GET", path, token="bob:p1").status_int == 200


def test_context_is_admin_decides_is_admin(tmp_path):
    h = _harness(tmp_path, {"context_is_admin":
                            "role:admin or user_id:carol"})
    h.add_host()
    sid = h.boot("vm", token="alice:p1")["id"]
    # carol has no admin role, but policy says she is an admin: she sees
    # other projects' servers as Nova's is_admin context would
    resp = h.request("GET", "/v2.1/servers?all_tenants=1",
                     token="carol:p9")
    assert resp.status_int == 200, resp.text
    assert [s["id"] for s in resp.json["servers"]] == [sid]
    assert h.request("GET", f"/v2.1/servers/{sid}",
                     token="carol:p9").status_int == 200
    assert h.request("GET", f"/v2.1/servers/{sid}",
                     token="dave:p9").status_int == 404


def test_bad_policy_file_rule_fails_loudly(tmp_path):
    h = _harness(tmp_path, {"os_compute_api:servers:index":
                            "rule:no_such_rule"})
    # an unknown rule is False in oslo.policy: refused, never allowed
    assert h.request("GET", "/v2.1/servers").status_int == 403


def test_implied_roles_as_keystone():
    assert roles.implied(["admin"]) == ["admin", "member", "reader"]
    assert roles.implied(["member"]) == ["member", "reader"]
    assert roles.implied(["reader", "foo"]) == ["reader", "foo"]
    assert sorted(roles.noauth_roles("admin", ["member"], {"admin"},
                                     set())) == ["admin", "member", "reader"]
    assert roles.noauth_roles("x", ["member"], {"x"}, {"x"}) == ["reader"]


def _token_roles(h: Harness, user: str) -> list[str]:
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "password": "x",
                 "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "p1",
                              "domain": {"name": "Default"}}}}}
    resp = h.request("POST", "/identity/v3/auth/tokens", token=None,
                     raw=json.dumps(body).encode())
    assert resp.status_int == 201, resp.text
    return [r["name"] for r in resp.json["token"]["roles"]]


def test_noauth_roles_by_default():
    h = Harness()
    assert _token_roles(h, "alice") == ["member", "reader"]
    assert sorted(_token_roles(h, "admin")) == ["admin", "member", "reader"]
    assert _token_roles(h, "reader") == ["reader"]


def test_noauth_roles_imply_lower_roles():
    h = Harness(api__noauth_roles=["member"], api__noauth_reader_users=[])
    assert _token_roles(h, "alice") == ["member", "reader"]
    assert _token_roles(h, "reader") == ["member", "reader"]
    h = Harness(api__noauth_roles=["reader"])
    assert _token_roles(h, "alice") == ["reader"]
    h.add_host()
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "x", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert resp.status_int == 403, resp.text


@pytest.mark.parametrize("forged", [
    {"X-Roles": "admin,member"}, {"X-Roles": "member"},
    {"X-Identity-Status": "Confirmed", "X-Roles": "member",
     "X-User-Id": "alice"}])
def test_reader_cannot_forge_roles(forged):
    h = Harness(api__noauth_admin_users=["admin", "reader"])
    h.add_host()
    sid = h.boot("vm")["id"]
    resp = h.request("DELETE", f"/v2.1/servers/{sid}", token="reader:p1",
                     headers=forged)
    assert resp.status_int == 403, resp.text
    assert h.request("GET", f"/v2.1/servers/{sid}",
                     token="reader:p1").status_int == 200
    calls = list(h.compute.calls)
    resp = h.request("DELETE", f"/v2.1/servers/{sid}", token="reader:p1",
                     headers=forged)
    assert resp.status_int == 403 and h.compute.calls == calls


def test_rules_are_looked_up_once_per_interval_and_edits_still_apply(
        tmp_path, monkeypatch):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({}))
    conf = Harness(oslo_policy__policy_file=str(path)).conf
    clock = [100.0]
    # the policy module's clock only (not every thread's time.monotonic)
    monkeypatch.setattr(policy, "time",
                        types.SimpleNamespace(monotonic=lambda: clock[0]))
    checker = policy.Policy(conf, reload_after=1.0)
    lookups = []
    real = checker._enforcer._get_policy_path
    monkeypatch.setattr(checker._enforcer, "_get_policy_path",
                        lambda p: lookups.append(p) or real(p))
    ctxt = RequestContext("alice", "p1", ["member", "reader"])
    rule = "os_compute_api:servers:index"
    assert all(checker.check(ctxt, rule) for _ in range(50))
    # the first check found the file (and policy.d); the other 49 did not
    # search oslo.config's directories again
    first = len(lookups)
    assert 1 <= first <= 2
    path.write_text(yaml.safe_dump({rule: "rule:context_is_admin"}))
    # oslo.policy rereads a file whose mtime grew
    later = os.stat(path).st_mtime + 10
    os.utime(path, (later, later))
    clock[0] += 0.5
    assert checker.check(ctxt, rule), "reloaded before the interval"
    clock[0] += 0.6
    assert not checker.check(ctxt, rule), "the edit was not picked up"
    assert checker.check(RequestContext("root", "p1", ["admin"]), rule)
    assert len(lookups) <= first + 2


def test_answers_are_remembered_only_while_every_rule_is_pure(
        tmp_path, monkeypatch):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({}))
    conf = Harness(oslo_policy__policy_file=str(path)).conf
    clock = [100.0]
    # the policy module's clock only (not every thread's time.monotonic)
    monkeypatch.setattr(policy, "time",
                        types.SimpleNamespace(monotonic=lambda: clock[0]))
    checker = policy.Policy(conf, reload_after=1.0)
    ctxt = RequestContext("alice", "p1", ["member", "reader"])
    rule = "os_compute_api:servers:show"
    assert checker.check(ctxt, rule)
    assert checker.check(ctxt, rule, {"project_id": "p2"}) is False
    assert checker._memo is not None and len(checker._memo) == 2
    # an http: check asks a server each time: nothing may be remembered
    path.write_text(yaml.safe_dump({"os_compute_api:servers:index":
                                    "http://127.0.0.1:9/never"}))
    later = os.stat(path).st_mtime + 10
    os.utime(path, (later, later))
    clock[0] += 1
    assert checker.check(ctxt, rule)
    assert checker._memo is None
