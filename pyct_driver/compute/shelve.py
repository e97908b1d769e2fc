"""Shelve, offload and unshelve on the compute host.

Shelve powers the guest off, captures it into the image the API made
(``shelving`` → ``shelving_image_pending_upload`` →
``shelving_image_uploading``) and leaves the server SHELVED; with
``[DEFAULT] shelved_offload_time`` 0 it is offloaded at once, with N > 0
the periodic ``offload_due`` does it after N seconds (-1: never). An
offload (``shelving_offloading``) destroys the guest with everything it
holds on the host (process, cgroup, mounts, disk, links, image pins) and
clears the server's host; its ports and addresses stay in the database.
Unshelve (``unshelving`` → ``spawning``) on the host the API chose boots
the shelved image with the same ports (a SHELVED server still on its
host is only powered on) and then deletes the shelved image, as Nova
does; the server keeps showing the image it was created from. A failed
shelve gives the server back as it was; a failed unshelve leaves it
offloaded. ``recover`` settles what a restart cut short.
"""

from __future__ import annotations

import contextlib
import datetime

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.compute import snapshot
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import actions as db_actions
from pyct_driver.db import image_query
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db.models import utcnow

LOG = logging.getLogger(__name__)
shelved_image = image_query.shelved_image


class ShelveEndpoints:
    """RPC endpoints of the compute manager for shelving (mixed into
    ``ComputeManager``, after ``SnapshotEndpoints``)."""

    def shelve_instance(self, ctxt: RequestContext, instance_uuid: str,
                        image_id: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "shelve_instance") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["task_state"] != states.SHELVING:
                return
            spec = self.spec(inst)
            with self.notify.action(ctxt, instance_uuid, "shelve") as note:
                try:
                    with self._event(ctxt, instance_uuid,
                                     "compute_shelve_instance"):
                        self.driver.unpause(spec)
                        self.driver.power_off(spec, self.shutdown_timeout)
                        last = self.capture_image(inst, image_id,
                                                  snapshot.SHELVE_STEPS)
                except Exception as err:
                    LOG.warning("shelve of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    self.drop_image(image_id)
                    self._give_back(inst, states.SHELVE_TASK_STATES)
                    return
                self.finish_task(instance_uuid, {
                    "vm_state": states.SHELVED, "task_state": None,
                    "power_state": self.driver.get_info(spec).power_state},
                    last)
            if self.shelved_offload_time == 0:
                self.finish_task(instance_uuid,
                             {"task_state": states.SHELVING_OFFLOADING},
                             None)
                self._offload(ctxt, instance_uuid)

    def _give_back(self, inst: dict, tasks: tuple) -> None:
        """The server as before a failed shelve: running if it ran."""
        spec = self.spec(inst)
        if inst["vm_state"] in (states.ACTIVE, states.PAUSED):
            with snapshot.best_effort("powering on", inst["uuid"]):
                self.driver.power_on(spec)
        power = self.driver.get_info(spec).power_state
        vm = states.ACTIVE if power == states.RUNNING else \
            states.STOPPED if inst["vm_state"] == states.ACTIVE \
            else inst["vm_state"]
        self.finish_task(inst["uuid"], {"vm_state": vm, "task_state": None,
                                    "power_state": power}, tasks)

    def shelve_offload_instance(self, ctxt: RequestContext,
                                instance_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "shelve_offload_instance") as fresh:
            if fresh:
                self._offload(ctxt, instance_uuid)

    def _offload(self, ctxt: RequestContext, uuid: str) -> None:
        inst = self._get(uuid)
        if inst is None or inst["task_state"] != states.SHELVING_OFFLOADING:
            return
        with self.notify.action(ctxt, uuid, "shelve_offload") as note:
            try:
                with self._event(ctxt, uuid,
                                 "compute_shelve_offload_instance"):
                    self.driver.destroy(self.spec(inst))
                    db_networks.set_port_status(self.db, "DOWN",
                                                instance_uuid=uuid)
            except Exception as err:
                LOG.warning("offload of %s failed: %s", uuid, err)
                self.record_fault(uuid, err)
                note.fail(err)
                self.finish_task(uuid, {"task_state": None},
                             states.SHELVING_OFFLOADING)
                return
            self.finish_task(uuid, {"vm_state": states.SHELVED_OFFLOADED,
                                "task_state": None, "host": None,
                                "power_state": states.NOSTATE},
                         states.SHELVING_OFFLOADING)

    def unshelve_instance(self, ctxt: RequestContext,
                          instance_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "unshelve_instance") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["task_state"] != states.UNSHELVING:
                return
            with self.notify.action(ctxt, instance_uuid, "unshelve") as note:
                try:
                    with self._event(ctxt, instance_uuid,
                                     "compute_unshelve_instance"):
                        final = self._unshelve(inst)
                except Exception as err:
                    LOG.warning("unshelve of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    final = self._unshelve_failed(inst)
                self.finish_task(instance_uuid, final,
                             (states.UNSHELVING, states.SPAWNING))

    def _unshelve(self, inst: dict) -> dict:
        uuid = inst["uuid"]
        image = shelved_image(self.db, inst)
        db_instances.update(self.db, uuid, {"task_state": states.SPAWNING},
                            expected_task_state=states.UNSHELVING)
        if inst["vm_state"] == states.SHELVED:
            spec = self.spec(inst)
            self.driver.power_on(spec)
        else:
            if image is None or not image.get("location"):
                raise exception.InvalidImage(
                    image=inst["uuid"], reason="the shelved image is gone")
            spec = self.build_spec({**inst, "image_ref": image["id"]}, image)
            self.driver.import_image(image["id"], image["location"])
            self.driver.spawn(spec)
        db_networks.set_port_status(self.db, "ACTIVE", instance_uuid=uuid)
        if image is not None:
            self.drop_image(image["id"])  # the guest holds its layers
        return {"vm_state": states.ACTIVE, "task_state": None,
                "power_state": self.driver.get_info(spec).power_state,
                "launched_at": utcnow()}

    def _unshelve_failed(self, inst: dict) -> dict:
        if inst["vm_state"] == states.SHELVED:
            return {"task_state": None}
        with snapshot.best_effort("destroying", inst["uuid"]):
            self.driver.destroy(self.spec(inst))
        return {"vm_state": states.SHELVED_OFFLOADED, "task_state": None,
                "host": None, "power_state": states.NOSTATE}


def offload_due(manager: ShelveEndpoints) -> int:
    """Offload this host's servers shelved longer than
    ``shelved_offload_time`` seconds (> 0); return how many."""
    window = manager.shelved_offload_time
    if window <= 0:
        return 0
    cutoff = utcnow() - datetime.timedelta(seconds=window)
    done = 0
    for inst in db_instances.list_(manager.db, host=manager.host):
        if inst["vm_state"] != states.SHELVED or inst["task_state"] or \
                (inst["updated_at"] or inst["created_at"]) > cutoff:
            continue
        try:
            db_instances.update(manager.db, inst["uuid"],
                                {"task_state": states.SHELVING_OFFLOADING},
                                expected_task_state=(None,),
                                expected_vm_state=states.SHELVED)
        except (exception.InstanceInvalidState, exception.InstanceNotFound):
            continue  # unshelved or deleted meanwhile
        ctxt = get_admin_context()
        with contextlib.suppress(exception.PyctError):
            db_actions.action_start(manager.db, inst["uuid"],
                                    "shelveOffload", ctxt.request_id,
                                    ctxt.user_id, ctxt.project_id)
        manager.shelve_offload_instance(ctxt, inst["uuid"])
        done += 1
    return done


def recover(manager: ShelveEndpoints, instance: dict) -> bool:
    """Settle a shelve, offload or unshelve a restart cut short; False if
    the task state is none of theirs."""
    uuid, task = instance["uuid"], instance["task_state"]
    ctxt = get_admin_context()
    if snapshot.recover_image(manager, instance):
        return True
    if task in states.SHELVE_TASK_STATES:
        with manager.instance_lock(uuid):
            snapshot.drop_unfinished(manager, instance)
            manager.record_fault(uuid, exception.SnapshotError(
                reason="shelve interrupted by a compute service restart"))
            with snapshot.best_effort("thawing", uuid):
                manager.driver.unpause(manager.spec(instance))
            manager._give_back(instance, task)
    elif task == states.SHELVING_OFFLOADING:
        manager.shelve_offload_instance(ctxt, uuid)
    elif task in (states.UNSHELVING, states.SPAWNING) and \
            instance["vm_state"] in (states.SHELVED,
                                     states.SHELVED_OFFLOADED):
        with manager.instance_lock(uuid):
            manager.finish_task(uuid, manager._unshelve_failed(instance), task)
    else:
        return False
    return True
