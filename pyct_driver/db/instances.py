"""Instance queries, and the compare-and-swap every state change goes through.

Rows leave this module as plain dicts (with ``metadata`` under that name), so
nothing above the database holds a session. ``update`` with
``expected_task_state`` is the one way to change an instance's state: the
UPDATE's WHERE clause carries the expectation, so of two racing requests
exactly one wins and the other gets ``InstanceInvalidState`` (a 409).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import sqlalchemy as sa
from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.db import idranges as db_idranges
from pyct_driver.db import instance_list
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db import quotas as db_quotas
from pyct_driver.db import regex_filter
from pyct_driver.db import resizes as db_resizes
from pyct_driver.db import tags as db_tags
from pyct_driver.db.claim_models import RequestClaim
from pyct_driver.db.engine import (Database, plain_select, read_columns,
                                   row_to_dict)

LOG = logging.getLogger(__name__)
UNSET: Any = object()
_STATE_FIELDS = ("vm_state", "task_state", "power_state")
_STATE_COLUMNS = tuple(getattr(models.Instance, f) for f in _STATE_FIELDS)
# an instance's columns under their attribute names (``_to_dict``'s keys)
_ROW = plain_select(models.Instance)


def _shown(field: str, value: Any) -> str:
    if field == "power_state":
        return states.POWER_STATE_NAMES.get(value, str(value))
    return str(value)


def _log_states(uuid: str, before: tuple | None, after: dict,
                note: str = "") -> None:
    """The one INFO line an instance's state change gets: each field that
    changed, old -> new (``before`` None: the instance is new)."""
    if before is None:
        parts = [f"{f} {_shown(f, after[f])}" for f in _STATE_FIELDS[:2]]
    else:
        parts = [f"{f} {_shown(f, old)} -> {_shown(f, after[f])}"
                 for f, old in zip(_STATE_FIELDS, before)
                 if old != after[f]]
    if parts:
        LOG.info("%s%s", note, ", ".join(parts), instance_uuid=uuid)


def _to_dict(row: models.Instance) -> dict:
    return _renamed(row_to_dict(row))


def _renamed(values: dict) -> dict:
    values["metadata"] = values.pop("instance_metadata") or {}
    return values


def _from_values(values: dict) -> dict:
    values = dict(values)
    if "metadata" in values:
        values["instance_metadata"] = values.pop("metadata")
    return values


def create_many(db: Database, rows: list[dict],
                action: dict | None = None,
                faults: dict[str, dict] | None = None,
                ports: dict[str, list[db_networks.PortRequest]] | None = None,
                guard: Callable[[Any], int] | None = None,
                tags: list[str] | None = None) -> list[dict]:
    """Insert instances in one transaction: all are created, or none.

    ``action`` (action, request_id, user_id, project_id) starts that
    instance action for each; ``faults`` maps a uuid to the fault (code,
    message, details, host) it is born with, e.g. NoValidHost; ``ports``
    maps a uuid to the ports (eth0, eth1…) allocated with it — an address
    that cannot be had fails the whole transaction, which is retried
    while it merely lost a race for an address. ``guard`` (a quota check)
    runs first in the transaction, given the session, and says how many
    of ``rows`` (the first ones) to insert, or raises to insert none;
    ``tags`` (2.52) are every new instance's.
    """
    def attempt() -> list[dict]:
        now = models.utcnow()
        with db.session() as session:
            keep = guard(session) if guard is not None else len(rows)
            objs = [models.Instance(**_from_values(r)) for r in rows[:keep]]
            session.add_all(objs)
            for obj in objs:
                if action is not None:
                    session.add(models.InstanceAction(
                        instance_uuid=obj.uuid, start_time=now, **action))
                fault = (faults or {}).get(obj.uuid)
                if fault is not None:
                    session.add(models.InstanceFault(
                        instance_uuid=obj.uuid, **fault))
                if tags:
                    db_tags.add_in(session, obj.uuid, tags)
            session.flush()
            for obj in objs:
                wanted = (ports or {}).get(obj.uuid)
                if wanted:
                    db_networks.allocate_ports(session, obj.uuid,
                                               obj.project_id, wanted)
            return [_to_dict(o) for o in objs]
    created = db_networks.retrying(attempt) if ports else attempt()
    for inst in created:
        _log_states(inst["uuid"], None, inst,
                    f"created on {inst['host'] or 'no host'}: ")
    return created


def get(db: Database, uuid: str, project_id: str | None = None,
        read_deleted: bool = False) -> dict:
    """One instance; another project's instance is simply not found."""
    # columns, not an ORM object, and a statement built once: a client
    # polling for ACTIVE asks for this many times per boot
    query = _GET[read_deleted, project_id is not None]
    with db.session() as session:
        row = read_columns(session, query, {
            "uuid": uuid, "project_id": project_id}).mappings().first()
    if row is None:
        raise exception.InstanceNotFound(instance_id=uuid)
    return _renamed(dict(row))


def _get_statement(read_deleted: bool, by_project: bool) -> sa.Select:
    query = _ROW.where(models.Instance.uuid == sa.bindparam("uuid"))
    if not read_deleted:
        query = query.where(models.Instance.deleted == 0)
    if by_project:
        query = query.where(
            models.Instance.project_id == sa.bindparam("project_id"))
    return query.order_by(models.Instance.deleted)


# ``get``'s statements by (read_deleted, by project): built once, so each
# call skips building the clauses and SQLAlchemy's cache key walk
_GET = {(deleted, by_project): _get_statement(deleted, by_project)
        for deleted in (False, True) for by_project in (False, True)}
# ``update``'s read of the states before (for its log line)
_STATES = sa.select(*_STATE_COLUMNS).where(
    models.Instance.uuid == sa.bindparam("uuid"),
    models.Instance.deleted == 0)


def _status_clause(statuses: Iterable[str]) -> sa.ColumnElement[bool]:
    clauses = []
    for status in statuses:
        for vm_state, task_state in states.vm_states_for_status(status):
            if task_state is None:
                clauses.append(models.Instance.vm_state == vm_state)
            else:
                clauses.append(sa.and_(
                    models.Instance.vm_state == vm_state,
                    models.Instance.task_state == task_state))
    return sa.or_(*clauses) if clauses else sa.false()


def list_(db: Database, project_id: str | None = None,
          name: str | None = None, statuses: Iterable[str] = (),
          host: str | None = None, limit: int | None = None,
          marker: str | None = None, include_deleted: bool = False,
          changes_since: Any = None) -> list[dict]:
    """Instances newest first, filtered and paged like Nova's list.

    ``name`` is a regular expression searched for in the name, as in Nova,
    in bounded time (``regex_filter``: ``InvalidInput`` if it cannot be);
    ``marker`` is the uuid of the last instance of the previous page.
    """
    found = None if name is None else regex_filter.compile_filter(name)
    query = sa.select(models.Instance)
    if not include_deleted:
        query = query.where(models.Instance.deleted == 0)
    if project_id is not None:
        query = query.where(models.Instance.project_id == project_id)
    if host is not None:
        query = query.where(models.Instance.host == host)
    if changes_since is not None:
        query = query.where(sa.func.coalesce(
            models.Instance.updated_at,
            models.Instance.created_at) >= changes_since)
    statuses = list(statuses)
    if statuses:
        query = query.where(_status_clause(statuses))
    order = (models.Instance.created_at.desc(), models.Instance.id.desc())
    with db.session() as session:
        if marker is not None:
            mrow = session.scalars(query.where(
                models.Instance.uuid == marker)).first()
            if mrow is None:
                raise exception.InvalidInput(
                    reason=f"marker [{marker}] not found")
            query = query.where(sa.or_(
                models.Instance.created_at < mrow.created_at,
                sa.and_(models.Instance.created_at == mrow.created_at,
                        models.Instance.id < mrow.id)))
        query = query.order_by(*order)
        if found is None and limit is not None:
            query = query.limit(limit)
        rows = [_to_dict(r) for r in session.scalars(query)]
    if found is not None:
        rows = [r for r in rows if found(r["name"])]
        if limit is not None:
            rows = rows[:limit]
    return rows


def list_matching(db: Database, query: instance_list.Query) -> list[dict]:
    """The server list API's query (``instance_list``)."""
    return instance_list.list_(db, query, _renamed)


def update(db: Database, uuid: str, values: dict,
           expected_task_state: Any = UNSET,
           expected_vm_state: Any = UNSET, action: str = "update",
           start_action: dict | None = None) -> dict:
    """Change an instance if its state is what the caller expects.

    ``expected_task_state`` / ``expected_vm_state`` may be a value, ``None``
    or a tuple of allowed values. A mismatch raises ``InstanceInvalidState``.
    ``start_action`` (request_id, user_id, project_id) starts the instance
    action ``action`` in the same transaction: a database that drops the
    connection leaves both or neither, never a task state no action
    explains.
    """
    conds = [models.Instance.uuid == uuid, models.Instance.deleted == 0]
    for column, expected in ((models.Instance.task_state,
                              expected_task_state),
                             (models.Instance.vm_state, expected_vm_state)):
        if expected is UNSET:
            continue
        allowed = expected if isinstance(expected, (tuple, list, set)) \
            else (expected,)
        parts = [column.is_(None) if v is None else column == v
                 for v in allowed]
        conds.append(sa.or_(*parts))
    values = _from_values(values)
    values["updated_at"] = models.utcnow()
    watched = not values.keys().isdisjoint(_STATE_FIELDS)
    with db.session() as session:
        # read for the log line only; the CAS below decides
        before = tuple(read_columns(session, _STATES, {"uuid": uuid}
                                    ).first() or ()) if watched else None
        result = session.execute(sa.update(models.Instance).where(
            *conds).values(**values).execution_options(
                synchronize_session=False))
        row = read_columns(session, _GET[False, False], {"uuid": uuid}
                           ).mappings().first()
        if row is None:
            raise exception.InstanceNotFound(instance_id=uuid)
        if result.rowcount != 1:
            if (expected_task_state is not UNSET and not _matches(
                    row["task_state"], expected_task_state)):
                attr, state = "task_state", row["task_state"]
            else:
                attr, state = "vm_state", row["vm_state"]
            raise exception.InstanceInvalidState(
                action=action, instance_id=uuid, attr=attr, state=state)
        if start_action is not None:
            session.add(models.InstanceAction(
                instance_uuid=uuid, action=action,
                start_time=models.utcnow(), **start_action))
        after = _renamed(dict(row))
    if before:
        _log_states(uuid, before, after)
    return after


def _matches(value: Any, expected: Any) -> bool:
    if isinstance(expected, (tuple, list, set)):
        return value in expected
    return value == expected


def soft_delete(db: Database, uuid: str) -> dict:
    """Mark an instance deleted, freeing its uuid slot."""
    with db.session() as session:
        before, after = soft_delete_in(session, uuid)
    _log_states(uuid, before, after)
    return after


def soft_delete_in(session: sa.orm.Session, uuid: str
                   ) -> tuple[tuple, dict]:
    """``soft_delete`` inside the caller's transaction: the states
    before, and the row after."""
    now = models.utcnow()
    row = session.scalars(sa.select(models.Instance).where(
        models.Instance.uuid == uuid,
        models.Instance.deleted == 0)).first()
    if row is None:
        raise exception.InstanceNotFound(instance_id=uuid)
    before = (row.vm_state, row.task_state, row.power_state)
    row.deleted = row.id
    row.deleted_at = now
    row.terminated_at = now
    row.vm_state = states.DELETED
    row.task_state = None
    row.power_state = states.NOSTATE
    # the ports go with the row, in its transaction: released once
    db_networks.release_instance_ports(session, uuid)
    # and so does its uid/gid range (after the driver's destroy)
    db_idranges.release_in(session, uuid)
    db_tags.delete_in(session, uuid)
    # its request claims too: a cast that comes later finds no row to act
    # on, so they have nothing left to guard
    session.execute(sa.delete(RequestClaim).where(
        RequestClaim.instance_uuid == uuid))
    session.flush()
    return before, _to_dict(row)


def _usage_by_host_statement() -> sa.Select:
    flavor = models.Instance.flavor
    disk = sa.func.coalesce(sa.func.sum(
        sa.func.coalesce(flavor["root_gb"].as_integer(), 0)
        + sa.func.coalesce(flavor["ephemeral_gb"].as_integer(), 0)), 0)
    return sa.select(
        models.Instance.host, sa.func.count(),
        sa.func.count(models.Instance.task_state),
        db_quotas.flavor_sum("vcpus"), db_quotas.flavor_sum("memory_mb"),
        disk).where(models.Instance.deleted == 0,
                    models.Instance.host.is_not(None)).group_by(
        models.Instance.host)


# built once: every placement (each boot) reads it
_USAGE_BY_HOST = _usage_by_host_statement()


def usage_by_host(db: Database) -> dict[str, dict[str, int]]:
    """Resources claimed by live instances, per host (``busy``: those
    with a task under way, Nova's current_workload), summed by the
    database (one row per host, however many instances), and by the
    moves between hosts still open: the host a moving server's row does
    not name holds that end's flavor too, as Nova's placement keeps the
    migration's allocation -- the destination the new flavor from the
    start, the source the old one until the move is confirmed or
    reverted (a VERIFY_RESIZE server's source keeps its stopped copy,
    and a revert must find its room there)."""
    empty = {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "instances": 0,
             "busy": 0}
    with db.session() as session:
        usage = {host: {"vcpus": int(vcpus), "memory_mb": int(ram),
                        "local_gb": int(gb), "instances": int(count),
                        "busy": int(busy)}
                 for host, count, busy, vcpus, ram, gb
                 in read_columns(session, _USAGE_BY_HOST)}
        for host, held in db_resizes.held_by_moves(session):
            u = usage.setdefault(host, dict(empty))
            u["vcpus"] += int(held.get("vcpus", 0))
            u["memory_mb"] += int(held.get("memory_mb", 0))
            u["local_gb"] += int(held.get("root_gb", 0)) + int(
                held.get("ephemeral_gb", 0))
    return usage
