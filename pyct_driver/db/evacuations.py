"""Queries of an evacuation's ``migrations`` row (type ``evacuation``).

An evacuation moves a server off a host that is down, so its record is
what the dead host reads when its compute service comes back: every
evacuation whose source it is and that is not yet cleaned up names a
guest it may still have and must not run. Statuses are Nova's:
``accepted`` (the API moved the server), ``pre-migrating`` (the
destination took it), ``done`` (it runs there), ``failed`` (the rebuild
failed; the server is ERROR on the destination), ``completed`` (the
source destroyed its copy), ``error`` (nothing was moved).
"""

from __future__ import annotations

import uuid as uuid_mod

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.models_hosts import Migration

KIND = "evacuation"
# the source still has to destroy its copy (Nova's list, plus "failed":
# the server belongs to the destination even when its rebuild failed)
LEFT_ON_SOURCE = ("accepted", "pre-migrating", "done", "failed")
IN_FLIGHT = ("accepted", "pre-migrating")


def create(db: Database, instance: dict, dest: str, user_id: str) -> dict:
    """Record the evacuation of ``instance`` from its host to ``dest``."""
    source = instance["host"]
    with db.session() as session:
        row = Migration(
            uuid=str(uuid_mod.uuid4()), instance_uuid=instance["uuid"],
            source_compute=source, dest_compute=dest, source_node=source,
            dest_node=dest, dest_host=dest, status="accepted",
            migration_type=KIND, user_id=user_id,
            project_id=instance["project_id"])
        session.add(row)
        session.flush()
        return row_to_dict(row)


def set_status(db: Database, migration_uuid: str, status: str) -> None:
    with db.session() as session:
        session.execute(sa.update(Migration).where(
            Migration.uuid == migration_uuid).values(status=status))


def discard(db: Database, migration_uuid: str) -> None:
    """Remove the record of an evacuation that never happened (the
    server's state did not allow it after all)."""
    with db.session() as session:
        session.execute(sa.delete(Migration).where(
            Migration.uuid == migration_uuid))


def left_on(db: Database, source: str) -> list[dict]:
    """Evacuations away from ``source`` it has not cleaned up after."""
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(
            sa.select(Migration).where(
                Migration.migration_type == KIND,
                Migration.source_compute == source,
                Migration.status.in_(LEFT_ON_SOURCE)).order_by(
                Migration.id))]


def in_flight(db: Database, instance_uuid: str) -> dict:
    """The instance's evacuation a destination has not finished
    (``NotFound`` if none)."""
    with db.session() as session:
        row = session.scalars(sa.select(Migration).where(
            Migration.migration_type == KIND,
            Migration.instance_uuid == instance_uuid,
            Migration.status.in_(IN_FLIGHT)).order_by(
            Migration.id.desc())).first()
        if row is None:
            raise exception.NotFound(
                f"Instance {instance_uuid} has no evacuation under way.")
        return row_to_dict(row)
