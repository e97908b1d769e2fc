"""The container driver's cold migration: a stopped guest's own files out
of this host, or into it.

What makes a guest itself is small: its root's own changes (the overlay
upper directory on its disk; the image layers are the image's, imported on
the destination from the same image), its console log and its config
drive. ``send_guest`` mounts the stopped guest's disk (not the overlay),
packs those into the stream (``rootfs.archive``) and unmounts it again;
the source keeps everything until the move is confirmed (a revert starts
the guest from it untouched). ``receive_guest`` makes the guest here as a
spawn would (record, image layers held, a new disk of the new flavor's
size) and fills it from the stream; any failure removes all of it. The
guest is not started: the compute manager powers it on once the stream's
digest was checked.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import BinaryIO

from pyct_driver import exception
from pyct_driver.virt import base, guest_config, ownership
from pyct_driver.virt.criu import Criu
from pyct_driver.virt.rootfs import archive


class MigrationSide:
    """``send_guest``/``receive_guest`` of ``ContainerDriver`` (mixed in:
    uses its records, roots, images and locks)."""

    def _trees(self, uuid: str, upper: str) -> dict[str, str]:
        return {"upper": upper,
                "console.log": self.records.path(uuid, "console.log"),
                "config-drive": self.records.path(uuid, "config-drive")}

    def send_guest(self, instance: base.InstanceSpec,
                   sink: BinaryIO) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            record = self.records.require(uuid)
            if self._running(uuid, record):
                raise exception.VirtError(
                    reason=f"guest {uuid} must be stopped to migrate")
            self._unmount_roots(uuid)  # a root left mounted: disk only
            self.roots.wait_released(uuid)  # every change on the disk
            try:
                # read-only: a revert finds the disk as it was, bit for bit
                archive.pack(self._trees(uuid, self.roots.upper_dir(
                    uuid, readonly=True)), sink)
            finally:
                self.roots.unmount(uuid)
            self.roots.wait_released(uuid)

    def receive_guest(self, instance: base.InstanceSpec,
                      source: BinaryIO) -> None:
        uuid = instance.uuid
        id_range = ownership.id_range(instance)
        with self._lock(uuid), contextlib.ExitStack() as undo:
            self.records.create_dir(uuid)  # Duplicate: never over a guest
            undo.callback(shutil.rmtree, self.records.dir(uuid), True)
            record = guest_config.new_record(self.images, instance,
                                             id_range)
            self.images.acquire(uuid, instance.image_id)
            undo.callback(self.images.release, uuid)
            self.roots.create(uuid, instance.flavor.root_gb, id_range)
            undo.callback(self.roots.remove, uuid)
            try:
                archive.unpack(source, self._trees(
                    uuid, self.roots.upper_dir(uuid)))
            finally:
                self.roots.unmount(uuid)
            self.roots.wait_released(uuid)  # written out before a start
            self.records.save(uuid, record)
            undo.pop_all()

    def live_migration_support(self) -> tuple[bool, str]:
        """A live move needs a checkpoint here and a restore there: CRIU
        as detected at start-up (``virt.criu``), checked again if the
        service had not started it."""
        criu = self.criu if self.criu is not None else Criu()
        if not criu.available:
            return False, criu.reason
        return False, ("criu check passed, but pyct does not move a "
                       "running guest's memory yet")
