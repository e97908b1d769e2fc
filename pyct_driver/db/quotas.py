"""Quota rows and usage counts, and the lock that makes enforcement exact.

Limits are stored as Nova stores them: a project's own limits (and a
user's within a project) in ``quotas``, quota classes in
``quota_classes``; resolving them into effective limits is
``api.quota_check``'s work. Usage is counted from the rows themselves
(live instances, a user's key pairs), never kept in a counter that could
drift. A create that must stay within a quota calls ``lock`` first in its
own transaction: it holds the scope's ``quota_locks`` row (SELECT ... FOR
UPDATE; on SQLite the database's write lock) while it counts and inserts,
so a racing create counts only after this one committed or rolled back.
Counting runs at READ COMMITTED so that it sees what the previous lock
holder committed (MariaDB's default REPEATABLE READ could otherwise read
an older snapshot).
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, read_columns
from pyct_driver.db.group_models import InstanceGroup
from pyct_driver.db.quota_models import Quota, QuotaClass, QuotaLock

Limits = dict[str, int]


def project_scope(project_id: str) -> str:
    return f"project:{project_id}"


def user_scope(user_id: str) -> str:
    return f"user:{user_id}"


def class_get(db: Database, class_name: str) -> Limits:
    with db.session() as session:
        return dict(session.execute(sa.select(
            QuotaClass.resource, QuotaClass.hard_limit).where(
                QuotaClass.class_name == class_name)).all())


def project_get(db: Database, project_id: str, user_id: str = ""
                ) -> Limits:
    """The limits set for the project itself (``user_id`` '') or for one
    user within it; resources not set are absent."""
    with db.session() as session:
        return dict(session.execute(sa.select(
            Quota.resource, Quota.hard_limit).where(
                Quota.project_id == project_id,
                Quota.user_id == user_id)).all())


# ``own_limits``'s statements, built once: every server create runs them
_CLASS_LIMITS = sa.select(QuotaClass.resource, QuotaClass.hard_limit).where(
    QuotaClass.class_name == sa.bindparam("class_name"))
_OWN_LIMITS = sa.select(Quota.user_id, Quota.resource, Quota.hard_limit).where(
    Quota.project_id == sa.bindparam("project_id"),
    Quota.user_id.in_([sa.literal(""), sa.bindparam("user_id")]))


def own_limits(db: Database, class_name: str, project_id: str,
               user_id: str = "") -> tuple[Limits, Limits, Limits]:
    """``class_get``, ``project_get`` of the project and (``user_id``
    given) of the user, in one transaction of two statements: every
    server create resolves all three."""
    with db.session() as session:
        cls = dict(read_columns(session, _CLASS_LIMITS,
                                {"class_name": class_name}).all())
        project: Limits = {}
        user: Limits = {}
        # the user's rows and the project's (user_id ""), or the latter
        for owner, resource, limit in read_columns(session, _OWN_LIMITS, {
                "project_id": project_id, "user_id": user_id}):
            (user if owner else project)[resource] = limit
    return cls, project, user


def user_limits_in(db: Database, project_id: str) -> dict[str, Limits]:
    """Every user's own limits within a project, by user."""
    out: dict[str, Limits] = {}
    with db.session() as session:
        for user, resource, limit in session.execute(sa.select(
                Quota.user_id, Quota.resource, Quota.hard_limit).where(
                    Quota.project_id == project_id, Quota.user_id != "")):
            out.setdefault(user, {})[resource] = limit
    return out


def _upsert(db: Database, model: type, keys: dict[str, str],
            values: Limits) -> None:
    """Set ``values`` on the rows matching ``keys``, inserting the missing
    ones; a racing insert of the same row is retried as an update."""
    for attempt in range(3):
        try:
            with db.session() as session:
                where = [getattr(model, k) == v for k, v in keys.items()]
                rows = {r.resource: r for r in session.scalars(
                    sa.select(model).where(*where))}
                for resource, limit in values.items():
                    if resource in rows:
                        rows[resource].hard_limit = limit
                    else:
                        session.add(model(resource=resource,
                                          hard_limit=limit, **keys))
            return
        except exception.DBError as err:
            if attempt == 2 or not isinstance(err.__cause__,
                                              sa_exc.IntegrityError):
                raise


def project_set(db: Database, project_id: str, user_id: str,
                values: Limits) -> None:
    _upsert(db, Quota, {"project_id": project_id, "user_id": user_id},
            values)


def class_set(db: Database, class_name: str, values: Limits) -> None:
    _upsert(db, QuotaClass, {"class_name": class_name}, values)


def project_delete(db: Database, project_id: str,
                   user_id: str | None = None) -> None:
    """Drop a project's limits (with its users'), or one user's."""
    query = sa.delete(Quota).where(Quota.project_id == project_id)
    if user_id is not None:
        query = query.where(Quota.user_id == user_id)
    with db.session() as session:
        session.execute(query)


def usage(session: Session, project_id: str,
          user_id: str | None = None) -> Limits:
    """What the project (or one user of it) uses now: live instances with
    their flavors' cores and RAM (BUILD and ERROR ones too, as Nova
    counts them), server groups and, for a user, their key pairs."""
    used = instance_usage(session, project_id, user_id)
    if user_id is not None:
        used["key_pairs"] = keypair_count(session, user_id)
    used["server_groups"] = group_count(session, project_id, user_id)
    return used


def flavor_sum(key: str) -> sa.ColumnElement:
    """SUM of the instances' flavor snapshot ``key`` (0 when none), added
    up by the database: a boot's quota count and placement stay one row
    per project or host however many servers there are."""
    return sa.func.coalesce(sa.func.sum(
        models.Instance.flavor[key].as_integer()), 0)


def instance_usage(session: Session, project_id: str,
                   user_id: str | None = None) -> Limits:
    """The instances, cores and RAM the project (or one user of it)
    uses: live instances, BUILD and ERROR ones too, as Nova counts."""
    count, cores, ram = read_columns(
        session, _USAGE[user_id is not None],
        {"project_id": project_id, "user_id": user_id}).one()
    return {"instances": int(count), "cores": int(cores), "ram": int(ram)}


def _usage_statement(by_user: bool) -> sa.Select:
    query = sa.select(sa.func.count(), flavor_sum("vcpus"),
                      flavor_sum("memory_mb")).where(
        models.Instance.deleted == 0,
        models.Instance.project_id == sa.bindparam("project_id"))
    if by_user:
        query = query.where(models.Instance.user_id == sa.bindparam("user_id"))
    return query


# built once (every boot counts): by project, and by one user of it
_USAGE = {by_user: _usage_statement(by_user) for by_user in (False, True)}


def group_count(session: Session, project_id: str,
                user_id: str | None = None) -> int:
    """The project's (or one user's) server groups."""
    query = sa.select(sa.func.count()).select_from(InstanceGroup).where(
        InstanceGroup.project_id == project_id)
    if user_id is not None:
        query = query.where(InstanceGroup.user_id == user_id)
    return int(session.scalar(query))


def keypair_count(session: Session, user_id: str) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(
        models.KeyPair).where(models.KeyPair.user_id == user_id)))


def usage_of(db: Database, project_id: str,
             user_id: str | None = None) -> Limits:
    with db.session() as session:
        return usage(session, project_id, user_id)


def ensure_locks(db: Database, scopes: Iterable[str]) -> None:
    """Create the lock rows of ``scopes`` that do not exist yet (in their
    own transactions: a unique-key race must not abort the create's)."""
    scopes = sorted(set(scopes))
    with db.session() as session:
        have = set(session.scalars(sa.select(QuotaLock.scope).where(
            QuotaLock.scope.in_(scopes))))
    for scope in scopes:
        if scope in have:
            continue
        try:
            with db.session() as session:
                session.add(QuotaLock(scope=scope))
        except exception.DBError as err:
            if not isinstance(err.__cause__, sa_exc.IntegrityError):
                raise


def lock(session: Session, scopes: Iterable[str]) -> None:
    """Hold ``scopes`` (rows made by ``ensure_locks``) until the session's
    transaction ends. Must be the transaction's first statement."""
    if session.get_bind().dialect.name == "sqlite":
        # one writer at a time: take the write lock before counting
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        return
    session.connection(
        execution_options={"isolation_level": "READ COMMITTED"})
    session.execute(sa.select(QuotaLock.scope).where(
        QuotaLock.scope.in_(sorted(set(scopes)))).order_by(
            QuotaLock.scope).with_for_update()).all()
