"""The container driver's rescue: boot a guest from a throw-away root with
its own root at ``/mnt``.

A rescued instance has a second root, ``roots/instances/<uuid>-rescue``
(``RootManager`` keyed by that name): a fresh disk of the flavor's size
with its own upper directory over the rescue image's layers (held under
the same name in the image store). While that directory exists the
instance's root path *is* the rescue root (``_root_path``), so every
start -- the rescue itself, a compute restart's, a guest's own
``reboot`` -- boots the rescue root; ``_mount_root`` mounts the guest's
own overlay as always and binds that one mount at ``/mnt`` inside the
rescue root (through ``inject.bind_into``: the mount point is resolved
inside the rescue root, never out of it), before the guest's init copies
the mount tree. Same cgroup, user namespace map, seccomp filter,
capabilities and ports as the guest itself: only the root differs. The
password goes in with the guest's own ``chpasswd`` (``set_admin_password``,
inside the guest's namespaces); an empty one leaves the image's. Unrescue
stops the rescue guest, unmounts in order (the /mnt bind, the rescue root
and disk, then the guest's own), deletes the rescue disk and boots the
guest's own root: what was written under /mnt is in it. The record keeps
the guest's own init argv under ``rescue`` while the rescue image's runs.
"""

from __future__ import annotations

import dataclasses
import os

from oslo_log import log as logging

from pyct_driver.virt import base, guest_config, ownership
from pyct_driver.virt.rootfs import inject
from pyct_driver.virt.rootfs.overlay import RootHandle

LOG = logging.getLogger(__name__)
_SUFFIX = "-rescue"


class RescueSide:
    """Rescue of ``ContainerDriver`` (mixed into it) and the root-path
    seams its start and stop go through."""

    def _rescue_key(self, uuid: str) -> str:
        return uuid + _SUFFIX

    def is_rescued(self, uuid: str) -> bool:
        return os.path.isdir(os.path.join(self.roots.base_dir, "instances",
                                          self._rescue_key(uuid)))

    def _root_path(self, uuid: str) -> str:
        name = self._rescue_key(uuid) if self.is_rescued(uuid) else uuid
        return os.path.join(self.roots.base_dir, "instances", name, "root")

    def _mount_root(self, uuid: str, layers: list[str]) -> RootHandle:
        """Mount the guest's root; in rescue, also the rescue root with
        the guest's root bound at /mnt, and return the rescue root's."""
        own = self.roots.mount(uuid, layers)
        if not self.is_rescued(uuid):
            return own
        key = self._rescue_key(uuid)
        try:
            handle = self.roots.mount(key, self.images.held_layers(key))
            # the guest's own overlay (that mount only: its config drive
            # binds were detached at stop) as it is, read-write
            inject.unbind(handle.path, "/mnt")
            inject.bind_into(handle.path, "/mnt", own.path, 0)
        except BaseException:
            self._unmount_roots(uuid)
            raise
        return handle

    def _unmount_roots(self, uuid: str) -> None:
        """Unmount what ``_mount_root`` mounted, the rescue's first (the
        guest's own disk must be free before it is mounted again)."""
        key = self._rescue_key(uuid)
        if self.is_rescued(uuid):
            rescue_root = os.path.join(self.roots.base_dir, "instances", key,
                                       "root")
            if os.path.ismount(rescue_root):
                inject.unbind(rescue_root, "/mnt")
            self.roots.unmount(key)
        self.roots.unmount(uuid)

    def _remove_roots(self, uuid: str) -> None:
        """Delete the rescue root (if any) and the guest's own."""
        self._drop_rescue_root(uuid)
        self.roots.remove(uuid)

    def _drop_rescue_root(self, uuid: str) -> None:
        key = self._rescue_key(uuid)
        if self.is_rescued(uuid):
            self._unmount_roots(uuid)
            self.roots.remove(key)
        self.images.release(key)

    def rescue(self, instance: base.InstanceSpec, rescue_image_id: str,
               password: str, timeout: float = 60) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            record = self.records.require(uuid)
            self._stop(instance, record, timeout)
            # a rescue of a rescued guest (a retried one) starts afresh
            self._drop_rescue_root(uuid)
            record["argv"] = (record.get("rescue") or {}).get(
                "argv", record["argv"])
            id_range = ownership.recorded_range(instance, record)
            key = self._rescue_key(uuid)
            rescue_argv = guest_config.init_argv(
                self.images, dataclasses.replace(
                    instance, image_id=rescue_image_id, image_properties={}))
            try:
                self.images.acquire(key, rescue_image_id)
                self.roots.create(key, instance.flavor.root_gb, id_range)
                record["rescue"] = {"image_id": rescue_image_id,
                                    "argv": record["argv"]}
                record["argv"] = rescue_argv
                self.records.save(uuid, record)
                self._start(instance, record)
            except BaseException:
                self._back_to_own_root(instance, record)
                raise
        LOG.debug("%s runs its rescue root (image %s) with its own root at "
                 "/mnt", uuid, rescue_image_id)
        if password:
            self.set_admin_password(instance, password)

    def _back_to_own_root(self, instance: base.InstanceSpec,
                          record: dict) -> None:
        """Stop whatever runs, drop the rescue root and restore the
        guest's own argv in its record (lock held); the guest stays
        stopped."""
        self._stop(instance, record, 0)
        self._drop_rescue_root(instance.uuid)
        own = record.pop("rescue", None)
        if own:
            record["argv"] = own["argv"]
        self.records.save(instance.uuid, record)

    def unrescue(self, instance: base.InstanceSpec) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            record = self.records.require(uuid)
            if record.get("rescue") is None and not self.is_rescued(uuid) \
                    and self._running(uuid, record):
                return  # not in rescue and running: nothing to do
            self._back_to_own_root(instance, record)
            self._start(instance, record)
        LOG.debug("%s unrescued: runs its own root again", uuid)

