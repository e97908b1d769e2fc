"""Project networks and their ports: IPAM kept in the database.

Every project network is one IPv4 subnet carved from ``[network]
pool_cidr``; every port is one MAC and one address of such a subnet. No
lock decides who gets a subnet, a VXLAN segment or an address: the unique
constraints do (``networks.cidr``, ``networks.vni``, ``ports(network_id,
ip_address)``, ``ports.mac_address``).
A writer that loses a race gets an integrity error (or, on SQLite, a
"database is locked"), rolls its whole transaction back and tries again with
fresh data (``retrying``), so every allocation happens exactly once and a
failed one leaves nothing behind. Subnets never overlap a route of the host
(the caller passes the host's routes in; see ``api.host_routes``). A
project's default network has no key to race on, so it is found or
created in one serializable transaction instead.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import secrets
import time
import uuid as uuidlib
from typing import Callable, Iterable, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict

T = TypeVar("T")
Routes = Callable[[], Iterable[ipaddress.IPv4Network]]
MAX_ATTEMPTS = 60
# OpenStack's own prefix: locally administered, unicast
MAC_PREFIX = "fa:16:3e"
MAX_VNI = (1 << 24) - 1  # VXLAN's 24-bit segment id


@dataclasses.dataclass(frozen=True)
class IpamSettings:
    """The ``[network]`` options IPAM needs, as plain values."""

    pool_cidr: str = "10.241.0.0/16"
    subnet_prefixlen: int = 24
    mtu: int = 1500
    dns_nameservers: tuple[str, ...] = ()
    default_network_name: str = "private"


@dataclasses.dataclass(frozen=True)
class PortRequest:
    """One port to allocate: on ``network_id``, at ``fixed_ip`` if given."""

    network_id: str
    fixed_ip: str | None = None


def is_retryable(err: exception.DBError) -> bool:
    """A lost race (unique key, lock, deadlock), not a real failure."""
    return isinstance(err.__cause__, (sa_exc.IntegrityError,
                                      sa_exc.OperationalError))


def retrying(attempt: Callable[[], T]) -> T:
    """Run one whole transaction again while it loses races."""
    for number in range(MAX_ATTEMPTS):
        try:
            return attempt()
        except exception.DBError as err:
            if not is_retryable(err) or number == MAX_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.002 * (number + 1)))
    raise AssertionError("unreachable")


def subnet_id(network_id: str) -> str:
    """The id of a network's one subnet (derived, so no table is needed)."""
    return str(uuidlib.uuid5(uuidlib.UUID(network_id), "subnet"))


def network_dict(row: models.Network) -> dict:
    values = row_to_dict(row)
    values["subnet_id"] = subnet_id(row.id)
    values["dns_nameservers"] = list(row.dns_nameservers or [])
    return values


def guest_nameservers(net: dict, gateway_dns: bool) -> list[str]:
    """The resolvers a network's guests are given: its own
    ``dns_nameservers``; without any, its gateway when the host's DNS
    forwarder answers there (``gateway_dns``; Neutron's DHCP hands out its
    dnsmasq the same way), else none."""
    own = list(net.get("dns_nameservers") or [])
    if own or not gateway_dns or not net.get("gateway"):
        return own
    return [net["gateway"]]


def _pool(settings: IpamSettings) -> ipaddress.IPv4Network:
    try:
        pool = ipaddress.IPv4Network(settings.pool_cidr)
    except ValueError as err:
        raise exception.InvalidInput(
            reason=f"[network] pool_cidr {settings.pool_cidr!r} is not an "
                   f"IPv4 network: {err}") from err
    if settings.subnet_prefixlen < pool.prefixlen:
        raise exception.InvalidInput(
            reason=f"[network] subnet_prefixlen /{settings.subnet_prefixlen}"
                   f" is larger than the pool {pool}")
    return pool


def check_no_overlap(net: ipaddress.IPv4Network,
                     routes: Iterable[ipaddress.IPv4Network],
                     what: str) -> None:
    """Refuse ``net`` if it overlaps any of the host's ``routes``."""
    for route in routes:
        if net.overlaps(route):
            raise exception.InvalidInput(
                reason=f"{what} {net} overlaps the host route {route}; set "
                       f"[network] pool_cidr to a range no route of the "
                       f"host covers")


def _insert_network(session, project_id: str, name: str,
                    settings: IpamSettings, pool: ipaddress.IPv4Network,
                    routes: list[ipaddress.IPv4Network],
                    is_default: bool) -> dict:
    """A new network on the lowest free subnet, in the caller's
    transaction (a racing writer may take that subnet: retry)."""
    taken = {ipaddress.IPv4Network(c) for c in
             session.scalars(sa.select(models.Network.cidr))}
    # our own subnets show up as routes where bridges carry them
    foreign = [r for r in routes if r not in taken]
    check_no_overlap(pool, foreign, "The subnet pool")
    odd = [t for t in taken if t.prefixlen != settings.subnet_prefixlen]
    for subnet in pool.subnets(new_prefix=settings.subnet_prefixlen):
        if subnet not in taken and not any(subnet.overlaps(t) for t in odd):
            break
    else:
        raise exception.Conflict(
            reason=f"no free /{settings.subnet_prefixlen} subnet is "
                   f"left in the pool {pool}")
    check_no_overlap(subnet, foreign, "Subnet")
    row = models.Network(
        id=str(uuidlib.uuid4()), name=name, project_id=project_id,
        cidr=str(subnet), gateway=str(subnet.network_address + 1),
        mtu=settings.mtu, is_default=is_default, vni=_free_vni(session),
        dns_nameservers=list(settings.dns_nameservers))
    session.add(row)
    session.flush()
    return network_dict(row)


def _free_vni(session) -> int:
    """The lowest VNI no network has (a racing writer may take it too:
    the unique key makes one of them retry)."""
    taken = set(session.scalars(sa.select(models.Network.vni).where(
        models.Network.vni.is_not(None))))
    vni = next(n for n in range(1, len(taken) + 2) if n not in taken)
    if vni > MAX_VNI:
        raise exception.Conflict(reason="no free VXLAN segment is left")
    return vni


def create_network(db: Database, project_id: str, name: str,
                   settings: IpamSettings, host_routes: Routes) -> dict:
    """A new network on the lowest free subnet of the pool."""
    pool = _pool(settings)
    routes = list(host_routes())

    def attempt() -> dict:
        with db.session() as session:
            return _insert_network(session, project_id, name, settings,
                                   pool, routes, is_default=False)
    return retrying(attempt)


def _default_row(session, project_id: str) -> models.Network | None:
    return session.scalars(sa.select(models.Network).where(
        models.Network.project_id == project_id,
        models.Network.is_default.is_(True)).order_by(
            models.Network.created_at, models.Network.id)).first()


def get_or_create_default(db: Database, project_id: str,
                          settings: IpamSettings,
                          host_routes: Routes) -> dict:
    """The project's default network, created on first use.

    No unique key can say "one default per project", so looking for it and
    creating it is one serializable transaction: of racing first uses one
    commits its network, the others fail to serialize, roll back (nothing
    of theirs was ever visible) and find the winner's on their retry.
    """
    with db.session() as session:
        row = _default_row(session, project_id)
        if row is not None:  # the usual case: no lock taken
            return network_dict(row)
    pool = _pool(settings)
    routes = list(host_routes())

    def attempt() -> dict:
        with db.session(serializable=True) as session:
            row = _default_row(session, project_id)
            if row is not None:
                return network_dict(row)
            return _insert_network(session, project_id,
                                   settings.default_network_name, settings,
                                   pool, routes, is_default=True)
    return retrying(attempt)


def get_network(db: Database, network_id: str,
                project_id: str | None = None) -> dict:
    """One network; another project's network is simply not found."""
    query = sa.select(models.Network).where(models.Network.id == network_id)
    if project_id is not None:
        query = query.where(models.Network.project_id == project_id)
    with db.session() as session:
        row = session.scalars(query).first()
        if row is None:
            raise exception.NotFound(
                f"Network {network_id} could not be found.")
        return network_dict(row)


def list_networks(db: Database, project_id: str | None = None,
                  ids: Iterable[str] | None = None,
                  names: Iterable[str] | None = None) -> list[dict]:
    """Networks, oldest first, filtered by owner, ids and names."""
    query = sa.select(models.Network)
    if project_id is not None:
        query = query.where(models.Network.project_id == project_id)
    if ids is not None:
        query = query.where(models.Network.id.in_(list(ids)))
    if names is not None:
        query = query.where(models.Network.name.in_(list(names)))
    query = query.order_by(models.Network.created_at, models.Network.id)
    with db.session() as session:
        return [network_dict(r) for r in session.scalars(query)]


# -- ports -------------------------------------------------------------------

def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def _checked_ip(network: models.Network, fixed_ip: str) -> str:
    subnet = ipaddress.IPv4Network(network.cidr)
    try:
        addr = ipaddress.ip_address(fixed_ip)
    except ValueError as err:
        raise exception.Invalid(
            f"Invalid fixed IP address ({fixed_ip})") from err
    if (addr not in subnet or addr in (
            subnet.network_address, subnet.broadcast_address,
            ipaddress.IPv4Address(network.gateway))):
        raise exception.Invalid(
            f"Fixed IP address {fixed_ip} is not a valid address of "
            f"network {network.id}: it must be a host address of "
            f"{network.cidr} other than the gateway {network.gateway}.")
    return str(addr)


def _free_ip(network: models.Network, used: set[str]) -> str:
    subnet = ipaddress.IPv4Network(network.cidr)
    for addr in subnet.hosts():
        text = str(addr)
        if text != network.gateway and text not in used:
            return text
    raise exception.Conflict(
        reason=f"No more IP addresses available on network {network.id} "
               f"({network.cidr}).")


def _add_port(session, network_id: str, project_id: str,
              instance_uuid: str | None, device_index: int,
              fixed_ip: str | None,
              in_use: type[exception.PyctError]) -> models.Port:
    network = session.get(models.Network, network_id)
    if network is None:
        raise exception.NotFound(f"Network {network_id} could not be found.")
    used = set(session.scalars(sa.select(models.Port.ip_address).where(
        models.Port.network_id == network_id)))
    if fixed_ip is not None:
        address = _checked_ip(network, fixed_ip)
        if address in used:
            raise in_use(f"Fixed IP address {address} is already in use on "
                         f"network {network_id}.")
    else:
        address = _free_ip(network, used)
    port = models.Port(
        id=str(uuidlib.uuid4()), network_id=network_id,
        project_id=project_id, instance_uuid=instance_uuid,
        mac_address=random_mac(), ip_address=address,
        device_index=device_index, status="DOWN")
    session.add(port)
    session.flush()
    return port


def allocate_ports(session, instance_uuid: str, project_id: str,
                   requests: Iterable[PortRequest],
                   in_use: type[exception.PyctError] = exception.Invalid
                   ) -> list[dict]:
    """Ports eth0, eth1… for a new instance, inside the caller's
    transaction (run it under ``retrying``)."""
    return [row_to_dict(_add_port(session, req.network_id, project_id,
                                  instance_uuid, index, req.fixed_ip, in_use))
            for index, req in enumerate(requests)]


def allocate_port(db: Database, instance_uuid: str, project_id: str,
                  network_id: str, fixed_ip: str | None = None) -> dict:
    """One more port for an existing instance, on its lowest free
    ``eth`` index; a taken ``fixed_ip`` is a Conflict."""
    def attempt() -> dict:
        with db.session() as session:
            indexes = set(session.scalars(
                sa.select(models.Port.device_index).where(
                    models.Port.instance_uuid == instance_uuid)))
            index = next(i for i in range(len(indexes) + 1)
                         if i not in indexes)
            return row_to_dict(_add_port(
                session, network_id, project_id, instance_uuid, index,
                fixed_ip, exception.Conflict))
    return retrying(attempt)


def release_instance_ports(session, instance_uuid: str) -> int:
    """Free every port of an instance inside the caller's transaction."""
    result = session.execute(sa.delete(models.Port).where(
        models.Port.instance_uuid == instance_uuid))
    return result.rowcount


def release_ports(db: Database, instance_uuid: str) -> int:
    """Free every port of an instance; the number freed (0 the second
    time, so a release happens exactly once)."""
    with db.session() as session:
        return release_instance_ports(session, instance_uuid)


def release_port(db: Database, port_id: str) -> bool:
    """Free one port; False if it was already free."""
    with db.session() as session:
        return session.execute(sa.delete(models.Port).where(
            models.Port.id == port_id)).rowcount == 1


def set_port_status(db: Database, status: str, port_id: str | None = None,
                    instance_uuid: str | None = None) -> None:
    """Mark one port, or every port of an instance, ACTIVE or DOWN."""
    query = sa.update(models.Port).values(status=status)
    if port_id is not None:
        query = query.where(models.Port.id == port_id)
    if instance_uuid is not None:
        query = query.where(models.Port.instance_uuid == instance_uuid)
    with db.session() as session:
        session.execute(query)


def list_ports(db: Database, project_id: str | None = None,
               instance_uuids: Iterable[str] | None = None,
               network_id: str | None = None,
               port_id: str | None = None) -> list[dict]:
    """Ports with their network (under ``network``), ordered by instance
    and ``eth`` index."""
    query = sa.select(models.Port, models.Network).join(
        models.Network, models.Port.network_id == models.Network.id)
    if project_id is not None:
        query = query.where(models.Port.project_id == project_id)
    if instance_uuids is not None:
        query = query.where(models.Port.instance_uuid.in_(
            list(instance_uuids)))
    if network_id is not None:
        query = query.where(models.Port.network_id == network_id)
    if port_id is not None:
        query = query.where(models.Port.id == port_id)
    query = query.order_by(models.Port.instance_uuid,
                           models.Port.device_index, models.Port.id)
    with db.session() as session:
        out = []
        for port, network in session.execute(query):
            values = row_to_dict(port)
            values["network"] = network_dict(network)
            out.append(values)
        return out
