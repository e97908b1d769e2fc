"""Neutron's ``security-groups`` and ``security-group-rules`` at
``/networking/v2.0``: list, show, create, update (groups), delete.

A project sees its own groups (its ``default`` made on first use: a
list, a create, a server's boot), admins everyone's; another project's
group is a 404 as Neutron hides it, and a refused call changes nothing.
Every change casts a refresh to the compute hosts enforcing the groups
it touches (``secgroup_lookup.refresh``) so running guests get it within
a second.
Filters and ``fields`` are Neutron's (``networking._filtered``).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import network_quotas, networking, secgroup_lookup
from pyct_driver.api import secgroup_rules
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import secgroup_ports
from pyct_driver.db import secgroups as db_secgroups


def group_view(group: dict) -> dict:
    stamp = networking._iso(group["created_at"])
    return {
        "id": group["id"], "name": group["name"],
        "description": group["description"],
        "tenant_id": group["project_id"], "project_id": group["project_id"],
        "security_group_rules": [secgroup_rules.view(r)
                                 for r in group["rules"]],
        "stateful": True, "shared": False, "tags": [],
        "created_at": stamp,
        "updated_at": networking._iso(group["updated_at"]) or stamp,
        "revision_number": 0}


def _body(req: ApiRequest, key: str) -> dict:
    body = req.json_body()
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise exception.Invalid(f"Resource body required: '{key}'")
    return body[key]


def _groups(api: Api, req: ApiRequest,
            make_default: bool = False) -> list[dict]:
    """The groups the caller may read; a list makes the caller's
    ``default`` first (a refused call must change nothing)."""
    if make_default and not req.is_admin:
        db_secgroups.ensure_default(api.db, req.context.project_id)
    return networking._readable(
        api, req, "get_security_group", db_secgroups.list_groups(
            api.db, networking._project(req)))


def _group(api: Api, req: ApiRequest, group_id: str) -> dict:
    found = [g for g in _groups(api, req) if g["id"] == group_id]
    if not found:
        raise exception.SecurityGroupNotFound(id=group_id)
    return found[0]


def _authorize(api: Api, req: ApiRequest, rule: str,
               project_id: str) -> None:
    api.policy.authorize(req.context, rule, {"project_id": project_id})


def list_groups(api: Api, req: ApiRequest) -> Result:
    return Result(200, {"security_groups": networking._filtered(
        req, [group_view(g) for g in _groups(api, req, True)])})


def show_group(api: Api, req: ApiRequest, security_group_id: str) -> Result:
    return Result(200, {"security_group": group_view(
        _group(api, req, security_group_id))})


def create_group(api: Api, req: ApiRequest) -> Result:
    body = _body(req, "security_group")
    project_id = body.get("project_id") or body.get("tenant_id") or \
        req.context.project_id
    if project_id != req.context.project_id and not req.is_admin:
        raise exception.Forbidden("Only admins may create groups of "
                                  "another project.")
    _authorize(api, req, "create_security_group", project_id)
    name = body.get("name") or ""
    if name == db_secgroups.DEFAULT:
        raise exception.Conflict("Default security group already exists.")
    db_secgroups.ensure_default(api.db, project_id)
    network_quotas.check_secgroups(api, project_id, "security_group")
    group = db_secgroups.create_group(api.db, project_id, str(name)[:255],
                                      str(body.get("description") or ""))
    return Result(201, {"security_group": group_view(group)})


def update_group(api: Api, req: ApiRequest,
                 security_group_id: str) -> Result:
    group = _group(api, req, security_group_id)
    _authorize(api, req, "update_security_group", group["project_id"])
    body = _body(req, "security_group")
    values = {k: str(body[k])[:255] for k in ("name", "description")
              if k in body}
    if group["name"] == db_secgroups.DEFAULT and \
            values.get("name", "default") != "default":
        raise exception.Conflict("Updating default security group not "
                                 "allowed.")
    return Result(200, {"security_group": group_view(
        db_secgroups.update_group(api.db, group["id"], values))})


def delete_group(api: Api, req: ApiRequest,
                 security_group_id: str) -> Result:
    group = _group(api, req, security_group_id)
    _authorize(api, req, "delete_security_group", group["project_id"])
    if group["name"] == db_secgroups.DEFAULT and not req.is_admin:
        raise exception.Conflict("Insufficient rights for removing "
                                 "default security group.")
    # rules of other groups naming it go with it: their hosts refresh
    hosts = secgroup_ports.hosts_of_groups(api.db, [group["id"]])
    db_secgroups.delete_group(api.db, group["id"])
    secgroup_lookup.refresh(api, req, [], also=hosts)
    return Result(204)


def list_rules(api: Api, req: ApiRequest) -> Result:
    rules = [r for g in _groups(api, req, True) for r in g["rules"]]
    return Result(200, {"security_group_rules": networking._filtered(
        req, [secgroup_rules.view(r) for r in rules])})


def _rule(api: Api, req: ApiRequest, rule_id: str) -> dict:
    found = [r for g in _groups(api, req) for r in g["rules"]
             if r["id"] == rule_id]
    if not found:
        raise exception.SecurityGroupRuleNotFound(id=rule_id)
    return found[0]


def show_rule(api: Api, req: ApiRequest,
              security_group_rule_id: str) -> Result:
    return Result(200, {"security_group_rule": secgroup_rules.view(
        _rule(api, req, security_group_rule_id))})


def create_rule(api: Api, req: ApiRequest) -> Result:
    body = _body(req, "security_group_rule")
    values = secgroup_rules.checked(body)
    group = _group(api, req, str(body.get("security_group_id")))
    _authorize(api, req, "create_security_group_rule", group["project_id"])
    if values["remote_group_id"] is not None:
        _group(api, req, values["remote_group_id"])
    network_quotas.check_secgroups(api, group["project_id"],
                                   "security_group_rule")
    rule = db_secgroups.create_rule(api.db, group["id"], values)
    secgroup_lookup.refresh(api, req, [group["id"]])
    return Result(201, {"security_group_rule": secgroup_rules.view(rule)})


def delete_rule(api: Api, req: ApiRequest,
                security_group_rule_id: str) -> Result:
    rule = _rule(api, req, security_group_rule_id)
    _authorize(api, req, "delete_security_group_rule", rule["project_id"])
    db_secgroups.delete_rule(api.db, rule["id"])
    secgroup_lookup.refresh(api, req, [rule["security_group_id"]])
    return Result(204)


ROUTES = [
    ("GET", "v2.0/security-groups", list_groups),
    ("POST", "v2.0/security-groups", create_group),
    ("GET", "v2.0/security-groups/{security_group_id}", show_group),
    ("PUT", "v2.0/security-groups/{security_group_id}", update_group),
    ("DELETE", "v2.0/security-groups/{security_group_id}", delete_group),
    ("GET", "v2.0/security-group-rules", list_rules),
    ("POST", "v2.0/security-group-rules", create_rule),
    ("GET", "v2.0/security-group-rules/{security_group_rule_id}",
     show_rule),
    ("DELETE", "v2.0/security-group-rules/{security_group_rule_id}",
     delete_rule),
]
