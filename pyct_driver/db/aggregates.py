"""Host aggregates and the availability zones they give their hosts.

An aggregate is a name, a set of hosts and string metadata; its
``availability_zone`` metadata key puts its hosts in that zone, as in
Nova. Rows leave as dicts ``{id, uuid, name, hosts, metadata,
availability_zone, created_at, updated_at}``. The zone rules that need
more than one row (a host in two zones, moving hosts that have
instances) are checked by ``api.aggregates`` against ``host_zones``
before it writes; the unique keys here make a racing duplicate a
``Duplicate``.
"""

from __future__ import annotations

import uuid as uuidlib

import sqlalchemy as sa
import sqlalchemy.exc

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database
from pyct_driver.db.models_hosts import (Aggregate, AggregateHost,
                                         AggregateMetadata)

ZONE_KEY = "availability_zone"


def _to_dict(row: Aggregate) -> dict:
    metadata = {m.key: m.value for m in row.metadata_items}
    return {"id": row.id, "uuid": row.uuid, "name": row.name,
            "hosts": [h.host for h in row.hosts], "metadata": metadata,
            "availability_zone": metadata.get(ZONE_KEY),
            "created_at": row.created_at, "updated_at": row.updated_at}


def _get(session, aggregate_id: int) -> Aggregate:
    row = session.get(Aggregate, aggregate_id)
    if row is None:
        raise exception.AggregateNotFound(aggregate_id=aggregate_id)
    return row


def _name_taken(session, name: str, but: int | None = None) -> None:
    query = sa.select(Aggregate.id).where(Aggregate.name == name)
    if but is not None:
        query = query.where(Aggregate.id != but)
    if session.scalar(query) is not None:
        raise exception.Duplicate(f"Aggregate {name} already exists.")


def _flush(session, name: str) -> None:
    try:
        session.flush()
    except sqlalchemy.exc.IntegrityError as err:  # a racing twin won
        raise exception.Duplicate(
            f"Aggregate {name} already exists.") from err


def create(db: Database, name: str, zone: str | None) -> dict:
    with db.session() as session:
        _name_taken(session, name)
        row = Aggregate(name=name, uuid=str(uuidlib.uuid4()))
        if zone:
            row.metadata_items.append(AggregateMetadata(key=ZONE_KEY,
                                                        value=zone))
        session.add(row)
        _flush(session, name)
        return _to_dict(row)


def get(db: Database, aggregate_id: int) -> dict:
    with db.session() as session:
        return _to_dict(_get(session, aggregate_id))


def list_(db: Database) -> list[dict]:
    with db.session() as session:
        return [_to_dict(r) for r in session.scalars(
            sa.select(Aggregate).order_by(Aggregate.id))]


def update(db: Database, aggregate_id: int, name: str | None = None,
           metadata: dict | None = None) -> dict:
    """Rename and/or merge ``metadata`` (a None value deletes its key)."""
    with db.session() as session:
        row = _get(session, aggregate_id)
        if name is not None:
            _name_taken(session, name, but=row.id)
            row.name = name
        items = {m.key: m for m in row.metadata_items}
        for key, value in (metadata or {}).items():
            if value is None:
                if key in items:
                    row.metadata_items.remove(items.pop(key))
            elif key in items:
                items[key].value = str(value)
            else:
                items[key] = AggregateMetadata(key=key, value=str(value))
                row.metadata_items.append(items[key])
        row.updated_at = models.utcnow()
        _flush(session, row.name)
        return _to_dict(row)


def delete(db: Database, aggregate_id: int) -> None:
    """Delete an aggregate that has no hosts left (Nova's rule)."""
    with db.session() as session:
        row = _get(session, aggregate_id)
        if row.hosts:
            raise exception.Invalid(
                f"Cannot remove host from aggregate {aggregate_id}. "
                "Reason: Host aggregate is not empty.")
        session.delete(row)


def add_host(db: Database, aggregate_id: int, host: str) -> dict:
    with db.session() as session:
        row = _get(session, aggregate_id)
        if host in {h.host for h in row.hosts}:
            raise exception.Conflict(
                f"Aggregate {aggregate_id} already has host {host}.")
        row.hosts.append(AggregateHost(host=host))
        try:
            session.flush()
        except sqlalchemy.exc.IntegrityError as err:
            raise exception.Conflict(
                f"Aggregate {aggregate_id} already has host {host}."
            ) from err
        return _to_dict(row)


def remove_host(db: Database, aggregate_id: int, host: str) -> dict:
    with db.session() as session:
        row = _get(session, aggregate_id)
        found = [h for h in row.hosts if h.host == host]
        if not found:
            raise exception.NotFound(
                f"Cannot remove host {host} in aggregate {aggregate_id}")
        row.hosts.remove(found[0])
        session.flush()
        return _to_dict(row)


def host_zones(db: Database) -> dict[str, dict[int, str]]:
    """host -> {aggregate id: zone} for every host in a zoned aggregate."""
    query = sa.select(AggregateHost.host, AggregateMetadata.aggregate_id,
                      AggregateMetadata.value).join(
        AggregateMetadata,
        AggregateMetadata.aggregate_id == AggregateHost.aggregate_id).where(
        AggregateMetadata.key == ZONE_KEY)
    out: dict[str, dict[int, str]] = {}
    with db.session() as session:
        for host, agg_id, zone in session.execute(query):
            out.setdefault(host, {})[agg_id] = zone
    return out


def zone_of(zones: dict[str, dict[int, str]], host: str,
            default_zone: str) -> str:
    """The zone a host is in: its aggregates' (Nova joins several with a
    comma), else the default zone."""
    names = sorted(set(zones.get(host, {}).values()))
    return ",".join(names) if names else default_zone
