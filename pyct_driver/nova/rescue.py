"""Nova's rescue and unrescue of a pyct guest.

Nova stops the guest and hands the driver the rescue image's metadata (the
``rescue_image_ref`` asked for, else the instance's own image) and a
password. The image comes through Nova's image API into pyct's store like
a boot's; pyct's driver (``virt.container_rescue``) then starts the same
guest (cgroup, user namespace, ports) from a fresh root of that image with
the guest's own root bound at ``/mnt``, and sets root's password in it
(none given, as in Nova's driver tests: the image's stays). Unrescue
starts the guest's own root again, with what was written under ``/mnt``.
Each start has a new network namespace, so the ports are plugged again
(unrescue gets no ``network_info``: the instance's cached one). Rescue
from a volume is not declared (``supports_bfv_rescue`` stays False).
Mixed into ``PyctDriver``.
"""

from __future__ import annotations

from typing import Any

from nova import objects
from nova.image import glance

from pyct_driver.nova import mapping
from pyct_driver.nova.errors import nova_errors


class RescueSide:
    """``rescue``/``unrescue`` of ``PyctDriver``."""

    pyct: Any
    images: Any

    def _rescue_image(self, context: Any, instance: Any,
                      image_meta: Any) -> str:
        """The rescue image in pyct's store; its id."""
        if not image_meta.obj_attr_is_set("id"):
            image_meta = objects.ImageMeta.from_image_ref(
                context, glance.API(), instance.image_ref)
        with nova_errors(instance.uuid):
            return self.images.ensure(context, image_meta)

    def rescue(self, context: Any, instance: Any, network_info: Any,
               image_meta: Any, rescue_password: str,
               block_device_info: Any, share_info: Any = None) -> None:
        mapping.refuse_volumes(block_device_info)
        mapping.nova_vifs(network_info)
        image_id = self._rescue_image(context, instance, image_meta)
        with nova_errors(instance.uuid):
            self.pyct.rescue(self._spec(instance), image_id,
                             rescue_password or "")
        self._plug_all(instance, network_info)

    def unrescue(self, context: Any, instance: Any) -> None:
        with nova_errors(instance.uuid):
            self.pyct.unrescue(self._spec(instance))
        self._plug_all(instance, instance.get_network_info())
