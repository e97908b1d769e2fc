"""A minimal Glance v2 API over the local image catalogue, at ``/image``.

Enough for the ``openstack`` CLI and openstacksdk to find images by name or
id: the versions document, image list with Glance's filters and paging,
image show, and the image schema. ``register_image`` records an image
``pyct-manage image import`` has handed to the driver.
"""

from __future__ import annotations

import hashlib
import os
import uuid

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import catalog
from pyct_driver.db.engine import Database

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


def _time(value) -> str | None:
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
        "created_at": _time(image["created_at"]),
        "updated_at": _time(image["updated_at"] or image["created_at"]),
        "tags": [],
        "self": f"/v2/images/{image['id']}",
        "file": f"/v2/images/{image['id']}/file",
        "schema": "/v2/schemas/image",
    })
    return out


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, "os_compute_api:images:index")
    filters: dict = {}
    if req.param("name") is not None:
        filters["name"] = req.param("name")
    if req.param("status") is not None:
        filters["status"] = req.param("status").lower()
    image_id = req.param("id")
    if image_id is not None:
        filters["ids"] = (image_id[3:].split(",")
                          if image_id.startswith("in:") else [image_id])
    limit = parse_int(req.param("limit"), "limit")
    limit = min(limit if limit is not None else _DEFAULT_LIMIT, 1000)
    marker = req.param("marker")
    try:
        rows = catalog.image_list(api.db, filters, limit=limit,
                                  marker=marker)
    except exception.InvalidInput as err:
        raise exception.Invalid(f"marker [{marker}] not found") from err
    body: dict = {"images": [view(r) for r in rows],
                  "first": "/v2/images", "schema": "/v2/schemas/images"}
    if rows and len(rows) == limit:
        params = [(k, v) for k, v in req.params.items() if k != "marker"]
        params.append(("marker", rows[-1]["id"]))
        body["next"] = "/v2/images?" + "&".join(f"{k}={v}"
                                                for k, v in params)
    return Result(200, body)


def show(api: Api, req: ApiRequest, image_id: str) -> Result:
    api.policy.authorize(req.context, "os_compute_api:images:show")
    try:
        return Result(200, view(catalog.image_get(api.db, image_id)))
    except exception.ImageNotFound as err:
        raise exception.NotFound(
            f"No image found with ID {image_id}") from err


def schema(api: Api, req: ApiRequest) -> Result:
    props = {name: {"type": ["null", "string"]} for name in (
        "name", "disk_format", "container_format", "checksum", "owner",
        "os_hash_algo", "os_hash_value")}
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
    return Result(200, {"name": "image", "properties": props,
                        "additionalProperties": {"type": "string"},
                        "links": [{"rel": "self", "href": "{self}"},
                                  {"rel": "enclosure", "href": "{file}"},
                                  {"rel": "describedby",
                                   "href": "{schema}"}]})


def register_image(db: Database, name: str, path: str,
                   properties: dict | None = None) -> dict:
    """Record an accepted image file as an active image; return its view.

    Known Glance fields in ``properties`` (disk_format, visibility, …) go
    to their columns, the rest stay image properties.
    """
    props = dict(properties or {})
    values: dict = {"id": props.pop("id", None) or str(uuid.uuid4()),
                    "name": name, "status": "active", "location": path,
                    "visibility": "public", "min_disk": 0, "min_ram": 0}
    for key in _IMAGE_COLUMNS:
        if key in props:
            values[key] = props.pop(key)
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
