"""The compute manager: the RPC endpoints that drive the virt driver.

Each endpoint handles one instance: it takes that instance's lock (so a
delete waits for a build in flight), records an instance-action event, calls
the driver, and commits the result with a task-state compare-and-swap. The
API already moved the instance into the operation's task state; the manager
moves it out. A failure leaves a fault row and a consistent state (ERROR for
a failed build or reboot; the previous state for a failed stop or start).
Each action is bracketed by its notifications (``instance.<action>.start``
then ``.end``, or ``.error`` and ``compute.exception``:
``notifications.notifier``).
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from typing import Callable, Iterator

from oslo_log import log as logging

from pyct_driver import exception, extra_specs, states
from pyct_driver.compute.build import BuildEndpoints
from pyct_driver.compute.console_endpoint import ConsoleEndpoint
from pyct_driver.compute.evacuate import EvacuateEndpoints
from pyct_driver.compute.floating import FloatingEndpoints
from pyct_driver.compute.guest_calls import GuestCalls
from pyct_driver.compute.migrate import MigrationEndpoints
from pyct_driver.context import RequestContext
from pyct_driver.db import actions as db_actions
from pyct_driver.db import idranges as db_idranges
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database
from pyct_driver.notifications.notifier import (Notifications,
                                                reports_exceptions)
from pyct_driver.compute.request_once import RequestOnce, outlast_outage
from pyct_driver.compute.rescue import RescueEndpoints
from pyct_driver.compute.resize import ResizeEndpoints
from pyct_driver.compute.rpc_api import RPC_API_VERSION
from pyct_driver.compute.secgroup_endpoint import SecurityGroupEndpoints
from pyct_driver.compute.shelve import ShelveEndpoints
from pyct_driver.compute.snapshot import SnapshotEndpoints
from pyct_driver.compute.tunnels import TunnelEndpoints
from pyct_driver.compute.specs import instance_spec, vif_spec
from pyct_driver.rpc.transport import messaging
from pyct_driver.virt import base as virt_base

LOG = logging.getLogger(__name__)
# the instance-action event of each notified action (compute_<x>_instance)
_EVENTS = {"reboot": "reboot", "power_off": "stop", "power_on": "start",
           "pause": "pause", "unpause": "unpause", "rescue": "rescue",
           "unrescue": "unrescue", "suspend": "suspend",
           "resume": "resume"}


class ComputeManager(BuildEndpoints, GuestCalls, ResizeEndpoints,
                     RescueEndpoints,
                     SnapshotEndpoints, ShelveEndpoints,
                     SecurityGroupEndpoints, FloatingEndpoints,
                     TunnelEndpoints, MigrationEndpoints,
                     EvacuateEndpoints, RequestOnce):
    """Endpoints of the ``pyct-compute`` RPC server on one host."""

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, db: Database, driver: virt_base.VirtDriver,
                 host: str, shutdown_timeout: float = 60,
                 force_config_drive: bool = False,
                 gateway_dns: bool = False,
                 notifications: Notifications | None = None,
                 resize_confirm_window: int = 0,
                 shelved_offload_time: int = 0,
                 image_dir: str = "/var/lib/pyct/images") -> None:
        self.db = db
        # versioned notifications of each action (none sent by default)
        self.notify = notifications or Notifications(db, host)
        self.driver = driver
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self.force_config_drive = force_config_drive
        self.gateway_dns = gateway_dns
        self.resize_confirm_window = resize_confirm_window
        self.shelved_offload_time = shelved_offload_time
        self.image_dir = image_dir  # where snapshots' files go
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # the serial console listener, set by the service that runs one
        self.consoles: ConsoleEndpoint | None = None

    def spec(self, instance: dict,
             image: dict | None = None) -> virt_base.InstanceSpec:
        """The driver's view of ``instance`` (reads only, in one
        transaction)."""
        overhead = virt_base.TUNNEL_OVERHEAD \
            if self.driver.tunnel_address() else 0
        with self.db.transaction():
            return instance_spec(self.db, instance, self.force_config_drive,
                                 self.gateway_dns, image, overhead)

    def build_spec(self, instance: dict,
                   image: dict) -> virt_base.InstanceSpec:
        """The spec of a guest about to get a new root from ``image`` (the
        row its caller read once): an unprivileged one gets its id range
        here, allocated on its first build and kept until it is deleted
        (its disk's files are owned by it)."""
        if not extra_specs.privileged_from(
                instance["flavor"].get("extra_specs") or {}):
            db_idranges.allocate(self.db, instance["uuid"])
        return self.spec(instance, image)

    @contextlib.contextmanager
    def instance_lock(self, uuid: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(uuid, threading.Lock())
        with lock:
            yield

    def record_fault(self, uuid: str, err: BaseException) -> None:
        """Keep ``err`` as the instance's fault (best effort: logged if
        the fault row cannot be written)."""
        code = getattr(err, "code", 500)
        # as Nova: a tenant reads pyct's own words or a class name; the
        # rest stays in the traceback (admins only for a 500) and the log
        if isinstance(err, exception.PyctError) and not isinstance(
                err, exception.DBError):
            message = err.message
        else:
            message = type(err).__name__
        details = "".join(traceback.format_exception(err))
        try:
            outlast_outage(lambda: db_actions.fault_create(
                self.db, uuid, code, message, details, self.host),
                self.outage_patience)
        except exception.PyctError:
            LOG.exception("could not record fault for %s", uuid)

    def _event_start(self, uuid: str, request_id: str, event: str) -> bool:
        """Start ``event`` (in the caller's transaction, if any): whether
        the request has an action to record it in."""
        try:
            db_actions.event_start(self.db, uuid, request_id, event,
                                   self.host)
        except exception.ActionNotFound:
            return False
        return True

    @contextlib.contextmanager
    def _event(self, ctxt: RequestContext, uuid: str, event: str,
               started: bool | None = None) -> Iterator[dict]:
        """Wrap one step in an instance-action event (best effort); what
        the step puts under "details" in the yielded dict becomes the
        event's 2.84 ``details``, and a callable it puts under "then"
        runs in the transaction that closes the event successfully.
        ``started``: the caller started the event already (True) or
        found no action for it (False)."""
        LOG.debug("%s started", event, instance_uuid=uuid)
        if started is None:
            started = outlast_outage(lambda: self._event_start(
                uuid, ctxt.request_id, event), self.outage_patience)
        request_id = ctxt.request_id if started else None
        box: dict = {}
        try:
            yield box
        except BaseException as err:
            if request_id:
                outlast_outage(lambda: db_actions.event_finish(
                    self.db, uuid, request_id, event, "Error",
                    "".join(traceback.format_exception(err))),
                    self.outage_patience)
            raise
        else:
            def close() -> None:
                with self.db.transaction():
                    if request_id:
                        db_actions.event_finish(
                            self.db, uuid, request_id, event, "Success",
                            None, box.get("details"))
                    if "then" in box:
                        box["then"]()
            if request_id or "then" in box:
                outlast_outage(close, self.outage_patience)

    def _get(self, uuid: str) -> dict | None:
        try:
            return outlast_outage(lambda: db_instances.get(self.db, uuid),
                                  self.outage_patience)
        except exception.InstanceNotFound:
            LOG.info("instance %s is gone; nothing to do", uuid)
            return None

    def finish_task(self, uuid: str, values: dict, expected_task) -> None:
        """Write ``values`` if the instance is still in ``expected_task``
        (one task state, a tuple of them, or None); a lost race is logged
        and dropped."""
        # the guest's new state is real: write it once the database is
        # back rather than leave the task state behind
        outlast_outage(lambda: self._set_final(uuid, values, expected_task),
                       self.outage_patience)

    def _set_final(self, uuid: str, values: dict, expected_task) -> None:
        """``finish_task``'s write, in the caller's transaction if any."""
        try:
            db_instances.update(self.db, uuid, values,
                                expected_task_state=expected_task)
        except (exception.InstanceInvalidState,
                exception.InstanceNotFound) as err:
            # another request (usually a delete) took over meanwhile
            LOG.info("instance %s changed under us: %s", uuid, err)

    # -- RPC endpoints ----------------------------------------------------

    def terminate_instance(self, ctxt: RequestContext,
                           instance_uuid: str) -> None:
        with self.instance_lock(instance_uuid), self.once(
                ctxt, instance_uuid, "terminate_instance") as fresh:
            instance = self._get(instance_uuid) if fresh else None
            if instance is None:
                return
            try:
                with self.notify.action(ctxt, instance_uuid, "delete"), \
                        self._event(ctxt, instance_uuid,
                                    "compute_terminate_instance"):
                    self.delete_now(instance)
            except Exception as err:  # the fault is recorded: delete_now
                LOG.warning("delete of %s failed: %s", instance_uuid, err)

    def delete_now(self, instance: dict) -> None:
        """Destroy the guest and soft-delete its row, releasing its ports
        in the same transaction (lock held)."""
        spec = self.spec(instance)
        try:
            self.driver.destroy(spec)
        except Exception as err:
            self.record_fault(instance["uuid"], err)
            self.finish_task(instance["uuid"], {"vm_state": states.ERROR,
                                                "task_state": None},
                             states.DELETING)
            raise
        db_instances.soft_delete(self.db, instance["uuid"])
        if spec.vifs:
            self.refresh_security_groups(None)  # its ports are gone
            self.tunnels_changed(None, [vif.network_id for vif in spec.vifs])

    def _simple_op(self, ctxt: RequestContext, uuid: str, action: str,
                   task_state: str, run: Callable[[virt_base.InstanceSpec],
                                                  str | None],
                   done: dict, failed: dict | None) -> None:
        """One driver step in ``task_state``; a string ``run`` returns is
        the event's details."""
        with self.instance_lock(uuid), self.once(
                ctxt, uuid, action) as fresh:
            instance = self._get(uuid) if fresh else None
            if instance is None or instance["task_state"] != task_state:
                return
            spec = self.spec(instance)
            values = dict(done)
            event = f"compute_{_EVENTS[action]}_instance"
            with self.notify.action(ctxt, uuid, action) as note:
                try:
                    with self._event(ctxt, uuid, event) as box:
                        box["details"] = run(spec)
                except Exception as err:
                    LOG.warning("%s of %s failed: %s", event, uuid, err)
                    self.record_fault(uuid, err)
                    note.fail(err)
                    values = dict(failed or {})
                values.update(
                    task_state=None,
                    power_state=self.driver.get_info(spec).power_state)
                self.finish_task(uuid, values, task_state)

    def reboot_instance(self, ctxt: RequestContext, instance_uuid: str,
                        reboot_type: str) -> None:
        hard = reboot_type.upper() == "HARD"
        self._simple_op(
            ctxt, instance_uuid, "reboot",
            states.REBOOTING_HARD if hard else states.REBOOTING,
            lambda spec: self.driver.reboot(spec, hard),
            {"vm_state": states.ACTIVE}, {"vm_state": states.ERROR})

    def stop_instance(self, ctxt: RequestContext,
                      instance_uuid: str) -> None:
        self._simple_op(
            ctxt, instance_uuid, "power_off",
            states.POWERING_OFF,
            lambda spec: self.driver.power_off(spec, self.shutdown_timeout),
            {"vm_state": states.STOPPED}, None)

    def start_instance(self, ctxt: RequestContext,
                       instance_uuid: str) -> None:
        self._simple_op(
            ctxt, instance_uuid, "power_on",
            states.POWERING_ON, self.driver.power_on,
            {"vm_state": states.ACTIVE}, None)

    def pause_instance(self, ctxt: RequestContext,
                       instance_uuid: str) -> None:
        self._simple_op(
            ctxt, instance_uuid, "pause", states.PAUSING,
            self.driver.pause, {"vm_state": states.PAUSED}, None)

    def unpause_instance(self, ctxt: RequestContext,
                         instance_uuid: str) -> None:
        self._simple_op(
            ctxt, instance_uuid, "unpause",
            states.UNPAUSING, self.driver.unpause,
            {"vm_state": states.ACTIVE}, None)

    def _port_of(self, instance_uuid: str, port_id: str
                 ) -> tuple[dict, dict]:
        instance = db_instances.get(self.db, instance_uuid)
        ports = db_networks.list_ports(self.db, port_id=port_id)
        if not ports or ports[0]["instance_uuid"] != instance_uuid:
            raise exception.PortNotFound(port_id=port_id)
        return instance, ports[0]

    @reports_exceptions
    def attach_interface(self, ctxt: RequestContext, instance_uuid: str,
                         port_id: str) -> None:
        """Plug an allocated port (a call: failures go back to the API,
        which releases the port)."""
        with self.instance_lock(instance_uuid):
            instance, port = self._port_of(instance_uuid, port_id)
            with self.notify.action(ctxt, instance_uuid, "interface_attach"):
                with self._event(ctxt, instance_uuid,
                                 "compute_attach_interface"):
                    self.driver.attach_interface(
                        self.spec(instance), vif_spec(port, self.gateway_dns))
                db_networks.set_port_status(self.db, "ACTIVE",
                                            port_id=port_id)

    @reports_exceptions
    def detach_interface(self, ctxt: RequestContext, instance_uuid: str,
                         port_id: str) -> None:
        """Unplug a port; the API releases it afterwards."""
        with self.instance_lock(instance_uuid):
            instance, port = self._port_of(instance_uuid, port_id)
            with self.notify.action(ctxt, instance_uuid, "interface_detach",
                                    unplugged=port_id):
                with self._event(ctxt, instance_uuid,
                                 "compute_detach_interface"):
                    self.driver.detach_interface(
                        self.spec(instance), vif_spec(port, self.gateway_dns))
                db_networks.set_port_status(self.db, "DOWN", port_id=port_id)
