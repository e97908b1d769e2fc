"""Nova's resize and cold migration of a pyct guest, within its host.

Nova moves a guest in steps split between two compute services:
``migrate_disk_and_power_off`` on the source, ``finish_migration`` on the
destination, then ``confirm_migration`` on the source, or a revert
(``destroy`` on the destination, ``finish_revert_migration`` on the
source). A pyct guest's own files are keyed by its uuid on one host and
the adapter has no channel to another Nova compute host, so it moves a
guest only within its host (Nova's ``allow_resize_to_same_host = True``;
``supports_migrate_to_same_host`` lets Nova cold migrate onto it): the
resize pyct's own service makes, with the guest stopped in between as
Nova expects. The guest stops, the new flavor is applied
(``ContainerDriver.apply_flavor``: the root disk grows; the cgroup's CPU
shares, CPU cap, memory and pids limits are written when it starts), and
it starts again. A different destination host, a smaller root disk (as
Nova's libvirt driver: "Unable to resize disk down.") or a new flavor
with extra specs pyct refuses are refused before anything changes, with
Nova's ``InstanceFaultRollback``, which puts the server back as it was.
A revert's ``destroy`` hits the same guest: while the record marks a move
(``nova-move``) and Nova reverts, it only stops the guest, and
``finish_revert_migration`` starts it with the old flavor's limits; the
disk keeps its grown size (an ext4 is not shrunk; what the guest wrote
since stays), as in pyct's own revert. Mixed into ``PyctDriver``.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from nova.compute import task_states
from nova import exception as nova_exception

from pyct_driver.nova import mapping
from pyct_driver.nova.errors import nova_errors
from pyct_driver.nova.host import CONF

MOVE_MARK = "nova-move"


class MoveSide:
    """Resize and cold migration calls of ``PyctDriver``."""

    pyct: Any
    allow_host_root: bool

    def _move_mark(self, uuid: str) -> str:
        return self.pyct.records.path(uuid, MOVE_MARK)

    def _check_move(self, instance: Any, dest: str, flavor: Any) -> None:
        """Refuse, before the guest stops, what this host cannot do."""
        try:
            mapping.flavor_spec(flavor, self.allow_host_root)
        except nova_exception.InvalidInput as err:
            raise nova_exception.InstanceFaultRollback(err) from err
        if int(flavor.root_gb) < int(instance.flavor.root_gb):
            raise nova_exception.InstanceFaultRollback(
                nova_exception.ResizeError(
                    reason="Unable to resize disk down."))
        # Nova names the destination by its compute's get_host_ip_addr
        if dest not in (self.get_host_ip_addr(), CONF.host):
            raise nova_exception.InstanceFaultRollback(
                nova_exception.MigrationPreCheckError(
                    reason=f"pyct moves a guest only within its host "
                           f"({CONF.host}, {self.get_host_ip_addr()}), not "
                           f"to {dest}: set allow_resize_to_same_host"))

    def migrate_disk_and_power_off(self, context: Any, instance: Any,
                                   dest: str, flavor: Any,
                                   network_info: Any,
                                   block_device_info: Any = None,
                                   timeout: int = 0,
                                   retry_interval: int = 0) -> str:
        """Stop the guest for its move onto this same host; its disk
        stays where it is (no disk information to hand over)."""
        self._check_move(instance, dest, flavor)
        mapping.refuse_volumes(block_device_info)
        with nova_errors(instance.uuid):
            self.pyct.records.require(instance.uuid)
            with open(self._move_mark(instance.uuid), "w") as f:
                json.dump({"flavor": instance.flavor.flavorid}, f)
            self.pyct.power_off(self._spec(instance), timeout)
        self._unplug_all(network_info)
        return json.dumps([])

    def _restart_with_flavor(self, instance: Any, network_info: Any,
                             power_on: bool) -> None:
        """Apply ``instance.flavor`` (the new one, or the old again on a
        revert) and start the guest if Nova wants it running."""
        spec = self._spec(instance)
        with nova_errors(instance.uuid):
            self.pyct.apply_flavor(spec, spec.flavor)
            if power_on:
                self.pyct.power_on(spec)
        if power_on:
            self._plug_all(instance, network_info)

    def finish_migration(self, context: Any, migration: Any, instance: Any,
                         disk_info: Any, network_info: Any, image_meta: Any,
                         resize_instance: bool, allocations: Any,
                         block_device_info: Any = None,
                         power_on: bool = True,
                         share_info: Any = None) -> None:
        if migration.source_compute != migration.dest_compute:
            # migrate_disk_and_power_off refused it on the source already
            raise nova_exception.MigrationError(
                reason=f"pyct cannot receive a guest from "
                       f"{migration.source_compute}")
        self._restart_with_flavor(instance, network_info, power_on)

    def _end_move(self, uuid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._move_mark(uuid))

    def confirm_migration(self, context: Any, migration: Any,
                          instance: Any, network_info: Any) -> None:
        """Nothing to drop: the source's guest is the guest itself."""
        self._end_move(instance.uuid)

    def _reverting_here(self, instance: Any) -> bool:
        """``destroy`` of Nova's revert: the resized guest is the source's
        guest too, so it must be kept."""
        return (instance.obj_attr_is_set("task_state")
                and instance.task_state == task_states.RESIZE_REVERTING
                and os.path.exists(self._move_mark(instance.uuid)))

    def finish_revert_migration(self, context: Any, instance: Any,
                                network_info: Any, migration: Any,
                                block_device_info: Any = None,
                                power_on: bool = True,
                                share_info: Any = None) -> None:
        self._restart_with_flavor(instance, network_info, power_on)
        self._end_move(instance.uuid)
