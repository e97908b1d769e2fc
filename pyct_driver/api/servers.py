"""Servers: list, show, update, delete (create lives in server_create).

A project only ever sees its own servers: another project's server is a
404, never a 403. Admins see every project's with ``all_tenants=1``.
Delete is a compare-and-swap to ``deleting`` then a cast to the server's
host; a server with no host, or whose compute service is down, is deleted
here, in the database.
"""

from __future__ import annotations

import contextlib
from typing import Callable

from pyct_driver import exception, states
from pyct_driver.api import (image_create, schemas, secgroup_lookup,
                             server_create,
                             server_filters, server_networks, server_views)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.context import RequestContext
from pyct_driver.db import actions as db_actions
from pyct_driver.db import image_query
from pyct_driver.db import instances as db_instances
from pyct_driver.db import locks as db_locks
from pyct_driver.db import port_batch
from pyct_driver.db import server_groups as db_groups
from pyct_driver.db import tags as db_tags

_P = "os_compute_api:servers:"
create = server_create.create


def action_of(ctxt: RequestContext) -> dict:
    """Who starts an instance action (``db_instances.update``'s
    ``start_action``): the request's id, user and project."""
    return {"request_id": ctxt.request_id, "user_id": ctxt.user_id,
            "project_id": ctxt.project_id}


def get_instance(api: Api, req: ApiRequest, server_id: str,
                 rule: str) -> dict:
    """The server if the caller may see it, else 404; then ``rule``."""
    project = None if req.is_admin else req.context.project_id
    inst = db_instances.get(api.db, server_id, project_id=project)
    api.policy.authorize(req.context, rule,
                         {"project_id": inst["project_id"]})
    return inst


def _renderer(api: Api, req: ApiRequest, insts: list[dict],
              view: str = "show"):
    """A function rendering each of ``insts`` for this request; ``view``:
    ``show``, ``detail`` (the list) or ``update``."""
    faults = db_actions.fault_latest(
        api.db, [i["uuid"] for i in insts if i["vm_state"] == states.ERROR
                 or i["vm_state"] == states.DELETED])
    ports = port_batch.ports_by_instance(
        api.db, [i["uuid"] for i in insts if not i["deleted"]])
    uuids = [i["uuid"] for i in insts]
    tags = db_tags.by_instance(api.db, uuids) if req.at_least("2.26") \
        else {}
    groups = db_groups.groups_of(api.db, uuids) if req.at_least("2.71") \
        and view != "detail" else {}
    locks = db_locks.by_instance(api.db, uuids) if req.at_least("2.73") \
        else {}
    cache: dict[str, bool] = {}
    sg_names = secgroup_lookup.names_by_instance(api, ports)

    def allowed(rule: str, inst: dict) -> bool:
        key = rule + inst["project_id"]
        if key not in cache:
            cache[key] = api.policy.check(
                req.context, rule, {"project_id": inst["project_id"]})
        return cache[key]

    hosts: list[Callable[[str], str]] = []

    def host_status(inst: dict) -> str:
        # the services are read once per page, and only when shown
        if not hosts:
            hosts.append(api.scheduler.host_states())
        return hosts[0](inst["host"] or "")

    def render(inst: dict) -> dict:
        return server_views.detail(
            req, inst, faults.get(inst["uuid"]),
            allowed("os_compute_api:os-extended-server-attributes", inst),
            host_status if allowed(_P + "show:host_status", inst) else None,
            server_networks.addresses(ports.get(inst["uuid"], [])),
            {"tags": tags.get(inst["uuid"], []), "view": view,
             "security_groups": sg_names.get(inst["uuid"]),
             "server_groups": [groups[inst["uuid"]]]
             if inst["uuid"] in groups else [],
             "locked_reason": locks.get(inst["uuid"], {}).get("reason"),
             "flavor_specs": req.at_least("2.47") and allowed(
                 _P + "show:flavor-extra-specs", inst)})
    return render


def render_one(api: Api, req: ApiRequest, inst: dict,
               view: str = "show") -> dict:
    """One server as ``view`` shows it (``show`` or ``update``)."""
    return _renderer(api, req, [inst], view)(inst)


def _list(api: Api, req: ApiRequest, is_detail: bool
          ) -> tuple[list[dict], int | None]:
    rule = _P + ("detail" if is_detail else "index")
    api.policy.authorize(req.context, rule)
    query = server_filters.parse(api, req, is_detail)
    if query is None:
        return [], None
    return db_instances.list_matching(api.db, query), query.limit


def _links(req: ApiRequest, rows: list[dict], limit: int | None, path: str
           ) -> list[dict]:
    """Nova's ``next`` link: the same query (URL-encoded again, so a
    filter value holding ``&`` or ``=`` survives) with the last row as
    the marker."""
    if not rows or limit is None or len(rows) < limit:
        return []
    query = req.next_query(rows[-1]["uuid"])
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
    render = _renderer(api, req, rows, "detail")
    body: dict = {"servers": [render(r) for r in rows]}
    links = _links(req, rows, limit, "servers/detail")
    if links:
        body["servers_links"] = links
    return Result(200, body)


def show(api: Api, req: ApiRequest, server_id: str) -> Result:
    # a client polling for ACTIVE asks this many times per boot: its
    # reads (the row, ports, groups, tags...) share one transaction
    with api.db.transaction():
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
    if "hostname" in server:
        values["hostname"] = server["hostname"]
    if values:
        inst = db_instances.update(api.db, inst["uuid"], values)
    return Result(200, {"server": server_views.for_update(
        req, _renderer(api, req, [inst], "update")(inst))})


def _drop_shelved_image(api: Api, inst: dict) -> None:
    """A shelved server's image goes with it, as in Nova."""
    image = image_query.shelved_image(api.db, inst)
    if image is None:
        return
    with contextlib.suppress(exception.ImageNotFound):
        image_query.image_delete(api.db, image["id"])
        image_create.forget(api, image)


def delete(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = get_instance(api, req, server_id, _P + "delete")
    if inst["locked"] and not req.is_admin:
        raise exception.InstanceIsLocked(instance_uuid=inst["uuid"])
    ctxt = req.context
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.DELETING},
        expected_task_state=inst["task_state"],
        expected_vm_state=inst["vm_state"], action="delete",
        start_action=action_of(ctxt))
    if inst["vm_state"] in (states.SHELVED, states.SHELVED_OFFLOADED):
        _drop_shelved_image(api, inst)
    secgroup_lookup.forget_member(api, req, inst)
    if inst["host"] and api.scheduler.is_up(inst["host"]):
        api.compute.terminate_instance(ctxt, inst["host"], inst["uuid"])
        return Result(204)
    # no compute service will: the API deletes, and notifies as Nova's does
    with api.notifications.action(ctxt, inst["uuid"], "delete"):
        db_instances.soft_delete(api.db, inst["uuid"])
    db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)
    return Result(204)
