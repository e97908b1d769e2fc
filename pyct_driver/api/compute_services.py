"""os-services: list compute services, disable/enable, force down, delete.

A disabled or forced-down service's host gets no new servers (the
scheduler skips it); a forced-down one also reads "down" at once instead
of after ``service_down_time``. Before 2.53 a service is named by host
and binary in the body of ``PUT /os-services/{action}``; from 2.53 by its
uuid in ``PUT /os-services/{uuid}`` with the changes in the body.
Deleting a compute service that still hosts instances is a 409, as in
Nova; deleting the host's last service drops its hypervisor and its
aggregate memberships.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import schemas
from pyct_driver.api.host_views import (NOVA_COMPUTE, HostStates,
                                        check_query, parse_id, shown_binary,
                                        stored_binary)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import services as db_services

_P = "os_compute_api:os-services:"
_FQDN = {"type": "string", "minLength": 1, "maxLength": 255,
         "pattern": "^[a-zA-Z0-9-._]*$"}
_REASON = {"type": "string", "minLength": 1, "maxLength": 255}
_BINARY = {"type": "string", "minLength": 1, "maxLength": 255}


def _update_schema(req: ApiRequest) -> dict:
    if req.at_least("2.53"):
        return {"type": "object", "additionalProperties": False,
                "properties": {
                    "status": {"type": "string",
                               "enum": ["enabled", "disabled"]},
                    "disabled_reason": _REASON,
                    "forced_down": schemas.BOOLEAN}}
    props = {"host": _FQDN, "binary": _BINARY, "disabled_reason": _REASON}
    if req.at_least("2.11"):
        props["forced_down"] = schemas.BOOLEAN
    return {"type": "object", "properties": props,
            "required": ["host", "binary"], "additionalProperties": False}


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, _P + "list", {})
    check_query(req, ("host", "binary"), strict=req.at_least("2.75"))
    host, binary = req.param("host"), req.param("binary")
    states = HostStates(api)
    rows = [s for s in states.services
            if (not host or s["host"] == host)
            and (not binary or shown_binary(s["binary"]) == binary
                 or s["binary"] == binary)]
    return Result(200, {"services": [states.service_view(req, s)
                                     for s in rows]})


def _only_compute(binary: str) -> None:
    if binary != NOVA_COMPUTE:
        raise exception.Invalid(
            f"Updating a {binary} service is not supported. Only "
            "nova-compute services can be updated.")


def _update_by_host(api: Api, body: dict, values: dict) -> None:
    _only_compute(shown_binary(body["binary"]))
    try:
        db_services.service_update(api.db, values, host=body["host"],
                                   binary=stored_binary(body["binary"]))
    except exception.ServiceNotFound as err:
        raise exception.NotFound(
            f"Could not find binary {body['binary']} on host "
            f"{body['host']}.") from err


def _action(api: Api, req: ApiRequest, action: str, body: dict) -> dict:
    """The pre-2.53 actions: enable, disable, disable-log-reason and
    (2.11) force-down, each naming its service by host and binary."""
    actions = ["enable", "disable", "disable-log-reason"]
    if req.at_least("2.11"):
        actions.append("force-down")
    if action not in actions:
        raise exception.NotFound("Unknown action")
    out = {"host": body["host"], "binary": body["binary"]}
    if action == "force-down":
        if "forced_down" not in body:
            raise exception.Invalid("Missing forced_down field")
        forced = schemas.to_bool(body["forced_down"])
        _update_by_host(api, body, {"forced_down": forced})
        return dict(out, forced_down=forced)
    reason = None
    if action == "disable-log-reason":
        if "disabled_reason" not in body:
            raise exception.Invalid("Missing disabled reason field")
        reason = body["disabled_reason"]
    disabled = action != "enable"
    _update_by_host(api, body, {"disabled": disabled,
                                "disabled_reason": reason})
    out["status"] = "disabled" if disabled else "enabled"
    if reason:
        out["disabled_reason"] = reason
    return out


def _update_v253(api: Api, req: ApiRequest, service_id: str,
                 body: dict) -> dict:
    svc = _get(api, service_id)
    _only_compute(shown_binary(svc["binary"]))
    values: dict = {}
    if body.get("status") == "enabled":
        if body.get("disabled_reason"):
            raise exception.Invalid("Specifying 'disabled_reason' with "
                                    "status 'enabled' is invalid.")
        values.update(disabled=False, disabled_reason=None)
    elif body.get("status") == "disabled":
        values.update(disabled=True,
                      disabled_reason=body.get("disabled_reason"))
    if "forced_down" in body:
        values["forced_down"] = schemas.to_bool(body["forced_down"])
    if not values:
        raise exception.Invalid("No updates were requested. Fields "
                                "'status' or 'forced_down' should be "
                                "specified.")
    svc = db_services.service_update(api.db, values, service_id=svc["id"])
    return HostStates(api).service_view(req, svc)


def _get(api: Api, service_id: str | int) -> dict:
    try:
        return db_services.service_get(api.db, service_id)
    except exception.ServiceNotFound as err:
        raise exception.NotFound(
            f"Service {service_id} could not be found.") from err


def update(api: Api, req: ApiRequest, service_id: str) -> Result:
    body = req.json_body()
    schemas.validate(_update_schema(req), body)
    if req.at_least("2.53"):
        service_id = str(parse_id(req, service_id))
        api.policy.authorize(req.context, _P + "update", {})
        return Result(200, {"service": _update_v253(api, req, service_id,
                                                    body)})
    api.policy.authorize(req.context, _P + "update", {})
    return Result(200, {"service": _action(api, req, service_id, body)})


def delete(api: Api, req: ApiRequest, service_id: str) -> Result:
    api.policy.authorize(req.context, _P + "delete", {})
    key = parse_id(req, service_id)
    try:
        db_services.service_delete(api.db, key)
    except exception.ServiceNotFound as err:
        raise exception.NotFound(f"Service {service_id} not found.") from err
    return Result(204)
