"""Start-up recovery and the periodic power-state sync.

RPC is at-most-once and the compute service can die at any point, so
correctness comes from here: on start-up every instance of this host left in
a transitional task state is driven to a stable state the way Nova does it
(an interrupted build → ERROR with a fault; an interrupted delete is
finished; an interrupted reboot/stop/start/pause is redone; a resize is
rolled back or finished and a rebuild or evacuation redone:
``compute.resize``, ``compute.evacuate``; rescue
and suspend: ``compute.rescue``), and
periodically the driver's view of each idle instance is reconciled with the
database (a guest that stopped on its own is shown SHUTOFF; one that ran
``reboot`` is rebooted, as a hypervisor brings back a VM that reboots
itself, through the reboot endpoint with a "reboot" instance action, so
it shows in the server's events; drivers only report it). Guests the
driver still has but the database deleted are destroyed, and so are those
evacuated to another host while this one was down (first of all).
"""

from __future__ import annotations

import dataclasses

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.compute import evacuate, rescue, resize, shelve
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.specs import instance_spec
from pyct_driver.virt import base as virt_base

LOG = logging.getLogger(__name__)

_REDO = {
    states.POWERING_OFF: "stop_instance",
    states.POWERING_ON: "start_instance",
    states.PAUSING: "pause_instance",
    states.UNPAUSING: "unpause_instance",
}


def _ctxt() -> RequestContext:
    return get_admin_context()


def recover_host(manager: ComputeManager) -> None:
    """Destroy the guests evacuated away while this host was down, then
    drive every instance of this host out of interrupted task states."""
    evacuate.destroy_evacuated(manager)
    for instance in db_instances.list_(manager.db, host=manager.host):
        try:
            _recover_one(manager, instance)
        except Exception:  # one bad instance must not stop the others
            LOG.exception("recovery of %s failed", instance["uuid"])
    resize.recover_confirms(manager)
    _reap_orphans(manager)


def _recover_one(manager: ComputeManager, instance: dict) -> None:
    uuid, task = instance["uuid"], instance["task_state"]
    if task is None:
        return
    LOG.info("recovering %s from task_state %s", uuid, task)
    if shelve.recover(manager, instance):
        pass  # a snapshot dropped, a shelve given back, an offload redone
    elif task in states.BUILD_TASK_STATES:
        with manager.instance_lock(uuid):
            err = exception.VirtError(
                reason="build interrupted by a compute service restart")
            manager.record_fault(uuid, err)
            try:
                manager.driver.destroy(instance_spec(manager.db, instance))
            except Exception as cleanup:  # the row goes to ERROR anyway
                LOG.warning("cleaning up the interrupted build of %s "
                            "failed: %s", uuid, cleanup)
            manager.finish_task(uuid, {"vm_state": states.ERROR,
                                       "task_state": None,
                                       "power_state": states.NOSTATE}, task)
    elif task == states.DELETING:
        manager.terminate_instance(_ctxt(), uuid)
    elif task in states.REBOOT_TASK_STATES:
        hard = "hard" in task
        manager.finish_task(uuid, {"task_state": states.REBOOTING_HARD
                                   if hard else states.REBOOTING}, task)
        manager.reboot_instance(_ctxt(), uuid, "HARD" if hard else "SOFT")
    elif task in _REDO:
        getattr(manager, _REDO[task])(_ctxt(), uuid)
    elif evacuate.recover(manager, instance) or resize.recover(
            manager, instance) or rescue.recover(manager, instance):
        pass  # an evacuation, resize, rebuild, rescue or suspend redone
    else:
        manager.finish_task(uuid, {"task_state": None}, task)


def _reap_orphans(manager: ComputeManager) -> None:
    known = {i["uuid"] for i in db_instances.list_(manager.db,
                                                   host=manager.host)}
    for uuid in manager.driver.list_instances():
        if uuid in known:
            continue
        try:
            row = db_instances.get(manager.db, uuid, read_deleted=True)
        except exception.InstanceNotFound:
            row = None
        if row is not None and row["deleted"] == 0:
            continue  # lives on another host's record; not ours to touch
        LOG.warning("destroying guest %s that the database deleted", uuid)
        with manager.instance_lock(uuid):
            manager.driver.destroy(virt_base.bare_spec(
                uuid, (row or {}).get("image_ref", "")))


def sync_power_states(manager: ComputeManager) -> int:
    """Reconcile idle instances with what the driver sees; return changes."""
    changed = 0
    for instance in db_instances.list_(manager.db, host=manager.host):
        if instance["task_state"] is not None:
            continue
        uuid = instance["uuid"]
        try:
            with manager.instance_lock(uuid):
                change = _sync_one(manager, instance)
            if isinstance(change, _GuestReboot):
                # outside the lock: the reboot endpoint takes it
                manager.reboot_instance(change.ctxt, uuid, "HARD")
            changed += bool(change)
        except Exception:
            LOG.exception("power sync of %s failed", uuid)
    return changed


@dataclasses.dataclass(frozen=True)
class _GuestReboot:
    """``_sync_one``'s answer for a guest that asked to reboot: the hard
    reboot it started (task state and action written) runs next."""

    ctxt: RequestContext


def _start_guest_reboot(manager: ComputeManager,
                        uuid: str) -> _GuestReboot | int:
    """Move the instance into a hard reboot, as the API would (task state
    and a "reboot" action); 0 if a request took it meanwhile."""
    try:
        db_instances.update(manager.db, uuid,
                            {"task_state": states.REBOOTING_HARD},
                            expected_task_state=None,
                            expected_vm_state=states.ACTIVE,
                            action="reboot")
    except (exception.InstanceInvalidState,
            exception.InstanceNotFound) as err:
        LOG.info("not rebooting %s: %s", uuid, err)
        return 0
    ctxt = _ctxt()
    db_actions.action_start(manager.db, uuid, "reboot", ctxt.request_id,
                            ctxt.user_id, ctxt.project_id)
    LOG.info("guest %s rebooted itself: starting it again", uuid)
    return _GuestReboot(ctxt)


def _sync_one(manager: ComputeManager,
              instance: dict) -> _GuestReboot | int:
    uuid, vm_state = instance["uuid"], instance["vm_state"]
    spec = instance_spec(manager.db, instance,
                         gateway_dns=manager.gateway_dns)
    info = manager.driver.get_info(spec)
    if vm_state == states.ACTIVE and info.reboot_requested:
        return _start_guest_reboot(manager, uuid)
    power = info.power_state
    values: dict = {}
    if power != instance["power_state"]:
        values["power_state"] = power
    if vm_state == states.ACTIVE and power in (
            states.SHUTDOWN, states.CRASHED, states.NOSTATE):
        # the guest stopped by itself: show it as a VM that shut down, and
        # release what a running guest holds (mounts, loop device), as an
        # API stop would
        values["vm_state"] = states.STOPPED
        if power != states.NOSTATE:
            manager.driver.power_off(spec, 0)
    elif vm_state == states.PAUSED and power == states.RUNNING:
        values["vm_state"] = states.ACTIVE
    elif vm_state == states.ACTIVE and power == states.PAUSED_POWER:
        values["vm_state"] = states.PAUSED
    if not values:
        return 0
    # the state change itself is logged where it is written
    LOG.debug("power sync: %s %s -> %s", uuid, vm_state, values)
    manager.finish_task(uuid, values, None)
    return 1
