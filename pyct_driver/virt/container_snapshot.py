"""Snapshots of container guests: the guest's own changes become one new
layer over the layers it booted from.

A running guest is frozen (the cgroup freezer, as pause does) only while
its overlay upper directory is captured into a layer tar
(``rootfs.capture``), so what it holds is one consistent moment and the
pause lasts as long as writing the change. A stopped guest's disk is
mounted for the capture and unmounted again. The layer then goes through
the image store's hardened unpacker (``ImageStore.add_layer_image``), so
this host boots the snapshot at once, and an OCI layout directory with
every layer blob (the base's hard-linked, not copied:
``rootfs.oci_export``) is renamed into place as the image's file, from
which any other host imports it. Nothing of a failed snapshot stays: the
staging directory and the store record go.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Callable

from pyct_driver import exception
from pyct_driver.virt import base, ownership
from pyct_driver.virt.rootfs import capture, layout, oci_export


class Snapshots:
    """The container driver's snapshot (a mixin of ``ContainerDriver``:
    uses its records, roots, cgroups and image store)."""

    def _capture(self, instance: base.InstanceSpec, record: dict,
                 layer: str) -> capture.Captured:
        uuid = instance.uuid
        id_range = ownership.recorded_range(instance, record)
        top = os.path.join(self.roots.base_dir, "instances", uuid)
        upper = os.path.join(top, "disk", "upper")
        running = self._running(uuid, record)
        mounted_here = False
        if not running and not self.roots.is_mounted(uuid):
            self.roots.mount(uuid, self.images.held_layers(uuid))
            mounted_here = True
        frozen_here = False
        try:
            if running and not self.cgroups.is_frozen(uuid):
                self.cgroups.freeze(uuid)
                frozen_here = True
            # never more than the guest's disk holds: a sparse file's
            # zeros must not fill the host's disk
            limit = self.images.limits.max_bytes
            if instance.flavor.root_gb > 0:
                limit = min(limit, instance.flavor.root_gb << 30)
            return capture.capture(upper, layer, id_range, limit,
                                   self.images.limits.max_files)
        finally:
            if frozen_here:
                self.cgroups.thaw(uuid)
            if mounted_here:
                self.roots.unmount(uuid)

    def _base_blob(self, digest: str, base_path: str | None, dest: str,
                   image_id: str) -> int:
        """Put the base layer ``digest`` at ``dest``: a link to this
        host's copy, else out of the base image's file."""
        kept = self.images.blob_path(digest)
        if kept:
            return oci_export.link_or_copy(kept, dest)
        if base_path and os.path.exists(base_path):
            with layout.open_source(base_path, image_id) as src:
                for blob in src.describe()[0]:
                    if blob.digest != digest:
                        continue
                    if blob.name == os.path.basename(base_path):
                        # a plain rootfs tarball is its own blob: link it
                        self.images.keep_blob(digest, base_path)
                        return oci_export.link_or_copy(base_path, dest)
                    return oci_export.copy_stream(blob.open, dest)
        raise exception.SnapshotError(
            reason=f"base layer sha256:{digest} is on this host only "
            "unpacked; its blob is gone")

    def snapshot(self, instance: base.InstanceSpec, image_id: str,
                 dest: str, base_path: str | None,
                 update_task_state: Callable[[str], None]
                 ) -> base.ImageInfo:
        uuid = instance.uuid
        staging = f"{dest}.part"
        shutil.rmtree(staging, ignore_errors=True)
        blobs = os.path.join(staging, "blobs", "sha256")
        os.makedirs(blobs, mode=0o700)
        stored = False
        try:
            layer = os.path.join(staging, "layer.tar")
            with self._lock(uuid):
                record = self.records.require(uuid)
                update_task_state("pending_upload")
                got = self._capture(instance, record, layer)
                base_digests = self.images.held_digests(uuid)
            update_task_state("uploading")
            props = dict(instance.image_properties)
            self.images.add_layer_image(image_id, base_digests, layer,
                                        got.digest, props)
            stored = True
            layers = []
            for digest in base_digests:
                path = os.path.join(blobs, digest)
                if not os.path.exists(path):
                    self._base_blob(digest, base_path, path, image_id)
                layers.append((digest, oci_export.media_type(path)))
            os.rename(layer, os.path.join(blobs, got.digest))
            layers.append((got.digest, oci_export.media_type(
                os.path.join(blobs, got.digest))))
            extra = oci_export.write_layout(staging, layers, props)
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if stored:
                with contextlib.suppress(exception.PyctError, OSError):
                    self.images.delete_image(image_id)
            raise
        return base.ImageInfo(disk_format="raw", container_format="docker",
                              size=got.size + extra, checksum="",
                              properties=props)
