"""Images fetched through Nova's image API into pyct's image store.

A guest's root comes from the Glance image Nova booted it with: the image
is downloaded once per host (Nova's ``glance.API().download``, which
honours Nova's ``[glance]`` settings and the request's token) to a
temporary file next to pyct's store and imported under the image's id;
later guests reuse the unpacked layers. Only root file systems are
accepted (``mapping.check_image``); an archive pyct's importer refuses
fails the build with Nova's ``ImageUnacceptable``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

from nova import exception as nova_exception
from nova.image import glance

from pyct_driver import exception
from pyct_driver.nova import mapping
from pyct_driver.virt.container import ContainerDriver


class NovaImages:
    """Brings Glance images into ``driver``'s store, one fetch at a time
    per image."""

    def __init__(self, driver: ContainerDriver, tmp_dir: str) -> None:
        self.driver = driver
        self.tmp_dir = tmp_dir
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, image_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(image_id, threading.Lock())

    def ensure(self, context: Any, image_meta: Any) -> str:
        """The image's id, imported into pyct's store if it was not."""
        mapping.check_image(image_meta)
        image_id = image_meta.id
        with self._lock(image_id):
            if self.driver.images.has_image(image_id):
                return image_id
            os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=self.tmp_dir, prefix="fetch-")
            os.close(fd)
            try:
                glance.API().download(context, image_id, dest_path=path)
                self.driver.import_image(image_id, path)
            except exception.InvalidImage as err:
                raise nova_exception.ImageUnacceptable(
                    image_id=image_id, reason=err.message) from err
            finally:
                os.unlink(path)
        return image_id
