"""From the database to one instance's metadata source rows.

The metadata service knows a guest only by the TCP source address of its
request: ``source_for_address`` maps that address to the one port holding it
as fixed IP, the port to its live instance, and gathers what the documents
need (the instance, its ports with their networks, its key pair's type).
Each network's ``dns_nameservers`` is what its guests are given
(``db.networks.guest_nameservers``: the gateway when the host's DNS
forwarder serves a network that names none).
An address held by no port -- or, defensively, by several -- maps to
nothing. ``source_for_instance`` gathers the same for the compute manager's
config drive.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict


@dataclasses.dataclass(frozen=True)
class Source:
    """What the metadata documents of one instance are built from."""

    instance: dict
    # (port, network) pairs, by device index
    ports: tuple[tuple[dict, dict], ...] = ()
    key_type: str = "ssh"


def _ports(session, uuid: str, gateway_dns: bool, overhead: int = 0
           ) -> tuple[tuple[dict, dict], ...]:
    rows = session.execute(
        sa.select(models.Port, models.Network)
        .join(models.Network, models.Port.network_id == models.Network.id)
        .where(models.Port.instance_uuid == uuid)).all()
    pairs = [(row_to_dict(p), row_to_dict(n)) for p, n in rows]
    for _port, net in pairs:
        net["dns_nameservers"] = db_networks.guest_nameservers(net,
                                                               gateway_dns)
        if overhead and net.get("vni"):  # what the guest's link has
            net["mtu"] = (net.get("mtu") or 1500) - overhead
    pairs.sort(key=lambda pn: (pn[0]["device_index"] is None,
                               pn[0]["device_index"] or 0, pn[0]["id"]))
    return tuple(pairs)


def _key_type(session, instance: dict) -> str:
    if not instance.get("key_name"):
        return "ssh"
    kind = session.scalars(sa.select(models.KeyPair.type).where(
        models.KeyPair.user_id == instance["user_id"],
        models.KeyPair.name == instance["key_name"])).first()
    return kind or "ssh"


def source_for_instance(db: Database, instance: dict,
                        gateway_dns: bool = False,
                        overhead: int = 0) -> Source:
    """The metadata source of an instance row (as ``db.instances`` gives
    it); ``gateway_dns`` is ``[network] dns_forwarder``, ``overhead``
    what VXLAN takes from the MTU of networks with a VNI on this host."""
    with db.session() as session:
        return Source(instance=instance,
                      ports=_ports(session, instance["uuid"], gateway_dns,
                                   overhead),
                      key_type=_key_type(session, instance))


def source_for_address(db: Database, address: str,
                       host: str | None = None,
                       gateway_dns: bool = False,
                       overhead: int = 0) -> Source | None:
    """The instance whose port has fixed IP ``address`` (and, with
    ``host``, that runs on this host), or None."""
    with db.session() as session:
        owners = session.scalars(
            sa.select(models.Port.instance_uuid).where(
                models.Port.ip_address == address,
                models.Port.instance_uuid.is_not(None)).limit(2)).all()
    if len(owners) != 1:
        return None
    try:
        instance = db_instances.get(db, owners[0])
    except exception.InstanceNotFound:
        return None
    if host is not None and instance.get("host") != host:
        return None
    return source_for_instance(db, instance, gateway_dns, overhead)
