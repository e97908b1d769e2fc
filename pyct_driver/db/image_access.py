"""Who may see an image: Glance's visibility model as SQL and as a check.

An image is ``public`` (everyone), ``community`` (everyone may show and
boot it, but lists show it only when asked for ``visibility=community``,
or to its owner), ``shared`` (its owner and the projects in its member
list) or ``private`` (its owner). Admins see everything. A member sees a
shared image by id whatever its member status; lists show it only with the
status asked for (``accepted`` by default), as Glance does. Image queries
for a caller go through ``Viewer``; ``catalog.image_get`` stays unscoped
for the compute service and operators.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict

VISIBILITIES = ("public", "community", "shared", "private")
MEMBER_STATUSES = ("pending", "accepted", "rejected")


def check_visibility(value: str) -> str:
    """``value`` if it is one of Glance's visibilities, else InvalidInput."""
    if value not in VISIBILITIES:
        raise exception.InvalidInput(
            reason=f"visibility {value!r} is not one of "
                   f"{', '.join(VISIBILITIES)}")
    return value


@dataclasses.dataclass(frozen=True)
class Viewer:
    """The caller an image query answers to: a project, maybe an admin."""

    project_id: str | None
    is_admin: bool = False


def list_clause(viewer: Viewer, member_status: str = "accepted",
                visibility: str | None = None) -> sa.ColumnElement:
    """The WHERE clause of an image list for ``viewer``.

    ``member_status`` is one of ``MEMBER_STATUSES`` or ``all``;
    ``visibility`` one of ``VISIBILITIES``, ``all`` or None (the default
    list: no community images but the caller's own).
    """
    image = models.Image
    own = (image.owner == viewer.project_id if viewer.project_id
           else sa.false())
    if viewer.is_admin:
        # Glance ignores member_status for admins: they see every image
        seen: sa.ColumnElement = sa.true()
    else:
        members = sa.select(models.ImageMember.image_id).where(
            models.ImageMember.member == viewer.project_id)
        if member_status != "all":
            members = members.where(
                models.ImageMember.status == member_status)
        seen = sa.or_(image.visibility.in_(("public", "community")), own,
                      sa.and_(image.visibility == "shared",
                              image.id.in_(members)
                              if viewer.project_id else sa.false()))
    if visibility is None:
        return sa.and_(seen, sa.or_(image.visibility != "community", own))
    if visibility == "all":
        return seen
    return sa.and_(seen, image.visibility == visibility)


def may_see(db: Database, image: dict, viewer: Viewer) -> bool:
    """Whether ``viewer`` may show, download or boot ``image`` (any member
    status counts, as in Glance's image get)."""
    if viewer.is_admin or image["visibility"] in ("public", "community"):
        return True
    if viewer.project_id is None:
        return False
    if image["owner"] == viewer.project_id:
        return True
    if image["visibility"] != "shared":
        return False
    with db.session() as session:
        return session.scalars(sa.select(models.ImageMember.id).where(
            models.ImageMember.image_id == image["id"],
            models.ImageMember.member == viewer.project_id)).first() \
            is not None


def image_get_visible(db: Database, image_id: str, viewer: Viewer) -> dict:
    """The image if ``viewer`` may see it; ImageNotFound otherwise, the same
    answer as for an id that does not exist."""
    with db.session() as session:
        row = session.get(models.Image, image_id)
        image = row_to_dict(row) if row is not None else None
    if image is None or not may_see(db, image, viewer):
        raise exception.ImageNotFound(image_id=image_id)
    return image
