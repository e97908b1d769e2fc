"""Server groups: a project's named placement policy and its members.

A group is created under the project's quota lock (``server_groups``
counted per project and per user, as Nova counts them); members join in
the transaction that inserts the servers (``member_guard``), so two
concurrent creates cannot both slip under ``server_group_members``.
Members are live instances: a deleted server leaves its group when its
row is soft-deleted (``members`` joins on live instances, and deleting a
group drops its member rows with it).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.group_models import InstanceGroup, InstanceGroupMember

_G, _M, _I = InstanceGroup, InstanceGroupMember, models.Instance


def _members(session, group_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    ids = list(group_ids)
    if not ids:
        return out
    rows = session.execute(
        sa.select(_M.group_id, _M.instance_uuid, _I.host)
        .join(_I, sa.and_(_I.uuid == _M.instance_uuid, _I.deleted == 0))
        .where(_M.group_id.in_(ids)).order_by(_I.id))
    for group_id, uuid, _host in rows:
        out.setdefault(group_id, []).append(uuid)
    return out


def _to_dict(row: InstanceGroup, members: list[str]) -> dict:
    values = row_to_dict(row)
    values["members"] = members
    return values


def _find(session, uuid: str, project_id: str | None) -> InstanceGroup:
    query = sa.select(_G).where(_G.uuid == uuid)
    if project_id is not None:
        query = query.where(_G.project_id == project_id)
    row = session.scalars(query).first()
    if row is None:
        raise exception.InstanceGroupNotFound(group_uuid=uuid)
    return row


def create(db: Database, values: dict,
           guard: Callable[[Any], None] | None = None) -> dict:
    """Insert a group; ``guard(session)`` (the quota check) runs first in
    the same transaction and may refuse."""
    with db.session() as session:
        if guard is not None:
            guard(session)
        row = _G(**values)
        session.add(row)
        session.flush()
        return _to_dict(row, [])


def get(db: Database, uuid: str, project_id: str | None = None) -> dict:
    """The group (404 if missing or, ``project_id`` given, another
    project's)."""
    with db.session() as session:
        row = _find(session, uuid, project_id)
        return _to_dict(row, _members(session, [row.id]).get(row.id, []))


def list_(db: Database, project_id: str | None, limit: int | None,
          offset: int) -> list[dict]:
    """Groups by creation order, one project's or (None) every one's."""
    query = sa.select(_G).order_by(_G.id).offset(offset)
    if project_id is not None:
        query = query.where(_G.project_id == project_id)
    if limit is not None:
        query = query.limit(limit)
    with db.session() as session:
        rows = list(session.scalars(query))
        members = _members(session, [r.id for r in rows])
        return [_to_dict(r, members.get(r.id, [])) for r in rows]


def delete(db: Database, uuid: str, project_id: str | None) -> None:
    with db.session() as session:
        row = _find(session, uuid, project_id)
        session.execute(sa.delete(_M).where(_M.group_id == row.id))
        session.delete(row)


def member_hosts(db: Database, group_id: int) -> dict[str, str | None]:
    """The group's live members and their hosts (the scheduler's view)."""
    with db.session() as session:
        return {uuid: host for uuid, host in session.execute(
            sa.select(_I.uuid, _I.host).join(
                _M, _M.instance_uuid == _I.uuid).where(
                    _M.group_id == group_id, _I.deleted == 0))}


def groups_of(db: Database, uuids: Iterable[str]) -> dict[str, str]:
    """Each instance's group uuid (for 2.71's ``server_groups``)."""
    uuids = list(uuids)
    if not uuids:
        return {}
    with db.session() as session:
        return dict(session.execute(
            sa.select(_M.instance_uuid, _G.uuid).join(
                _G, _G.id == _M.group_id).where(
                    _M.instance_uuid.in_(uuids))).all())


def member_guard(group: dict, uuids: list[str], limit: int,
                 inner: Callable[[Any], int]) -> Callable[[Any], int]:
    """A ``create_many`` guard: run ``inner`` (the instance quota check,
    which takes the project's quota lock), then let the first of
    ``uuids`` that fit under ``limit`` members (-1: no limit) join the
    group in the same transaction; fewer than ``inner`` allows is Nova's
    403."""
    def guard(session: Any) -> int:
        allowed = inner(session)
        if limit >= 0:
            have = len(_members(session, [group["id"]]).get(
                group["id"], []))
            if have + allowed > limit:
                raise exception.QuotaExceeded(
                    "Quota exceeded, too many servers in group")
        session.add_all(_M(instance_uuid=u, group_id=group["id"])
                        for u in uuids[:allowed])
        return allowed
    return guard
