"""Neutron's quota reads at ``/networking/v2.0/quotas/{project}[/details]``.

``openstack quota show`` asks the network service too whenever the
catalog has one, and fails as a whole if that call fails. pyct's network
subset answers in Neutron's shape with the limits pyct really has: one
network with one subnet per project (made by ``--nic auto``), ports as
many as its addresses allow (-1), floating IPs as the project's
``floating_ips`` quota allows (Nova's quota sets; -1 by default),
Neutron's default 10 security groups (the ``default`` one included) and
100 security group rules (``check_secgroups``, a 409 ``OverQuota`` past
them), and none of the resources pyct does not implement (routers, RBAC
policies, subnet pools: 0). Changing them stays a 501, as every network
write but floating IPs and security groups does. A project reads its own
quotas only (Neutron's ``get_quota`` rule).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import quota_check
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import floating_ips as db_floating
from pyct_driver.db import networks as db_networks
from pyct_driver.db import secgroups as db_secgroups

LIMITS = {"network": 1, "subnet": 1, "port": -1, "router": 0,
          "floatingip": 0, "security_group": 10, "security_group_rule": 100,
          "rbac_policy": 0, "subnetpool": 0}


def _allowed(req: ApiRequest, project_id: str) -> None:
    if not req.is_admin and project_id != req.context.project_id:
        raise exception.Forbidden("(rule:get_quota) is disallowed by "
                                  "policy")


def _limits(api: Api, project_id: str) -> dict:
    return {**LIMITS, "floatingip": quota_check.effective(
        api, project_id)["floating_ips"]}


def show(api: Api, req: ApiRequest, project_id: str) -> Result:
    _allowed(req, project_id)
    return Result(200, {"quota": _limits(api, project_id)})


def details(api: Api, req: ApiRequest, project_id: str) -> Result:
    _allowed(req, project_id)
    nets = db_networks.list_networks(api.db, project_id=project_id)
    used = {"network": len(nets), "subnet": len(nets),
            "port": len(db_networks.list_ports(api.db,
                                               project_id=project_id)),
            "floatingip": db_floating.count(api.db, project_id),
            **_secgroups_used(api, project_id)}
    return Result(200, {"quota": {
        name: {"limit": limit, "used": used.get(name, 0), "reserved": 0}
        for name, limit in _limits(api, project_id).items()}})


def _secgroups_used(api: Api, project_id: str) -> dict[str, int]:
    groups = db_secgroups.list_groups(api.db, project_id)
    return {"security_group": len(groups),
            "security_group_rule": sum(len(g["rules"]) for g in groups)}


def check_secgroups(api: Api, project_id: str, resource: str) -> None:
    """Refuse one more ``resource`` past its limit (Neutron's 409). A
    count, then the insert: two racing creates may both pass, as they
    may in Neutron without its reservations."""
    if _secgroups_used(api, project_id)[resource] >= LIMITS[resource]:
        raise exception.OverQuota(resources=resource)
