"""Where each project network's ports are, for the VXLAN segments that
join a network's bridges across hosts.

A port is on the host of the live server it is bound to; a host's tunnel
address is what its ``pyct-compute`` service last reported
(``services.tunnel_address``, from ``[network] tunnel_address``). From
these a compute host knows, per network it carries, which other hosts'
VTEPs to send the network's frames to and which MAC is behind which
(``network_ports``), and whom to tell when its own ports come and go
(``hosts_of_networks``).
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from pyct_driver.db import models
from pyct_driver.db.engine import Database

COMPUTE = "pyct-compute"
_P, _I, _S = models.Port, models.Instance, models.Service


def _live_ports():
    return (sa.select(_P.network_id, _P.mac_address, _I.host)
            .join(_I, _I.uuid == _P.instance_uuid)
            .where(_I.deleted == 0, _I.host.is_not(None)))


def host_networks(db: Database, host: str) -> set[str]:
    """Networks with a port of a live server on ``host``."""
    with db.session() as session:
        return set(session.scalars(
            sa.select(_P.network_id).join(_I, _I.uuid == _P.instance_uuid)
            .where(_I.deleted == 0, _I.host == host).distinct()))


def network_ports(db: Database, network_ids: Iterable[str]
                  ) -> dict[str, list[tuple[str, str]]]:
    """network id -> (MAC, tunnel address or "") of each of its bound
    ports, whichever host they are on."""
    network_ids = list(network_ids)
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in network_ids}
    if not network_ids:
        return out
    with db.session() as session:
        addresses = dict(session.execute(
            sa.select(_S.host, _S.tunnel_address)
            .where(_S.binary == COMPUTE)).all())
        ports = session.execute(_live_ports().where(
            _P.network_id.in_(network_ids))).all()
    for network_id, mac, host in ports:
        out[network_id].append((mac, addresses.get(host) or ""))
    return out


def hosts_of_networks(db: Database, network_ids: Iterable[str]) -> set[str]:
    """Hosts with a port of a live server on one of ``network_ids``."""
    network_ids = list(network_ids)
    if not network_ids:
        return set()
    with db.session() as session:
        return set(session.scalars(
            sa.select(_I.host).join(_P, _P.instance_uuid == _I.uuid)
            .where(_I.deleted == 0, _I.host.is_not(None),
                   _P.network_id.in_(network_ids)).distinct()))
