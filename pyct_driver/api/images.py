"""A Glance v2 subset over the local image catalogue, at ``/image``.

The versions document, image show, image download and the image schema;
the list, create/delete, upload, members and PATCH are their own
modules. Every image route answers only for images the caller may see
(``db.image_access``): any other id is a 404 exactly like a missing one.
``visible`` and ``authorize`` are that gate and Glance's policy check for
the sibling modules. ``register_image`` records an image ``pyct-manage
image import`` has handed to the driver.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import webob
import webob.exc
import webob.static

from pyct_driver import exception
from pyct_driver.api import image_archive
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import catalog, image_access, image_query
from pyct_driver.db.engine import Database
from pyct_driver.db.image_access import Viewer

_IMAGE_COLUMNS = ("disk_format", "container_format", "size", "checksum",
                  "visibility", "owner", "min_disk", "min_ram")
_MINOR_CURRENT = 5


def versions(base_url: str) -> Result:
    """Glance's version list, up to the newest whose features pyct has:
    2.5 (2.3's deactivate/reactivate, 2.5's community images and
    visibility changes). 2.6 is the interoperable import (stage and
    import) pyct does not do; Glance too stops at 2.5 without it."""
    docs = []
    for minor in range(_MINOR_CURRENT, -1, -1):
        docs.append({
            "id": f"v2.{minor}",
            "status": "CURRENT" if minor == _MINOR_CURRENT else "SUPPORTED",
            "links": [{"rel": "self", "href": f"{base_url}/image/v2/"}],
        })
    return Result(200, {"versions": docs})


def time_text(value) -> str | None:
    """Glance's timestamp format."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def view(image: dict) -> dict:
    out = dict(image.get("properties") or {})
    out.update({
        "id": image["id"],
        "name": image["name"],
        "status": image["status"],
        "visibility": image["visibility"],
        "disk_format": image["disk_format"],
        "container_format": image["container_format"],
        "size": image["size"],
        "virtual_size": None,
        "checksum": image["checksum"],
        "os_hash_algo": image.get("os_hash_algo"),
        "os_hash_value": image.get("os_hash_value"),
        "os_hidden": bool(image.get("os_hidden")),
        "min_disk": image["min_disk"],
        "min_ram": image["min_ram"],
        "owner": image["owner"],
        "protected": bool(image.get("protected")),
        "created_at": time_text(image["created_at"]),
        "updated_at": time_text(image["updated_at"] or image["created_at"]),
        "tags": list(image.get("tags") or []),
        "self": f"/v2/images/{image['id']}",
        "file": f"/v2/images/{image['id']}/file",
        "schema": "/v2/schemas/image",
    })
    return out


def viewer(req: ApiRequest) -> Viewer:
    return Viewer(project_id=req.context.project_id, is_admin=req.is_admin)


def visible(api: Api, req: ApiRequest, image_id: str,
            message: str | None = None) -> dict:
    """The image if the caller may see it; else the 404 of a missing one
    (``message`` is the route's Glance wording)."""
    try:
        image = image_access.image_get_visible(api.db, image_id,
                                               viewer(req))
    except exception.ImageNotFound as err:
        raise exception.NotFound(
            message or f"No image found with ID {image_id}") from err
    # Glance: an image get_image refuses is as missing as an unknown one
    if not api.policy.check(req.context, "get_image", target(req, image)):
        raise exception.NotFound(
            message or f"No image found with ID {image_id}")
    return image_query.with_tags(api.db, image)


def target(req: ApiRequest, image: dict) -> dict:
    """Glance's policy target of an image for this caller."""
    member = (req.context.project_id if image["visibility"] == "shared"
              and req.context.project_id != image["owner"] else None)
    # "" never equals a caller's project id ("None" could)
    return {"project_id": image["owner"] or "", "member_id": member or "",
            "visibility": image["visibility"]}


def authorize_list(api: Api, req: ApiRequest, rule: str) -> None:
    """Glance's 403 when ``rule`` refuses listing in the caller's project."""
    if not api.policy.check(req.context, rule,
                            {"project_id": req.context.project_id}):
        raise exception.Forbidden(
            f"You are not authorized to complete {rule} action.")


def authorize(api: Api, req: ApiRequest, rule: str, image: dict) -> None:
    """Glance's 403 when ``rule`` does not allow the caller on ``image``."""
    if not api.policy.check(req.context, rule, target(req, image)):
        raise exception.Forbidden(
            f"You are not authorized to complete {rule} action.")


def show(api: Api, req: ApiRequest, image_id: str) -> Result:
    return Result(200, view(visible(api, req, image_id)))


def download(api: Api, req: ApiRequest, image_id: str) -> webob.Response:
    """``GET /v2/images/{id}/file``: the stored file as octet-stream, 204
    when the image has no data (Glance's answer for no location)."""
    image = visible(api, req, image_id)
    authorize(api, req, "download_image", image)
    if image["status"] == "deactivated" and not req.is_admin:
        raise exception.Forbidden("The requested image has been "
                                  "deactivated. Image data download is "
                                  "forbidden.")
    path = image["location"]
    if path and os.path.isdir(path):  # a snapshot's OCI layout
        length, chunks = image_archive.tar_stream(path)
        return webob.Response(app_iter=chunks, content_length=length,
                              content_type="application/octet-stream")
    try:
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(path)
        handle = open(path, "rb")  # noqa: SIM115 - FileIter closes it
    except OSError:
        return webob.exc.HTTPNoContent()
    resp = webob.Response(app_iter=webob.static.FileIter(handle),
                          content_type="application/octet-stream",
                          content_length=os.fstat(handle.fileno()).st_size)
    if image["checksum"]:
        resp.headers["Content-MD5"] = image["checksum"]
    return resp


def schema(api: Api, req: ApiRequest) -> Result:
    return Result(200, image_schema())


def image_schema() -> dict:
    """Glance's image schema (a JSON schema; PATCH validates with it)."""
    props = {name: {"type": ["null", "string"]} for name in (
        "disk_format", "container_format", "checksum", "owner",
        "os_hash_algo", "os_hash_value")}
    # never null here: pyct's images always have a name
    props["name"] = {"type": "string", "maxLength": 255}
    props.update({
        "id": {"type": "string"},
        "status": {"type": "string", "readOnly": True, "enum": [
            "queued", "saving", "active", "killed", "deleted",
            "pending_delete", "deactivated", "uploading", "importing"]},
        "visibility": {"type": "string", "enum": [
            "community", "public", "private", "shared"]},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
        "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "readOnly": True},
        "updated_at": {"type": "string", "readOnly": True},
        "self": {"type": "string", "readOnly": True},
        "file": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
    })
    return {"name": "image", "properties": props,
            "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"},
                      {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def register_image(db: Database, name: str, path: str,
                   properties: dict | None = None) -> dict:
    """Record an accepted image file as an active image; return its view.

    Known Glance fields in ``properties`` (disk_format, visibility, owner,
    …) go to their columns, the rest stay image properties. Public and
    without an owner (only admins may change it) unless they say otherwise.
    """
    props = dict(properties or {})
    values: dict = {"id": props.pop("id", None) or str(uuid.uuid4()),
                    "name": name, "status": "active", "location": path,
                    "visibility": "public", "min_disk": 0, "min_ram": 0}
    for key in _IMAGE_COLUMNS:
        if key in props:
            values[key] = props.pop(key)
    image_access.check_visibility(values["visibility"])
    if os.path.isfile(path):
        if "size" not in values:
            values["size"] = os.path.getsize(path)
        if "checksum" not in values:
            values["checksum"] = _md5(path)
    values["properties"] = props
    return view(catalog.image_create(db, values))


def _md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise exception.InvalidImage(image=path, reason=str(err)) from err
    return digest.hexdigest()
