"""Server actions ``createImage`` and ``createBackup``: a server's root as
a new image.

As in Nova, the API checks the request and the server's state, creates
the image record at once (Glance status ``queued``, private to the
server's project, with ``image_type``, ``instance_uuid``,
``base_image_ref``, ``user_id`` and the base image's inherited
properties, and ``min_ram``/``min_disk`` from the base image and the
flavor), swaps the task state with a compare-and-swap (a wrong state or
a lost race is a 409 ``conflictingRequest`` and the image record goes
again), records the instance action and casts to the server's host,
which captures the guest's changes and makes the image active
(``compute.snapshot``). The answer is a 202 with the image's URL in
``Location`` and, from 2.45, ``{"image_id": ...}`` in the body. A
backup is a snapshot with ``image_type=backup`` and ``backup_type``; the
host then deletes the server's oldest backups of that type beyond
``rotation`` (0: all of them, the new one too; then no Location).
"""

from __future__ import annotations

import contextlib
import uuid

from pyct_driver import exception, states
from pyct_driver.api import quota_check, schemas, server_lock
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog
from pyct_driver.db import instances as db_instances

SNAPSHOT_STATES = (states.ACTIVE, states.STOPPED, states.PAUSED,
                   states.SUSPENDED)
BACKUP_STATES = (states.ACTIVE, states.STOPPED)
# base image properties a snapshot does not inherit: Glance's own, the
# upload's checksums and what describes the base's own snapshot-ness
_NOT_INHERITED = ("image_type", "instance_uuid", "base_image_ref",
                  "user_id", "owner", "backup_type", "image_location",
                  "image_state", "owner_specified.openstack.md5",
                  "owner_specified.openstack.sha256",
                  "owner_specified.openstack.object")
CREATE_IMAGE = schemas._obj({"createImage": schemas._obj({
    "name": schemas.NAME, "metadata": schemas.METADATA}, ("name",))},
    ("createImage",))
CREATE_BACKUP = schemas._obj({"createBackup": schemas._obj({
    "name": schemas.NAME, "backup_type": {"type": "string"},
    "rotation": {"type": ["integer", "string"],
                 "pattern": "^[0-9]+$", "minimum": 0},
    "metadata": schemas.METADATA}, ("name", "backup_type", "rotation"))},
    ("createBackup",))


def new_image(api: Api, inst: dict, name: str, props: dict) -> dict:
    """The image record a snapshot of ``inst`` fills: queued, private to
    the server's project, inheriting the base image's properties."""
    try:
        base = catalog.image_get(api.db, inst["image_ref"])
    except exception.ImageNotFound:
        base = {"properties": {}, "min_ram": 0, "min_disk": 0}
    inherited = {k: v for k, v in (base.get("properties") or {}).items()
                 if k not in _NOT_INHERITED}
    base_ref = (base.get("properties") or {}).get("base_image_ref") \
        or inst["image_ref"]
    flavor = inst["flavor"]
    values = {
        "id": str(uuid.uuid4()), "name": name, "status": "queued",
        "visibility": "private", "owner": inst["project_id"],
        "disk_format": "raw", "container_format": "docker",
        "min_ram": int(base.get("min_ram") or 0),
        "min_disk": max(int(base.get("min_disk") or 0),
                        int(flavor.get("root_gb") or 0)),
        "properties": {**inherited, "instance_uuid": inst["uuid"],
                       "base_image_ref": base_ref,
                       "user_id": inst["user_id"],
                       **props}}
    values["properties"] = {k: v for k, v in values["properties"].items()
                            if v is not None}
    return catalog.image_create(api.db, values)


def _metadata(api: Api, req: ApiRequest, inst: dict, body: dict) -> dict:
    metadata = dict(body.get("metadata") or {})
    # Nova's check_img_metadata_properties_quota: 403 past the limit
    quota_check.check_metadata(api, inst["project_id"], inst["user_id"],
                               metadata)
    return metadata


def start(api: Api, req: ApiRequest, inst: dict, image: dict,
          task_state: str, vm_states: tuple, action: str) -> dict:
    """Swap the task state (a 409 drops the new image again) and record
    the instance action; the updated row."""
    try:
        inst = db_instances.update(
            api.db, inst["uuid"], {"task_state": task_state},
            expected_task_state=(None,), expected_vm_state=vm_states,
            action=action)
    except BaseException:
        with contextlib.suppress(exception.PyctError):
            catalog.image_delete(api.db, image["id"])
        raise
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], action, ctxt.request_id,
                            ctxt.user_id, ctxt.project_id)
    return inst


def _answer(req: ApiRequest, image_id: str | None) -> Result:
    if image_id is None:
        return Result(202)
    headers = {"Location": f"{req.base_url}/image/v2/images/{image_id}"}
    body = {"image_id": image_id} if req.at_least("2.45") else None
    return Result(202, body, headers)


def _checked(api: Api, req: ApiRequest, server_id: str, rule: str,
             action: str, allowed: tuple) -> dict:
    inst = get_instance(api, req, server_id, rule)
    server_lock.check(req, inst)
    if inst["vm_state"] not in allowed or inst["task_state"]:
        # before an image exists: a refusal leaves nothing behind
        raise exception.InstanceInvalidState(
            action=action, instance_id=inst["uuid"],
            attr="task_state" if inst["task_state"] else "vm_state",
            state=inst["task_state"] or inst["vm_state"])
    return inst


def create_image(api: Api, req: ApiRequest, server_id: str, body: dict
                 ) -> Result:
    schemas.validate(CREATE_IMAGE, body)
    args = body["createImage"]
    inst = _checked(api, req, server_id,
                    "os_compute_api:servers:create_image", "createImage",
                    SNAPSHOT_STATES)
    props = {**_metadata(api, req, inst, args), "image_type": "snapshot"}
    image = new_image(api, inst, args["name"], props)
    inst = start(api, req, inst, image, states.IMAGE_SNAPSHOT_PENDING,
                 SNAPSHOT_STATES, "createImage")
    api.compute.snapshot_instance(req.context, inst["host"], inst["uuid"],
                                  image["id"])
    return _answer(req, image["id"])


def create_backup(api: Api, req: ApiRequest, server_id: str, body: dict
                  ) -> Result:
    schemas.validate(CREATE_BACKUP, body)
    args = body["createBackup"]
    rotation = int(args["rotation"])
    inst = _checked(api, req, server_id, "os_compute_api:os-create-backup",
                    "createBackup", BACKUP_STATES)
    props = {**_metadata(api, req, inst, args), "image_type": "backup",
             "backup_type": args["backup_type"]}
    image = new_image(api, inst, args["name"], props)
    inst = start(api, req, inst, image, states.IMAGE_BACKUP, BACKUP_STATES,
                 "createBackup")
    api.compute.backup_instance(req.context, inst["host"], inst["uuid"],
                                image["id"], args["backup_type"], rotation)
    return _answer(req, image["id"] if rotation > 0 else None)
