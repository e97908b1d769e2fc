"""Rescue, unrescue, suspend and resume on the compute host.

Each is one driver step bracketed like the other power operations
(``ComputeManager._simple_op``: the instance's lock, the action event, the
notifications, the task-state compare-and-swap out). Rescue imports the
rescue image first (the API checked the caller may use it) and hands the
driver the password the API answered with; a failed rescue leaves the
server in ERROR as in Nova, a failed unrescue, suspend or resume leaves
the state it was in. The suspend mode the driver used (a frozen cgroup or
a CRIU checkpoint) is the event's ``details`` and a log line. A restart
interrupting one of them (``recover``): an unrescue, suspend or resume is
redone; a rescue is undone (its password was only in the lost message)
with a fault, the guest booted from its own root.
"""

from __future__ import annotations

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import catalog as db_catalog
from pyct_driver.virt import base as virt_base

LOG = logging.getLogger(__name__)


class RescueEndpoints:
    """RPC endpoints of the compute manager for rescue and suspend (mixed
    into ``ComputeManager``: uses its db, driver and ``_simple_op``)."""

    def rescue_instance(self, ctxt: RequestContext, instance_uuid: str,
                        rescue_password: str, rescue_image_ref: str) -> None:
        def run(spec: virt_base.InstanceSpec) -> None:
            image = db_catalog.image_get(self.db, rescue_image_ref)
            if not image.get("location"):
                raise exception.InvalidImage(image=image["id"],
                                             reason="image has no data")
            self.driver.import_image(image["id"], image["location"])
            self.driver.rescue(spec, image["id"], rescue_password,
                               self.shutdown_timeout)
            LOG.debug("rescued %s from image %s", spec.uuid, image["id"])

        self._simple_op(ctxt, instance_uuid, "rescue", states.RESCUING, run,
                        {"vm_state": states.RESCUED},
                        {"vm_state": states.ERROR})

    def unrescue_instance(self, ctxt: RequestContext,
                          instance_uuid: str) -> None:
        self._simple_op(ctxt, instance_uuid, "unrescue", states.UNRESCUING,
                        self.driver.unrescue, {"vm_state": states.ACTIVE},
                        None)

    def suspend_instance(self, ctxt: RequestContext,
                         instance_uuid: str) -> None:
        def run(spec: virt_base.InstanceSpec) -> str:
            mode = self.driver.suspend(spec)
            LOG.info("suspended %s: %s", spec.uuid, mode)
            return mode

        self._simple_op(ctxt, instance_uuid, "suspend", states.SUSPENDING,
                        run, {"vm_state": states.SUSPENDED}, None)

    def resume_instance(self, ctxt: RequestContext,
                        instance_uuid: str) -> None:
        def run(spec: virt_base.InstanceSpec) -> str:
            how = self.driver.resume(spec)
            LOG.info("resumed %s: %s", spec.uuid, how)
            return how

        self._simple_op(ctxt, instance_uuid, "resume", states.RESUMING, run,
                        {"vm_state": states.ACTIVE}, None)


_REDO = {states.UNRESCUING: "unrescue_instance",
         states.SUSPENDING: "suspend_instance",
         states.RESUMING: "resume_instance"}


def recover(manager: "RescueEndpoints", instance: dict) -> bool:
    """Drive an instance a restart interrupted in one of these operations
    to a stable state; False if its task state is none of ours."""
    uuid, task = instance["uuid"], instance["task_state"]
    if task in _REDO:
        getattr(manager, _REDO[task])(get_admin_context(), uuid)
    elif task == states.RESCUING:
        manager.record_fault(uuid, exception.VirtError(
            reason="rescue interrupted by a compute service restart"))
        manager.finish_task(uuid, {"task_state": states.UNRESCUING}, task)
        manager.unrescue_instance(get_admin_context(), uuid)
    else:
        return False
    return True
