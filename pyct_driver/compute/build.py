"""The build of a new guest on the compute host (``build_and_run_instance``).

Mixed into ``ComputeManager``. A build claims its request, moves the
instance from ``scheduling`` to ``spawning`` and starts the action's event
in one transaction, reads the image, allocates the guest's id range (a
transaction of its own, which a lost race retries), reads the spec in
one, spawns, and closes the event and writes the final state (ACTIVE) in one
more: a client that sees ACTIVE also sees the finished event. A guest
without ports skips the port-filter sync, the port status and the tunnel
update (it has none of them). A failed build leaves a fault and ERROR.
"""

from __future__ import annotations

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db.models import utcnow
from pyct_driver.compute.request_once import outlast_outage

LOG = logging.getLogger(__name__)


class BuildEndpoints:
    """Mixed into ``ComputeManager`` (``db``, ``driver``, ``notify``,
    ``instance_lock``, ``once``, ``_event``...)."""

    def build_and_run_instance(self, ctxt: RequestContext,
                               instance_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "build_and_run_instance") as fresh:
            if not fresh:
                return
            event = "compute_build_and_run_instance"

            def begin() -> tuple[dict, bool]:
                # spawning and the event's start: one transaction
                with self.db.transaction():
                    return db_instances.update(
                        self.db, instance_uuid,
                        {"task_state": states.SPAWNING},
                        expected_task_state=(states.SCHEDULING,
                                             states.NETWORKING),
                        expected_vm_state=states.BUILDING, action="build"
                    ), self._event_start(instance_uuid, ctxt.request_id,
                                         event)
            try:
                instance, started = outlast_outage(begin,
                                                   self.outage_patience)
            except (exception.InstanceInvalidState,
                    exception.InstanceNotFound) as err:
                LOG.info("not building %s: %s", instance_uuid, err)
                return
            # the state flips with the event's close (one transaction) or
            # after it, so a client that sees ACTIVE or ERROR also sees
            # the finished event
            with self.notify.action(ctxt, instance_uuid, "create") as note:
                try:
                    with self._event(ctxt, instance_uuid, event,
                                     started) as box:
                        final = self._build(instance)
                        box["then"] = lambda: self._set_final(
                            instance_uuid, final, states.SPAWNING)
                except Exception as err:
                    LOG.warning("build of %s failed: %s", instance_uuid,
                                err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    self.finish_task(instance_uuid, {
                        "vm_state": states.ERROR, "task_state": None,
                        "power_state": states.NOSTATE}, states.SPAWNING)

    def _build(self, instance: dict) -> dict:
        """Spawn the guest; return the instance's final values."""
        uuid = instance["uuid"]
        # reads (and the id range's allocation, kept per instance): a
        # short outage delays the build instead of failing it
        image = outlast_outage(lambda: db_catalog.image_get(
            self.db, instance["image_ref"]), self.outage_patience)
        if not image.get("location"):
            raise exception.InvalidImage(image=image["id"],
                                         reason="image has no data")
        spec = outlast_outage(lambda: self.build_spec(instance, image),
                              self.outage_patience)
        try:
            self.driver.import_image(image["id"], image["location"])
            if spec.vifs:
                # filters first: the guest's port is never up unfiltered
                # (a guest without ports has none to filter)
                outlast_outage(self.sync_port_filters,
                               self.outage_patience)
            self.driver.spawn(spec)
        except Exception as err:
            if not isinstance(err, exception.Duplicate):
                # never destroy a guest this build did not create
                try:
                    self.driver.destroy(spec)
                except Exception as cleanup:
                    LOG.warning("cleaning up the failed build of %s "
                                "failed: %s", uuid, cleanup)
            raise
        info = self.driver.get_info(spec)
        # the guest runs: what follows is written once the database is
        # back (a short outage must not fail a build that succeeded)
        if spec.vifs:
            outlast_outage(lambda: db_networks.set_port_status(
                self.db, "ACTIVE", instance_uuid=uuid),
                self.outage_patience)
            outlast_outage(lambda: self.tunnels_changed(
                None, [vif.network_id for vif in spec.vifs]),
                self.outage_patience)
        return {"vm_state": states.ACTIVE, "task_state": None,
                "power_state": info.power_state, "launched_at": utcnow()}
