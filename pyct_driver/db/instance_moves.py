"""Queries of the ``migrations`` table (instance moves between hosts).

pyct does not move instances yet, so nothing writes these rows; the list
still filters and pages as os-migrations defines, so the API is right the
day something does.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.models_hosts import Migration

FILTERS = ("status", "instance_uuid", "migration_type", "source_compute",
           "user_id", "project_id")


def list_(db: Database, filters: dict[str, str], host: str | None = None,
          since: datetime.datetime | None = None,
          before: datetime.datetime | None = None,
          limit: int | None = None, marker: str | None = None) -> list[dict]:
    """Visible migrations newest first; ``host`` matches either end."""
    query = sa.select(Migration).where(Migration.hidden.is_(False))
    for key, value in filters.items():
        query = query.where(getattr(Migration, key) == value)
    if host is not None:
        query = query.where(sa.or_(Migration.source_compute == host,
                                   Migration.dest_compute == host))
    changed = sa.func.coalesce(Migration.updated_at, Migration.created_at)
    if since is not None:
        query = query.where(changed >= since)
    if before is not None:
        query = query.where(changed <= before)
    with db.session() as session:
        if marker is not None:
            mrow = session.scalars(query.where(
                Migration.uuid == marker)).first()
            if mrow is None:
                raise exception.Invalid(
                    f"Marker {marker} could not be found.")
            query = query.where(sa.or_(
                Migration.created_at < mrow.created_at,
                sa.and_(Migration.created_at == mrow.created_at,
                        Migration.id < mrow.id)))
        query = query.order_by(Migration.created_at.desc(),
                               Migration.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [row_to_dict(r) for r in session.scalars(query)]
