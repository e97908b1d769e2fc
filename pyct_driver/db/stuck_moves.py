"""Stuck long operations: whose request they are and how they are failed.

A resize, cold migration, revert, confirm, rebuild, evacuation, snapshot,
backup, shelve, offload or unshelve runs in handlers that each claim the
request under their own name (``compute.request_once``), and it may hop
between two hosts (a move's source, then its destination). ``method``
names the handler whose claim says whether the host the row names now
works on the request, so the API's stuck-work task (``db.stuck_work``)
reads the right claim and, giving the request up, claims it under that
name so a late or doubled delivery is not run. ``fail`` writes where the
server is left, as Nova leaves it when such an operation is lost:

* a resize or migration the host never started (``resize_prep``): back
  as it was (Nova's start-up clears ``resize_prep``), migration ``error``;
* one under way, a revert, or a confirm: ERROR with the task state
  cleared and the migration ``error`` (Nova's ``_error_out_instance_on_
  exception``), so the source's claim on the old flavor ends with it;
* a rebuild or evacuation: ERROR (an evacuation ``failed``: the server
  belongs to the destination and the dead source still destroys its copy
  when it returns);
* a snapshot or backup: the server as it was, its unfinished image
  deleted (Nova deletes a failed snapshot's image);
* a shelve, offload or unshelve: as pyct's own failure handling leaves
  it (shelve: as before, image deleted; offload: SHELVED; unshelve of an
  offloaded server: offloaded again, without a host).

Each write is a compare-and-swap on what ``find`` saw; ``Lost`` means
another process (an API's timeout or the compute host) was first.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import orm

from pyct_driver import states
from pyct_driver.db import models
from pyct_driver.db.image_models import ImageTag
from pyct_driver.db.models_hosts import Migration
from pyct_driver.db.resize_models import FlavorChange

CONFIRMING = "confirming"  # the pseudo task state of a confirm in flight
_SHELVED = (states.SHELVED, states.SHELVED_OFFLOADED)
TASK_STATES = (states.RESIZE_TASK_STATES + (states.RESIZE_REVERTING,)
               + states.REBUILD_TASK_STATES + states.SNAPSHOT_TASK_STATES
               + states.SHELVE_TASK_STATES
               + (states.SHELVING_OFFLOADING, states.UNSHELVING))
_OPEN = ("pre-migrating", "migrating", "post-migrating", "finished",
         CONFIRMING, "reverting")


class Lost(Exception):
    """Another process claimed or changed the instance first."""


def unshelving(inst: type[models.Instance]) -> sa.ColumnElement:
    """An unshelve past its first step (``spawning`` on a shelved row;
    a build's ``spawning`` has vm_state building)."""
    return sa.and_(inst.task_state == states.SPAWNING,
                   inst.vm_state.in_(_SHELVED))


def _move(session: orm.Session, uuid: str) -> tuple[dict, dict] | None:
    """The instance's open resize or migration: (flavor change, row of
    ``migrations``) as dicts, None if it has none."""
    change = session.scalars(sa.select(FlavorChange).where(
        FlavorChange.instance_uuid == uuid,
        FlavorChange.status.in_(_OPEN)).order_by(
            FlavorChange.created_at.desc())).first()
    if change is None:
        return None
    move = session.scalars(sa.select(Migration).where(
        Migration.uuid == change.migration_uuid)).first()
    return ({"migration_uuid": change.migration_uuid,
             "status": change.status},
            {"source": move.source_compute if move else None,
             "dest": move.dest_compute if move else None})


def method(session: orm.Session, uuid: str, host: str | None,
           task: str, vm_state: str, action: str | None) -> str:
    """The handler that works on the newest request of ``uuid`` on
    ``host`` (the row's) in ``task``."""
    if task == CONFIRMING:
        return "confirm_resize"
    if task in states.REBUILD_TASK_STATES:
        return "evacuate_instance" if action == "evacuate" \
            else "rebuild_instance"
    if task in states.SNAPSHOT_TASK_STATES:
        return "backup_instance" if action == "createBackup" \
            else "snapshot_instance"
    if task in states.SHELVE_TASK_STATES:
        return "shelve_instance"
    if task == states.SHELVING_OFFLOADING:
        return "shelve_offload_instance" if action == "shelveOffload" \
            else "shelve_instance"
    if task == states.UNSHELVING or vm_state in _SHELVED:
        return "unshelve_instance"
    if task == states.RESIZE_FINISH:
        return "finish_migration"  # the destination took the row
    found = _move(session, uuid)
    moving = found is not None and found[1]["source"] != found[1]["dest"]
    if task == states.RESIZE_REVERTING:
        # the destination gave the row back: the source's turn
        return "finish_revert_migration" if moving and \
            host == found[1]["source"] else "revert_resize"
    return "migrate_instance" if moving else "resize_instance"


def fail(session: orm.Session, uuid: str, task: str, vm_state: str,
         host_method: str) -> None:
    """Leave the server where the module's docstring says (the claim is
    already taken)."""
    values: dict = {"task_state": None, "updated_at": models.utcnow()}
    if task == CONFIRMING or task == states.RESIZE_REVERTING or (
            task in states.RESIZE_TASK_STATES
            and task != states.RESIZE_PREP) or \
            task in states.REBUILD_TASK_STATES:
        values["vm_state"] = states.ERROR
    if task in states.REBUILD_TASK_STATES:
        values["power_state"] = states.NOSTATE
    if host_method == "unshelve_instance" and \
            vm_state == states.SHELVED_OFFLOADED:
        values.update(host=None, power_state=states.NOSTATE)
    where = [models.Instance.uuid == uuid, models.Instance.deleted == 0,
             models.Instance.vm_state == vm_state]
    if task == CONFIRMING:
        where.append(models.Instance.task_state.is_(None))
        _migration_status(session, uuid, (CONFIRMING,), "error")
    else:
        where.append(models.Instance.task_state == task)
    swapped = session.execute(sa.update(models.Instance).where(
        *where).values(**values))
    if swapped.rowcount != 1:
        raise Lost()
    if task in states.RESIZE_TASK_STATES or \
            task == states.RESIZE_REVERTING:
        _migration_status(session, uuid, _OPEN, "error")
    elif host_method == "evacuate_instance":
        session.execute(sa.update(Migration).where(
            Migration.instance_uuid == uuid,
            Migration.migration_type == "evacuation",
            Migration.status.in_(("accepted", "pre-migrating"))).values(
                status="failed", updated_at=models.utcnow()))
    elif task in states.SNAPSHOT_TASK_STATES + states.SHELVE_TASK_STATES:
        _drop_unfinished_images(session, uuid)


def _migration_status(session: orm.Session, uuid: str,
                      before: tuple[str, ...], after: str) -> None:
    change = session.scalars(sa.select(FlavorChange).where(
        FlavorChange.instance_uuid == uuid,
        FlavorChange.status.in_(before))).first()
    if change is None:
        if before == (CONFIRMING,):
            raise Lost()  # confirmed or reverted meanwhile
        return
    now = models.utcnow()
    done = session.execute(sa.update(FlavorChange).where(
        FlavorChange.migration_uuid == change.migration_uuid,
        FlavorChange.status == change.status).values(
            status=after, updated_at=now))
    if done.rowcount != 1:
        raise Lost()
    session.execute(sa.update(Migration).where(
        Migration.uuid == change.migration_uuid).values(
            status=after, updated_at=now))


def _drop_unfinished_images(session: orm.Session, uuid: str) -> None:
    """Delete the server's images still queued or saving (the host that
    would have finished them is down; its partial file, if any, is in the
    image directory under the image's id, which nothing serves)."""
    project = session.scalar(sa.select(models.Instance.project_id).where(
        models.Instance.uuid == uuid))
    for image in session.scalars(sa.select(models.Image).where(
            models.Image.owner == project,
            models.Image.status.in_(("queued", "saving")))):
        if (image.properties or {}).get("instance_uuid") != uuid:
            continue
        for table in (ImageTag, models.ImageMember):
            session.execute(sa.delete(table).where(
                table.image_id == image.id))
        session.delete(image)


def find_confirms(session: orm.Session, before) -> list[tuple]:
    """Confirms asked before ``before`` that never ended: (uuid, host,
    vm_state) of each RESIZED server whose resize is still confirming."""
    inst = models.Instance
    return list(session.execute(sa.select(
        inst.uuid, inst.host, inst.vm_state).join(
            FlavorChange, FlavorChange.instance_uuid == inst.uuid).where(
        inst.deleted == 0, inst.vm_state == states.RESIZED,
        inst.task_state.is_(None), FlavorChange.status == CONFIRMING,
        sa.func.coalesce(FlavorChange.updated_at, FlavorChange.created_at)
        < before)).all())
