"""os-quota-class-sets: the limits of a quota class (admin only).

Only the ``default`` class is applied (it overrides the ``[quota]``
options for every project without limits of its own); other names are
stored and shown as Nova stores them. Below 2.50 the bodies leave out
server_groups and server_group_members, from 2.50 the nova-network
resources, from 2.57 the injected files too.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import quota_check, quota_sets, schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import quotas as db_quotas

_P = "os_compute_api:os-quota-class-sets:"
_GROUPS = ("server_groups", "server_group_members")


def _hidden(req: ApiRequest) -> tuple:
    hide = quota_sets.hidden(req, network_from="2.50")
    return hide if req.at_least("2.50") else hide + _GROUPS


def show(api: Api, req: ApiRequest, class_name: str) -> Result:
    api.policy.authorize(req.context, _P + "show", {})
    values = quota_check.class_limits(api, class_name)
    return Result(200, {"quota_class_set": dict(
        id=class_name, **quota_sets.shown(req, values, _hidden(req)))})


def update(api: Api, req: ApiRequest, class_name: str) -> Result:
    api.policy.authorize(req.context, _P + "update", {})
    if len(class_name) > 255:
        raise exception.Invalid(
            "Invalid input received: quota_class_name has more than 255 "
            "characters.")
    body = req.json_body()
    hide = _hidden(req)
    # below 2.50 server groups may be set though they are not shown
    schemas.validate(quota_sets.update_schema(
        req, "quota_class_set", quota_sets.hidden(req, "2.50"), False),
        body)
    values = {r: quota_sets.limit_value(r, v)
              for r, v in body["quota_class_set"].items()}
    if values:
        db_quotas.class_set(api.db, class_name, values)
    return Result(200, {"quota_class_set": quota_sets.shown(
        req, quota_check.class_limits(api, class_name), hide)})
