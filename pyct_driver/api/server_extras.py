"""The smaller per-server APIs: addresses (``/ips``), the server password
(``os-server-password``), diagnostics, and the ``changePassword`` and
``trigger_crash_dump`` actions.

``changePassword`` needs the server ACTIVE with no task and not locked;
it swaps the task state to ``updating_password`` (so a racing action is a
409), asks the compute host -- which sets root's password inside the
guest, as the guest's own ``chpasswd`` -- and clears the task state
whatever happened. pyct keeps no encrypted password (its metadata service
takes no password POST), so ``os-server-password`` shows ``""`` and
clearing it changes nothing. Containers cannot dump a kernel: the crash
dump is Nova's 400 for a driver without it. Diagnostics (admins) are
2.48's standard form from the compute host's driver.
"""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import schemas, server_lock, server_networks, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.db import port_batch

UPDATING_PASSWORD = "updating_password"
_CHANGE_PASSWORD = schemas._obj({"changePassword": schemas._obj(
    {"adminPass": {"type": "string"}}, ("adminPass",))},
    ("changePassword",))


def _addresses(api: Api, inst: dict) -> dict:
    ports = port_batch.ports_by_instance(api.db, [inst["uuid"]])
    return {net: [{"version": a["version"], "addr": a["addr"]}
                  for a in addrs]
            for net, addrs in server_networks.addresses(
                ports.get(inst["uuid"], [])).items()}


def ips_index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = servers.get_instance(api, req, server_id,
                                "os_compute_api:ips:index")
    return Result(200, {"addresses": _addresses(api, inst)})


def ips_show(api: Api, req: ApiRequest, server_id: str,
             network_label: str) -> Result:
    inst = servers.get_instance(api, req, server_id,
                                "os_compute_api:ips:show")
    nets = _addresses(api, inst)
    if network_label not in nets:
        raise exception.NotFound(
            "Instance is not a member of specified network")
    return Result(200, {network_label: nets[network_label]})


def password_show(api: Api, req: ApiRequest, server_id: str) -> Result:
    servers.get_instance(api, req, server_id,
                         "os_compute_api:os-server-password:show")
    return Result(200, {"password": ""})


def password_clear(api: Api, req: ApiRequest, server_id: str) -> Result:
    servers.get_instance(api, req, server_id,
                         "os_compute_api:os-server-password:clear")
    return Result(204)


def diagnostics(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = servers.get_instance(api, req, server_id,
                                "os_compute_api:os-server-diagnostics")
    if not inst["host"] or inst["vm_state"] == states.BUILDING:
        raise exception.Conflict(
            f"Instance {inst['uuid']} is not ready yet.")
    diag = api.compute.get_diagnostics(req.context, inst["host"],
                                       inst["uuid"])
    if not req.at_least("2.48"):
        # before 2.48 the form was the driver's own: pyct's flat counters
        diag = {k: v for k, v in diag.items() if not isinstance(
            v, (list, dict))}
    return Result(200, diag)


def change_password(api: Api, req: ApiRequest, server_id: str,
                    body: dict) -> Result:
    schemas.validate(_CHANGE_PASSWORD, body)
    inst = servers.get_instance(api, req, server_id,
                                "os_compute_api:os-admin-password")
    server_lock.check(req, inst)
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": UPDATING_PASSWORD},
        expected_task_state=None, expected_vm_state=states.ACTIVE,
        action="changePassword")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "changePassword",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    try:
        api.compute.set_admin_password(
            ctxt, inst["host"], inst["uuid"],
            new_pass=body["changePassword"]["adminPass"])
    except exception.NotImplementedYet as err:
        raise exception.NotImplementedYet(
            "Unable to set password on instance") from err
    except exception.PyctError as err:
        if err.code in (400, 404, 409):
            raise
        raise exception.Conflict(
            f"Failed to set admin password on {inst['uuid']} because "
            f"{err.message}") from err
    finally:
        db_instances.update(api.db, inst["uuid"], {"task_state": None},
                            expected_task_state=UPDATING_PASSWORD)
        db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)
    return Result(202)


def trigger_crash_dump(api: Api, req: ApiRequest, server_id: str,
                       body: dict) -> Result:
    if not req.at_least("2.17"):
        raise exception.Invalid("There is no such action: "
                                "trigger_crash_dump")
    schemas.validate(schemas.empty_action("trigger_crash_dump"), body)
    inst = servers.get_instance(api, req, server_id,
                                "os_compute_api:servers:trigger_crash_dump")
    server_lock.check(req, inst)
    if inst["vm_state"] not in (states.ACTIVE, states.PAUSED,
                                states.RESCUED, states.RESIZED,
                                states.ERROR) or inst["task_state"]:
        attr = "task_state" if inst["task_state"] else "vm_state"
        raise exception.InstanceInvalidState(
            action="trigger_crash_dump", instance_id=inst["uuid"],
            attr=attr, state=inst[attr])
    # a container has no kernel of its own to dump (Nova's answer for a
    # driver without NMI injection)
    raise exception.Invalid("Triggering crash dump is not supported")
