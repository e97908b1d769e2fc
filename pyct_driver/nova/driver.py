"""``PyctDriver``: pyct's container driver as a Nova virt driver.

nova-compute loads it with ``compute_driver = pyct.PyctDriver`` (through
the ``nova.virt.pyct`` shim, ``pyct_driver.nova.shim``). Each call maps
Nova's objects onto pyct's specs (``mapping``), runs pyct's real
``ContainerDriver`` and turns pyct's errors into Nova's (``errors``).
Neutron's ports are plugged by the adapter itself (``vifs``), after the
guest's init exists and again whenever it is started anew (power on, hard
or soft reboot, resume from a checkpoint). When Nova requires a config drive,
its metadata (``configdrive``) reaches the guest through pyct's own
read-only drive binds, made at spawn and kept for every later start.
Snapshots go to Glance as OCI archives
(``snapshot``); resize and cold migration move a guest within its host
(``resize``: another destination host is refused with Nova's
``InstanceFaultRollback``); rescue boots a rescue image's root with the
guest's own at /mnt (``rescue``). Declared capabilities are exactly what
works: interface hot-plug, raw (root file system) images, the config
drive and cold migration onto the same host; no volumes (so no rescue
from a volume) and no live migration, so those calls keep Nova's
``NotImplementedError`` and Nova refuses them up front.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from nova import exception as nova_exception
from nova.virt import driver as nova_driver

from pyct_driver import exception
from pyct_driver.nova import conf as pyct_conf
from pyct_driver.nova import configdrive
from pyct_driver.nova import mapping
from pyct_driver.nova import snapshot as nova_snapshot
from pyct_driver.nova.errors import nova_errors
from pyct_driver.nova.host import CONF, HostSide
from pyct_driver.nova.idranges import IdRanges
from pyct_driver.nova.images import NovaImages
from pyct_driver.nova.rescue import RescueSide
from pyct_driver.nova.resize import MoveSide
from pyct_driver.nova.vifs import VifPlugger
from pyct_driver.virt import base
from pyct_driver.virt.container import ContainerDriver

pyct_conf.register_opts(CONF)


class PyctDriver(HostSide, MoveSide, RescueSide,
                 nova_driver.ComputeDriver):
    """Linux containers behind Nova's compute manager."""

    capabilities = dict(
        nova_driver.ComputeDriver.capabilities,
        supports_attach_interface=True,
        supports_image_type_raw=True,
        # a cold migration may pick this host again (resize: Nova's
        # allow_resize_to_same_host); no other host can take a guest
        supports_migrate_to_same_host=True,
        # not a Nova capability key: what pyct's drive binds provide
        supports_config_drive=True)

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi)
        view = pyct_conf.driver_view(CONF)
        self.pyct = ContainerDriver(view)
        self.id_ranges = IdRanges(view.state_path)
        self.images = NovaImages(self.pyct,
                                 os.path.join(view.state_path, "fetch"))
        self.plugger = VifPlugger()
        self.allow_host_root = view.container.allow_host_root_guests

    # -- specs -----------------------------------------------------------
    def _bare(self, instance: Any) -> base.InstanceSpec:
        return base.bare_spec(instance.uuid)

    def _spec(self, instance: Any, image_meta: Any = None,
              allocate: bool = False,
              drive: configdrive.Files | None = None) -> base.InstanceSpec:
        spec = mapping.instance_spec(instance, image_meta,
                                     allow_host_root=self.allow_host_root)
        if drive is None:  # a later start: the spawn's drive
            drive = configdrive.load(self.pyct.records.dir(instance.uuid))
        spec = dataclasses.replace(spec, config_drive=bool(drive),
                                   config_drive_files=drive)
        if spec.privileged:
            return spec
        id_range = (self.id_ranges.allocate(instance.uuid) if allocate
                    else self.id_ranges.get(instance.uuid))
        return dataclasses.replace(spec, id_range=id_range)

    def _pid(self, uuid: str) -> int | None:
        record = self.pyct.records.load(uuid)
        if record and self.pyct._running(uuid, record):
            return record["pid"]
        return None

    def _plug_all(self, instance: Any, network_info: Any) -> None:
        pid = self._pid(instance.uuid)
        if pid is None:
            return  # a stopped guest gets its ports when it starts
        with nova_errors(instance.uuid):
            for vif in mapping.nova_vifs(network_info):
                self.plugger.plug(pid, vif)

    def _unplug_all(self, network_info: Any) -> None:
        for index, vif in enumerate(network_info or ()):
            if vif["type"] in mapping.PLUGGABLE_VIF_TYPES:
                self.plugger.unplug(mapping.devname_of(vif))

    # -- lifecycle -------------------------------------------------------
    def spawn(self, context: Any, instance: Any, image_meta: Any,
              injected_files: Any, admin_password: Any, allocations: Any,
              network_info: Any = None, block_device_info: Any = None,
              power_on: bool = True, accel_info: Any = None) -> None:
        # Every check comes before anything is made on the host.
        mapping.refuse_volumes(block_device_info)
        mapping.nova_vifs(network_info)
        mapping.instance_spec(instance, image_meta,
                              allow_host_root=self.allow_host_root)
        drive = configdrive.build(instance, network_info,
                                  injected_files, admin_password)
        with nova_errors(instance.uuid):
            self.images.ensure(context, image_meta)
        spec = self._spec(instance, image_meta, allocate=True, drive=drive)
        try:
            with nova_errors(instance.uuid):
                self.pyct.spawn(spec)
        except BaseException:
            self.id_ranges.release(instance.uuid)
            raise
        try:
            with open(self.pyct.records.path(instance.uuid, "nova-name"),
                      "w") as f:
                f.write(instance.name)
            if drive:
                configdrive.save(self.pyct.records.dir(instance.uuid), drive)
            self._plug_all(instance, network_info)
            if not power_on:
                self.power_off(instance)
        except BaseException:
            self.destroy(context, instance, network_info)
            raise

    def destroy(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                destroy_secrets: bool = True) -> None:
        self._unplug_all(network_info)
        if self._reverting_here(instance):
            # the resized guest is also the one the revert starts again
            with nova_errors(instance.uuid):
                self.pyct.power_off(self._spec(instance), 0)
            return
        with nova_errors(instance.uuid):
            self.pyct.destroy(self._bare(instance))
        self.id_ranges.release(instance.uuid)

    def cleanup(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                migrate_data: Any = None, destroy_vifs: bool = True,
                destroy_secrets: bool = True) -> None:
        """What ``destroy`` left: the ports (pyct's destroy removes the
        guest's files itself, so nothing else remains)."""
        if destroy_vifs:
            self._unplug_all(network_info)

    def reboot(self, context: Any, instance: Any, network_info: Any,
               reboot_type: str, block_device_info: Any = None,
               bad_volumes_callback: Any = None, accel_info: Any = None,
               share_info: Any = None) -> None:
        with nova_errors(instance.uuid):
            self.pyct.reboot(self._spec(instance), reboot_type == "HARD")
        self._plug_all(instance, network_info)

    def power_off(self, instance: Any, timeout: int = 0,
                  retry_interval: int = 0) -> None:
        with nova_errors(instance.uuid):
            self.pyct.power_off(self._spec(instance), timeout)

    def power_on(self, context: Any, instance: Any, network_info: Any,
                 block_device_info: Any = None, accel_info: Any = None,
                 share_info: Any = None) -> None:
        with nova_errors(instance.uuid):
            self.pyct.power_on(self._spec(instance))
        self._plug_all(instance, network_info)

    def pause(self, instance: Any) -> None:
        with nova_errors(instance.uuid):
            self.pyct.pause(self._spec(instance))

    def unpause(self, instance: Any) -> None:
        with nova_errors(instance.uuid):
            self.pyct.unpause(self._spec(instance))

    def suspend(self, context: Any, instance: Any) -> None:
        with nova_errors(instance.uuid):
            self.pyct.suspend(self._spec(instance))

    def resume(self, context: Any, instance: Any, network_info: Any,
               block_device_info: Any = None, share_info: Any = None
               ) -> None:
        with nova_errors(instance.uuid):
            self.pyct.resume(self._spec(instance))
        # a guest restored from a checkpoint has a new network namespace
        vifs = mapping.nova_vifs(network_info)
        if vifs and self.plugger.host.link_index(vifs[0].devname) is None:
            self._plug_all(instance, network_info)

    def snapshot(self, context: Any, instance: Any, image_id: str,
                 update_task_state: Any) -> None:
        """The guest's root (running or stopped) as Glance image
        ``image_id``; a guest this host does not have is not running."""
        if not self.instance_exists(instance):
            raise nova_exception.InstanceNotRunning(instance_id=instance.uuid)
        with nova_errors(instance.uuid):
            nova_snapshot.snapshot(self.pyct, context, instance,
                                   self._spec(instance), image_id,
                                   update_task_state, self.images.tmp_dir)

    def set_admin_password(self, instance: Any, new_pass: str) -> None:
        """Root's password, set by the guest's own ``chpasswd`` (or its
        ``sed`` on ``/etc/shadow``), as pyct's own API does it."""
        try:
            self.pyct.set_admin_password(self._bare(instance), new_pass)
        except exception.PyctError as err:
            raise nova_exception.InstancePasswordSetFailed(
                instance=instance.uuid, reason=err.message) from err

    def plug_vifs(self, instance: Any, network_info: Any) -> None:
        """At nova-compute start: ports of running guests survive a
        service restart; plug only the ones that are gone."""
        pid = self._pid(instance.uuid)
        if pid is None:
            return
        with nova_errors(instance.uuid):
            for vif in mapping.nova_vifs(network_info):
                if self.plugger.host.link_index(vif.devname) is None:
                    self.plugger.plug(pid, vif)

    def unplug_vifs(self, instance: Any, network_info: Any) -> None:
        self._unplug_all(network_info)

    def attach_interface(self, context: Any, instance: Any,
                         image_meta: Any, vif: Any) -> None:
        # its place in the instance's ports (Nova caches them after a
        # successful attach, so a new port comes last)
        ids = [v["id"] for v in instance.get_network_info() or ()]
        index = ids.index(vif["id"]) if vif["id"] in ids else len(ids)
        port = mapping.nova_vif(vif, index)
        pid = self._pid(instance.uuid)
        if pid is None:
            return  # plugged at the next start, from network_info
        try:
            with nova_errors(instance.uuid):
                self.plugger.plug(pid, port)
        except nova_exception.NovaException as err:
            raise nova_exception.InterfaceAttachFailed(
                instance_uuid=instance.uuid) from err

    def detach_interface(self, context: Any, instance: Any,
                         vif: Any) -> None:
        self._unplug_all([vif])
