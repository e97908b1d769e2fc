"""Server action ``evacuate``: bring a dead host's server back elsewhere.

An admin's action, allowed only while the server's host is down (its
service forced down or its heartbeat older than ``service_down_time``;
else Nova's 400 "still in use"). The server is rebuilt on another host
from its image, keeping its id, ports (MACs, addresses), name, key,
metadata, user data and flavor: the target ``host`` if given (404 if no
compute service has that name, 400 if it is the server's own or has no
room), else the scheduler's pick. pyct hosts share no storage, so
``onSharedStorage`` (before 2.14, required) must be false. The server is
moved to the destination in ``rebuilding`` with the compare-and-swap
(ACTIVE, SHUTOFF or ERROR servers with no task, as Nova; else 409), an
``evacuation`` migration records the move (the dead host reads it when
it comes back: ``compute.evacuate``), and the destination rebuilds it.
It settles ACTIVE, or SHUTOFF if it was stopped; from 2.95 always
SHUTOFF, as Nova. The answer is 200: ``{"adminPass"}`` before 2.14
(when ``enable_instance_password`` is on), no body from 2.14.
"""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.scheduler import COMPUTE_BINARY
from pyct_driver.api.server_create import admin_password
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import evacuations as db_evacuations
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services

RULE = "os_compute_api:os-evacuate"
_HOST = {"type": "string", "minLength": 1, "maxLength": 255,
         "pattern": "^[a-zA-Z0-9-._]*$"}
_FROM = (states.ACTIVE, states.STOPPED, states.ERROR)


def schema(version: tuple[int, int]) -> dict:
    body: dict = {"host": _HOST, "adminPass": {"type": "string"}}
    required: tuple[str, ...] = ()
    if version < (2, 14):
        body["onSharedStorage"] = schemas.BOOLEAN
        required = ("onSharedStorage",)
    if (2, 29) <= version < (2, 68):
        body["force"] = schemas.BOOLEAN
    return schemas._obj({"evacuate": schemas._obj(body, required)},
                        ("evacuate",))


def _check_source(api: Api, inst: dict) -> None:
    source = inst["host"]
    if not source:
        raise exception.Conflict(
            f"Cannot 'evacuate' instance {inst['uuid']}: it has no host.")
    if api.scheduler.host_state(source) not in ("DOWN", "UNKNOWN"):
        raise exception.Invalid(
            f"Compute service of {source} is still in use.")


def _destination(api: Api, inst: dict, host: str | None,
                 force: bool) -> str:
    """The host the server goes to (checked: up, enabled, room)."""
    if host is not None and force:
        if not api.scheduler.is_up(host):
            raise exception.Invalid(
                f"Compute service of {host} is unavailable at this time.")
        return host
    chosen = api.scheduler.select_hosts(inst["flavor"], 1,
                                        force_host=host)[0]
    if chosen is None or chosen == inst["host"]:
        where = f" on host {host}" if host else ""
        raise exception.Invalid(
            f"No valid host was found{where} for evacuating "
            f"{inst['uuid']}: none up, enabled and with room for flavor "
            f"{inst['flavor'].get('name', inst['flavor_id'])}.")
    return chosen


def evacuate(api: Api, req: ApiRequest, server_id: str, body: dict
             ) -> Result:
    schemas.validate(schema(req.version), body)
    args = body["evacuate"]
    shared = schemas.to_bool(args.get("onSharedStorage", False))
    if shared and "adminPass" in args:
        raise exception.Invalid(
            "admin password can't be changed on existing disk")
    inst = get_instance(api, req, server_id, RULE)
    if shared:
        raise exception.Invalid(
            "pyct hosts share no storage: evacuate with onSharedStorage "
            "false (the server is rebuilt from its image).")
    host = args.get("host")
    if host is not None and not any(
            s["host"] == host for s in db_services.service_list(
                api.db, COMPUTE_BINARY)):
        raise exception.NotFound(f"Compute host {host} not found.")
    if host is not None and host == inst["host"]:
        raise exception.Invalid("The target host can't be the same one.")
    if inst["vm_state"] not in _FROM or inst["task_state"] is not None:
        raise exception.InstanceInvalidState(
            action="evacuate", instance_id=inst["uuid"],
            attr="task_state" if inst["task_state"] else "vm_state",
            state=inst["task_state"] or inst["vm_state"])
    _check_source(api, inst)
    dest = _destination(api, inst, host,
                        schemas.to_bool(args.get("force", False)))
    _move(api, req, inst, dest)
    if req.at_least("2.14"):
        return Result(200)
    password = args.get("adminPass") or admin_password()
    return Result(200, {"adminPass": password}
                  if api.settings.instance_password else {})


def _move(api: Api, req: ApiRequest, inst: dict, dest: str) -> None:
    """Record the evacuation, move the row (compare-and-swap), cast."""
    ctxt = req.context
    migration = db_evacuations.create(api.db, inst, dest, ctxt.user_id)
    try:
        db_instances.update(
            api.db, inst["uuid"], {"host": dest,
                                   "task_state": states.REBUILDING},
            expected_task_state=(None,), expected_vm_state=_FROM,
            action="evacuate")
    except exception.PyctError:
        db_evacuations.discard(api.db, migration["uuid"])
        raise
    db_actions.action_start(api.db, inst["uuid"], "evacuate",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    settle = states.STOPPED if req.at_least("2.95") or \
        inst["vm_state"] == states.STOPPED else states.ACTIVE
    try:
        api.compute.evacuate_instance(ctxt, dest, inst["uuid"],
                                      migration_uuid=migration["uuid"],
                                      vm_state=settle)
    except exception.PyctError:
        # nothing reached the destination: the server stays where it was
        db_instances.update(api.db, inst["uuid"],
                            {"host": inst["host"], "task_state": None},
                            expected_task_state=(states.REBUILDING,))
        db_evacuations.set_status(api.db, migration["uuid"], "error")
        raise
