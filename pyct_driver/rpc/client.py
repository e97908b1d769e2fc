"""The compute RPC API as the API service calls it.

Only ids and primitives cross the wire; the compute service reads the rest
from the database. Casts are fire-and-forget (RPC is at-most-once: the
compute service's start-up recovery and power-state sync make the result
consistent); calls wait for an answer.

Each method sends the version that added it; ``RPC_API_VERSION`` is the
newest one this client sends. The server's own constant and the version
history live in ``compute.rpc_api``: to add a method, bump both constants
together (a test fails on a one-sided bump) and add the history line there.
``[upgrade_levels] compute`` caps what is sent during a rolling upgrade: a
method newer than the cap raises ``RPCVersionCapError`` instead of reaching
a compute service that could not answer it.
"""

from __future__ import annotations

from oslo_config import cfg

from pyct_driver import exception
from pyct_driver.context import RequestContext
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.rpc.transport import messaging

RPC_API_VERSION = "1.12"


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def version_allowed(version: str, cap: str | None) -> bool:
    """Whether ``version`` may be sent under ``cap`` (None: no cap): the
    same major, a minor no newer than the cap's."""
    if cap is None:
        return True
    (major, minor), (cap_major, cap_minor) = _version(version), _version(cap)
    return major == cap_major and minor <= cap_minor


class ComputeClient:
    """Client side of the ``pyct-compute`` topic; one server per host."""

    def __init__(self, conf: cfg.ConfigOpts,
                 transport: messaging.Transport | None = None,
                 timeout: int = 60, retry: int | None = None) -> None:
        transport = transport or rpc_transport.get_transport(conf)
        # 'auto' means "no cap" too: pyct has no service-version records
        # to derive one from, as Nova does
        cap = conf.upgrade_levels.compute
        self.version_cap = None if cap in (None, "", "auto") else cap
        target = messaging.Target(topic=rpc_transport.TOPIC,
                                  version=RPC_API_VERSION)
        # retry: reconnections to try per message before the send fails
        # (None: forever, which would hold an API request while the bus
        # is away)
        self._client = messaging.get_rpc_client(
            transport, target, serializer=rpc_transport.ContextSerializer(),
            timeout=timeout, retry=retry)

    def can_send_version(self, version: str) -> bool:
        """Whether ``[upgrade_levels] compute`` lets ``version`` go out:
        an API handler asks before it changes state for a method newer
        than every compute service may answer (Nova's pattern)."""
        return version_allowed(version, self.version_cap)

    def _prepare(self, host: str, version: str, method: str,
                 timeout: float | None = None) -> messaging.RPCClient:
        if not self.can_send_version(version):
            raise exception.RPCVersionCapError(
                method=method, version=version, cap=self.version_cap)
        options = {} if timeout is None else {"timeout": timeout}
        return self._client.prepare(server=host, version=version,
                                    **options)

    def _cast(self, ctxt: RequestContext, host: str, method: str,
              version: str = "1.0", **kwargs: object) -> None:
        try:
            self._prepare(host, version, method).cast(ctxt, method, **kwargs)
        except messaging.MessageDeliveryFailure as err:
            raise exception.RPCUnavailable(reason=str(err)) from err

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

    def refresh_security_groups(self, ctxt: RequestContext,
                                host: str) -> None:
        self._cast(ctxt, host, "refresh_security_groups", version="1.8")

    def refresh_tunnels(self, ctxt: RequestContext, host: str,
                        network_ids: list[str]) -> None:
        self._cast(ctxt, host, "refresh_tunnels", version="1.10",
                   network_ids=network_ids)

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

    def evacuate_instance(self, ctxt: RequestContext, host: str,
                          instance_uuid: str, migration_uuid: str,
                          vm_state: str) -> None:
        self._cast(ctxt, host, "evacuate_instance", version="1.12",
                   instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid, vm_state=vm_state)

    def rescue_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, rescue_password: str,
                        rescue_image_ref: str) -> None:
        self._cast(ctxt, host, "rescue_instance", version="1.7",
                   instance_uuid=instance_uuid,
                   rescue_password=rescue_password,
                   rescue_image_ref=rescue_image_ref)

    def unrescue_instance(self, ctxt: RequestContext, host: str,
                          instance_uuid: str) -> None:
        self._cast(ctxt, host, "unrescue_instance", version="1.7",
                   instance_uuid=instance_uuid)

    def suspend_instance(self, ctxt: RequestContext, host: str,
                         instance_uuid: str) -> None:
        self._cast(ctxt, host, "suspend_instance", version="1.7",
                   instance_uuid=instance_uuid)

    def resume_instance(self, ctxt: RequestContext, host: str,
                        instance_uuid: str) -> None:
        self._cast(ctxt, host, "resume_instance", version="1.7",
                   instance_uuid=instance_uuid)

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
              version: str, timeout: float | None = None,
              **kwargs: object) -> object:
        client = self._prepare(host, version, method, timeout)
        try:
            return client.call(ctxt, method, **kwargs)
        except messaging.MessagingTimeout as err:
            raise exception.RPCTimeout(host=host) from err
        except messaging.MessageDeliveryFailure as err:
            raise exception.RPCUnavailable(reason=str(err)) from err

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

    def sync_floating_ips(self, ctxt: RequestContext, host: str) -> None:
        """Make the host's floating-IP NAT match the database; raises
        what the host raised if it could not."""
        self._call(ctxt, host, "sync_floating_ips", "1.9")

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

    # cold migration (1.11): the API casts to the source, which calls the
    # destination; long calls get the transfer's own timeout

    def migrate_instance(self, ctxt: RequestContext, host: str,
                         instance_uuid: str, migration_uuid: str) -> None:
        self._cast(ctxt, host, "migrate_instance", version="1.11",
                   instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid)

    def open_migration(self, ctxt: RequestContext, host: str,
                       instance_uuid: str, migration_uuid: str) -> dict:
        """The destination's listener and one-time token."""
        return self._call(ctxt, host, "open_migration", "1.11",
                          instance_uuid=instance_uuid,
                          migration_uuid=migration_uuid)

    def finish_migration(self, ctxt: RequestContext, host: str,
                         instance_uuid: str, migration_uuid: str,
                         digest: str, power_on: bool) -> None:
        self._call(ctxt, host, "finish_migration", "1.11", timeout=900,
                   instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid, digest=digest,
                   power_on=power_on)

    def abort_migration(self, ctxt: RequestContext, host: str,
                        instance_uuid: str, migration_uuid: str) -> None:
        self._call(ctxt, host, "abort_migration", "1.11",
                   instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid)

    def drop_migration_source(self, ctxt: RequestContext, host: str,
                              instance_uuid: str,
                              migration_uuid: str) -> None:
        self._call(ctxt, host, "drop_migration_source", "1.11",
                   timeout=300, instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid)

    def finish_revert_migration(self, ctxt: RequestContext, host: str,
                                instance_uuid: str, migration_uuid: str,
                                power_on: bool) -> None:
        self._cast(ctxt, host, "finish_revert_migration", version="1.11",
                   instance_uuid=instance_uuid,
                   migration_uuid=migration_uuid, power_on=power_on)

    def check_live_migration(self, ctxt: RequestContext, host: str
                             ) -> tuple[bool, str]:
        """Whether ``host`` can checkpoint/restore guests, and why."""
        can, why = self._call(ctxt, host, "check_live_migration",
                              "1.11") or (False, "no answer")
        return bool(can), str(why)
