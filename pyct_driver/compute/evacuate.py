"""Evacuation on the compute hosts: the destination's rebuild, and the
dead source's clean-up when it comes back.

The API moved the server's row to the destination (``host``) in
``rebuilding`` and recorded the evacuation (``db.evacuations``); the
destination rebuilds the guest from the row's image with the row's ports
(same MACs and addresses), filters them first as a build does, programs
its VXLAN entries and tells the network's other hosts, takes over its
floating IPs' NAT, and leaves the
server ACTIVE or, if it was stopped or the caller asked (2.95), SHUTOFF.
The source's guests outlive its compute service, so when that service
starts again (``destroy_evacuated``, before any other recovery) it
destroys each guest it still has of an evacuation away from it, unless
the database gives the server back to this host, and marks the
evacuation ``completed``: one server never runs twice.
"""

from __future__ import annotations

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import evacuations as db_evacuations
from pyct_driver.db import instances as db_instances
from pyct_driver.virt import base as virt_base

LOG = logging.getLogger(__name__)


class EvacuateEndpoints:
    """The destination's RPC endpoint (mixed into ``ComputeManager``:
    uses its db, driver, locks, events and ``_rebuild``)."""

    def evacuate_instance(self, ctxt: RequestContext, instance_uuid: str,
                          migration_uuid: str, vm_state: str) -> None:
        """RPC 1.12 (a cast): rebuild the evacuated server here;
        ``vm_state`` is the one it is to settle in (stopped or not)."""
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "evacuate_instance") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["host"] != self.host or \
                    inst["task_state"] not in states.REBUILD_TASK_STATES:
                return
            db_evacuations.set_status(self.db, migration_uuid,
                                      "pre-migrating")
            with self.notify.action(ctxt, instance_uuid, "evacuate") as note:
                try:
                    with self._event(ctxt, instance_uuid,
                                     "compute_rebuild_instance"):
                        final = self._evacuate(inst, vm_state)
                    status = "done"
                except Exception as err:
                    LOG.warning("evacuation of %s failed: %s",
                                instance_uuid, err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    final = {"vm_state": states.ERROR, "task_state": None,
                             "power_state": states.NOSTATE}
                    status = "failed"
                db_evacuations.set_status(self.db, migration_uuid, status)
                self.finish_task(instance_uuid, final,
                                 states.REBUILD_TASK_STATES)

    def _evacuate(self, inst: dict, vm_state: str) -> dict:
        # its ports arrive filtered, as a new build's do
        self.sync_port_filters()
        try:
            final = self._rebuild(inst, vm_state)
        except Exception:
            # nothing half-built stays here (the row goes to ERROR)
            try:
                self.driver.destroy(self.spec(inst))
            except Exception as cleanup:
                LOG.warning("cleaning up the failed evacuation of %s "
                            "failed: %s", inst["uuid"], cleanup)
            raise
        self.tunnels_changed(None, [vif.network_id
                                    for vif in self.spec(inst).vifs])
        _follow_floating_ips(self)
        return final


def _follow_floating_ips(manager: EvacuateEndpoints) -> None:
    """The host's NAT follows the servers that came or went now rather
    than at the next report (best effort: the report converges it)."""
    try:
        manager.sync_floating_ips()
    except exception.PyctError:
        LOG.exception("floating IPs of %s not synced", manager.host)


def recover(manager: EvacuateEndpoints, instance: dict) -> bool:
    """Redo an evacuation to this host that a restart interrupted; False
    if the instance is in no evacuation."""
    if instance["task_state"] not in states.REBUILD_TASK_STATES:
        return False
    try:
        migration = db_evacuations.in_flight(manager.db, instance["uuid"])
    except exception.NotFound:
        return False
    if migration["dest_compute"] != manager.host:
        return False
    manager.finish_task(instance["uuid"],
                        {"task_state": states.REBUILDING},
                        instance["task_state"])
    vm_state = states.STOPPED if instance["vm_state"] == states.STOPPED \
        else states.ACTIVE
    manager.evacuate_instance(get_admin_context(), instance["uuid"],
                              migration["uuid"], vm_state)
    return True


def _destroy(manager: EvacuateEndpoints, uuid: str, row: dict | None,
             dest: str) -> None:
    LOG.warning("destroying %s: it was evacuated to %s while this host "
                "was down", uuid, dest)
    with manager.instance_lock(uuid):
        if row is not None and not row["deleted"]:
            spec = manager.spec(row)  # its ports: unplugged here
        else:
            spec = virt_base.bare_spec(uuid, (row or {}).get("image_ref",
                                                             ""))
        manager.driver.destroy(spec)


def destroy_evacuated(manager: EvacuateEndpoints) -> int:
    """Destroy the guests this host still has of servers evacuated away
    from it; return how many went."""
    destroyed = 0
    present = set(manager.driver.list_instances())
    for migration in db_evacuations.left_on(manager.db, manager.host):
        uuid = migration["instance_uuid"]
        try:
            row = db_instances.get(manager.db, uuid, read_deleted=True)
        except exception.InstanceNotFound:
            row = None
        if row is not None and not row["deleted"] and \
                row["host"] == manager.host:
            # the database gives the server to this host: never touch it
            LOG.info("evacuation %s of %s: the server is on this host "
                     "again; keeping it", migration["uuid"], uuid)
            continue
        try:
            if uuid in present:
                _destroy(manager, uuid, row, migration["dest_compute"])
                destroyed += 1
            db_evacuations.set_status(manager.db, migration["uuid"],
                                      "completed")
        except Exception:  # the next start tries again; others go on
            LOG.exception("destroying evacuated %s failed", uuid)
    if destroyed:
        manager.sync_port_filters()  # the destroyed guests' ports left
        # the networks still here now point at the servers' new hosts
        manager.sync_tunnels()
        _follow_floating_ips(manager)
    return destroyed
