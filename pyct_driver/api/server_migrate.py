"""Server actions ``migrate`` and ``os-migrateLive`` (admins, as in Nova).

A cold migration moves a server, with its flavor, to another host: the
API checks what Nova's API and conductor check before anything moves (the
server's state, a target host that exists, is not the server's own and
can take it; otherwise the scheduler's pick, never the server's host),
answering a bad request with Nova's fault and changing nothing; then it
swaps the task state to ``resize_prep`` (a compare-and-swap, a lost race
is a 409), records the instance action ``migrate`` and a ``migrations``
row of type ``migration`` with both hosts, and casts to the source host
(``compute.migrate``). The server ends in VERIFY_RESIZE on the other host
and ``confirmResize``/``revertResize`` finish it as a resize. ``begin``
is shared with a resize that does not fit its own host and with
``pyct-manage host drain``.

A live migration needs both hosts to checkpoint and restore a running
guest; each is asked (``check_live_migration``) and a host that cannot
makes the request a 400 naming the host and its reason.
"""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import schemas, server_lock
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.scheduler import COMPUTE_BINARY, no_valid_host
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.context import RequestContext
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import resizes as db_resizes
from pyct_driver.db import services as db_services

_P = "os_compute_api:os-migrate-server:"
_HOST = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
MIGRATE = schemas._obj({"migrate": {"type": "null"}}, ("migrate",))
MIGRATE_256 = schemas._obj({"migrate": {
    "type": ["object", "null"], "properties": {"host": _HOST},
    "additionalProperties": False}}, ("migrate",))
LIVE = schemas._obj({"os-migrateLive": {
    "type": "object", "properties": {
        "host": _HOST,
        "block_migration": {"type": ["boolean", "string"],
                            "enum": [True, False, "auto", "True", "False",
                                     "true", "false"]},
        "disk_over_commit": {"type": ["boolean", "string"]},
        "force": {"type": ["boolean", "string"]}},
    "required": ["host"], "additionalProperties": False}},
    ("os-migrateLive",))


def _check_target(api: Api, host: str, source: str) -> None:
    """400 for a target the server cannot go to, in Nova's words."""
    if host == source:
        raise exception.Invalid("Cannot migrate to the host where the "
                                "server exists.")
    known = {s["host"]: s for s in db_services.service_list(
        api.db, COMPUTE_BINARY)}
    if host not in known:
        raise exception.Invalid(f"Compute host {host} could not be found.")
    state = api.scheduler.host_state(host)
    if known[host]["disabled"]:
        raise exception.Invalid(f"No valid host was found. Compute host "
                                f"{host} is disabled.")
    if state != "UP":
        raise exception.Invalid(f"No valid host was found. Compute host "
                                f"{host} is down.")


def destination(api: Api, inst: dict, flavor: dict,
                host: str | None = None) -> str:
    """The host ``inst`` moves to with ``flavor``: ``host`` if it can
    take it, else the scheduler's pick among the others; 400 if none."""
    if host is not None:
        _check_target(api, host, inst["host"])
    chosen = api.scheduler.select_hosts(flavor, 1, force_host=host,
                                        exclude=inst["host"])[0]
    if chosen is None:
        raise exception.Invalid(no_valid_host().message)
    return chosen


def _check_state(inst: dict, action: str, allowed: tuple) -> None:
    if inst["vm_state"] not in allowed or inst["task_state"]:
        raise exception.InstanceInvalidState(
            action=action, instance_id=inst["uuid"],
            attr="task_state" if inst["task_state"] else "vm_state",
            state=inst["task_state"] or inst["vm_state"])


def _type_id(api: Api, flavorid: str) -> int | None:
    try:
        return int(catalog.flavor_get(api.db, flavorid)["id"])
    except exception.FlavorNotFound:
        return None


def begin(api: Api, ctxt: RequestContext, inst: dict, dest: str,
          action: str = "migrate", new: dict | None = None,
          new_flavor_id: str | None = None) -> dict:
    """Record the move of ``inst`` to ``dest`` (to flavor ``new``, else
    its own) and cast it to the source; returns the migration's flavor
    change row. 409 if the server's state changed meanwhile."""
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.RESIZE_PREP},
        expected_task_state=(None,),
        expected_vm_state=(states.ACTIVE, states.STOPPED), action=action)
    db_actions.action_start(api.db, inst["uuid"], action,
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    new_id = new_flavor_id or inst["flavor_id"]
    change = db_resizes.start(
        api.db, inst, new_id, new or inst["flavor"],
        _type_id(api, inst["flavor_id"]), _type_id(api, new_id), dest,
        "migration" if new is None else "resize")
    api.compute.migrate_instance(ctxt, inst["host"], inst["uuid"],
                                 change["migration_uuid"])
    return change


def migrate(api: Api, req: ApiRequest, server_id: str, body: dict
            ) -> Result:
    at_256 = req.at_least("2.56")
    schemas.validate(MIGRATE_256 if at_256 else MIGRATE, body)
    inst = get_instance(api, req, server_id, _P + "migrate")
    host = (body["migrate"] or {}).get("host") if at_256 else None
    if host is not None:
        api.policy.authorize(req.context, _P + "migrate:host",
                             {"project_id": inst["project_id"]})
    server_lock.check(req, inst)
    _check_state(inst, "migrate", (states.ACTIVE, states.STOPPED))
    dest = destination(api, inst, inst["flavor"], host)
    begin(api, req.context, inst, dest)
    return Result(202)


def live_migrate(api: Api, req: ApiRequest, server_id: str, body: dict
                 ) -> Result:
    schemas.validate(LIVE, body)
    inst = get_instance(api, req, server_id, _P + "migrate_live")
    server_lock.check(req, inst)
    _check_state(inst, "os-migrateLive", (states.ACTIVE, states.PAUSED))
    dest = destination(api, inst, inst["flavor"],
                       body["os-migrateLive"].get("host"))
    for host in (inst["host"], dest):
        try:
            can, why = api.compute.check_live_migration(req.context, host)
        except exception.RPCError as err:
            can, why = False, f"it did not answer ({err.message})"
        if not can:
            raise exception.MigrationPreCheckError(
                reason=f"Live migration of server {inst['uuid']} from "
                f"{inst['host']} to {dest} is not possible: host {host} "
                f"cannot checkpoint and restore guests: {why}")
    raise exception.MigrationPreCheckError(
        reason="pyct does not move a running guest's memory yet; use "
        "a cold migration (migrate)")
