"""The image list behind ``GET /v2/images`` and the images' tags.

Glance's filters, already parsed by ``api.image_filters``: exact or
``in:`` values of the image's columns, ``tag`` (every one must be on the
image), ``os_hidden``, ``size_min``/``size_max``, ``created_at`` and
``updated_at`` with comparison operators, custom properties by equality;
Glance's sort keys in any number, each with its direction, always ending
on ``id`` so paging after a marker is stable (``db.keyset``).
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import catalog, image_access, keyset, models
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.image_access import Viewer
from pyct_driver.db.image_models import ImageTag

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size",
             "id", "created_at", "updated_at")
_OPERATORS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__",
              "lte": "__le__", "eq": "__eq__", "neq": "__ne__"}


SHELVED_MARK = "pyct_shelved_image"


def _where(query, filters: dict[str, Any]):
    image = models.Image
    for key in ("name", "status", "owner", "disk_format",
                "container_format", "id"):
        values = filters.get(key)
        if values is not None:
            query = query.where(getattr(image, key).in_(list(values)))
    query = query.where(image.os_hidden.is_(bool(filters.get("os_hidden"))))
    if filters.get("protected") is not None:
        query = query.where(image.protected.is_(filters["protected"]))
    for key, value in (filters.get("properties_exact") or {}).items():
        query = query.where(getattr(image, key) == value)
    if filters.get("size_min") is not None:
        query = query.where(image.size >= filters["size_min"])
    if filters.get("size_max") is not None:
        query = query.where(image.size <= filters["size_max"])
    for key in ("created_at", "updated_at"):
        for op, when in filters.get(key) or ():
            query = query.where(getattr(getattr(image, key),
                                        _OPERATORS[op])(when))
    for tag in filters.get("tags") or ():
        query = query.where(image.id.in_(sa.select(ImageTag.image_id).where(
            ImageTag.value == tag)))
    for key, value in (filters.get("properties") or {}).items():
        query = query.where(image.properties[key].as_string() == value)
    return query


def image_list(db: Database, filters: dict[str, Any], viewer: Viewer,
               sort: list[tuple[str, str]], limit: int,
               marker: str | None = None, member_status: str = "accepted",
               visibility: str | None = None) -> list[dict]:
    """The page of images ``viewer`` may list after ``marker``, each with
    its ``tags``; a marker it may not see is ImageNotFound."""
    order = [(getattr(models.Image, key), direction)
             for key, direction in sort]
    if not any(key == "id" for key, _ in sort):
        order.append((models.Image.id, sort[-1][1] if sort else "desc"))
    query = _where(sa.select(models.Image), filters).where(
        image_access.list_clause(viewer, member_status, visibility))
    query = query.order_by(*keyset.order_by(order))
    with db.session() as session:
        if marker is not None:
            image_access.image_get_visible(db, marker, viewer)
            mark = session.get(models.Image, marker)
            query = query.where(keyset.after(order, mark))
        rows = [row_to_dict(r) for r in session.scalars(query.limit(limit))]
    tags = tags_of(db, [r["id"] for r in rows])
    for row in rows:
        row["tags"] = tags.get(row["id"], [])
    return rows


def tags_of(db: Database, image_ids: list[str]) -> dict[str, list[str]]:
    """Each image's tags, sorted."""
    if not image_ids:
        return {}
    out: dict[str, list[str]] = {}
    with db.session() as session:
        for row in session.scalars(sa.select(ImageTag).where(
                ImageTag.image_id.in_(image_ids)).order_by(ImageTag.value)):
            out.setdefault(row.image_id, []).append(row.value)
    return out


def with_tags(db: Database, image: dict) -> dict:
    """``image`` with its ``tags``."""
    return {**image, "tags": tags_of(db, [image["id"]]).get(image["id"],
                                                            [])}


def image_create(db: Database, values: dict, tags: list[str]) -> dict:
    """Create the image row and its tags in one transaction."""
    with db.session() as session:
        if session.get(models.Image, values["id"]) is not None:
            raise exception.Duplicate(what=f"Image {values['id']}")
        session.add(models.Image(**values))
        session.flush()
        session.add_all(ImageTag(image_id=values["id"], value=t)
                        for t in sorted(set(tags)))
    return with_tags(db, catalog.image_get(db, values["id"]))


def set_tags(db: Database, image_id: str, tags: list[str]) -> None:
    """Replace the image's tags."""
    with db.session() as session:
        session.execute(sa.delete(ImageTag).where(
            ImageTag.image_id == image_id))
        session.add_all(ImageTag(image_id=image_id, value=t)
                        for t in sorted(set(tags)))


def set_status(db: Database, image_id: str, expect: tuple[str, ...],
               values: dict) -> dict:
    """Change the image (its ``status`` among them) only while its status
    is one of ``expect``: a compare-and-swap, so two uploads or an upload
    and a delete racing cannot both win. Conflict otherwise."""
    values = {**values, "updated_at": models.utcnow()}
    with db.session() as session:
        done = session.execute(sa.update(models.Image).where(
            models.Image.id == image_id,
            models.Image.status.in_(expect)).values(**values))
        if done.rowcount != 1:
            row = session.get(models.Image, image_id)
            if row is None:
                raise exception.ImageNotFound(image_id=image_id)
            raise exception.Conflict(
                f"Image status transition from {row.status} to "
                f"{values.get('status', row.status)} is not allowed")
    return with_tags(db, catalog.image_get(db, image_id))


def image_delete(db: Database, image_id: str) -> dict:
    """Remove the image, its members and tags; return the row it was."""
    with db.session() as session:
        row = session.get(models.Image, image_id)
        if row is None:
            raise exception.ImageNotFound(image_id=image_id)
        image = row_to_dict(row)
        for table in (ImageTag, models.ImageMember):
            session.execute(sa.delete(table).where(
                table.image_id == image_id))
        session.delete(row)
    return image


def shelved_image(db: Database, inst: dict) -> dict | None:
    """The newest active image a shelve of ``inst`` made (marked with the
    ``pyct_shelved_image`` property), if any is left."""
    for image in catalog.image_list(db, {"owner": inst["project_id"],
                                         "status": "active"}):
        props = image.get("properties") or {}
        if props.get(SHELVED_MARK) and \
                props.get("instance_uuid") == inst["uuid"]:
            return image
    return None


def parse_time(value: str) -> datetime.datetime:
    """An ISO 8601 time as the naive UTC the database holds."""
    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when
