"""Server tags (2.26): at most ``MAX_TAGS`` short strings per server.

A tag row belongs to an instance by uuid; the rows go with the instance's
(``instances.soft_delete`` does not keep them: a deleted server lists no
tags). Lists come back sorted, the order Nova's primary key gives them.
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, read_columns

MAX_TAGS = 50
_T = models.Tag
# built once: a status poll (2.26 and later) reads the server's tags
_BY_INSTANCE = sa.select(_T.resource_id, _T.tag).where(_T.resource_id.in_(
    sa.bindparam("uuids", expanding=True))).order_by(_T.tag)


def get(db: Database, instance_uuid: str) -> list[str]:
    return by_instance(db, [instance_uuid]).get(instance_uuid, [])


def by_instance(db: Database, uuids: Iterable[str]
                ) -> dict[str, list[str]]:
    """Each instance's tags, sorted."""
    uuids = list(uuids)
    out: dict[str, list[str]] = {}
    if not uuids:
        return out
    with db.session() as session:
        for uuid, tag in read_columns(session, _BY_INSTANCE,
                                      {"uuids": uuids}):
            out.setdefault(uuid, []).append(tag)
    return out


def add(db: Database, instance_uuid: str, tag: str) -> bool:
    """Add one tag; False if the server had it. Over ``MAX_TAGS`` is a
    400 (checked in the same transaction as the insert)."""
    with db.session() as session:
        have = set(session.scalars(sa.select(_T.tag).where(
            _T.resource_id == instance_uuid)))
        if len(have) >= MAX_TAGS:
            raise exception.Invalid(
                "The number of tags exceeded the per-server limit "
                f"{MAX_TAGS}")
        if tag in have:
            return False
        session.add(_T(resource_id=instance_uuid, tag=tag))
    return True


def replace(db: Database, instance_uuid: str, tags: Iterable[str]
            ) -> list[str]:
    """Make the server's tags exactly ``tags``; the new sorted list."""
    wanted = sorted(set(tags))
    with db.session() as session:
        session.execute(sa.delete(_T).where(_T.resource_id == instance_uuid))
        session.add_all(_T(resource_id=instance_uuid, tag=t) for t in wanted)
    return wanted


def add_in(session, instance_uuid: str, tags: Iterable[str]) -> None:
    """A new server's tags, inside its creating transaction."""
    session.add_all(_T(resource_id=instance_uuid, tag=t)
                    for t in sorted(set(tags)))


def delete(db: Database, instance_uuid: str, tag: str | None = None) -> None:
    """Remove one tag (404 if the server lacks it) or, ``tag`` None, all."""
    query = sa.delete(_T).where(_T.resource_id == instance_uuid)
    if tag is not None:
        query = query.where(_T.tag == tag)
    with db.session() as session:
        if session.execute(query).rowcount == 0 and tag is not None:
            raise exception.InstanceTagNotFound(instance_id=instance_uuid,
                                                tag=tag)


def delete_in(session, instance_uuid: str) -> None:
    session.execute(sa.delete(_T).where(_T.resource_id == instance_uuid))
