"""A Glance v2 subset over the local image catalogue, at ``/image``.

The versions document, image list with Glance's filters and paging, image
show, image download and the image schema; members and PATCH are their own
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
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import catalog, image_access
from pyct_driver.db.engine import Database
from pyct_driver.db.image_access import Viewer

_IMAGE_COLUMNS = ("disk_format", "container_format", "size", "checksum",
                  "visibility", "owner", "min_disk", "min_ram")
_MINOR_CURRENT = 9
_DEFAULT_LIMIT = 25


def versions(base_url: str) -> Result:
    """Glance's version list: v2.0 … v2.9, the last CURRENT."""
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
        "os_hash_algo": None,
        "os_hash_value": None,
        "os_hidden": False,
        "min_disk": image["min_disk"],
        "min_ram": image["min_ram"],
        "owner": image["owner"],
        "protected": False,
        "created_at": time_text(image["created_at"]),
        "updated_at": time_text(image["updated_at"] or image["created_at"]),
        "tags": [],
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
    return image


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


def _choice(req: ApiRequest, name: str, allowed: tuple[str, ...],
            message: str) -> str | None:
    value = req.param(name)
    if value is not None and value not in allowed:
        raise exception.Invalid(message % value)
    return value


def index(api: Api, req: ApiRequest) -> Result:
    authorize_list(api, req, "get_images")
    filters: dict = {}
    for key in ("name", "owner"):
        if req.param(key) is not None:
            filters[key] = req.param(key)
    if req.param("status") is not None:
        filters["status"] = req.param("status").lower()
    image_id = req.param("id")
    if image_id is not None:
        filters["ids"] = (image_id[3:].split(",")
                          if image_id.startswith("in:") else [image_id])
    filters["visibility"] = _choice(
        req, "visibility", image_access.VISIBILITIES + ("all",),
        "Invalid visibility value: %s")
    member_status = _choice(
        req, "member_status", image_access.MEMBER_STATUSES + ("all",),
        "Invalid status: %s") or "accepted"
    limit = parse_int(req.param("limit"), "limit")
    limit = min(limit if limit is not None else _DEFAULT_LIMIT, 1000)
    marker = req.param("marker")
    try:
        rows = catalog.image_list(api.db, filters, limit=limit,
                                  marker=marker, viewer=viewer(req),
                                  member_status=member_status)
    except exception.ImageNotFound as err:
        # a marker the caller may not see is as unknown as a missing one
        raise exception.Invalid(f"No image found with ID {marker}") from err
    # as Glance: each image is also one get_image allows; paging goes on
    # the rows read, so a refused image never ends a listing early
    shown = [r for r in rows if api.policy.check(req.context, "get_image",
                                                 target(req, r))]
    body: dict = {"images": [view(r) for r in shown],
                  "first": "/v2/images", "schema": "/v2/schemas/images"}
    if rows and len(rows) == limit:
        body["next"] = "/v2/images?" + req.next_query(rows[-1]["id"])
    return Result(200, body)


def show(api: Api, req: ApiRequest, image_id: str) -> Result:
    return Result(200, view(visible(api, req, image_id)))


def download(api: Api, req: ApiRequest, image_id: str) -> webob.Response:
    """``GET /v2/images/{id}/file``: the stored file as octet-stream, 204
    when the image has no data (Glance's answer for no location)."""
    image = visible(api, req, image_id)
    authorize(api, req, "download_image", image)
    path = image["location"]
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
