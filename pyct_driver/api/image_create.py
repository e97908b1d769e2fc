"""Glance v2 image create, delete, deactivate and reactivate.

``POST /v2/images`` records a queued image (its data comes with
``image_upload``), checked as Glance checks it: read-only and reserved
attributes are a 403, anything off the image schema a 400, and a
disk_format or container_format the deployment does not list (``[image]
disk_formats``/``container_formats``) a 400 naming the accepted ones —
pyct boots root filesystems, so qcow2, iso or vmdk never get in.

``DELETE`` is Glance's (204; 403 for a protected image). As with Glance
and Nova, servers booted from the image keep running: each compute host
pinned the image's layers when it booted them (``ImageStore.acquire``),
so the layers are freed only when the last such server is deleted; the
image itself is gone at once and nothing new can boot from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid

import jsonschema

from pyct_driver import exception
from pyct_driver.api import images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import image_access, image_query

_READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size",
              "virtual_size", "direct_url", "self", "file", "schema",
              "os_hash_algo", "os_hash_value")
_RESERVED = ("location", "locations", "deleted", "deleted_at")
_COLUMNS = ("name", "visibility", "disk_format", "container_format",
            "min_disk", "min_ram", "protected", "os_hidden", "owner")
_MAX_INT = 2 ** 31 - 1
# Glance's image_property_quota and image_tag_quota defaults
_MAX_PROPERTIES = 128
_MAX_TAGS = 128


def _schema() -> dict:
    schema = images.image_schema()
    props = schema["properties"]
    props["id"] = {"type": "string", "format": "uuid"}
    props["tags"] = {"type": "array", "items": {"type": "string",
                                                "maxLength": 255}}
    for key in ("min_disk", "min_ram"):
        props[key] = {"type": "integer", "minimum": 0, "maximum": _MAX_INT}
    schema["additionalProperties"] = {"type": "string", "maxLength": 65535}
    return schema


def _body(req: ApiRequest) -> dict:
    body = req.json_body()
    if not isinstance(body, dict):
        raise exception.Invalid("Request body must be a JSON object.")
    for key in body:
        if key in _READ_ONLY:
            raise exception.Forbidden(f"Attribute '{key}' is read-only.")
        if key in _RESERVED or key.startswith("os_glance"):
            raise exception.Forbidden(f"Attribute '{key}' is reserved.")
        if len(key) > 255:
            raise exception.Invalid("Custom property should not be greater "
                                    "than 255 characters.")
    try:
        jsonschema.validate(body, _schema(),
                            format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as err:
        raise exception.Invalid("Provided object does not match schema "
                                f"'image': {err.message}") from err
    return body


def check_formats(api: Api, values: dict) -> None:
    """Glance's 400 for a format the deployment does not accept."""
    settings = api.settings
    for key, allowed in (("disk_format", settings.disk_formats),
                         ("container_format", settings.container_formats)):
        value = values.get(key)
        if value is not None and value not in allowed:
            raise exception.Invalid(
                f"Invalid {key} '{value}' for this cloud; accepted: "
                f"{', '.join(allowed)}. pyct boots container root "
                "filesystems: a rootfs tarball (raw/bare, optionally "
                "compressed) or an OCI or docker archive (docker), not "
                "disk images such as qcow2, iso or vmdk.")


def create(api: Api, req: ApiRequest) -> Result:
    body = _body(req)
    values: dict = {"id": body.pop("id", None) or str(uuid.uuid4()),
                    "status": "queued", "visibility": "shared",
                    "min_disk": 0, "min_ram": 0, "protected": False,
                    "os_hidden": False, "name": ""}
    tags = body.pop("tags", [])
    for key in _COLUMNS:
        if key in body:
            values[key] = body.pop(key)
    project = req.context.project_id or ""
    owner = values.get("owner")
    if owner is not None and owner != project and not req.is_admin:
        raise exception.Forbidden("You are not permitted to create images "
                                  f"owned by '{owner}'.")
    values["owner"] = owner if owner is not None else project
    if len(body) > _MAX_PROPERTIES:
        raise exception.TooLarge("Attempted to add more properties than "
                                 f"allowed ({_MAX_PROPERTIES}).")
    if len(set(tags)) > _MAX_TAGS:
        raise exception.TooLarge("Attempted to add more tags than allowed "
                                 f"({_MAX_TAGS}).")
    values["properties"] = body
    target = {"project_id": values["owner"], "member_id": "",
              "visibility": values["visibility"]}
    rule = {"public": "publicize_image",
            "community": "communitize_image"}.get(values["visibility"])
    for name in ("add_image",) + ((rule,) if rule else ()):
        if not api.policy.check(req.context, name, target):
            raise exception.Forbidden(
                f"You are not authorized to complete {name} action.")
    image_access.check_visibility(values["visibility"])
    check_formats(api, values)
    try:
        image = image_query.image_create(api.db, values, tags)
    except exception.Duplicate as err:
        raise exception.Conflict(f"Image with identifier {values['id']} "
                                 "already exists!") from err
    return Result(201, images.view(image),
                  {"Location": f"{req.base_url}/image/v2/images/"
                               f"{image['id']}"})


def delete(api: Api, req: ApiRequest, image_id: str) -> Result:
    image = images.visible(api, req, image_id)
    images.authorize(api, req, "delete_image", image)
    if image["protected"]:
        raise exception.Forbidden(f"Image {image_id} is protected and "
                                  "cannot be deleted.")
    image_query.image_delete(api.db, image_id)
    forget(api, image)
    return Result(204)


def forget(api: Api, image: dict) -> None:
    """Drop the image's file (only one in the API's own image directory:
    never a host file an operator registered) and its store record; the
    store frees the layers no server holds."""
    path = image.get("location") or ""
    mine = os.path.dirname(os.path.abspath(path)) == os.path.abspath(
        api.settings.image_dir)
    if path and mine:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)  # a snapshot's layout
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    api.images.delete_image(image["id"])


def _transition(api: Api, req: ApiRequest, image_id: str, rule: str,
                verb: str, status: str) -> Result:
    image = images.visible(api, req, image_id)
    images.authorize(api, req, rule, image)
    try:
        image_query.set_status(api.db, image_id, ("active", "deactivated"),
                               {"status": status})
    except exception.Conflict as err:
        raise exception.Invalid(f"Not allowed to {verb} image in status "
                                f"'{image['status']}'") from err
    return Result(204)


def deactivate(api: Api, req: ApiRequest, image_id: str) -> Result:
    return _transition(api, req, image_id, "deactivate", "deactivate",
                       "deactivated")


def reactivate(api: Api, req: ApiRequest, image_id: str) -> Result:
    return _transition(api, req, image_id, "reactivate", "reactivate",
                       "active")
