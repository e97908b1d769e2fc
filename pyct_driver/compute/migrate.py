"""Cold migration, and resize to another host, between compute services.

The API recorded the move (a ``migrations`` row with both hosts, the
flavor change) and cast ``migrate_instance`` to the source, which drives
it: it stops the guest, asks the destination to ``open_migration`` (an
RPC call answered with a one-time token and the address of a listener on
the destination's management address: ``migration_transfer``), streams
the guest's own files there (``VirtDriver.send_guest``) and calls
``finish_migration`` with the stream's SHA-256. The destination checks
the digest before it uses anything, moves the instance row (and with it
its ports: the VXLAN segments span the hosts) to itself in one
compare-and-swap, starts the guest if it ran before and leaves it in
VERIFY_RESIZE. The source keeps its copy untouched: a revert destroys the
destination's and starts the source's again (``finish_revert_migration``);
a confirm (the API's, or the auto-confirm) has the source destroy its own
(``drop_migration_source``). A failure at any step before the row moved
removes what the destination made, starts the source's guest again if it
ran and leaves a fault and the migration in ``error``.
"""

from __future__ import annotations

import contextlib
import threading

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.compute import migration_transfer as transfer
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import resizes as db_resizes
from pyct_driver.notifications.notifier import reports_exceptions

LOG = logging.getLogger(__name__)


class MigrationEndpoints:
    """Mixed into ``ComputeManager`` (its db, driver, locks, events and
    the RPC client ``compute_rpc`` to the other hosts)."""

    # set by the composition root ([migration] options)
    migration_address = "127.0.0.1"
    migration_token_ttl = 60.0
    migration_timeout = 600.0
    _receivers_guard = threading.Lock()

    def _receivers(self) -> dict:
        with self._receivers_guard:
            if "_open_receivers" not in self.__dict__:
                self._open_receivers: dict = {}
            return self._open_receivers

    def _moving(self, instance_uuid: str, migration_uuid: str,
                task_state: str) -> tuple[dict, dict, dict] | None:
        """The instance, its open resize and its migration row, if the
        instance is in ``task_state`` of that very migration."""
        inst = self._get(instance_uuid)
        if inst is None or inst["task_state"] != task_state:
            return None
        change = db_resizes.current(self.db, instance_uuid)
        if change["migration_uuid"] != migration_uuid:
            return None
        return inst, change, db_resizes.move_of(self.db, migration_uuid)

    # -- the source ---------------------------------------------------------

    def migrate_instance(self, ctxt: RequestContext, instance_uuid: str,
                         migration_uuid: str) -> None:
        """RPC 1.11 (a cast, to the source): move the guest away."""
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "migrate_instance") as fresh:
            found = self._moving(instance_uuid, migration_uuid,
                                 states.RESIZE_PREP) if fresh else None
            if found is None:
                return
            inst, change, move = found
            spec = self.spec(inst)
            was_on = self.driver.get_info(spec).power_state == \
                states.RUNNING
            with self.notify.action(ctxt, instance_uuid, "resize") as note:
                try:
                    self._move_out(ctxt, inst, spec, move, was_on)
                except Exception as err:
                    LOG.warning("migration of %s to %s failed: %s",
                                instance_uuid, move["dest_compute"], err)
                    self.record_fault(instance_uuid, err)
                    note.fail(err)
                    self._move_failed(ctxt, inst, spec, change, move,
                                      was_on)
                    return
            self.refresh_security_groups(None)  # its ports left here
            self.tunnels_changed(ctxt, [v.network_id for v in spec.vifs])

    def _move_out(self, ctxt: RequestContext, inst: dict, spec, move: dict,
                  was_on: bool) -> None:
        uuid, dest = inst["uuid"], move["dest_compute"]
        with self._event(ctxt, uuid, "compute_resize_instance"):
            db_instances.update(self.db, uuid,
                                {"task_state": states.RESIZE_MIGRATING},
                                expected_task_state=states.RESIZE_PREP)
            db_resizes.set_status(self.db, move["uuid"], "migrating")
            if was_on:
                self.driver.power_off(spec, self.shutdown_timeout)
            endpoint = self.compute_rpc.open_migration(ctxt, dest, uuid,
                                                       move["uuid"])
            digest = transfer.send(
                endpoint, uuid, lambda sink: self.driver.send_guest(
                    spec, sink), timeout=self.migration_timeout)
            db_instances.update(self.db, uuid,
                                {"task_state": states.RESIZE_MIGRATED},
                                expected_task_state=states.RESIZE_MIGRATING)
            db_resizes.set_status(self.db, move["uuid"], "post-migrating")
        self.compute_rpc.finish_migration(ctxt, dest, uuid, move["uuid"],
                                          digest, was_on)

    def _move_failed(self, ctxt: RequestContext, inst: dict, spec,
                     change: dict, move: dict, was_on: bool) -> None:
        """Back to where it was: the destination's copy gone, the guest
        here as before (its files were never changed)."""
        now = self._get(inst["uuid"])
        if now is not None and now["host"] != self.host:
            # the destination took it (its answer was what got lost):
            # starting this copy too would run the guest twice
            LOG.warning("%s is on %s now; its copy here stays stopped",
                        inst["uuid"], now["host"])
            return
        with contextlib.suppress(exception.PyctError, AttributeError):
            # (no client: a tool's manager; the destination's listener
            # expires and a half-made copy removes itself)
            self.compute_rpc.abort_migration(ctxt, move["dest_compute"],
                                             inst["uuid"], move["uuid"])
        try:
            if was_on:
                self.driver.power_on(spec)
            power = self.driver.get_info(spec).power_state
        except Exception:  # logged; the row still leaves the task state
            LOG.exception("restarting %s after its failed migration",
                          inst["uuid"])
            power = states.NOSTATE
        db_resizes.set_status(self.db, move["uuid"], "error")
        self.finish_task(inst["uuid"], {
            "task_state": None, "power_state": power,
            "flavor": change["old_flavor"],
            "flavor_id": change["old_flavor_id"]},
            states.RESIZE_TASK_STATES)

    def recover_move(self, inst: dict, change: dict, move: dict) -> None:
        """A restart cut this host's move of ``inst`` short (lock held):
        undo it as a failure would (the row's vm_state says whether the
        guest ran)."""
        err = exception.ResizeError(
            reason="migration interrupted by a compute service restart")
        self.record_fault(inst["uuid"], err)
        self._move_failed(get_admin_context(), inst, self.spec(inst),
                          change, move, inst["vm_state"] == states.ACTIVE)

    @reports_exceptions
    def drop_migration_source(self, ctxt: RequestContext,
                              instance_uuid: str,
                              migration_uuid: str) -> None:
        """RPC 1.11 (a call, to the source): the move was confirmed;
        remove this host's copy (never the guest the row puts here)."""
        with self.instance_lock(instance_uuid):
            inst = db_instances.get(self.db, instance_uuid)
            move = db_resizes.move_of(self.db, migration_uuid)
            if inst["host"] == self.host or \
                    move["source_compute"] != self.host:
                raise exception.Conflict(
                    f"Instance {instance_uuid} lives on {self.host}: its "
                    "copy here is not a migration's leftover.")
            spec = self.spec(inst)
            self.driver.destroy(spec)
        self.refresh_security_groups(None)
        self.tunnels_changed(ctxt, [v.network_id for v in spec.vifs])

    def finish_revert_migration(self, ctxt: RequestContext,
                                instance_uuid: str, migration_uuid: str,
                                power_on: bool) -> None:
        """RPC 1.11 (a cast, to the source): the destination dropped its
        copy and gave the row back; start the untouched guest here."""
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "finish_revert_migration") as fresh:
            inst = self._get(instance_uuid) if fresh else None
            if inst is None or inst["host"] != self.host or \
                    inst["task_state"] != states.RESIZE_REVERTING:
                return
            spec = self.spec(inst)
            values, status = {}, "reverted"
            try:
                with self._event(ctxt, instance_uuid,
                                 "compute_finish_revert_resize"):
                    self.sync_port_filters()
                    if power_on:
                        self.driver.power_on(spec)
            except Exception as err:
                LOG.warning("starting %s again after its revert failed: "
                            "%s", instance_uuid, err)
                self.record_fault(instance_uuid, err)
                values, status = {"vm_state": states.ERROR}, "error"
            power = self.driver.get_info(spec).power_state
            values = {"vm_state": states.ACTIVE if power == states.RUNNING
                      else states.STOPPED, "power_state": power,
                      "task_state": None, **values}
            db_resizes.set_status(self.db, migration_uuid, status)
            self.finish_task(instance_uuid, values, states.RESIZE_REVERTING)
        self.tunnels_changed(ctxt, [v.network_id for v in spec.vifs])

    # -- the destination ----------------------------------------------------

    def revert_move(self, ctxt: RequestContext, inst: dict, change: dict,
                    move: dict) -> None:
        """``revert_resize`` of a guest moved here (lock held): drop this
        copy, give the row back, have the source start its own."""
        uuid, spec = inst["uuid"], self.spec(inst)
        power_on = self.driver.get_info(spec).power_state == states.RUNNING
        with self.notify.action(ctxt, uuid, "resize_revert") as note:
            try:
                with self._event(ctxt, uuid, "compute_revert_resize"):
                    self.driver.destroy(spec)
                    db_instances.update(self.db, uuid, {
                        "host": move["source_compute"],
                        "flavor": change["old_flavor"],
                        "flavor_id": change["old_flavor_id"]},
                        expected_task_state=states.RESIZE_REVERTING)
            except Exception as err:
                LOG.warning("revert of %s on %s failed: %s", uuid,
                            self.host, err)
                self.record_fault(uuid, err)
                note.fail(err)
                db_resizes.set_status(self.db, move["uuid"], "error")
                self.finish_task(uuid, {"vm_state": states.ERROR,
                                        "task_state": None},
                                 states.RESIZE_REVERTING)
                return
        self.refresh_security_groups(None)
        self.tunnels_changed(ctxt, [v.network_id for v in spec.vifs])
        self.compute_rpc.finish_revert_migration(
            ctxt, move["source_compute"], uuid, move["uuid"], power_on)

    @reports_exceptions
    def open_migration(self, ctxt: RequestContext, instance_uuid: str,
                       migration_uuid: str) -> dict:
        """RPC 1.11 (a call, to the destination): a listener for this
        instance's stream; answers its address, port and one-time token."""
        found = self._moving(instance_uuid, migration_uuid,
                             states.RESIZE_MIGRATING)
        if found is None or found[2]["dest_compute"] != self.host:
            raise exception.Conflict(f"No migration of {instance_uuid} "
                                     f"to {self.host} is under way.")
        inst, change, _ = found
        image = db_catalog.image_get(self.db, inst["image_ref"])
        if not image.get("location"):
            raise exception.InvalidImage(image=image["id"],
                                         reason="image has no data")
        self.driver.import_image(image["id"], image["location"])
        spec = self.build_spec({**inst, "flavor": change["new_flavor"]},
                               image)
        receiver = transfer.Receiver(
            self.migration_address, instance_uuid,
            lambda source: self.driver.receive_guest(spec, source),
            ttl=self.migration_token_ttl, idle_timeout=self.migration_timeout)
        old = self._receivers().pop(migration_uuid, None)
        if old is not None:
            old.close()
        self._receivers()[migration_uuid] = receiver
        return receiver.endpoint()

    @reports_exceptions
    def finish_migration(self, ctxt: RequestContext, instance_uuid: str,
                         migration_uuid: str, digest: str,
                         power_on: bool) -> None:
        """RPC 1.11 (a call, to the destination): check the stream, take
        the instance (row and ports) and start it if it ran before."""
        receiver = self._receivers().pop(migration_uuid, None)
        if receiver is None:
            raise exception.TransferError(reason="no transfer is open for "
                                          f"migration {migration_uuid}")
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "finish_migration") as fresh:
            inst, change, _ = fresh and self._moving(
                instance_uuid, migration_uuid, states.RESIZE_MIGRATED) or \
                (None, None, None)
            if inst is None:
                receiver.close()
                raise exception.Conflict("the migration was given up")
            spec = self.spec({**inst, "flavor": change["new_flavor"]})
            try:
                with self._event(ctxt, instance_uuid,
                                 "compute_finish_resize"):
                    receiver.wait(digest, self.migration_timeout)
                    self._take_over(inst, change, spec, power_on)
            except Exception:
                self._drop_copy(spec)
                raise
        self.tunnels_changed(ctxt, [v.network_id for v in spec.vifs])

    def _take_over(self, inst: dict, change: dict, spec,
                   power_on: bool) -> None:
        uuid = inst["uuid"]
        db_instances.update(self.db, uuid, {
            "host": self.host, "task_state": states.RESIZE_FINISH,
            "flavor": change["new_flavor"],
            "flavor_id": change["new_flavor_id"]},
            expected_task_state=states.RESIZE_MIGRATED)
        try:
            self.sync_port_filters()  # filters first, as at a build
            if power_on:
                self.driver.power_on(spec)
        except Exception:
            db_instances.update(self.db, uuid, {
                "host": inst["host"], "task_state": states.RESIZE_MIGRATED,
                "flavor": inst["flavor"], "flavor_id": inst["flavor_id"]},
                expected_task_state=states.RESIZE_FINISH)
            self.refresh_security_groups(None)
            raise
        db_networks.set_port_status(self.db, "ACTIVE", instance_uuid=uuid)
        db_resizes.set_status(self.db, change["migration_uuid"], "finished")
        db_instances.update(self.db, uuid, {
            "vm_state": states.RESIZED, "task_state": None,
            "power_state": self.driver.get_info(spec).power_state},
            expected_task_state=states.RESIZE_FINISH)

    def _drop_copy(self, spec) -> None:
        try:
            self.driver.destroy(spec)
        except Exception:  # logged: the source keeps the guest anyway
            LOG.exception("removing the copy of %s failed", spec.uuid)

    @reports_exceptions
    def abort_migration(self, ctxt: RequestContext, instance_uuid: str,
                        migration_uuid: str) -> None:
        """RPC 1.11 (a call, to the destination): the source gave up;
        close the listener and remove any copy made here."""
        receiver = self._receivers().pop(migration_uuid, None)
        if receiver is not None:
            receiver.close()
        with self.instance_lock(instance_uuid):
            inst = self._get(instance_uuid)
            if inst is not None and inst["host"] != self.host:
                self._drop_copy(self.spec(inst))

    def check_live_migration(self, ctxt: RequestContext) -> list:
        """RPC 1.11 (a call): ``[can, why]`` this host can checkpoint and
        restore running guests."""
        can, why = self.driver.live_migration_support()
        return [bool(can), why]
