"""Instance actions, their events, and instance faults.

Every user-visible operation on a server is an action (create, reboot,
stop, …) keyed by the request id that started it; the compute service adds
events (``compute_reboot_instance`` …) with a result, and a failure leaves a
fault row the API shows in the server's ``fault`` field.
"""

from __future__ import annotations

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import keyset, models
from pyct_driver.db.engine import Database, row_to_dict


def action_start(db: Database, instance_uuid: str, action: str,
                 request_id: str, user_id: str | None,
                 project_id: str | None) -> dict:
    with db.session() as session:
        row = models.InstanceAction(
            instance_uuid=instance_uuid, action=action,
            request_id=request_id, user_id=user_id, project_id=project_id,
            start_time=models.utcnow())
        session.add(row)
        session.flush()
        return row_to_dict(row)


def action_finish(db: Database, instance_uuid: str, request_id: str,
                  message: str | None = None) -> None:
    """Close an action that needed no compute host (e.g. a local delete)."""
    with db.session() as session:
        action = _find_action(session, instance_uuid, request_id)
        action.finish_time = models.utcnow()
        if message is not None:
            action.message = message


def _action_statement(events: bool) -> sa.Select:
    query = sa.select(models.InstanceAction).where(
        models.InstanceAction.instance_uuid == sa.bindparam("uuid"),
        models.InstanceAction.request_id == sa.bindparam("request_id")
    ).order_by(models.InstanceAction.id.desc())
    if not events:
        query = query.options(sa.orm.lazyload(models.InstanceAction.events))
    return query


# built once (each build's event start and finish read its action):
# each call skips building the clauses and SQLAlchemy's cache key walk
_ACTION = {events: _action_statement(events) for events in (False, True)}
_OPEN_EVENT = sa.select(models.InstanceActionEvent).where(
    models.InstanceActionEvent.action_id == sa.bindparam("action_id"),
    models.InstanceActionEvent.event == sa.bindparam("event")).order_by(
        models.InstanceActionEvent.id.desc())


def _find_action(session, instance_uuid: str, request_id: str,
                 events: bool = False) -> models.InstanceAction:
    """The action; its events loaded with it only when ``events`` (an
    event's start and finish on every build need not read them all)."""
    row = session.scalars(_ACTION[events], {
        "uuid": instance_uuid, "request_id": request_id}).first()
    if row is None:
        raise exception.ActionNotFound(request_id=request_id)
    return row


def event_start(db: Database, instance_uuid: str, request_id: str,
                event: str, host: str | None) -> None:
    with db.session() as session:
        action = _find_action(session, instance_uuid, request_id)
        session.add(models.InstanceActionEvent(
            action_id=action.id, event=event, start_time=models.utcnow(),
            host=host))


def event_finish(db: Database, instance_uuid: str, request_id: str,
                 event: str, result: str,
                 traceback: str | None = None,
                 details: str | None = None) -> None:
    """Close the newest open ``event``; a failed event marks the action;
    ``details`` is the event's 2.84 field."""
    now = models.utcnow()
    with db.session() as session:
        action = _find_action(session, instance_uuid, request_id)
        row = session.scalars(_OPEN_EVENT, {"action_id": action.id,
                                            "event": event}).first()
        if row is None:
            row = models.InstanceActionEvent(action_id=action.id,
                                             event=event, start_time=now)
            session.add(row)
        row.finish_time = now
        row.result = result
        row.traceback = traceback
        row.details = details
        action.finish_time = now
        if result == "Error":
            action.message = "Error"


def action_list(db: Database, instance_uuid: str, limit: int | None = None,
                marker: str | None = None, changes_since=None,
                changes_before=None) -> list[dict]:
    """An instance's actions, newest first; ``marker`` is the request id
    of the previous page's last action (2.58), ``changes_since`` and
    ``changes_before`` bound their last update."""
    A = models.InstanceAction
    order = [(A.created_at, "desc"), (A.id, "desc")]
    query = sa.select(A).where(A.instance_uuid == instance_uuid)
    stamp = sa.func.coalesce(A.updated_at, A.created_at)
    if changes_since is not None:
        query = query.where(stamp >= changes_since)
    if changes_before is not None:
        query = query.where(stamp <= changes_before)
    with db.session() as session:
        if marker is not None:
            mrow = session.scalars(sa.select(A).where(
                A.instance_uuid == instance_uuid,
                A.request_id == marker)).first()
            if mrow is None:
                raise exception.MarkerNotFound(marker=marker)
            query = query.where(keyset.after(order, mrow))
        query = query.order_by(*keyset.order_by(order))
        if limit is not None:
            query = query.limit(limit)
        return [row_to_dict(r) for r in session.scalars(query)]


def action_get(db: Database, instance_uuid: str, request_id: str) -> dict:
    """One action with its events under ``events``."""
    with db.session() as session:
        row = _find_action(session, instance_uuid, request_id,
                           events=True)
        values = row_to_dict(row)
        values["events"] = [row_to_dict(e) for e in row.events]
        return values


def fault_create(db: Database, instance_uuid: str, code: int,
                 message: str, details: str | None,
                 host: str | None) -> None:
    with db.session() as session:
        session.add(models.InstanceFault(
            instance_uuid=instance_uuid, code=code, message=message[:255],
            details=details, host=host))


def fault_latest(db: Database, instance_uuids: list[str]
                 ) -> dict[str, dict]:
    """The newest fault of each given instance."""
    if not instance_uuids:
        return {}
    out: dict[str, dict] = {}
    with db.session() as session:
        rows = session.scalars(sa.select(models.InstanceFault).where(
            models.InstanceFault.instance_uuid.in_(instance_uuids)).order_by(
                models.InstanceFault.id.desc()))
        for row in rows:
            out.setdefault(row.instance_uuid, row_to_dict(row))
    return out
