"""Instance actions: ``GET /servers/{id}/os-instance-actions[/{req_id}]``.

Every user action on a server is listed with the request id that started
it. Per microversion, as Nova: 2.21 lists a deleted server's actions too;
2.51 shows events to everyone who may see the action (the traceback, and
from 2.62 the host, only to whom the ``events`` rule allows); 2.58 adds
``updated_at`` and pages the list (``limit``, ``marker``,
``changes-since``); 2.62 gives events a ``hostId``; 2.66 adds
``changes-before``; 2.84 the events' ``details`` (``events:details``).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import server_filters, server_views
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances

_P = "os_compute_api:os-instance-actions:"


def _time(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def _view(req: ApiRequest, row: dict) -> dict:
    out = {"action": row["action"], "instance_uuid": row["instance_uuid"],
           "message": row["message"], "project_id": row["project_id"],
           "request_id": row["request_id"],
           "start_time": _time(row["start_time"]),
           "user_id": row["user_id"]}
    if req.at_least("2.58"):
        out["updated_at"] = _time(row["updated_at"] or row["created_at"])
    return out


def _event(req: ApiRequest, row: dict, project_id: str,
           privileged: bool, details: bool) -> dict:
    out = {"event": row["event"], "start_time": _time(row["start_time"]),
           "finish_time": _time(row["finish_time"]),
           "result": row["result"]}
    if privileged:
        out["traceback"] = row["traceback"]
        if req.at_least("2.62"):
            out["host"] = row["host"]
    if req.at_least("2.62"):
        out["hostId"] = server_views.host_id(
            {"host": row["host"], "project_id": project_id})
    if details:
        out["details"] = row.get("details")
    return out


def _instance(api: Api, req: ApiRequest, server_id: str, rule: str) -> dict:
    project = None if req.is_admin else req.context.project_id
    inst = db_instances.get(api.db, server_id, project_id=project,
                            read_deleted=req.at_least("2.21"))
    api.policy.authorize(req.context, _P + rule,
                         {"project_id": inst["project_id"]})
    return inst


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = _instance(api, req, server_id, "list")
    paging: dict = {}
    if req.at_least("2.58"):
        paging = server_filters.changes_window(req)
        limit = parse_int(req.param("limit"), "limit")
        paging["limit"] = api.settings.max_limit if limit is None \
            else min(limit, api.settings.max_limit)
        paging["marker"] = req.param("marker")
    rows = db_actions.action_list(api.db, inst["uuid"], **paging)
    body: dict = {"instanceActions": [_view(req, r) for r in rows]}
    if paging and rows and len(rows) == paging["limit"]:
        url = req.collection_url(f"servers/{server_id}/os-instance-actions")
        body["links"] = [{"rel": "next", "href":
                          f"{url}?{req.next_query(rows[-1]['request_id'])}"}]
    return Result(200, body)


def show(api: Api, req: ApiRequest, server_id: str, request_id: str
         ) -> Result:
    inst = _instance(api, req, server_id, "show")
    try:
        row = db_actions.action_get(api.db, inst["uuid"], request_id)
    except exception.ActionNotFound as err:
        raise exception.NotFound(f"Action {request_id} not found") from err
    body = _view(req, row)
    target = {"project_id": inst["project_id"]}
    privileged = api.policy.check(req.context, _P + "events", target)
    if privileged or req.at_least("2.51"):
        details = req.at_least("2.84") and api.policy.check(
            req.context, _P + "events:details", target)
        body["events"] = [
            _event(req, e, row["project_id"] or inst["project_id"],
                   privileged, details) for e in row["events"]]
    return Result(200, {"instanceAction": body})
