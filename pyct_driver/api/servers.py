"""Servers: list, show, update, delete (create lives in server_create).

A project only ever sees its own servers: another project's server is a
404, never a 403. Admins see every project's with ``all_tenants=1``.
Delete is a compare-and-swap to ``deleting`` then a cast to the server's
host; a server with no host, or whose compute service is down, is deleted
here, in the database.
"""

from __future__ import annotations

import datetime

from oslo_utils import strutils

from pyct_driver import exception, states
from pyct_driver.api import (schemas, server_create, server_networks,
                             server_views)
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import regex_filter

_P = "os_compute_api:servers:"
create = server_create.create


def get_instance(api: Api, req: ApiRequest, server_id: str,
                 rule: str) -> dict:
    """The server if the caller may see it, else 404; then ``rule``."""
    project = None if req.is_admin else req.context.project_id
    inst = db_instances.get(api.db, server_id, project_id=project)
    api.policy.authorize(req.context, rule,
                         {"project_id": inst["project_id"]})
    return inst


def _renderer(api: Api, req: ApiRequest, insts: list[dict]):
    faults = db_actions.fault_latest(
        api.db, [i["uuid"] for i in insts if i["vm_state"] == states.ERROR
                 or i["vm_state"] == states.DELETED])
    ports = db_networks.ports_by_instance(
        api.db, [i["uuid"] for i in insts if not i["deleted"]])
    cache: dict[str, bool] = {}

    def allowed(rule: str, inst: dict) -> bool:
        key = rule + inst["project_id"]
        if key not in cache:
            cache[key] = api.policy.check(
                req.context, rule, {"project_id": inst["project_id"]})
        return cache[key]

    def host_status(inst: dict) -> str:
        return api.scheduler.host_state(inst["host"] or "")

    def render(inst: dict) -> dict:
        return server_views.detail(
            req, inst, faults.get(inst["uuid"]),
            allowed("os_compute_api:os-extended-server-attributes", inst),
            host_status if allowed(_P + "show:host_status", inst) else None,
            server_networks.addresses(ports.get(inst["uuid"], [])))
    return render


def _changes_since(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z",
                                                               "+00:00"))
    except ValueError as err:
        raise exception.Invalid(
            f"Invalid filter field: changes-since. Value: {value}") from err
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)
    return parsed


def _name_filter(value: str | None) -> str | None:
    """The ``name`` regex, checked as Nova's query schema does (400)."""
    if value is not None:
        try:
            regex_filter.compile_filter(value)
        except exception.InvalidInput as err:
            raise exception.Invalid(
                f"Invalid input for query parameters name. Value: {value}. "
                f"{err.kwargs['reason']}") from err
    return value


def _list(api: Api, req: ApiRequest, is_detail: bool
          ) -> tuple[list[dict], int]:
    rule = _P + ("detail" if is_detail else "index")
    api.policy.authorize(req.context, rule)
    name = _name_filter(req.param("name"))
    all_tenants = req.param("all_tenants")
    project = req.context.project_id
    if all_tenants is not None:
        try:
            wanted = strutils.bool_from_string(all_tenants or "True",
                                               strict=True)
        except ValueError as err:
            raise exception.Invalid(str(err)) from err
        if wanted:
            api.policy.authorize(req.context, rule + ":get_all_tenants")
            project = None
    if req.is_admin and req.param("project_id") and project is None:
        project = req.param("project_id")
    limit = parse_int(req.param("limit"), "limit")
    limit = min(limit, api.settings.max_limit) if limit is not None \
        else api.settings.max_limit
    marker = req.param("marker")
    since = _changes_since(req.param("changes-since"))
    host = req.param("host") if api.policy.check(
        req.context, _P + "allow_all_filters") else None
    statuses = req.params.getall("status")
    try:
        rows = db_instances.list_(
            api.db, project_id=project, name=name,
            statuses=statuses, host=host, limit=limit, marker=marker,
            include_deleted=since is not None, changes_since=since)
    except exception.InvalidInput as err:
        if marker is not None and "marker" in err.message:
            raise exception.Invalid(f"marker [{marker}] not found") from err
        raise exception.Invalid(err.message) from err
    return rows, limit


def _links(req: ApiRequest, rows: list[dict], limit: int, path: str
           ) -> list[dict]:
    if not rows or len(rows) < limit:
        return []
    params = [(k, v) for k, v in req.params.items() if k != "marker"]
    params.append(("marker", rows[-1]["uuid"]))
    query = "&".join(f"{k}={v}" for k, v in params)
    return [{"rel": "next", "href": f"{req.collection_url(path)}?{query}"}]


def index(api: Api, req: ApiRequest) -> Result:
    rows, limit = _list(api, req, is_detail=False)
    body: dict = {"servers": [server_views.summary(req, r) for r in rows]}
    links = _links(req, rows, limit, "servers")
    if links:
        body["servers_links"] = links
    return Result(200, body)


def detail(api: Api, req: ApiRequest) -> Result:
    rows, limit = _list(api, req, is_detail=True)
    render = _renderer(api, req, rows)
    body: dict = {"servers": [render(r) for r in rows]}
    links = _links(req, rows, limit, "servers/detail")
    if links:
        body["servers_links"] = links
    return Result(200, body)


def show(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = get_instance(api, req, server_id, _P + "show")
    return Result(200, {"server": _renderer(api, req, [inst])(inst)})


def update(api: Api, req: ApiRequest, server_id: str) -> Result:
    body = req.json_body()
    schemas.validate(schemas.server_update(req.version), body)
    inst = get_instance(api, req, server_id, _P + "update")
    values = {}
    server = body["server"]
    if "name" in server:
        values["name"] = server["name"]
    if "description" in server:
        values["description"] = server["description"]
    if values:
        inst = db_instances.update(api.db, inst["uuid"], values)
    return Result(200, {"server": _renderer(api, req, [inst])(inst)})


def delete(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = get_instance(api, req, server_id, _P + "delete")
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.DELETING},
        expected_task_state=inst["task_state"],
        expected_vm_state=inst["vm_state"], action="delete")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "delete",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    if inst["host"] and api.scheduler.is_up(inst["host"]):
        api.compute.terminate_instance(ctxt, inst["host"], inst["uuid"])
        return Result(204)
    # no compute service will: the API deletes, and notifies as Nova's does
    with api.notifications.action(ctxt, inst["uuid"], "delete"):
        db_instances.soft_delete(api.db, inst["uuid"])
    db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)
    return Result(204)
