"""Instance actions: ``GET /servers/{id}/os-instance-actions[/{req_id}]``.

Every user action on a server is listed with the request id that started
it; one action shows its events only to whom policy allows (admins by
default — non-admins got them only from 2.51, above our maximum).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions

_P = "os_compute_api:os-instance-actions:"


def _time(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def _view(row: dict) -> dict:
    return {"action": row["action"], "instance_uuid": row["instance_uuid"],
            "message": row["message"], "project_id": row["project_id"],
            "request_id": row["request_id"],
            "start_time": _time(row["start_time"]),
            "user_id": row["user_id"]}


def _event(row: dict) -> dict:
    return {"event": row["event"], "start_time": _time(row["start_time"]),
            "finish_time": _time(row["finish_time"]),
            "result": row["result"], "traceback": row["traceback"]}


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = get_instance(api, req, server_id, _P + "list")
    rows = db_actions.action_list(api.db, inst["uuid"])
    return Result(200, {"instanceActions": [_view(r) for r in rows]})


def show(api: Api, req: ApiRequest, server_id: str, request_id: str
         ) -> Result:
    inst = get_instance(api, req, server_id, _P + "show")
    try:
        row = db_actions.action_get(api.db, inst["uuid"], request_id)
    except exception.ActionNotFound as err:
        raise exception.NotFound(
            f"Action for request_id {request_id} on instance "
            f"{inst['uuid']} not found") from err
    body = _view(row)
    if api.policy.check(req.context, _P + "events",
                        {"project_id": inst["project_id"]}):
        body["events"] = [_event(e) for e in row["events"]]
    return Result(200, {"instanceAction": body})
