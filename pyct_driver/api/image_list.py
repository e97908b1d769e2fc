"""``GET /v2/images``: Glance's image list, its filters, sorting and
paging.

Filters: ``name``, ``status``, ``id``, ``disk_format``,
``container_format`` and ``owner`` (exact, or ``in:a,b``), ``visibility``,
``member_status``, ``tag`` (repeatable: every one must be on the image),
``os_hidden`` (false unless asked: hidden images stay out of lists),
``protected``, ``checksum``, ``os_hash_value``, ``size_min``/``size_max``,
``created_at``/``updated_at`` as ``op:time`` (gt, gte, lt, lte, eq, neq),
and any other parameter as a custom property equal to its value. Sorting
by ``sort_key``/``sort_dir`` (repeatable) or ``sort=key:dir,...`` — not
both — newest first by default; ``limit`` (25, at most 1000) and
``marker`` page with keyset paging, and a full page links ``next`` with
the request's own parameters URL-encoded again.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import image_access, image_query

_DEFAULT_LIMIT = 25
_MAX_LIMIT = 1000
_IN_FILTERS = ("name", "status", "id", "disk_format", "container_format",
               "owner")
_EXACT = ("checksum", "os_hash_value")
_KNOWN = set(_IN_FILTERS + _EXACT) | {
    "limit", "marker", "sort_key", "sort_dir", "sort", "visibility",
    "member_status", "tag", "os_hidden", "protected", "size_min",
    "size_max", "created_at", "updated_at"}


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise exception.Invalid(f"Invalid value '{value}' for '{name}': "
                                "must be true or false.")
    return value.lower() == "true"


def _size(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as err:
        raise exception.Invalid("Unable to filter on a range with a "
                                f"non-numeric value ({name}).") from err


def _times(req: ApiRequest, name: str) -> list[tuple[str, object]]:
    out = []
    for raw in req.params.getall(name):
        op, sep, value = raw.partition(":")
        if not sep or op not in ("gt", "gte", "lt", "lte", "eq", "neq"):
            op, value = "eq", raw
        try:
            out.append((op, image_query.parse_time(value)))
        except ValueError as err:
            raise exception.Invalid(f"Invalid {name} value: {raw}. "
                                    "Expected op:ISO-8601 time.") from err
    return out


def filters(req: ApiRequest) -> dict:
    """The query string's filters, checked."""
    out: dict = {"properties": {}}
    for key in _IN_FILTERS:
        value = req.param(key)
        if value is not None:
            out[key] = (value[3:].split(",") if value.startswith("in:")
                        else [value])
    if out.get("status"):
        out["status"] = [s.lower() for s in out["status"]]
    for key in _EXACT:
        if req.param(key) is not None:
            out["properties_exact"] = {**out.get("properties_exact", {}),
                                       key: req.param(key)}
    out["tags"] = req.params.getall("tag")
    out["os_hidden"] = _bool("os_hidden", req.param("os_hidden") or "false")
    if req.param("protected") is not None:
        out["protected"] = _bool("protected", req.param("protected"))
    for key in ("size_min", "size_max"):
        if req.param(key) is not None:
            out[key] = _size(key, req.param(key))
    for key in ("created_at", "updated_at"):
        out[key] = _times(req, key)
    for key, value in req.params.items():
        if key not in _KNOWN:
            out["properties"][key] = value
    return out


def _direction(value: str) -> str:
    if value not in ("asc", "desc"):
        raise exception.Invalid(f"Invalid sort direction: {value}")
    return value


def _key(value: str) -> str:
    if value not in image_query.SORT_KEYS:
        raise exception.Invalid(
            f"Invalid sort key: {value}. It must be one of the following: "
            f"{', '.join(image_query.SORT_KEYS)}.")
    return value


def sort(req: ApiRequest) -> list[tuple[str, str]]:
    """Glance's two sort syntaxes (never mixed); created_at desc when
    neither is given."""
    keys, dirs = req.params.getall("sort_key"), req.params.getall("sort_dir")
    new = req.param("sort")
    if new is not None:
        if keys or dirs:
            raise exception.Invalid("Old and new sorting syntax cannot be "
                                    "combined")
        out = []
        for item in new.split(","):
            key, _, direction = item.strip().partition(":")
            out.append((_key(key), _direction(direction or "desc")))
        return out
    keys = keys or ["created_at"]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise exception.Invalid("Number of sort dirs does not match the "
                                "number of sort keys")
    dirs = dirs if len(dirs) > 1 else (dirs or ["desc"]) * len(keys)
    return [(_key(k), _direction(d)) for k, d in zip(keys, dirs)]


def _limit(req: ApiRequest) -> int:
    value = req.param("limit")
    if value is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError as err:
        raise exception.Invalid("limit param must be an integer") from err
    if limit < 0:
        raise exception.Invalid("limit param must be positive")
    return min(limit, _MAX_LIMIT)


def _choice(req: ApiRequest, name: str, allowed: tuple[str, ...],
            message: str) -> str | None:
    value = req.param(name)
    if value is not None and value not in allowed:
        raise exception.Invalid(message % value)
    return value


def index(api: Api, req: ApiRequest) -> Result:
    images.authorize_list(api, req, "get_images")
    wanted = filters(req)
    visibility = _choice(
        req, "visibility", image_access.VISIBILITIES + ("all",),
        "Invalid visibility value: %s")
    member_status = _choice(
        req, "member_status", image_access.MEMBER_STATUSES + ("all",),
        "Invalid status: %s") or "accepted"
    order, limit, marker = sort(req), _limit(req), req.param("marker")
    try:
        rows = image_query.image_list(
            api.db, wanted, images.viewer(req), order, limit, marker=marker,
            member_status=member_status, visibility=visibility)
    except exception.ImageNotFound as err:
        # a marker the caller may not see is as unknown as a missing one
        raise exception.Invalid(f"No image found with ID {marker}") from err
    # as Glance: each image is also one get_image allows; paging goes on
    # the rows read, so a refused image never ends a listing early
    shown = [r for r in rows if api.policy.check(
        req.context, "get_image", images.target(req, r))]
    body: dict = {"images": [images.view(r) for r in shown],
                  "first": "/v2/images", "schema": "/v2/schemas/images"}
    if rows and len(rows) == limit:
        body["next"] = "/v2/images?" + req.next_query(rows[-1]["id"])
    return Result(200, body)
