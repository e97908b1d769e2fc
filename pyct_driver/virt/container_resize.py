"""The container driver's resize: a new flavor for a guest as it runs.

The guest's cgroup gets the flavor's limits in place (the same writes a
start makes, ``guest_config.limits``; its processes, init included, stay
where they are), with the disk quotas keyed on the root's loop device as
at start, and its root disk grows (``rootfs.disk_grow``). A stopped guest
has no cgroup: its disk grows offline and the limits come with its next
start, from the flavor its spec then carries.
"""

from __future__ import annotations

import dataclasses
import os

from pyct_driver.virt import base, guest_config
from pyct_driver.virt.rootfs import disk_grow


class FlavorChanges:
    """``apply_flavor`` of ``ContainerDriver`` (mixed into it)."""

    def apply_flavor(self, instance: base.InstanceSpec,
                     flavor: base.FlavorSpec) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            self.records.require(uuid)
            top = os.path.join(self.roots.base_dir, "instances", uuid)
            image = os.path.join(top, "disk.img")
            if flavor.root_gb > 0 and os.path.exists(image):
                # a root without a disk (size 0) is unlimited already
                disk_grow.grow(image, os.path.join(top, "disk"),
                               flavor.root_gb, self.roots.preallocate,
                               self.roots.reserved_bytes)
            if not self.cgroups.exists(uuid):
                return  # stopped: the next start applies the new flavor
            device = self.roots._handle(top).device
            spec = dataclasses.replace(instance, flavor=flavor)
            self.cgroups.create(uuid, guest_config.limits(
                spec, device, self.default_pids_max))
            self._place_cpus(spec)  # its new vCPU count (container_views)
