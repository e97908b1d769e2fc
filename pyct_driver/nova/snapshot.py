"""Nova's snapshot (``createImage``, shelve) of a pyct guest, into Glance.

pyct's container driver captures the guest's own changes as one new
layer over the layers it booted from (frozen only while the layer is
written) and records the result in this host's image store under the
Glance image's id, so this host boots it without a download. For
Glance, the OCI image layout it writes (the base layers' blobs linked
from this host's blob cache, or read from the base image, fetched again
through Nova's image API when the cache holds none) goes up as one OCI
archive, ``disk_format=raw``/``container_format=docker``, the formats
the adapter boots. Nova's task states follow pyct's steps:
``image_pending_upload`` before the capture, ``image_uploading`` after.
A failed snapshot leaves nothing: pyct drops its store record, the work
directory goes, and Nova deletes the Glance image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable

from nova.compute import task_states
from nova.image import glance

from pyct_driver.api import image_archive
from pyct_driver.virt import base
from pyct_driver.virt.container import ContainerDriver

ARCHIVE_FORMATS = {"disk_format": "raw", "container_format": "docker"}


def _base_path(pyct: ContainerDriver, context: Any, instance: Any,
               work: str) -> str | None:
    """The booted image's file when a base layer's blob is not kept on
    this host (an image imported from an archive keeps none)."""
    digests = pyct.images.held_digests(instance.uuid)
    if all(pyct.images.blob_path(d) for d in digests):
        return None
    path = os.path.join(work, "base")
    glance.API().download(context, instance.image_ref, dest_path=path)
    return path


def _steps(update_task_state: Callable[..., None]
           ) -> Callable[[str], None]:
    def step(kind: str) -> None:
        if kind == "pending_upload":
            update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        else:
            update_task_state(
                task_state=task_states.IMAGE_UPLOADING,
                expected_state=task_states.IMAGE_PENDING_UPLOAD)
    return step


def snapshot(pyct: ContainerDriver, context: Any, instance: Any,
             spec: base.InstanceSpec, image_id: str,
             update_task_state: Callable[..., None], tmp_dir: str) -> None:
    """Capture ``instance`` as Glance image ``image_id`` and upload it."""
    os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(dir=tmp_dir, prefix="snapshot-")
    try:
        layout = os.path.join(work, "layout")
        pyct.snapshot(spec, image_id, layout,
                      _base_path(pyct, context, instance, work),
                      _steps(update_task_state))
        archive = os.path.join(work, "image.tar")
        _, chunks = image_archive.tar_stream(layout)
        with open(archive, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        with open(archive, "rb") as f:
            glance.API().update(context, image_id, dict(ARCHIVE_FORMATS),
                                data=f, purge_props=False)
    except BaseException:
        if pyct.images.has_image(image_id):
            pyct.delete_image(image_id)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
