"""``[image]``: what the image API accepts (Glance's format and size
settings, under the names a Glance operator knows).

pyct's images are container root filesystems: a rootfs tarball (``raw``
disk in a ``bare`` container, optionally compressed) or an OCI/docker
archive (``docker`` container). Other formats (qcow2, iso, vmdk…) hold a
disk a container cannot boot, so the defaults refuse them at create time,
exactly as Glance refuses a format its ``disk_formats`` does not list.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "image"

OPTS = [
    cfg.IntOpt("max_image_size_mb", default=10240, min=1,
               help="Largest image upload accepted, in MiB (Glance's "
                    "image_size_cap). An upload past it is refused with "
                    "413 and nothing of it is kept."),
    cfg.ListOpt("disk_formats", default=["raw"],
                help="Values accepted for an image's disk_format (Glance's "
                     "[image_format] disk_formats). pyct unpacks only "
                     "tarballs and container archives: adding qcow2, iso "
                     "and the like only lets images be registered that no "
                     "compute host can boot."),
    cfg.ListOpt("container_formats", default=["bare", "docker"],
                help="Values accepted for an image's container_format "
                     "(Glance's [image_format] container_formats): 'bare' "
                     "for a rootfs tarball, 'docker' for an OCI or "
                     "'docker save' archive."),
]
