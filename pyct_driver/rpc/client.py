"""The compute RPC API as the API service calls it.

Only ids and primitives cross the wire; the compute service reads the rest
from the database. Casts are fire-and-forget (RPC is at-most-once: the
compute service's start-up recovery and power-state sync make the result
consistent); calls wait for an answer.

Version history (bump the minor for additive changes, keep the server able
to answer every version it ever advertised):

* 1.0 - build_and_run_instance, terminate_instance, reboot_instance,
        stop_instance, start_instance
* 1.1 - pause_instance, unpause_instance, get_console_output
* 1.2 - attach_interface, detach_interface (calls: the API releases the
        port if plugging fails)
* 1.3 - get_serial_console (a call: where the console proxy attaches)
* 1.4 - set_admin_password, get_diagnostics (calls)
* 1.5 - resize_instance, confirm_resize, revert_resize, rebuild_instance
* 1.6 - snapshot_instance, backup_instance, shelve_instance,
        shelve_offload_instance, unshelve_instance
"""

from __future__ import annotations

from oslo_config import cfg

from pyct_driver import exception
from pyct_driver.context import RequestContext
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.rpc.transport import messaging

RPC_API_VERSION = "1.6"


class ComputeClient:
    """Client side of the ``pyct-compute`` topic; one server per host."""

    def __init__(self, conf: cfg.ConfigOpts,
                 transport: messaging.Transport | None = None,
                 timeout: int = 60) -> None:
        transport = transport or rpc_transport.get_transport(conf)
        target = messaging.Target(topic=rpc_transport.TOPIC,
                                  version=RPC_API_VERSION)
        self._client = messaging.get_rpc_client(
            transport, target, serializer=rpc_transport.ContextSerializer(),
            timeout=timeout)

    def _prepare(self, host: str, version: str) -> messaging.RPCClient:
        return self._client.prepare(server=host, version=version)

    def _cast(self, ctxt: RequestContext, host: str, method: str,
              version: str = "1.0", **kwargs: object) -> None:
        try:
            self._prepare(host, version).cast(ctxt, method, **kwargs)
        except messaging.MessageDeliveryFailure as err:
            raise exception.RPCError(reason=str(err)) from err

    def build_and_run_instance(self, ctxt: RequestContext, host: str,
                               instance_uuid: str) -> None:
        self._cast(ctxt, host, "build_and_run_instance",
                   instance_uuid=instance_uuid)

    def terminate_instance(self, ctxt: RequestContext, host: str,
                           instance_uuid: str) -> None:
        self._cast(ctxt, host, "terminate_instance",
                   instance_uuid=instance_uuid)

    def reboot_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, reboot_type: str) -> None:
        self._cast(ctxt, host, "reboot_instance",
                   instance_uuid=instance_uuid, reboot_type=reboot_type)

    def stop_instance(self, ctxt: RequestContext, host: str,
                      instance_uuid: str) -> None:
        self._cast(ctxt, host, "stop_instance", instance_uuid=instance_uuid)

    def start_instance(self, ctxt: RequestContext, host: str,
                       instance_uuid: str) -> None:
        self._cast(ctxt, host, "start_instance", instance_uuid=instance_uuid)

    def pause_instance(self, ctxt: RequestContext, host: str,
                       instance_uuid: str) -> None:
        self._cast(ctxt, host, "pause_instance", version="1.1",
                   instance_uuid=instance_uuid)

    def unpause_instance(self, ctxt: RequestContext, host: str,
                         instance_uuid: str) -> None:
        self._cast(ctxt, host, "unpause_instance", version="1.1",
                   instance_uuid=instance_uuid)

    def resize_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, migration_uuid: str) -> None:
        self._cast(ctxt, host, "resize_instance", version="1.5",
                   instance_uuid=instance_uuid, migration_uuid=migration_uuid)

    def confirm_resize(self, ctxt: RequestContext, host: str,
                       instance_uuid: str, migration_uuid: str) -> None:
        self._cast(ctxt, host, "confirm_resize", version="1.5",
                   instance_uuid=instance_uuid, migration_uuid=migration_uuid)

    def revert_resize(self, ctxt: RequestContext, host: str,
                      instance_uuid: str, migration_uuid: str) -> None:
        self._cast(ctxt, host, "revert_resize", version="1.5",
                   instance_uuid=instance_uuid, migration_uuid=migration_uuid)

    def rebuild_instance(self, ctxt: RequestContext, host: str,
                         instance_uuid: str, vm_state: str,
                         preserve_ephemeral: bool) -> None:
        self._cast(ctxt, host, "rebuild_instance", version="1.5",
                   instance_uuid=instance_uuid, vm_state=vm_state,
                   preserve_ephemeral=preserve_ephemeral)

    def snapshot_instance(self, ctxt: RequestContext, host: str,
                          instance_uuid: str, image_id: str) -> None:
        self._cast(ctxt, host, "snapshot_instance", version="1.6",
                   instance_uuid=instance_uuid, image_id=image_id)

    def backup_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, image_id: str,
                        backup_type: str, rotation: int) -> None:
        self._cast(ctxt, host, "backup_instance", version="1.6",
                   instance_uuid=instance_uuid, image_id=image_id,
                   backup_type=backup_type, rotation=rotation)

    def shelve_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, image_id: str) -> None:
        self._cast(ctxt, host, "shelve_instance", version="1.6",
                   instance_uuid=instance_uuid, image_id=image_id)

    def shelve_offload_instance(self, ctxt: RequestContext, host: str,
                                instance_uuid: str) -> None:
        self._cast(ctxt, host, "shelve_offload_instance", version="1.6",
                   instance_uuid=instance_uuid)

    def unshelve_instance(self, ctxt: RequestContext, host: str,
                          instance_uuid: str) -> None:
        self._cast(ctxt, host, "unshelve_instance", version="1.6",
                   instance_uuid=instance_uuid)

    def _call(self, ctxt: RequestContext, host: str, method: str,
              version: str, **kwargs: object) -> object:
        try:
            return self._prepare(host, version).call(ctxt, method, **kwargs)
        except messaging.MessagingTimeout as err:
            raise exception.RPCError(
                reason=f"compute host {host} did not answer") from err
        except messaging.MessageDeliveryFailure as err:
            raise exception.RPCError(reason=str(err)) from err

    def get_console_output(self, ctxt: RequestContext, host: str,
                           instance_uuid: str, length: int | None) -> str:
        """Ask the compute host for the console log (a blocking call)."""
        return self._call(ctxt, host, "get_console_output", "1.1",
                          instance_uuid=instance_uuid, length=length)

    def get_serial_console(self, ctxt: RequestContext, host: str,
                           instance_uuid: str) -> dict:
        """Where the console proxy attaches to the guest: ``host``,
        ``port`` and a one-time ``internal_access_path`` key."""
        return self._call(ctxt, host, "get_serial_console", "1.3",
                          instance_uuid=instance_uuid)

    def attach_interface(self, ctxt: RequestContext, host: str,
                         instance_uuid: str, port_id: str) -> None:
        """Plug an allocated port into the guest; raises what the
        compute host raised (a pyct exception) if it could not."""
        self._call(ctxt, host, "attach_interface", "1.2",
                   instance_uuid=instance_uuid, port_id=port_id)

    def detach_interface(self, ctxt: RequestContext, host: str,
                         instance_uuid: str, port_id: str) -> None:
        """Unplug a port from the guest (the API releases it after)."""
        self._call(ctxt, host, "detach_interface", "1.2",
                   instance_uuid=instance_uuid, port_id=port_id)

    def set_admin_password(self, ctxt: RequestContext, host: str,
                           instance_uuid: str, new_pass: str) -> None:
        """Set root's password in the guest (a call: the API answers
        with the outcome)."""
        self._call(ctxt, host, "set_admin_password", "1.4",
                   instance_uuid=instance_uuid, new_pass=new_pass)

    def get_diagnostics(self, ctxt: RequestContext, host: str,
                        instance_uuid: str) -> dict:
        return self._call(ctxt, host, "get_diagnostics", "1.4",
                          instance_uuid=instance_uuid)
