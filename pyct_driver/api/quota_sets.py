"""os-quota-sets: a project's (or a user's) limits, as Nova answers them.

``GET {project}`` the limits, ``/detail`` with ``in_use`` and
``reserved`` (always 0: Nova reserves nothing any more), ``/defaults``
the class defaults, ``PUT`` (admin) sets some, ``DELETE`` (admin)
reverts them; ``?user_id=`` acts on one user's limits within the project
as Nova's database driver does. A new limit below what is already used
(or, for a project, below what its users were given) is a 400 unless
``force`` is true. Which resources a body shows depends on the
microversion: the nova-network ones go at 2.36, the injected files at
2.57; from 2.75 an unknown query parameter is a 400.
"""

from __future__ import annotations

import copy

from pyct_driver import exception
from pyct_driver.api import quota_check, schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import quotas as db_quotas

_P = "os_compute_api:os-quota-sets:"
MAX_LIMIT = 0x7FFFFFFF
_LIMIT = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
          "minimum": -1, "maximum": MAX_LIMIT}


def hidden(req: ApiRequest, network_from: str = "2.36") -> tuple:
    """Resources a body leaves out at the request's microversion."""
    if req.at_least("2.57"):
        return quota_check.NETWORK_QUOTAS + quota_check.FILE_QUOTAS
    if req.at_least(network_from):
        return quota_check.NETWORK_QUOTAS
    return ()


def shown(req: ApiRequest, values: dict, hide: tuple) -> dict:
    return {r: values[r] for r in quota_check.RESOURCES
            if r not in hide and r in values}


def check_query(req: ApiRequest, allowed: tuple[str, ...],
                since: str = "2.75") -> None:
    """Nova's strict query schemas: unknown parameters are a 400 from
    ``since`` (ignored before)."""
    if not req.at_least(since):
        return
    schemas.validate({"type": "object", "properties": {
        k: {} for k in allowed}, "additionalProperties": False},
        dict(req.params))


def limit_value(resource: str, value: int | str) -> int:
    """An int from a validated limit; below -1 even as a string is a 400
    in Nova's words (its validator compares strings as numbers)."""
    number = int(value)
    if number < -1:
        raise exception.Invalid(
            f"Invalid input for field/attribute {resource}. Value: "
            f"{value}. {value} is less than the minimum of -1")
    if number > MAX_LIMIT:
        raise exception.Invalid(
            f"Invalid input for field/attribute {resource}. Value: "
            f"{value}. {value} is greater than the maximum of {MAX_LIMIT}")
    return number


def update_schema(req: ApiRequest, key: str, hide: tuple,
                  with_force: bool) -> dict:
    props = {r: copy.deepcopy(_LIMIT) for r in quota_check.RESOURCES
             if r not in hide}
    if with_force:
        props["force"] = schemas.BOOLEAN
    return {"type": "object", "properties": {key: {
        "type": "object", "properties": props,
        "additionalProperties": False}},
        "required": [key], "additionalProperties": False}


def _user(req: ApiRequest) -> str | None:
    # Nova reads the first user_id of the query string
    values = req.params.getall("user_id")
    return values[0] if values else None


def _authorize(api: Api, req: ApiRequest, rule: str,
               project_id: str) -> None:
    api.policy.authorize(req.context, _P + rule,
                         {"project_id": project_id})


def show(api: Api, req: ApiRequest, project_id: str) -> Result:
    _authorize(api, req, "show", project_id)
    check_query(req, ("user_id",))
    values = quota_check.effective(api, project_id, _user(req))
    return Result(200, {"quota_set": dict(
        id=project_id, **shown(req, values, hidden(req)))})


def detail(api: Api, req: ApiRequest, project_id: str) -> Result:
    _authorize(api, req, "detail", project_id)
    check_query(req, ("user_id",))
    user = req.param("user_id")
    values = quota_check.effective(api, project_id, user)
    used = db_quotas.usage_of(api.db, project_id, user or None)
    out = {r: {"in_use": used.get(r, 0), "limit": v, "reserved": 0}
           for r, v in values.items()}
    return Result(200, {"quota_set": dict(
        id=project_id, **shown(req, out, hidden(req)))})


def defaults(api: Api, req: ApiRequest, project_id: str) -> Result:
    _authorize(api, req, "defaults", project_id)
    values = quota_check.class_limits(api)
    return Result(200, {"quota_set": dict(
        id=project_id, **shown(req, values, hidden(req)))})


def _bounds(api: Api, project_id: str, user: str | None
            ) -> dict[str, tuple[int, int]]:
    """(minimum, maximum) of each resource's new limit, as Nova's
    settable quotas: at least what is used (and, for a project, what its
    users were given); a user's at most what the project has left."""
    users = db_quotas.user_limits_in(api.db, project_id)
    project = quota_check.effective(api, project_id)
    used = db_quotas.usage_of(api.db, project_id, user)
    out = {}
    for res in quota_check.RESOURCES:
        given = sum(u.get(res, 0) for name, u in users.items()
                    if name != user)
        if user:
            maximum = -1 if project[res] < 0 else project[res] - given
            out[res] = (used.get(res, 0), maximum)
        else:
            out[res] = (max(given, used.get(res, 0)), -1)
    return out


def _within(resource: str, value: int, minimum: int, maximum: int) -> None:
    def inf(v: int) -> float:
        return float("inf") if v == -1 else v
    if inf(value) < inf(minimum):
        raise exception.Invalid(
            f"Quota limit {value} for {resource} must be greater than or "
            f"equal to already used and reserved {minimum}.")
    if inf(value) > inf(maximum):
        raise exception.Invalid(
            f"Quota limit {value} for {resource} must be less than or "
            f"equal to {maximum}.")


def update(api: Api, req: ApiRequest, project_id: str) -> Result:
    _authorize(api, req, "update", project_id)
    check_query(req, ("user_id",))
    body = req.json_body()
    hide = hidden(req)
    schemas.validate(update_schema(req, "quota_set", hide, True), body)
    asked = body["quota_set"]
    user = _user(req)
    force = schemas.to_bool(asked.get("force", False))
    values = {r: limit_value(r, v) for r, v in asked.items()
              if r != "force" and (v or v == 0)}
    # with quotas off nothing is counted, so any limit may be stored (as
    # Nova's noop driver lets it) and shows as -1 until they are on
    if not force and values and api.settings.quota_enforced:
        bounds = _bounds(api, project_id, user)
        for res, value in values.items():
            _within(res, value, *bounds[res])
    if values:
        db_quotas.project_set(api.db, project_id, user or "", values)
    limits = quota_check.effective(api, project_id, user)
    return Result(200, {"quota_set": shown(req, limits, hide)})


def delete(api: Api, req: ApiRequest, project_id: str) -> Result:
    _authorize(api, req, "delete", project_id)
    check_query(req, ("user_id",))
    db_quotas.project_delete(api.db, project_id, _user(req))
    return Result(202)
