"""Queries of a resize's records: its ``migrations`` row (what
os-migrations lists) and its ``instance_flavor_changes`` row (both flavor
snapshots), always written together.

Statuses are Nova's for a resize: ``pre-migrating`` (accepted),
``migrating`` (being applied; a move: being sent), ``post-migrating`` (a
move: sent, the destination taking it), ``finished`` (new limits applied,
waiting for a confirm or revert), ``confirming``/``reverting`` (asked),
``confirmed``/``reverted`` (done), ``error`` (failed; the instance kept
its old flavor)."""

from __future__ import annotations

import datetime
import uuid as uuid_mod

import sqlalchemy as sa
from sqlalchemy import orm

from pyct_driver import exception
from pyct_driver.db.engine import Database, read_columns, row_to_dict
from pyct_driver.db.models import Instance, utcnow
from pyct_driver.db.models_hosts import Migration
from pyct_driver.db.resize_models import FlavorChange

OPEN = ("pre-migrating", "migrating", "post-migrating", "finished",
        "confirming", "reverting")


def start(db: Database, instance: dict, new_flavor_id: str,
          new_flavor: dict, old_type_id: int | None,
          new_type_id: int | None, dest: str | None = None,
          kind: str = "resize") -> dict:
    """Record a resize of ``instance`` to ``new_flavor`` on ``dest``
    (default: its own host; ``kind`` "migration" for a cold migration,
    which keeps the flavor); returns the flavor change row."""
    mig_uuid = str(uuid_mod.uuid4())
    host = instance["host"]
    dest = dest or host
    with db.session() as session:
        session.add(Migration(
            uuid=mig_uuid, instance_uuid=instance["uuid"],
            source_compute=host, dest_compute=dest, source_node=host,
            dest_node=dest, dest_host=dest,
            old_instance_type_id=old_type_id,
            new_instance_type_id=new_type_id, status="pre-migrating",
            migration_type=kind, user_id=instance["user_id"],
            project_id=instance["project_id"]))
        row = FlavorChange(
            migration_uuid=mig_uuid, instance_uuid=instance["uuid"],
            status="pre-migrating", old_flavor_id=instance["flavor_id"],
            old_flavor=instance["flavor"], new_flavor_id=new_flavor_id,
            new_flavor=new_flavor)
        session.add(row)
        session.flush()
        return row_to_dict(row)


def current(db: Database, instance_uuid: str) -> dict:
    """The instance's resize still open (MigrationNotFound if none)."""
    with db.session() as session:
        row = session.scalars(sa.select(FlavorChange).where(
            FlavorChange.instance_uuid == instance_uuid,
            FlavorChange.status.in_(OPEN)).order_by(
                FlavorChange.created_at.desc())).first()
        if row is None:
            raise exception.NotFound(
                f"Migration not found for instance {instance_uuid}")
        return row_to_dict(row)


def move_of(db: Database, migration_uuid: str) -> dict:
    """The ``migrations`` row (its ``source_compute``/``dest_compute``)."""
    with db.session() as session:
        row = session.scalars(sa.select(Migration).where(
            Migration.uuid == migration_uuid)).first()
        if row is None:
            raise exception.NotFound(
                f"Migration {migration_uuid} could not be found.")
        return row_to_dict(row)


def set_status(db: Database, migration_uuid: str, status: str) -> None:
    now = utcnow()
    with db.session() as session:
        for model, key in ((FlavorChange, FlavorChange.migration_uuid),
                           (Migration, Migration.uuid)):
            session.execute(sa.update(model).where(key == migration_uuid)
                            .values(status=status, updated_at=now))


def finished_before(db: Database, host: str,
                    cutoff: datetime.datetime) -> list[dict]:
    """Resizes on ``host`` waiting for a confirm since before ``cutoff``
    (the auto-confirm's list)."""
    query = sa.select(FlavorChange).join(
        Migration, Migration.uuid == FlavorChange.migration_uuid).where(
        FlavorChange.status == "finished", Migration.dest_compute == host,
        sa.func.coalesce(FlavorChange.updated_at,
                         FlavorChange.created_at) < cutoff)
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(query)]


def claim(db: Database, instance_uuid: str, before: str,
          after: str) -> dict:
    """Move the instance's open resize from ``before`` to ``after`` (a
    compare-and-swap: of two confirms or a confirm and a revert racing,
    one wins); Conflict if it is not in ``before``."""
    row = current(db, instance_uuid)
    with db.session() as session:
        done = session.execute(sa.update(FlavorChange).where(
            FlavorChange.migration_uuid == row["migration_uuid"],
            FlavorChange.status == before).values(
                status=after, updated_at=utcnow())).rowcount
    if done != 1:
        raise exception.Conflict(
            f"Instance {instance_uuid} has a resize in state "
            f"{row['status']}, not {before}.")
    set_status(db, row["migration_uuid"], after)
    return {**row, "status": after}


# built once: every placement (each boot) reads it
_HELD = sa.select(
    Instance.host, Migration.source_compute, Migration.dest_compute,
    FlavorChange.old_flavor, FlavorChange.new_flavor).join(
        Migration, Migration.uuid == FlavorChange.migration_uuid).join(
        Instance, Instance.uuid == FlavorChange.instance_uuid).where(
    FlavorChange.status.in_(OPEN), Instance.deleted == 0,
    Migration.source_compute != Migration.dest_compute)


def held_by_moves(session: orm.Session) -> list[tuple[str, dict]]:
    """(host, flavor) of each open move's end that its server's row does
    not name: the destination's new flavor while the row is still on the
    source, the source's old flavor once the destination took the row
    (VERIFY_RESIZE, confirming, reverting) -- what ``usage_by_host``
    adds to the rows' own."""
    rows = read_columns(session, _HELD)
    held = []
    for host, source, dest, old, new in rows:
        if host == source:
            held.append((dest, new))
        elif host == dest:
            held.append((source, old))
    return held
