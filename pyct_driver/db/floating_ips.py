"""Floating IPs in the database: allocation from the external range and
association with ports.

As with ports (``networks``), no lock decides who gets an address: the
unique keys on the address and on the port do, and a loser retries with
fresh data (``networks.retrying``). Reads join the port and its server so
that callers get Neutron's ``fixed_ip_address`` and the compute host the
NAT belongs on.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.floating_models import FloatingIp
from pyct_driver.db.networks import retrying


def _query():
    return (sa.select(FloatingIp, models.Port.ip_address,
                      models.Port.instance_uuid, models.Instance.host)
            .outerjoin(models.Port, models.Port.id == FloatingIp.port_id)
            .outerjoin(models.Instance,
                       models.Instance.uuid == models.Port.instance_uuid)
            .order_by(FloatingIp.floating_ip_address))


def _dict(row) -> dict:
    fip, fixed, instance_uuid, host = row
    out = row_to_dict(fip)
    out.update(fixed_ip_address=fixed, instance_uuid=instance_uuid,
               host=host)
    return out


def list_floating_ips(db: Database, project_id: str | None = None,
                      ids: list[str] | None = None,
                      address: str | None = None,
                      port_id: str | None = None) -> list[dict]:
    query = _query()
    if project_id is not None:
        query = query.where(FloatingIp.project_id == project_id)
    if ids is not None:
        query = query.where(FloatingIp.id.in_(ids))
    if address is not None:
        query = query.where(FloatingIp.floating_ip_address == address)
    if port_id is not None:
        query = query.where(FloatingIp.port_id == port_id)
    with db.session() as session:
        return [_dict(r) for r in session.execute(query)]


def on_host(db: Database, host: str) -> dict[str, str]:
    """floating IP -> fixed IP of every association whose server is on
    ``host``: what that host's NAT table should hold."""
    query = _query().where(models.Instance.host == host)
    with db.session() as session:
        return {r[0].floating_ip_address: r[1]
                for r in session.execute(query) if r[1]}


def _free(session, hosts: list[str]) -> str:
    used = set(session.scalars(sa.select(FloatingIp.floating_ip_address)))
    for address in hosts:
        if address not in used:
            return address
    raise exception.Conflict(
        "No more IP addresses available on the external network.")


def create(db: Database, project_id: str, network_id: str, cidr: str,
           address: str | None = None, description: str = "") -> dict:
    """Hold ``address`` (else the lowest free one) of ``cidr`` for the
    project; a 409 if it is taken or none is left."""
    net = ipaddress.IPv4Network(cidr)
    hosts = [str(h) for h in net.hosts()]
    if address is not None and address not in hosts:
        raise exception.Invalid(
            f"IP address {address} is not a valid IP for the external "
            f"network {network_id}.")
    fip_id = str(uuidlib.uuid4())

    def attempt() -> None:
        with db.session() as session:
            if address is not None and session.scalars(
                    sa.select(FloatingIp.id).where(
                        FloatingIp.floating_ip_address == address)).first():
                raise exception.Conflict(
                    f"Unable to complete operation for network "
                    f"{network_id}. The IP address {address} is in use.")
            session.add(FloatingIp(
                id=fip_id, project_id=project_id,
                floating_network_id=network_id,
                floating_ip_address=address or _free(session, hosts),
                description=description))
    retrying(attempt)
    return list_floating_ips(db, ids=[fip_id])[0]


def set_port(db: Database, fip_id: str, port_id: str | None) -> dict:
    """Associate with ``port_id`` (None: disassociate); a 409 when that
    port has another floating IP already."""
    with db.session() as session:
        row = session.get(FloatingIp, fip_id)
        if row is None:
            raise exception.NotFound(
                f"Floating IP {fip_id} could not be found.")
        if port_id is not None:
            other = session.scalars(sa.select(FloatingIp.id).where(
                FloatingIp.port_id == port_id,
                FloatingIp.id != fip_id)).first()
            if other:
                raise exception.Conflict(
                    f"Cannot associate floating IP "
                    f"{row.floating_ip_address} ({fip_id}) with port "
                    f"{port_id}: it already has floating IP {other}.")
        row.port_id = port_id
        row.updated_at = models.utcnow()
    return list_floating_ips(db, ids=[fip_id])[0]


def set_description(db: Database, fip_id: str, description: str) -> None:
    with db.session() as session:
        row = session.get(FloatingIp, fip_id)
        if row is not None:
            row.description = description
            row.updated_at = models.utcnow()


def delete(db: Database, fip_id: str) -> bool:
    with db.session() as session:
        result = session.execute(sa.delete(FloatingIp).where(
            FloatingIp.id == fip_id))
        return bool(result.rowcount)


def count(db: Database, project_id: str) -> int:
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(
            FloatingIp).where(FloatingIp.project_id == project_id)) or 0
