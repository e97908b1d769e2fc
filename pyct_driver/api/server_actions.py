"""Server actions: ``POST /servers/{id}/action``.

Each state-changing action names the vm_states and task_states Nova allows
it from, swaps the task state with a compare-and-swap (a lost race or a
wrong state is a 409 conflictingRequest), records the instance action under
the request id, and only then casts to the server's host. The console log is
a blocking call instead and changes nothing.
"""

from __future__ import annotations

import dataclasses

from pyct_driver import exception, states
from pyct_driver.api import (not_yet, nova_secgroups, remote_consoles,
                             schemas, server_evacuate, server_extras,
                             server_floating, server_lock, server_migrate,
                             server_rebuild,
                             server_rescue, server_resize, server_shelve,
                             server_snapshot)
from pyct_driver.api.request import MALFORMED_BODY, ApiRequest, Result
from pyct_driver.api.servers import action_of, get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import instances as db_instances

# Nova strips C0 controls but tab and newline ([\x00-\x08\x0B-\x1F]: ESC,
# BEL, CR, ...). DEL and the C1 range go too: a UTF-8 terminal such as
# xterm acts on U+009B (CSI) and U+009D (OSC) as it does on ESC [ and ESC ].
_CONSOLE_CONTROLS = dict.fromkeys(
    [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])

_REBOOT_TASKS = (None, states.REBOOTING, states.REBOOT_PENDING,
                 states.REBOOT_STARTED)


@dataclasses.dataclass(frozen=True)
class _Transition:
    name: str                 # instance action name, and the CAS's label
    rule: str
    vm_states: tuple
    task_states: tuple
    new_task_state: str
    rpc: str


_TRANSITIONS = {
    "os-stop": _Transition("stop", "os_compute_api:servers:stop",
                           (states.ACTIVE, states.ERROR), (None,),
                           states.POWERING_OFF, "stop_instance"),
    "os-start": _Transition("start", "os_compute_api:servers:start",
                            (states.STOPPED,), (None,),
                            states.POWERING_ON, "start_instance"),
    "pause": _Transition("pause", "os_compute_api:os-pause-server:pause",
                         (states.ACTIVE,), (None,), states.PAUSING,
                         "pause_instance"),
    "unpause": _Transition("unpause",
                           "os_compute_api:os-pause-server:unpause",
                           (states.PAUSED,), (None,), states.UNPAUSING,
                           "unpause_instance"),
    "suspend": _Transition("suspend",
                           "os_compute_api:os-suspend-server:suspend",
                           (states.ACTIVE,), (None,), states.SUSPENDING,
                           "suspend_instance"),
    "resume": _Transition("resume", "os_compute_api:os-suspend-server:resume",
                          (states.SUSPENDED,), (None,), states.RESUMING,
                          "resume_instance"),
    "unrescue": _Transition("unrescue", "os_compute_api:os-unrescue",
                            (states.RESCUED,), (None,), states.UNRESCUING,
                            "unrescue_instance"),
}
# Nova's rescue: from ACTIVE, SHUTOFF or ERROR (a hard reboot of a
# rescued server is a 409, as Nova's ALLOW_HARD_REBOOT has no RESCUED)
_RESCUE = _Transition("rescue", server_rescue.RULE,
                      (states.ACTIVE, states.STOPPED, states.ERROR), (None,),
                      states.RESCUING, "rescue_instance")

_SOFT = _Transition("reboot", "os_compute_api:servers:reboot",
                    (states.ACTIVE,), (None,), states.REBOOTING,
                    "reboot_instance")
_HARD = _Transition("reboot", "os_compute_api:servers:reboot",
                    (states.ACTIVE, states.STOPPED, states.PAUSED,
                     states.SUSPENDED, states.ERROR), _REBOOT_TASKS,
                    states.REBOOTING_HARD, "reboot_instance")


# actions whose module handles them whole: (api, req, server_id, body)
_HANDLERS = {
    "lock": server_lock.lock, "unlock": server_lock.unlock,
    "changePassword": server_extras.change_password,
    "trigger_crash_dump": server_extras.trigger_crash_dump,
    "resize": server_resize.resize, "confirmResize": server_resize.confirm,
    "migrate": server_migrate.migrate,
    "os-migrateLive": server_migrate.live_migrate,
    "revertResize": server_resize.revert, "rebuild": server_rebuild.rebuild,
    "evacuate": server_evacuate.evacuate,
    "createImage": server_snapshot.create_image,
    "createBackup": server_snapshot.create_backup,
    "shelve": server_shelve.shelve,
    "shelveOffload": server_shelve.shelve_offload,
    "unshelve": server_shelve.unshelve,
    "addSecurityGroup": nova_secgroups.add,
    "removeSecurityGroup": nova_secgroups.remove,
    "addFloatingIp": server_floating.add,
    "removeFloatingIp": server_floating.remove,
}


def _run(api: Api, req: ApiRequest, server_id: str, tr: _Transition,
         **rpc_kwargs: object) -> Result:
    inst = get_instance(api, req, server_id, tr.rule)
    server_lock.check(req, inst)
    before = inst["task_state"]
    ctxt = req.context
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": tr.new_task_state},
        expected_task_state=tr.task_states, expected_vm_state=tr.vm_states,
        action=tr.name, start_action=action_of(ctxt))
    try:
        getattr(api.compute, tr.rpc)(ctxt, inst["host"], inst["uuid"],
                                     **rpc_kwargs)
    except exception.PyctError:
        # nothing reached a compute service (a capped version, a bus
        # failure): give the task state back instead of stranding it
        db_instances.update(api.db, inst["uuid"], {"task_state": before},
                            expected_task_state=(tr.new_task_state,))
        raise
    return Result(202)


def _console(api: Api, req: ApiRequest, server_id: str, body: dict
             ) -> Result:
    schemas.validate(schemas.CONSOLE_OUTPUT, body)
    inst = get_instance(api, req, server_id,
                        "os_compute_api:os-console-output")
    length = body["os-getConsoleOutput"].get("length")
    if length is not None:
        length = int(length)
        if length < -1:
            raise exception.Invalid(
                "Invalid input for field/attribute length. Value: "
                f"{length}. {length} is less than the minimum of -1")
        if length == -1:
            length = None
    if not inst["host"] or inst["vm_state"] == states.BUILDING:
        raise exception.Conflict(
            f"Instance {inst['uuid']} is not ready yet.")
    output = api.compute.get_console_output(req.context, inst["host"],
                                            inst["uuid"], length=length)
    return Result(200, {"output": output.translate(_CONSOLE_CONTROLS)})


def action(api: Api, req: ApiRequest, server_id: str) -> Result:
    body = req.json_body()
    if not isinstance(body, dict) or len(body) != 1:
        raise exception.Invalid(MALFORMED_BODY)
    name = next(iter(body))
    if name == "reboot":
        schemas.validate(schemas.REBOOT, body)
        kind = body["reboot"]["type"].upper()
        return _run(api, req, server_id, _HARD if kind == "HARD" else _SOFT,
                    reboot_type=kind)
    if name == "os-getConsoleOutput":
        return _console(api, req, server_id, body)
    if name in _TRANSITIONS:
        return _run(api, req, server_id, _TRANSITIONS[name])
    if name == "rescue":
        args = server_rescue.arguments(api, req, server_id, body)
        _run(api, req, server_id, _RESCUE, **args)
        return server_rescue.answer(api, args)
    if name in remote_consoles.ACTIONS:
        return remote_consoles.action(api, req, server_id, body)
    if name in _HANDLERS:
        return _HANDLERS[name](api, req, server_id, body)
    raise not_yet.action(name) or exception.Invalid(
        f"There is no such action: {name}")
