"""Glance v2 image PATCH: change an image's visibility, name, minimums and
custom properties with a JSON patch.

``PATCH /v2/images/{id}`` with ``application/openstack-images-v2.1-json-
patch`` (draft 10: ``{"op": ..., "path": ..., "value": ...}``) or the
v2.0 draft-4 form. The body is checked first, as Glance's deserializer
does (415, 400, 403 for read-only or reserved attributes); then the image
must be visible to the caller (else 404), and each change passes Glance's
policies: ``publicize_image`` (admin) for ``public``, ``communitize_image``
for ``community``, ``modify_image`` (owner or admin) for everything; only
an admin may change the owner. ``tags`` is replaced as a whole, and
formats can change only while queued.
"""

from __future__ import annotations

import re

import jsonschema

from pyct_driver import exception
from pyct_driver.api import image_create, images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import catalog, image_query

_PATCH_TYPES = {"application/openstack-images-v2.0-json-patch": 4,
                "application/openstack-images-v2.1-json-patch": 10}
_OPS = ("add", "remove", "replace")
_READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size",
              "virtual_size", "direct_url", "self", "file", "schema", "id",
              "os_hash_algo", "os_hash_value")
_RESERVED = ("location", "locations", "deleted", "deleted_at")
_COLUMNS = ("name", "min_disk", "min_ram", "visibility", "owner",
            "protected", "os_hidden")
_QUEUED_ONLY = ("container_format", "disk_format")
_MAX_INT = 2 ** 31 - 1


def _bad(message: str) -> exception.Invalid:
    return exception.Invalid(message)


def _pointer(pointer: object) -> list[str]:
    """Glance's limited JSON pointer, decoded."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise _bad(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise _bad(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise _bad(f'Pointer `{pointer}` end with "/".')
    if pointer[1:].strip() == "/":
        raise _bad(f"Pointer `{pointer}` does not contains valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise _bad(f'Pointer `{pointer}` contains "~" not part of a '
                   "recognized escape sequence.")
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in pointer.lstrip("/").split("/")]


def _operation(raw: dict, draft: int) -> tuple[str, object]:
    if draft == 4:
        ops = [op for op in _OPS if op in raw]
        if len(ops) != 1:
            raise _bad("Operation objects must contain exactly one member "
                       'named "add", "remove", or "replace".')
        return ops[0], raw[ops[0]]
    op = raw.get("op")
    if op is None:
        raise _bad("Unable to find `op` in JSON Schema change. It must be "
                   "one of the following: add, remove, replace.")
    if op not in _OPS:
        raise _bad(f"Invalid operation: `{op}`. It must be one of the "
                   "following: add, remove, replace.")
    if "path" not in raw:
        raise _bad("Unable to find 'path' in JSON Schema change")
    return op, raw["path"]


def _changes(req: ApiRequest) -> list[dict]:
    """The patch's changes, validated as Glance's deserializer does."""
    draft = _PATCH_TYPES.get(req.raw.content_type)
    if draft is None:
        allowed = ", ".join(sorted(_PATCH_TYPES))
        raise exception.UnsupportedMediaType(
            f"Image PATCH expects Content-Type one of: {allowed}",
            accepted=tuple(sorted(_PATCH_TYPES)))
    if not req.raw.body:
        raise _bad("Body expected in request.")
    try:
        body = req.json_body()
    except exception.Invalid as err:
        raise _bad("Malformed JSON in request body.") from err
    if not isinstance(body, list):
        raise _bad("Request body must be a JSON array of operation "
                   "objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise _bad("Operations must be JSON objects.")
        op, pointer = _operation(raw, draft)
        path = _pointer(pointer)
        if len(path) != 1:
            raise _bad("Invalid JSON pointer for this resource: "
                       f"'/{'/'.join(path)}'")
        change = {"op": op, "name": path[0], "draft": draft}
        if op != "remove":
            if "value" not in raw:
                raise _bad(f'Operation "{op}" requires a member named '
                           '"value".')
            change["value"] = raw["value"]
        _check_attribute(change)
        changes.append(change)
    return changes


def _check_attribute(change: dict) -> None:
    name = change["name"]
    if name in _READ_ONLY:
        raise exception.Forbidden(f"Attribute '{name}' is read-only.")
    if name in _RESERVED or name.startswith("os_glance"):
        raise exception.Forbidden(f"Attribute '{name}' is reserved.")
    if len(name) > 255:
        raise _bad("Custom property should not be greater than 255 "
                   "characters.")
    if change["op"] == "remove":
        return
    try:
        jsonschema.validate({name: change["value"]}, images.image_schema())
    except jsonschema.ValidationError as err:
        raise _bad("Provided object does not match schema 'image': "
                   f"{err.message}") from err


def _column_value(name: str, value):
    if name in ("min_disk", "min_ram"):
        value = int(value)
        if value < 0:
            raise _bad(f"Invalid value '{value}' for parameter '{name}': "
                       "Cannot be a negative value")
        if value > _MAX_INT:
            raise _bad(f"'{name}' value out of range, must not exceed "
                       f"{_MAX_INT}.")
    return value


def _authorize(api: Api, req: ApiRequest, image: dict, change: dict
               ) -> None:
    if change["name"] == "owner" and not req.is_admin:
        raise exception.Forbidden("Owner can't be updated by non admin.")
    if change["name"] == "visibility":
        rule = {"public": "publicize_image",
                "community": "communitize_image"}.get(change["value"])
        if rule:
            images.authorize(api, req, rule, image)
    images.authorize(api, req, "modify_image", image)


def _apply(image: dict, values: dict, props: dict, change: dict) -> None:
    name, op = change["name"], change["op"]
    if name in _QUEUED_ONLY:
        if op == "remove":
            raise exception.Forbidden(f"Property {name} may not be "
                                      "removed.")
        if image["status"] not in ("queued", "importing"):
            raise exception.Forbidden(f"Attribute {name} can be only "
                                      "replaced for a queued image.")
        values[name] = change["value"]
    elif name == "tags":
        if op == "remove":
            raise exception.Forbidden("Property tags may not be removed.")
        values["tags"] = sorted(set(change["value"]))
    elif name in _COLUMNS:
        if op == "remove":
            raise exception.Forbidden(f"Property {name} may not be "
                                      "removed.")
        values[name] = _column_value(name, change["value"])
    elif op == "add":
        if name in props and change["draft"] == 4:
            raise exception.Conflict(f"Property {name} already present.")
        props[name] = change["value"]
    elif name not in props:
        raise exception.Conflict(f"Property {name} does not exist.")
    elif op == "replace":
        props[name] = change["value"]
    else:
        del props[name]


def update(api: Api, req: ApiRequest, image_id: str) -> Result:
    changes = _changes(req)
    image = images.visible(api, req, image_id)
    values: dict = {}
    props = dict(image["properties"] or {})
    for change in changes:
        _authorize(api, req, image, change)
        _apply(image, values, props, change)
    if changes:
        image_create.check_formats(api, values)
        values["properties"] = props
        tags = values.pop("tags", None)
        image = catalog.image_update(api.db, image_id, values)
        if tags is not None:
            image_query.set_tags(api.db, image_id, tags)
        image = image_query.with_tags(api.db, image)
    return Result(200, images.view(image))
