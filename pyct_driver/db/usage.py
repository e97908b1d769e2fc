"""The instances a usage report bills: those running at some time in a
window, deleted ones included (os-simple-tenant-usage).

An instance counts from ``launched_at`` (set when its guest first ran)
to ``terminated_at`` (set when it was deleted); one never launched costs
nothing and is left out. Ordered by creation, paged by instance uuid.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict


def active_in_window(db: Database, start: datetime.datetime,
                     stop: datetime.datetime, project_id: str | None = None,
                     limit: int | None = None, marker: str | None = None
                     ) -> list[dict]:
    inst = models.Instance
    query = sa.select(inst).where(
        inst.launched_at.is_not(None), inst.launched_at < stop,
        sa.or_(inst.terminated_at.is_(None), inst.terminated_at > start))
    if project_id is not None:
        query = query.where(inst.project_id == project_id)
    with db.session() as session:
        if marker is not None:
            mrow = session.scalars(query.where(inst.uuid == marker)).first()
            if mrow is None:
                raise exception.Invalid(f"Marker {marker} could not be "
                                        "found.")
            query = query.where(sa.or_(
                inst.created_at > mrow.created_at,
                sa.and_(inst.created_at == mrow.created_at,
                        inst.id > mrow.id)))
        query = query.order_by(inst.created_at, inst.id)
        if limit is not None:
            query = query.limit(limit)
        return [row_to_dict(r) for r in session.scalars(query)]
