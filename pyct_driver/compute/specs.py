"""The driver's view of database rows: instance and port specs.

A translation only: ``instance_spec`` reads an instance row (its flavor
snapshot, image properties, ports, metadata, config drive files and the
id range its build allocated) into the virt layer's ``InstanceSpec``;
``vif_spec`` does the same for one port. Neither writes: allocation is
the build path's (``ComputeManager.build_spec``).
"""

from __future__ import annotations

import ipaddress

from pyct_driver import exception, extra_specs
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import idranges as db_idranges
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database
from pyct_driver.metadata import content as md_content
from pyct_driver.metadata import lookup as md_lookup
from pyct_driver.virt import base as virt_base


def vif_spec(port: dict, gateway_dns: bool = False) -> virt_base.VifSpec:
    """The driver's view of a port row (its network under ``network``);
    ``gateway_dns``: the network's gateway answers DNS when it names no
    nameservers of its own (``[network] dns_forwarder``)."""
    net = port["network"]
    return virt_base.VifSpec(
        port_id=port["id"], network_id=port["network_id"],
        mac=port["mac_address"], ip=port["ip_address"],
        prefixlen=ipaddress.IPv4Network(net["cidr"]).prefixlen,
        gateway=net["gateway"], mtu=int(net["mtu"]),
        device_index=int(port["device_index"] or 0),
        vni=net.get("vni"),
        dns_nameservers=tuple(db_networks.guest_nameservers(
            net, gateway_dns)))


def instance_spec(db: Database, instance: dict,
                  force_config_drive: bool = False,
                  gateway_dns: bool = False,
                  image: dict | None = None,
                  overhead: int = 0) -> virt_base.InstanceSpec:
    """The driver's view of an instance row (image properties and ports
    included); ``force_config_drive`` is ``[metadata] force_config_drive``,
    ``gateway_dns`` ``[network] dns_forwarder``, ``image`` the image row
    when the caller read it already. It only reads: the id range is the
    one the build allocated (``ComputeManager.build_spec``), None if it
    has none."""
    config_drive = bool(instance.get("config_drive") or force_config_drive)
    flavor = instance["flavor"]
    extra = dict(flavor.get("extra_specs") or {})
    # Privilege comes from the flavor snapshot's admin-only extra spec,
    # never from metadata, hints or image properties (tenant input).
    privileged = extra_specs.privileged_from(extra)
    id_range = None if privileged else db_idranges.get(db, instance["uuid"])
    try:
        image = image or db_catalog.image_get(db, instance["image_ref"])
    except exception.ImageNotFound:
        image = {}
    return virt_base.InstanceSpec(
        uuid=instance["uuid"], name=instance["name"],
        hostname=instance["hostname"],
        flavor=virt_base.FlavorSpec(
            vcpus=int(flavor["vcpus"]), memory_mb=int(flavor["memory_mb"]),
            root_gb=int(flavor["root_gb"]), swap_mb=int(flavor.get("swap")
                                                        or 0),
            ephemeral_gb=int(flavor.get("ephemeral_gb") or 0),
            extra_specs=extra),
        image_id=instance["image_ref"],
        image_properties=dict(image.get("properties") or {}),
        user_data=instance.get("user_data"),
        metadata=dict(instance.get("metadata") or {}),
        key_data=instance.get("key_data"),
        project_id=instance["project_id"],
        vifs=tuple(vif_spec(p, gateway_dns) for p in db_networks.list_ports(
            db, instance_uuids=[instance["uuid"]])),
        config_drive=config_drive,
        config_drive_files=md_content.config_drive_files(
            md_lookup.source_for_instance(db, instance, gateway_dns,
                                          overhead))
        if config_drive else (),
        id_range=id_range, privileged=privileged,
        host_root=extra_specs.host_root_from(extra))
