"""Snapshots and backups on the compute host.

The API made the image record (queued) and moved the server to
``image_snapshot_pending`` (or ``image_backup``); here the task state
goes ``image_snapshot`` → ``image_pending_upload`` (the driver, before it
captures) → ``image_uploading`` (after; the image turns ``saving``) →
None, and the image turns ``active`` with its file under this host's
``[DEFAULT] state_path``/images, where the API's uploads live too and
every compute host reads image files from. A failure (or a delete of the
image meanwhile) removes the image record and file, as Nova deletes a
failed snapshot's image, and leaves the server as it was, with a fault.
A backup then deletes the server's oldest backups of its type beyond
``rotation``. After a crash mid-snapshot ``recover_image`` finishes the
job of a failure: guest thawed, image gone, task state cleared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.context import RequestContext
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import image_query
from pyct_driver.db import instances as db_instances

LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def best_effort(what: str, uuid: str) -> Iterator[None]:
    """Clean-up that must not stop what follows: a failure is logged with
    the id it concerns, not raised."""
    try:
        yield
    except Exception as err:
        LOG.warning("%s for %s failed, going on: %s", what, uuid, err)
# the task states of each capture: first, pending upload, uploading
SNAPSHOT_STEPS = (states.IMAGE_SNAPSHOT, states.IMAGE_PENDING_UPLOAD,
                  states.IMAGE_UPLOADING)
SHELVE_STEPS = (states.SHELVING, states.SHELVING_IMAGE_PENDING_UPLOAD,
                states.SHELVING_IMAGE_UPLOADING)


class SnapshotEndpoints:
    """RPC endpoints of the compute manager for snapshots and backups
    (mixed into ``ComputeManager``: uses its db, driver, locks, events)."""

    def image_path(self, image_id: str) -> str:
        return os.path.join(self.image_dir, image_id)

    def drop_image(self, image_id: str) -> None:
        """Remove an image this host made: record, file, local layers
        (idempotent, best effort)."""
        with contextlib.suppress(exception.ImageNotFound):
            image_query.image_delete(self.db, image_id)
        path = self.image_path(image_id)
        for leftover in (path, f"{path}.part"):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        with best_effort("deleting the image's layers", image_id):
            self.driver.delete_image(image_id)

    def capture_image(self, inst: dict, image_id: str,
                      steps: tuple[str, str, str]) -> str:
        """Capture ``inst`` into the queued image ``image_id``, walking
        the task state through ``steps`` (the row is in ``steps[0]``);
        the task state it left the row in."""
        uuid = inst["uuid"]
        spec = self.spec(inst)
        try:
            base_path = db_catalog.image_get(
                self.db, inst["image_ref"]).get("location")
        except exception.ImageNotFound:
            base_path = None
        current = [steps[0]]

        def step(kind: str) -> None:
            new = steps[1] if kind == "pending_upload" else steps[2]
            db_instances.update(self.db, uuid, {"task_state": new},
                                expected_task_state=current[0])
            current[0] = new
            if kind == "uploading":
                image_query.set_status(self.db, image_id, ("queued",),
                                       {"status": "saving"})

        os.makedirs(self.image_dir, mode=0o700, exist_ok=True)
        dest = self.image_path(image_id)
        info = self.driver.snapshot(spec, image_id, dest, base_path, step)
        image_query.set_status(self.db, image_id, ("saving",), {
            "status": "active", "location": dest, "size": info.size,
            "checksum": info.checksum or None})
        return current[0]

    def _snapshot_op(self, ctxt: RequestContext, uuid: str, image_id: str,
                     expected: str, action: str, event: str) -> dict | None:
        """The common snapshot/backup run; the row after, None if it
        failed or was not ours to do."""
        with self.instance_lock(uuid), self.once(
                ctxt, uuid, f"{action}_instance") as fresh:
            inst = self._get(uuid) if fresh else None
            if inst is None or inst["task_state"] != expected:
                return None
            with self.notify.action(ctxt, uuid, action) as note:
                try:
                    with self._event(ctxt, uuid, event):
                        db_instances.update(
                            self.db, uuid,
                            {"task_state": states.IMAGE_SNAPSHOT},
                            expected_task_state=expected)
                        last = self.capture_image(inst, image_id,
                                                  SNAPSHOT_STEPS)
                except Exception as err:
                    LOG.warning("%s of %s failed: %s", action, uuid, err)
                    self.record_fault(uuid, err)
                    note.fail(err)
                    self.drop_image(image_id)
                    self.finish_task(uuid, {"task_state": None},
                                 states.SNAPSHOT_TASK_STATES)
                    return None
                self.finish_task(uuid, {"task_state": None}, last)
        return inst

    def snapshot_instance(self, ctxt: RequestContext, instance_uuid: str,
                          image_id: str) -> None:
        self._snapshot_op(ctxt, instance_uuid, image_id,
                          states.IMAGE_SNAPSHOT_PENDING, "snapshot",
                          "compute_snapshot_instance")

    def backup_instance(self, ctxt: RequestContext, instance_uuid: str,
                        image_id: str, backup_type: str,
                        rotation: int) -> None:
        inst = self._snapshot_op(ctxt, instance_uuid, image_id,
                                 states.IMAGE_BACKUP, "backup",
                                 "compute_backup_instance")
        if inst is not None:
            self.rotate_backups(inst, backup_type, int(rotation))

    def rotate_backups(self, inst: dict, backup_type: str,
                       rotation: int) -> None:
        """Delete the oldest backups of ``inst`` and ``backup_type``
        beyond ``rotation`` (Nova's ``_rotate_backups``)."""
        backups = [i for i in db_catalog.image_list(
            self.db, {"owner": inst["project_id"]})
            if (i.get("properties") or {}).get("image_type") == "backup"
            and i["properties"].get("instance_uuid") == inst["uuid"]
            and i["properties"].get("backup_type") == backup_type]
        # newest first (image_list's order): keep the first ``rotation``
        for image in backups[rotation:]:
            LOG.info("rotating out backup %s of %s", image["id"],
                     inst["uuid"])
            self.drop_image(image["id"])


def recover_image(manager: SnapshotEndpoints, instance: dict) -> bool:
    """After a restart: a capture in flight is abandoned — the guest
    thawed (unless it was paused), its images not yet active dropped,
    the task state cleared. False if the task state is none of ours."""
    task = instance["task_state"]
    if task not in states.SNAPSHOT_TASK_STATES:
        return False
    uuid = instance["uuid"]
    with manager.instance_lock(uuid):
        drop_unfinished(manager, instance)
        if instance["vm_state"] != states.PAUSED:
            with best_effort("thawing", uuid):
                manager.driver.unpause(manager.spec(instance))
        manager.record_fault(uuid, exception.SnapshotError(
            reason="interrupted by a compute service restart"))
        manager.finish_task(uuid, {"task_state": None}, task)
    return True


def drop_unfinished(manager: SnapshotEndpoints, instance: dict) -> None:
    """Drop every image of ``instance`` still queued or saving."""
    for image in db_catalog.image_list(
            manager.db, {"owner": instance["project_id"]}):
        if (image.get("properties") or {}).get("instance_uuid") == \
                instance["uuid"] and image["status"] in ("queued",
                                                         "saving"):
            LOG.info("dropping the unfinished image %s of %s",
                     image["id"], instance["uuid"])
            manager.drop_image(image["id"])
