"""Server locks: the ``locked`` flag on the instance and, in
``instance_locks``, who locked it (``owner`` or ``admin``) and why.

Both change in one transaction so the list filter (``locked``) and the
views (``locked_reason``) never disagree. Deleting a server's lock row
goes with the server (``instances.soft_delete`` leaves it; ``delete_in``
is for callers that purge).
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database
from pyct_driver.db.group_models import InstanceLock

_I = models.Instance


def _set_flag(session, uuid: str, locked: bool) -> None:
    result = session.execute(sa.update(_I).where(
        _I.uuid == uuid, _I.deleted == 0).values(
            locked=locked, updated_at=models.utcnow()).execution_options(
                synchronize_session=False))
    if result.rowcount != 1:
        raise exception.InstanceNotFound(instance_id=uuid)


def lock(db: Database, uuid: str, locked_by: str,
         reason: str | None) -> None:
    """Lock a server (locking a locked one replaces who and why, as
    Nova's lock does)."""
    with db.session() as session:
        _set_flag(session, uuid, True)
        session.execute(sa.delete(InstanceLock).where(
            InstanceLock.instance_uuid == uuid))
        session.add(InstanceLock(instance_uuid=uuid, locked_by=locked_by,
                                 reason=reason))


def unlock(db: Database, uuid: str) -> None:
    with db.session() as session:
        _set_flag(session, uuid, False)
        session.execute(sa.delete(InstanceLock).where(
            InstanceLock.instance_uuid == uuid))


def by_instance(db: Database, uuids: Iterable[str]) -> dict[str, dict]:
    """Each locked instance's ``{"locked_by", "reason"}``."""
    uuids = list(uuids)
    if not uuids:
        return {}
    with db.session() as session:
        return {row.instance_uuid: {"locked_by": row.locked_by,
                                    "reason": row.reason}
                for row in session.scalars(sa.select(InstanceLock).where(
                    InstanceLock.instance_uuid.in_(uuids)))}
