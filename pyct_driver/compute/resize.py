"""Resize, confirm, revert and rebuild on the compute host.

A resize stays on the instance's host and never restarts the guest: the driver
applies the new flavor's limits to the guest as it runs and grows its root disk
(``VirtDriver.apply_flavor``). The instance row switches to the new flavor only
after the limits are applied, in the same write that makes it VERIFY_RESIZE, so
after a crash the row says which limits to put back: in ``resize_prep`` …
``resize_migrated`` the resize is rolled back to the row's (old) flavor;
``resize_finish`` (which this service no longer writes, kept for rows of an
older one) is finished with the row's (new) one (``recover``); a VERIFY_RESIZE
row has its new limits already. A revert applies the old flavor's limits again;
the disk keeps its grown size (an ext4 cannot shrink while mounted, and a
guest's writes since the resize stay). Rebuild destroys the guest and spawns it
again from the row's (new) image with the same ports. ``confirm_due`` is the
``[DEFAULT] resize_confirm_window`` auto-confirm.
"""

from __future__ import annotations

import contextlib
import datetime

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import resizes as db_resizes
from pyct_driver.db.models import utcnow

LOG = logging.getLogger(__name__)
_ROLLBACK = (states.RESIZE_PREP, states.RESIZE_MIGRATING,
             states.RESIZE_MIGRATED)


def _settled(power: int) -> str:
    """The vm_state a resized/reverted guest settles in (Nova keeps a
    stopped server stopped)."""
    return states.ACTIVE if power in (states.RUNNING, states.PAUSED_POWER) \
        else states.STOPPED


class ResizeEndpoints:
    """RPC endpoints of the compute manager for resize and rebuild (mixed
    into ``ComputeManager``: uses its db, driver, locks and events)."""

    def _apply(self, instance: dict, flavor: dict) -> int:
        spec = self.spec({**instance, "flavor": flavor})
        self.driver.apply_flavor(spec, spec.flavor)
        return self.driver.get_info(spec).power_state

    def resize_instance(self, ctxt: RequestContext, instance_uuid: str,
                        migration_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "resize_instance") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["task_state"] != states.RESIZE_PREP:
                return
            change = db_resizes.current(self.db, instance_uuid)
            if change["migration_uuid"] != migration_uuid:
                return
            with self.notify.action(ctxt, instance_uuid, "resize") as note:
                try:
                    self._resize(ctxt, inst, change)
                except Exception as err:
                    LOG.warning("resize of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    self._roll_back(inst, change)

    def _resize(self, ctxt: RequestContext, inst: dict,
                change: dict) -> None:
        uuid, old, new = inst["uuid"], change["old_flavor"], \
            change["new_flavor"]
        with self._event(ctxt, uuid, "compute_resize_instance"):
            db_instances.update(self.db, uuid,
                                {"task_state": states.RESIZE_MIGRATING},
                                expected_task_state=states.RESIZE_PREP)
            if int(new["root_gb"]) < int(old["root_gb"]):
                # Nova's drivers refuse it the same way (the disk would
                # lose what the guest wrote past the new size)
                raise exception.ResizeError(
                    reason="Unable to resize disk down.")
            power = self._apply(inst, new)
        with self._event(ctxt, uuid, "compute_finish_resize"):
            # ready for a confirm before a client can see VERIFY_RESIZE
            # (a rollback marks it "error" again)
            db_resizes.set_status(self.db, change["migration_uuid"],
                                  "finished")
        # one write takes the new flavor and VERIFY_RESIZE (after the
        # event closed: a client seeing it sees the finished events); a
        # crash before it rolls back, after it the resize is finished
        db_instances.update(
            self.db, uuid, {"vm_state": states.RESIZED, "task_state": None,
                            "power_state": power, "flavor": new,
                            "flavor_id": change["new_flavor_id"]},
            expected_task_state=states.RESIZE_MIGRATING)

    def _roll_back(self, inst: dict, change: dict) -> None:
        """Back to the old flavor's limits and the state before (best
        effort on the guest: the row must leave the task state)."""
        uuid = inst["uuid"]
        try:
            power = self._apply(inst, change["old_flavor"])
        except Exception:  # logged; the row still leaves the task state
            LOG.exception("restoring the limits of %s failed", uuid)
            power = inst["power_state"]
        db_resizes.set_status(self.db, change["migration_uuid"], "error")
        self.finish_task(uuid, {"task_state": None, "power_state": power,
                                "flavor": change["old_flavor"],
                                "flavor_id": change["old_flavor_id"]},
                         states.RESIZE_TASK_STATES)

    def confirm_resize(self, ctxt: RequestContext, instance_uuid: str,
                       migration_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "confirm_resize") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["vm_state"] != states.RESIZED:
                return
            status = "confirmed"
            with self.notify.action(ctxt, instance_uuid, "resize_confirm"):
                with self._event(ctxt, instance_uuid,
                                 "compute_confirm_resize"):
                    move = db_resizes.move_of(self.db, migration_uuid)
                    if move["source_compute"] != self.host:
                        status = self._drop_source(ctxt, instance_uuid,
                                                   move)
                    power = self.driver.get_info(
                        self.spec(inst)).power_state
                    db_resizes.set_status(self.db, migration_uuid, status)
                self.finish_task(instance_uuid, {
                    "vm_state": _settled(power), "power_state": power}, None)

    def _drop_source(self, ctxt: RequestContext, uuid: str,
                     move: dict) -> str:
        """Have a moved guest's source drop its copy: the migration's
        status, "error" (and a fault naming the host) if it could not --
        the guest runs here all the same."""
        try:
            self.compute_rpc.drop_migration_source(
                ctxt, move["source_compute"], uuid, move["uuid"])
            return "confirmed"
        except exception.PyctError as err:
            self.record_fault(uuid, exception.ResizeError(
                reason=f"the copy on {move['source_compute']} was not "
                f"removed: {err.message}"))
            return "error"

    def revert_resize(self, ctxt: RequestContext, instance_uuid: str,
                      migration_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "revert_resize") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["task_state"] != states.RESIZE_REVERTING:
                return
            change = db_resizes.current(self.db, instance_uuid)
            move = db_resizes.move_of(self.db, migration_uuid)
            if move["source_compute"] != self.host:
                self.revert_move(ctxt, inst, change, move)
                return
            with self.notify.action(ctxt, instance_uuid,
                                    "resize_revert") as note:
                try:
                    with self._event(ctxt, instance_uuid,
                                     "compute_revert_resize"):
                        power = self._apply(inst, change["old_flavor"])
                    values = {"vm_state": _settled(power),
                              "power_state": power,
                              "flavor": change["old_flavor"],
                              "flavor_id": change["old_flavor_id"]}
                    status = "reverted"
                except Exception as err:
                    LOG.warning("revert of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    values, status = {"vm_state": states.ERROR}, "error"
                values["task_state"] = None
                db_resizes.set_status(self.db, migration_uuid, status)
                self.finish_task(instance_uuid, values,
                                 states.RESIZE_REVERTING)

    def rebuild_instance(self, ctxt: RequestContext, instance_uuid: str,
                         vm_state: str, preserve_ephemeral: bool = False
                         ) -> None:
        """New root from the row's image (the API wrote it), same ports;
        a server stopped before stays stopped, as in Nova."""
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "rebuild_instance") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["task_state"] != states.REBUILDING:
                return
            with self.notify.action(ctxt, instance_uuid, "rebuild") as note:
                try:
                    with self._event(ctxt, instance_uuid,
                                     "compute_rebuild_instance"):
                        final = self._rebuild(inst, vm_state)
                except Exception as err:
                    LOG.warning("rebuild of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    final = {"vm_state": states.ERROR, "task_state": None,
                             "power_state": self.driver.get_info(
                                 self.spec(inst)).power_state}
                self.finish_task(instance_uuid, final,
                                 states.REBUILD_TASK_STATES)

    def _rebuild(self, inst: dict, vm_state: str) -> dict:
        uuid = inst["uuid"]
        image = db_catalog.image_get(self.db, inst["image_ref"])
        if not image.get("location"):
            raise exception.InvalidImage(image=image["id"],
                                         reason="image has no data")
        spec = self.build_spec(inst, image)
        self.driver.import_image(image["id"], image["location"])
        self.driver.destroy(spec)  # the old root goes with the guest
        db_instances.update(self.db, uuid,
                            {"task_state": states.REBUILD_SPAWNING},
                            expected_task_state=states.REBUILDING)
        self.driver.spawn(spec)
        if vm_state == states.STOPPED:
            self.driver.power_off(spec, 0)
        db_networks.set_port_status(self.db, "ACTIVE", instance_uuid=uuid)
        return {"vm_state": states.STOPPED if vm_state == states.STOPPED
                else states.ACTIVE, "task_state": None,
                "power_state": self.driver.get_info(spec).power_state,
                "launched_at": utcnow()}


def recover(manager: "ResizeEndpoints", instance: dict) -> bool:
    """Drive an instance a restart interrupted in a resize or rebuild to a
    stable state; False if its task state is none of ours."""
    uuid, task = instance["uuid"], instance["task_state"]
    ctxt = get_admin_context()
    if task in _ROLLBACK or task == states.RESIZE_FINISH:
        with manager.instance_lock(uuid):
            change = db_resizes.current(manager.db, uuid)
            move = db_resizes.move_of(manager.db, change["migration_uuid"])
            if task in _ROLLBACK and move["dest_compute"] != manager.host:
                manager.recover_move(instance, change, move)
            elif task == states.RESIZE_FINISH:
                # the row has the new flavor: make the guest match it
                power = manager._apply(instance, change["new_flavor"])
                manager.finish_task(uuid, {"vm_state": states.RESIZED,
                                           "task_state": None,
                                           "power_state": power}, task)
                db_resizes.set_status(manager.db, change["migration_uuid"],
                                      "finished")
            else:
                manager.record_fault(uuid, exception.ResizeError(
                    reason="resize interrupted by a compute service "
                           "restart"))
                manager._roll_back(instance, change)
    elif task == states.RESIZE_REVERTING:
        change = db_resizes.current(manager.db, uuid)
        manager.revert_resize(ctxt, uuid, change["migration_uuid"])
    elif task in states.REBUILD_TASK_STATES:
        manager.finish_task(uuid, {"task_state": states.REBUILDING}, task)
        before = states.STOPPED if instance["power_state"] == \
            states.SHUTDOWN else states.ACTIVE
        manager.rebuild_instance(ctxt, uuid, before)
    else:
        return False
    return True


def recover_confirms(manager: "ResizeEndpoints") -> None:
    """Finish confirms the API asked for that a restart interrupted, and
    the status of resizes cut right after they finished."""
    for inst in db_instances.list_(manager.db, host=manager.host):
        if inst["vm_state"] != states.RESIZED or inst["task_state"]:
            continue
        try:
            change = db_resizes.current(manager.db, inst["uuid"])
        except exception.NotFound:
            continue
        if change["status"] in ("pre-migrating", "migrating"):
            # cut between the VERIFY_RESIZE write and its status
            db_resizes.set_status(manager.db, change["migration_uuid"],
                                  "finished")
        elif change["status"] == "confirming":
            manager.confirm_resize(get_admin_context(), inst["uuid"],
                                   change["migration_uuid"])


def confirm_due(manager: "ResizeEndpoints") -> int:
    """Confirm the resizes of this host waiting longer than
    ``resize_confirm_window`` seconds (0: never); return how many."""
    window = manager.resize_confirm_window
    if window <= 0:
        return 0
    cutoff = utcnow() - datetime.timedelta(seconds=window)
    done = 0
    for change in db_resizes.finished_before(manager.db, manager.host,
                                             cutoff):
        try:
            db_resizes.claim(manager.db, change["instance_uuid"],
                             "finished", "confirming")
        except exception.PyctError:
            continue  # confirmed, reverted or gone meanwhile
        ctxt = get_admin_context()
        with contextlib.suppress(exception.PyctError):
            db_actions.action_start(manager.db, change["instance_uuid"],
                                    "confirmResize", ctxt.request_id,
                                    ctxt.user_id, ctxt.project_id)
        manager.confirm_resize(ctxt, change["instance_uuid"],
                               change["migration_uuid"])
        done += 1
    return done
