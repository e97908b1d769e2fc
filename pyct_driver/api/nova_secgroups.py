"""Nova's view of security groups: the ``os-security-groups`` reads (a
proxy to the network service, gone from 2.36 as in Nova), a server's
groups, and the ``addSecurityGroup``/``removeSecurityGroup`` actions,
which change the groups of every port of the server and refresh the hosts
that enforce them. Nova shows only ingress rules, in its own shape.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import secgroup_lookup, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import networks as db_networks
from pyct_driver.db import secgroup_ports
from pyct_driver.db import secgroups as db_secgroups

_P = "os_compute_api:os-security-groups:"
_PROXY_GONE = "2.36"


def _rule_view(rule: dict, names: dict[str, dict]) -> dict:
    remote = names.get(rule["remote_group_id"] or "")
    return {
        "id": rule["id"], "parent_group_id": rule["security_group_id"],
        "ip_protocol": rule["protocol"], "from_port":
        rule["port_range_min"] if rule["protocol"] else -1,
        "to_port": rule["port_range_max"] if rule["protocol"] else -1,
        "ip_range": {"cidr": rule["remote_ip_prefix"] or "0.0.0.0/0"}
        if remote is None else {},
        "group": {"name": remote["name"], "tenant_id":
                  remote["project_id"]} if remote is not None else {}}


def _views(groups: list[dict], api: Api) -> list[dict]:
    names = {g["id"]: g for g in db_secgroups.list_groups(api.db)}
    return [{"id": g["id"], "name": g["name"],
             "description": g["description"], "tenant_id": g["project_id"],
             "rules": [_rule_view(r, names) for r in g["rules"]
                       if r["direction"] == "ingress"]} for g in groups]


def _proxy(req: ApiRequest) -> None:
    if req.at_least(_PROXY_GONE):
        raise exception.NotFound("The resource could not be found.")


def index(api: Api, req: ApiRequest) -> Result:
    _proxy(req)
    project = req.context.project_id
    api.policy.authorize(req.context, _P + "get", {"project_id": project})
    db_secgroups.ensure_default(api.db, project)
    return Result(200, {"security_groups": _views(
        db_secgroups.list_groups(api.db, project), api)})


def show(api: Api, req: ApiRequest, group_id: str) -> Result:
    _proxy(req)
    project = req.context.project_id
    api.policy.authorize(req.context, _P + "show", {"project_id": project})
    try:
        group = db_secgroups.get_group(
            api.db, group_id, None if req.is_admin else project)
    except exception.SecurityGroupNotFound as err:
        raise exception.NotFound(f"Security group {group_id} not found."
                                 ) from err
    return Result(200, {"security_group": _views([group], api)[0]})


def server_index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = servers.get_instance(api, req, server_id, _P + "list")
    ids = secgroup_ports.instance_group_ids(api.db, inst["uuid"])
    groups = db_secgroups.list_groups(api.db, ids=ids) if ids else []
    return Result(200, {"security_groups": _views(groups, api)})


def _change(api: Api, req: ApiRequest, server_id: str, body: dict,
            action: str) -> Result:
    inst = servers.get_instance(api, req, server_id, _P + action)
    name = (body.get(action + "SecurityGroup") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise exception.Invalid("Security group name cannot be empty")
    group = secgroup_lookup.find(api, inst["project_id"], name)
    ports = db_networks.list_ports(api.db, instance_uuids=[inst["uuid"]])
    if not ports:
        raise exception.Invalid(f"Server {inst['uuid']} has no ports to "
                                "change the security groups of.")
    current = secgroup_ports.port_groups(api.db, [p["id"] for p in ports])
    has = any(group["id"] in current.get(p["id"], []) for p in ports)
    if action == "add" and has:
        raise exception.Invalid(f"Security group {name} is already "
                                "associated with the instance")
    if action == "remove" and not has:
        raise exception.Invalid(f"Security group {name} not associated "
                                "with the instance")
    for port in ports:
        groups = [g for g in current.get(port["id"], [])
                  if g != group["id"]]
        if action == "add":
            groups.append(group["id"])
        secgroup_ports.set_port_groups(api.db, [port["id"]], groups)
    # the server's own host too: after a remove it no longer carries
    # the group, so the hosts of the group's members miss it
    secgroup_lookup.refresh(api, req, [group["id"]],
                            also=[inst["host"]] if inst["host"] else [])
    return Result(202)


def add(api: Api, req: ApiRequest, server_id: str, body: dict) -> Result:
    return _change(api, req, server_id, body, "add")


def remove(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    return _change(api, req, server_id, body, "remove")
