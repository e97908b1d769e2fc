"""Server groups: ``/os-server-groups`` list, create, show, delete.

A group is one placement policy for its members: ``affinity`` (one
host), ``anti-affinity`` (different hosts; from 2.64 up to the rule
``max_server_per_host`` each), and from 2.15 their best-effort ``soft-``
forms. Before 2.64 the body names ``policies`` (a list of one), from
2.64 ``policy`` and ``rules``; 2.13 adds ``project_id`` and ``user_id``
to the view. A project sees its own groups; admins every project's with
``all_projects``. Creating one counts against ``server_groups`` (403).
Servers join a group through the ``group`` scheduler hint at boot
(``server_create``), which ``api.group_placement`` makes the scheduler
honour.
"""

from __future__ import annotations

import uuid

from pyct_driver import exception
from pyct_driver.api import quota_check, schemas
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import quotas as db_quotas
from pyct_driver.db import server_groups as db_groups

_P = "os_compute_api:os-server-groups:"
_OLD = ("anti-affinity", "affinity")
_SOFT = ("soft-anti-affinity", "soft-affinity")


def _schema(req: ApiRequest) -> dict:
    names = list(_OLD + _SOFT) if req.at_least("2.15") else list(_OLD)
    if not req.at_least("2.64"):
        group = schemas._obj({
            "name": schemas.NAME,
            "policies": {"type": "array", "minItems": 1, "maxItems": 1,
                         "uniqueItems": True,
                         "items": {"type": "string", "enum": names}}},
            ("name", "policies"))
    else:
        group = schemas._obj({
            "name": schemas.NAME,
            "policy": {"type": "string", "enum": names},
            "rules": schemas._obj({"max_server_per_host": {
                "type": ["integer", "string"], "pattern": "^[0-9]+$",
                "minimum": 1}})},
            ("name", "policy"))
    return schemas._obj({"server_group": group}, ("server_group",))


def view(req: ApiRequest, group: dict) -> dict:
    out = {"id": group["uuid"], "name": group["name"],
           "members": list(group["members"])}
    if req.at_least("2.64"):
        out["policy"] = group["policy"]
        out["rules"] = dict(group["rules"])
    else:
        out["policies"] = [group["policy"]]
        out["metadata"] = {}
    if req.at_least("2.13"):
        out["project_id"] = group["project_id"]
        out["user_id"] = group["user_id"]
    return out


def find(api: Api, req: ApiRequest, group_uuid: str) -> dict:
    """The group the caller may use (another project's is not found)."""
    return db_groups.get(api.db, group_uuid,
                         None if req.is_admin else req.context.project_id)


def index(api: Api, req: ApiRequest) -> Result:
    ctxt = req.context
    api.policy.authorize(ctxt, _P + "index",
                         {"project_id": ctxt.project_id})
    project: str | None = ctxt.project_id
    if req.param("all_projects") is not None and schemas.to_bool(
            req.param("all_projects")):
        if api.policy.check(ctxt, _P + "index:all_projects",
                            {"project_id": ctxt.project_id}):
            project = None
    limit = parse_int(req.param("limit"), "limit", 1)
    offset = parse_int(req.param("offset"), "offset") or 0
    groups = db_groups.list_(api.db, project, limit, offset)
    return Result(200, {"server_groups": [view(req, g) for g in groups]})


def show(api: Api, req: ApiRequest, group_id: str) -> Result:
    group = find(api, req, group_id)
    api.policy.authorize(req.context, _P + "show",
                         {"project_id": group["project_id"]})
    return Result(200, {"server_group": view(req, group)})


def create(api: Api, req: ApiRequest) -> Result:
    ctxt = req.context
    api.policy.authorize(ctxt, _P + "create",
                         {"project_id": ctxt.project_id,
                          "user_id": ctxt.user_id})
    body = req.json_body()
    schemas.validate(_schema(req), body)
    spec = body["server_group"]
    policy = spec.get("policy") or spec["policies"][0]
    rules = {k: schemas.to_int(v) for k, v in spec.get("rules", {}).items()}
    if rules and policy != "anti-affinity":
        raise exception.Invalid(
            "Only anti-affinity policy supports rules.")
    values = {"uuid": str(uuid.uuid4()), "name": spec["name"],
              "project_id": ctxt.project_id, "user_id": ctxt.user_id,
              "policy": policy, "rules": rules}
    group = db_groups.create(api.db, values,
                             _quota_guard(api, ctxt.project_id,
                                          ctxt.user_id))
    return Result(200, {"server_group": view(req, group)})


def delete(api: Api, req: ApiRequest, group_id: str) -> Result:
    group = find(api, req, group_id)
    api.policy.authorize(req.context, _P + "delete",
                         {"project_id": group["project_id"]})
    db_groups.delete(api.db, group["uuid"], group["project_id"])
    return Result(204)


def _quota_guard(api: Api, project_id: str, user_id: str):
    """The project's (and user's) ``server_groups`` limit, checked under
    the project's quota lock in the creating transaction."""
    if not api.settings.quota_enforced:
        return None
    limits = quota_check.effective(api, project_id)
    user_limits = quota_check.effective(api, project_id, user_id)
    scopes = [db_quotas.project_scope(project_id)]
    db_quotas.ensure_locks(api.db, scopes)

    def guard(session) -> None:
        db_quotas.lock(session, scopes)
        for lim, user in ((limits, None), (user_limits, user_id)):
            used = db_quotas.group_count(session, project_id, user)
            if 0 <= lim["server_groups"] <= used:
                raise exception.QuotaExceeded(
                    "Quota exceeded, too many server groups.")
    return guard
