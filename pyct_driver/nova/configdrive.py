"""Nova's config drive, delivered the way pyct delivers its own.

When Nova requires a config drive for an instance (``config_drive`` set
at boot, ``[DEFAULT] force_config_drive``, or the image's
``img_config_drive=mandatory``: ``nova.virt.configdrive.required_by``),
the adapter takes the drive's files from Nova's own ``InstanceMetadata``
(``openstack/<version>/meta_data.json`` with the SSH key, ``user_data``,
``network_data.json``, vendor data, injected files, the EC2 tree) and
adds the NoCloud seed pyct's standalone drive has (``nocloud/``: the
instance id, hostname, key, user data and network config), computed by
pyct's own metadata code. pyct's container driver binds them read-only
into the guest at ``/mnt/config`` and ``/var/lib/cloud/seed/nocloud-net``
(no ISO: a container has no block devices), so cloud-init and scripts
find them without a disk label.

Like Nova's drivers, which make the drive once at spawn and boot every
later start with it, the adapter keeps the files of the spawn (the admin
password exists only then) in the guest's record and hands them to every
later start.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from nova.api.metadata import base as instance_metadata
from nova.virt import configdrive as nova_configdrive

from pyct_driver.metadata import content
from pyct_driver.metadata.lookup import Source
from pyct_driver.nova import mapping

RECORD = "nova-config-drive.json"
Files = tuple[tuple[str, bytes], ...]


def _bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else str(data).encode("utf-8")


def _nocloud(instance: Any, network_info: Any) -> dict[str, bytes]:
    """pyct's NoCloud seed for the instance and its ports."""
    keypairs = instance.keypairs if instance.obj_attr_is_set("keypairs") \
        else None
    key_type = keypairs[0].type if keypairs else "ssh"
    ports = tuple(
        ({"device_index": v.spec.device_index, "mac_address": v.spec.mac,
          "ip_address": v.spec.ip},
         {"cidr": f"{v.spec.ip}/{v.spec.prefixlen}",
          "gateway": v.spec.gateway, "mtu": v.spec.mtu,
          "dns_nameservers": list(v.spec.dns_nameservers)})
        for v in mapping.nova_vifs(network_info))
    src = Source(instance={
        "uuid": instance.uuid,
        "hostname": instance.hostname or instance.uuid,
        "key_name": instance.key_name, "key_data": instance.key_data,
        "user_data": instance.user_data}, ports=ports, key_type=key_type)
    return content.nocloud_files(src)


def build(instance: Any, network_info: Any,
          injected_files: Any = None, admin_password: str | None = None
          ) -> Files:
    """The drive's files (path in the drive, content), or () when Nova
    does not require a drive for ``instance``."""
    if not nova_configdrive.required_by(instance):
        return ()
    extra_md = {"admin_pass": admin_password} if admin_password else {}
    md = instance_metadata.InstanceMetadata(
        instance, content=injected_files or [], extra_md=extra_md,
        network_info=network_info)
    files = {path: _bytes(data)
             for path, data in md.metadata_for_config_drive()}
    files.update(_nocloud(instance, network_info))
    return tuple(sorted(files.items()))


def save(record_dir: str, files: Files) -> None:
    """Keep the spawn's files with the guest's record."""
    path = os.path.join(record_dir, RECORD)
    tmp = path + ".new"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as f:
        json.dump({name: base64.b64encode(data).decode()
                   for name, data in files}, f)
    os.replace(tmp, path)


def load(record_dir: str) -> Files:
    """The files ``save`` kept, or () for a guest without a drive."""
    try:
        with open(os.path.join(record_dir, RECORD)) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return ()
    return tuple(sorted((name, base64.b64decode(data))
                        for name, data in saved.items()))
