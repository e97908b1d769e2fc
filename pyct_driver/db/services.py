"""Service heartbeats and compute-node resource reports.

Each compute service upserts its ``services`` row every report interval
(the heartbeat) and its ``compute_nodes`` row with the capacity its driver
sees and the usage of its instances. The scheduler reads both to pick the
least-loaded node that is up and has room. Both rows are created by the
first report; racing first reports retry on their unique key.
"""

from __future__ import annotations

import datetime
import uuid as uuidlib

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models, models_hosts
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import (Database, plain_select, read_columns,
                                   row_to_dict)


def heartbeat(db: Database, host: str, binary: str, topic: str,
              tunnel_address: str | None = None) -> dict:
    """Record that ``binary`` on ``host`` is alive now (and, for a compute
    service, its VXLAN endpoint: None or "" when it has none)."""
    def attempt() -> dict:
        with db.session() as session:
            row = session.scalars(sa.select(models.Service).where(
                models.Service.host == host,
                models.Service.binary == binary)).first()
            if row is None:  # a racing first beat makes us retry: unique
                row = models.Service(host=host, binary=binary, topic=topic,
                                     report_count=1,
                                     uuid=str(uuidlib.uuid4()))
                session.add(row)
            else:  # counted in SQL, so racing beats are not lost
                row.report_count = models.Service.report_count + 1
                if row.uuid is None:
                    row.uuid = str(uuidlib.uuid4())
            row.last_seen_up = models.utcnow()
            row.tunnel_address = tunnel_address or None
            session.flush()
            return row_to_dict(row)
    return db_networks.retrying(attempt)


# columns, not ORM objects, in statements built once: every placement
# reads both lists
_SERVICES = plain_select(models.Service).order_by(models.Service.id)
_SERVICES_OF = _SERVICES.where(models.Service.binary == sa.bindparam("binary"))
_NODES = plain_select(models.ComputeNode).order_by(models.ComputeNode.id)


def service_list(db: Database, binary: str | None = None) -> list[dict]:
    query = _SERVICES if binary is None else _SERVICES_OF
    with db.session() as session:
        return [dict(r) for r in read_columns(
            session, query, {"binary": binary}).mappings()]


def service_set_disabled(db: Database, host: str, binary: str,
                         disabled: bool, reason: str | None = None) -> dict:
    values = {"disabled": disabled,
              "disabled_reason": reason if disabled else None}
    return service_update(db, values, host=host, binary=binary)


def _service_clause(service_id: str | int | None, host: str | None,
                    binary: str | None) -> list:
    if service_id is None:
        return [models.Service.host == host, models.Service.binary == binary]
    if isinstance(service_id, int):
        return [models.Service.id == service_id]
    return [models.Service.uuid == service_id]


def service_get(db: Database, service_id: str | int) -> dict:
    """One service by its integer id or its uuid."""
    with db.session() as session:
        row = session.scalars(sa.select(models.Service).where(
            *_service_clause(service_id, None, None))).first()
        if row is None:
            raise exception.ServiceNotFound(host=service_id)
        return row_to_dict(row)


def service_update(db: Database, values: dict,
                   service_id: str | int | None = None,
                   host: str | None = None,
                   binary: str | None = None) -> dict:
    """Set ``values`` (disabled, disabled_reason, forced_down) on the
    service named by id/uuid or by host and binary."""
    with db.session() as session:
        row = session.scalars(sa.select(models.Service).where(
            *_service_clause(service_id, host, binary))).first()
        if row is None:
            raise exception.ServiceNotFound(host=service_id or host)
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        return row_to_dict(row)


def service_delete(db: Database, service_id: str | int) -> None:
    """Delete a service; the host's last one takes its compute node and
    aggregate memberships along. Refused (``HostHasInstances``) while a
    live instance is on the host, checked in the same transaction."""
    with db.session() as session:
        row = session.scalars(sa.select(models.Service).where(
            *_service_clause(service_id, None, None))).first()
        if row is None:
            raise exception.ServiceNotFound(host=service_id)
        if session.scalar(sa.select(sa.func.count()).where(
                models.Instance.host == row.host,
                models.Instance.deleted == 0)):
            raise exception.HostHasInstances(host=row.host)
        others = session.scalar(sa.select(sa.func.count()).select_from(
            models.Service).where(
            models.Service.host == row.host, models.Service.id != row.id))
        if not others:  # the host's last service: its node goes with it
            session.execute(sa.delete(models.ComputeNode).where(
                models.ComputeNode.host == row.host))
            session.execute(sa.delete(models_hosts.AggregateHost).where(
                models_hosts.AggregateHost.host == row.host))
        session.delete(row)


def is_up(service: dict, down_time_s: int) -> bool:
    seen = service.get("last_seen_up")
    if seen is None:
        return False
    age = models.utcnow() - seen
    return age <= datetime.timedelta(seconds=down_time_s)


def compute_node_report(db: Database, host: str, values: dict) -> dict:
    """Upsert ``host``'s capacity and usage."""
    def attempt() -> dict:
        with db.session() as session:
            row = session.scalars(sa.select(models.ComputeNode).where(
                models.ComputeNode.host == host)).first()
            if row is None:  # a racing first report makes us retry
                row = models.ComputeNode(host=host, **values,
                                         uuid=str(uuidlib.uuid4()))
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                if row.uuid is None:
                    row.uuid = str(uuidlib.uuid4())
            session.flush()
            return row_to_dict(row)
    return db_networks.retrying(attempt)


def compute_node_list(db: Database) -> list[dict]:
    with db.session() as session:
        return [dict(r) for r in read_columns(session, _NODES).mappings()]
