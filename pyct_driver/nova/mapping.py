"""Nova's objects as pyct's driver sees them: ``InstanceSpec`` and friends.

Nova hands a virt driver an ``Instance`` (with its ``Flavor``), an
``ImageMeta``, a ``network_info`` list of Neutron VIFs and a
``block_device_info`` dict. This module turns them into pyct's plain
specs and refuses, with the Nova exception that aborts a build without a
reschedule (``InvalidInput``, ``ImageUnacceptable``), what pyct cannot
honour: bad ``quota:``/``pyct:`` extra specs (checked exactly as pyct's
own API does), VIF types other than ``bridge``/``tap``/``ethernet``, IPv6
only ports, volumes, and image formats that hold a disk, not a root file
system.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from typing import Any

from nova import exception as nova_exception

from pyct_driver import exception, extra_specs
from pyct_driver.virt import base

# VIF types whose host end is a plain device pyct can create: a veth end
# named as Neutron expects (``devname``), joined to Neutron's bridge for
# ``bridge``, left for the agent or operator to wire for the other two.
PLUGGABLE_VIF_TYPES = ("bridge", "tap", "ethernet")
DISK_FORMATS = ("raw",)
CONTAINER_FORMATS = ("bare", "docker", "oci")


@dataclasses.dataclass(frozen=True)
class NovaVif:
    """A Neutron port as the adapter plugs it."""

    spec: base.VifSpec
    vif_type: str
    devname: str
    bridge: str | None


def flavor_spec(flavor: Any, allow_host_root: bool = False
                ) -> base.FlavorSpec:
    """pyct's flavor snapshot of a Nova ``Flavor``; invalid ``quota:`` or
    ``pyct:`` extra specs raise Nova's ``InvalidInput``."""
    extra = dict(flavor.extra_specs or {})
    try:
        extra_specs.validate_extra_specs(extra, allow_host_root)
    except exception.InvalidExtraSpec as err:
        raise nova_exception.InvalidInput(reason=err.message) from err
    return base.FlavorSpec(
        vcpus=int(flavor.vcpus), memory_mb=int(flavor.memory_mb),
        root_gb=int(flavor.root_gb), swap_mb=int(flavor.swap or 0),
        ephemeral_gb=int(flavor.ephemeral_gb or 0), extra_specs=extra)


def check_image(image_meta: Any) -> None:
    """Refuse images that hold a disk (qcow2, iso, vmdk…), not a root."""
    disk = getattr(image_meta, "disk_format", None) \
        if image_meta.obj_attr_is_set("disk_format") else None
    container = image_meta.container_format \
        if image_meta.obj_attr_is_set("container_format") else None
    image_id = image_meta.id if image_meta.obj_attr_is_set("id") else "?"
    if disk is not None and disk not in DISK_FORMATS:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id,
            reason=f"disk_format {disk} holds a disk image; pyct boots "
                   f"root file systems ({', '.join(DISK_FORMATS)})")
    if container is not None and container not in CONTAINER_FORMATS:
        raise nova_exception.ImageUnacceptable(
            image_id=image_id,
            reason=f"container_format {container} is not one of "
                   f"{', '.join(CONTAINER_FORMATS)}")


def image_properties(image_meta: Any) -> dict[str, str]:
    """The image properties pyct's driver reads (the guest's init)."""
    props = image_meta.properties
    if props.obj_attr_is_set("os_command_line") and \
            props.os_command_line:
        return {"os_command_line": str(props.os_command_line)}
    return {}


def _ipv4_subnet(vif: Any) -> tuple[Any, Any]:
    for subnet in vif["network"]["subnets"]:
        if not subnet["cidr"] or not subnet["ips"]:
            continue
        if ipaddress.ip_network(subnet["cidr"]).version == 4:
            return subnet, subnet["ips"][0]
    raise nova_exception.InvalidInput(
        reason=f"port {vif['id']} has no IPv4 address; pyct guests need "
               f"one")


def devname_of(vif: Any) -> str:
    """The host end's name: Neutron's ``devname``, else its rule."""
    return vif["devname"] or ("tap" + vif["id"])[:14]


def nova_vif(vif: Any, index: int) -> NovaVif:
    """One ``network_info`` entry as a pluggable port, or ``InvalidInput``
    naming the VIF type pyct cannot plug."""
    vif_type = vif["type"]
    if vif_type not in PLUGGABLE_VIF_TYPES:
        raise nova_exception.InvalidInput(
            reason=f"VIF type {vif_type} of port {vif['id']} cannot be "
                   f"plugged by pyct (supported: "
                   f"{', '.join(PLUGGABLE_VIF_TYPES)})")
    subnet, ip = _ipv4_subnet(vif)
    network = vif["network"]
    gateway = subnet["gateway"]["address"] if subnet.get("gateway") \
        else None
    mtu = network.get_meta("mtu") or 1500
    spec = base.VifSpec(
        port_id=vif["id"], network_id=network["id"] or "",
        mac=vif["address"], ip=ip["address"],
        prefixlen=ipaddress.ip_network(subnet["cidr"]).prefixlen,
        gateway=gateway or "", mtu=int(mtu), device_index=index,
        dns_nameservers=tuple(d["address"] for d in subnet["dns"]))
    devname = devname_of(vif)
    bridge = network["bridge"] if vif_type == "bridge" else None
    return NovaVif(spec=spec, vif_type=vif_type, devname=devname,
                   bridge=bridge)


def nova_vifs(network_info: Any) -> tuple[NovaVif, ...]:
    """Every port of ``network_info``, ``eth0`` first."""
    return tuple(nova_vif(vif, i)
                 for i, vif in enumerate(network_info or ()))


def refuse_volumes(block_device_info: dict | None) -> None:
    """pyct guests have no block devices yet: refuse any volume, swap or
    ephemeral mapping Nova passes (the root disk is pyct's own)."""
    info = block_device_info or {}
    for key in ("block_device_mapping", "ephemerals"):
        if info.get(key):
            raise nova_exception.InvalidInput(
                reason=f"pyct guests cannot have {key.replace('_', ' ')} "
                       f"(volumes are not supported)")
    if info.get("swap") and info["swap"].get("swap_size"):
        raise nova_exception.InvalidInput(
            reason="swap block devices are not supported; pyct limits "
                   "swap with the flavor's swap field")


def user_data(instance: Any) -> str | None:
    """Nova keeps user data base64-encoded; pyct's driver wants text."""
    if not instance.user_data:
        return None
    return base64.b64decode(instance.user_data).decode("utf-8", "replace")


def instance_spec(instance: Any, image_meta: Any | None,
                  vifs: tuple[NovaVif, ...] = (),
                  id_range: tuple[int, int] | None = None,
                  allow_host_root: bool = False) -> base.InstanceSpec:
    """pyct's spec of a Nova ``Instance``. Ports are plugged by the
    adapter (Neutron's devices, not pyct's bridges), so ``vifs`` only
    fill in what the guest is told."""
    flavor = flavor_spec(instance.flavor, allow_host_root)
    privileged = extra_specs.privileged_from(flavor.extra_specs)
    return base.InstanceSpec(
        uuid=instance.uuid, name=instance.name,
        hostname=instance.hostname or instance.uuid, flavor=flavor,
        image_id=instance.image_ref or "",
        image_properties=image_properties(image_meta)
        if image_meta is not None else {},
        user_data=user_data(instance),
        metadata=dict(instance.metadata or {}),
        key_data=instance.key_data, project_id=instance.project_id or "",
        config_drive=False, id_range=None if privileged else id_range,
        privileged=privileged,
        host_root=extra_specs.host_root_from(flavor.extra_specs))
