"""Server actions ``shelve``, ``shelveOffload`` and ``unshelve``.

Shelve (from ACTIVE, SHUTOFF, PAUSED or SUSPENDED) creates the image
``<server name>-shelved`` as a snapshot does and casts to the host, which
powers the guest off, captures it and leaves the server SHELVED — or
SHELVED_OFFLOADED at once when ``[DEFAULT] shelved_offload_time`` is 0
(``compute.shelve``). An offload frees everything the guest holds on its
host and clears the server's host; its ports and addresses stay. Unshelve
picks a host as a create does (2.77: in ``availability_zone``; 2.91: an
admin's ``host``), writes it with the compare-and-swap to ``unshelving``
and casts there; the host boots the shelved image with the same ports and
deletes the image once the server runs. The shelved image is found by its
``pyct_shelved_image`` property, as Nova finds it by the instance's
system metadata. Quotas count a shelved server as any other (Nova's
default, counting from the instances): nothing is given back or taken
twice.
"""

from __future__ import annotations

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.api import schemas, server_lock, server_snapshot
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.scheduler import no_valid_host
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import image_query
from pyct_driver.db import instances as db_instances

LOG = logging.getLogger(__name__)

_P = "os_compute_api:os-shelve:"
SHELVE_STATES = server_snapshot.SNAPSHOT_STATES
_SHELVED = (states.SHELVED, states.SHELVED_OFFLOADED)
MARK = image_query.SHELVED_MARK
_UNSHELVE_277 = {"type": ["object", "null"], "properties": {
    "availability_zone": {"type": ["string", "null"]},
    "host": {"type": "string", "minLength": 1, "maxLength": 255}},
    "additionalProperties": False}


def _refuse(inst: dict, action: str) -> exception.InstanceInvalidState:
    return exception.InstanceInvalidState(
        action=action, instance_id=inst["uuid"],
        attr="task_state" if inst["task_state"] else "vm_state",
        state=inst["task_state"] or inst["vm_state"])


def shelve(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    schemas.validate(schemas.empty_action("shelve"), body)
    inst = get_instance(api, req, server_id, _P + "shelve")
    server_lock.check(req, inst)
    if inst["vm_state"] not in SHELVE_STATES or inst["task_state"]:
        raise _refuse(inst, "shelve")
    image = server_snapshot.new_image(
        api, inst, f"{inst['name']}-shelved",
        {"image_type": "snapshot", MARK: "true"})
    inst = server_snapshot.start(api, req, inst, image, states.SHELVING,
                                 SHELVE_STATES, "shelve")
    api.compute.shelve_instance(req.context, inst["host"], inst["uuid"],
                                image["id"])
    return Result(202)


def shelve_offload(api: Api, req: ApiRequest, server_id: str, body: dict
                   ) -> Result:
    schemas.validate(schemas.empty_action("shelveOffload"), body)
    inst = get_instance(api, req, server_id, _P + "shelve_offload")
    server_lock.check(req, inst)
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.SHELVING_OFFLOADING},
        expected_task_state=(None,), expected_vm_state=states.SHELVED,
        action="shelveOffload")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "shelveOffload",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    api.compute.shelve_offload_instance(ctxt, inst["host"], inst["uuid"])
    return Result(202)


def _target(api: Api, req: ApiRequest, inst: dict, body: dict
            ) -> tuple[str | None, str | None]:
    """The (zone, host) the caller asks for (2.77 / 2.91)."""
    args = body.get("unshelve")
    if not req.at_least("2.77") or args is None:
        if args is not None and not isinstance(args, (dict, type(None))):
            raise exception.Invalid("Invalid input for field/attribute "
                                    "unshelve.")
        return None, None
    schemas.validate(_UNSHELVE_277, args)
    if "host" in args and not req.at_least("2.91"):
        raise exception.Invalid("Additional properties are not allowed "
                                "('host' was unexpected)")
    zone, host = args.get("availability_zone"), args.get("host")
    if host is not None:
        api.policy.authorize(req.context, _P + "unshelve_to_host",
                             {"project_id": inst["project_id"]})
    if inst["vm_state"] != states.SHELVED_OFFLOADED and (
            "availability_zone" in args or host):
        raise exception.Conflict(
            "The availability_zone or host parameter can only be "
            "specified when the server is shelved offloaded.")
    return zone, host


def _no_host(api: Api, req: ApiRequest, inst: dict) -> Result:
    """Nova accepts an unshelve it cannot place: the server stays
    SHELVED_OFFLOADED and the action's ``schedule_instances`` event says
    why, so a later unshelve (once a host has room) can succeed."""
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "unshelve",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    reason = no_valid_host().message
    db_actions.event_finish(api.db, inst["uuid"], ctxt.request_id,
                            "schedule_instances", "Error", details=reason)
    LOG.warning("no valid host to unshelve %s: %s", inst["uuid"], reason)
    return Result(202)


def unshelve(api: Api, req: ApiRequest, server_id: str, body: dict
             ) -> Result:
    if not isinstance(body, dict) or set(body) != {"unshelve"}:
        raise exception.Invalid("Invalid input for field/attribute "
                                "unshelve.")
    inst = get_instance(api, req, server_id, _P + "unshelve")
    server_lock.check(req, inst)
    if inst["vm_state"] not in _SHELVED or inst["task_state"]:
        raise _refuse(inst, "unshelve")
    zone, force_host = _target(api, req, inst, body)
    host = inst["host"]
    if inst["vm_state"] == states.SHELVED_OFFLOADED:
        flavor = {"ephemeral_gb": 0, **inst["flavor"]}
        zone = zone or inst.get("pinned_availability_zone")
        host = api.scheduler.select_hosts(flavor, 1, force_host=force_host,
                                          zone=zone)[0]
        if host is None:
            return _no_host(api, req, inst)
    values = {"task_state": states.UNSHELVING, "host": host}
    if inst["vm_state"] == states.SHELVED_OFFLOADED and zone:
        values["availability_zone"] = zone
    inst = db_instances.update(api.db, inst["uuid"], values,
                               expected_task_state=(None,),
                               expected_vm_state=_SHELVED, action="unshelve")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "unshelve",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    api.compute.unshelve_instance(ctxt, host, inst["uuid"])
    return Result(202)
