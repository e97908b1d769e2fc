"""os-interface: list, show, hot-plug and unplug a server's ports.

Attach allocates the port first (lowest free address, or the requested
one; a taken address is a 409 as in Nova), then asks the server's compute
host over a blocking RPC call to plug it; if plugging fails the port is
released again, so a failed attach leaves nothing behind. Detach unplugs,
then releases. Both need the server ACTIVE, PAUSED or SHUTOFF with no task
in flight (409 otherwise), and both are recorded as instance actions.
"""

from __future__ import annotations

import copy

from pyct_driver import exception, states
from pyct_driver.api import (schemas, secgroup_lookup, server_lock,
                             server_networks, servers)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import networks as db_networks

_P = "os_compute_api:os-attach-interfaces:"
_OK_STATES = (states.ACTIVE, states.PAUSED, states.STOPPED)
ATTACH = schemas._obj({"interfaceAttachment": schemas._obj({
    "net_id": schemas.UUID,
    "port_id": schemas.UUID,
    "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1,
                  "items": schemas._obj({"ip_address": {
                      "type": "string",
                      "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}},
                      ("ip_address",))},
})})


def _attach_schema(req: ApiRequest) -> dict:
    if not req.at_least("2.49"):
        return ATTACH
    schema = copy.deepcopy(ATTACH)
    schema["properties"]["interfaceAttachment"]["properties"]["tag"] = \
        schemas._TAG
    return schema


def _attachment(req: ApiRequest, port: dict) -> dict:
    """One attachment; 2.70 adds its device ``tag`` (pyct tags none)."""
    out = server_networks.attachment(port)
    if req.at_least("2.70"):
        out["tag"] = None
    return out


def _port(api: Api, inst: dict, port_id: str) -> dict:
    ports = db_networks.list_ports(api.db, port_id=port_id)
    if not ports:
        raise exception.NotFound(f"Port id {port_id} could not be found.")
    if ports[0]["instance_uuid"] != inst["uuid"]:
        raise exception.NotFound(f"Instance {inst['uuid']} is not "
                                 f"attached.")
    return ports[0]


def _check_state(inst: dict, action: str) -> None:
    if inst["task_state"] is not None:
        raise exception.InstanceInvalidState(
            action=action, instance_id=inst["uuid"], attr="task_state",
            state=inst["task_state"])
    if inst["vm_state"] not in _OK_STATES:
        raise exception.InstanceInvalidState(
            action=action, instance_id=inst["uuid"], attr="vm_state",
            state=inst["vm_state"])


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = servers.get_instance(api, req, server_id, _P + "list")
    ports = db_networks.list_ports(api.db, instance_uuids=[inst["uuid"]])
    return Result(200, {"interfaceAttachments": [
        _attachment(req, p) for p in ports]})


def show(api: Api, req: ApiRequest, server_id: str, port_id: str) -> Result:
    inst = servers.get_instance(api, req, server_id, _P + "show")
    return Result(200, {"interfaceAttachment": _attachment(
        req, _port(api, inst, port_id))})


def _network(api: Api, req: ApiRequest, inst: dict, data: dict) -> dict:
    if data.get("port_id"):
        # pyct has no unbound ports a user could have made beforehand
        raise server_networks.port_unusable(api, req, data["port_id"],
                                            exception.NotFound)
    if data.get("fixed_ips") and not data.get("net_id"):
        raise exception.Invalid(
            "Must input network_id when request IP address")
    if not data.get("net_id"):
        return server_networks.default_network(api, inst["project_id"])
    return db_networks.get_network(
        api.db, data["net_id"], None if req.is_admin else inst["project_id"])


def create(api: Api, req: ApiRequest, server_id: str) -> Result:
    body = req.json_body()
    schemas.validate(_attach_schema(req), body)
    inst = servers.get_instance(api, req, server_id, _P + "create")
    server_lock.check(req, inst)
    _check_state(inst, "attach_interface")
    if not inst["host"]:
        raise exception.Conflict(reason="the server has no compute host")
    data = body.get("interfaceAttachment") or {}
    if data.get("tag"):
        # pyct puts no device metadata in guests (2.49's tagged attach)
        raise exception.Invalid("Tagged network interface attachment is "
                                "not supported for this server instance.")
    net = _network(api, req, inst, data)
    fixed = data.get("fixed_ips")
    port = db_networks.allocate_port(
        api.db, inst["uuid"], inst["project_id"], net["id"],
        fixed[0]["ip_address"] if fixed else None)
    secgroup_lookup.default_for_port(api, req, inst["project_id"], port["id"])
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "attach_interface",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    try:
        api.compute.attach_interface(ctxt, inst["host"], inst["uuid"],
                                     port["id"])
    except exception.VirtError as err:
        # the host's words stay in the log (Nova's answer, the same 500)
        db_networks.release_port(api.db, port["id"])
        raise exception.InterfaceAttachFailed(
            instance_uuid=inst["uuid"]) from err
    except BaseException:
        db_networks.release_port(api.db, port["id"])
        raise
    finally:
        db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)
    return Result(200, {"interfaceAttachment": _attachment(
        req, _port(api, inst, port["id"]))})


def delete(api: Api, req: ApiRequest, server_id: str, port_id: str
           ) -> Result:
    inst = servers.get_instance(api, req, server_id, _P + "delete")
    server_lock.check(req, inst)
    _check_state(inst, "detach_interface")
    port = _port(api, inst, port_id)
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "detach_interface",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    try:
        if inst["host"]:
            api.compute.detach_interface(ctxt, inst["host"], inst["uuid"],
                                         port["id"])
        db_networks.release_port(api.db, port["id"])
    finally:
        db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)
    return Result(202)
