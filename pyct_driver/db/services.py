"""Service heartbeats and compute-node resource reports.

Each compute service upserts its ``services`` row every report interval
(the heartbeat) and its ``compute_nodes`` row with the capacity its driver
sees and the usage of its instances. The scheduler reads both to pick the
least-loaded node that is up and has room. Both rows are created by the
first report; racing first reports retry on their unique key.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database, row_to_dict


def heartbeat(db: Database, host: str, binary: str, topic: str) -> dict:
    """Record that ``binary`` on ``host`` is alive now."""
    def attempt() -> dict:
        with db.session() as session:
            row = session.scalars(sa.select(models.Service).where(
                models.Service.host == host,
                models.Service.binary == binary)).first()
            if row is None:  # a racing first beat makes us retry: unique
                row = models.Service(host=host, binary=binary, topic=topic,
                                     report_count=1)
                session.add(row)
            else:  # counted in SQL, so racing beats are not lost
                row.report_count = models.Service.report_count + 1
            row.last_seen_up = models.utcnow()
            session.flush()
            return row_to_dict(row)
    return db_networks.retrying(attempt)


def service_list(db: Database, binary: str | None = None) -> list[dict]:
    query = sa.select(models.Service).order_by(models.Service.id)
    if binary is not None:
        query = query.where(models.Service.binary == binary)
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(query)]


def service_set_disabled(db: Database, host: str, binary: str,
                         disabled: bool, reason: str | None = None) -> dict:
    with db.session() as session:
        row = session.scalars(sa.select(models.Service).where(
            models.Service.host == host,
            models.Service.binary == binary)).first()
        if row is None:
            raise exception.ServiceNotFound(host=host)
        row.disabled = disabled
        row.disabled_reason = reason if disabled else None
        session.flush()
        return row_to_dict(row)


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
                row = models.ComputeNode(host=host, **values)
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            session.flush()
            return row_to_dict(row)
    return db_networks.retrying(attempt)


def compute_node_list(db: Database) -> list[dict]:
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(
            sa.select(models.ComputeNode).order_by(models.ComputeNode.id))]
