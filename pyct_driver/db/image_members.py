"""Image member queries: the projects a shared image is shared with.

A member row names a project and its status (pending, accepted,
rejected). What a caller can read is scoped as in Glance: an admin or the
image's owner sees every member, a member sees only its own row. Rows
leave as plain dicts with Glance's key ``member_id``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database
from pyct_driver.db.image_access import Viewer


def _dict(row: models.ImageMember) -> dict:
    return {"image_id": row.image_id, "member_id": row.member,
            "status": row.status, "created_at": row.created_at,
            "updated_at": row.updated_at or row.created_at}


def _not_a_member(member: str, image_id: str) -> exception.NotFound:
    return exception.NotFound(f"{member} not found in the member list of "
                              f"the image {image_id}.")


def _scoped(image: dict, viewer: Viewer):
    query = sa.select(models.ImageMember).where(
        models.ImageMember.image_id == image["id"])
    if not (viewer.is_admin or (viewer.project_id is not None
                                and image["owner"] == viewer.project_id)):
        query = query.where(models.ImageMember.member == viewer.project_id)
    return query


def member_list(db: Database, image: dict, viewer: Viewer) -> list[dict]:
    """The members of ``image`` that ``viewer`` may read, oldest first."""
    query = _scoped(image, viewer).order_by(models.ImageMember.id)
    with db.session() as session:
        return [_dict(r) for r in session.scalars(query)]


def member_get(db: Database, image: dict, member: str,
               viewer: Viewer) -> dict:
    """One member row ``viewer`` may read, or NotFound."""
    query = _scoped(image, viewer).where(
        models.ImageMember.member == member)
    with db.session() as session:
        row = session.scalars(query).first()
        if row is None:
            raise _not_a_member(member, image["id"])
        return _dict(row)


def member_create(db: Database, image_id: str, member: str,
                  limit: int) -> dict:
    """Add ``member`` as pending; TooLarge past ``limit`` members (a
    negative limit is none), Duplicate if it is a member already."""
    with db.session() as session:
        count = session.scalar(sa.select(sa.func.count()).where(
            models.ImageMember.image_id == image_id))
        if 0 <= limit < count + 1:
            raise exception.TooLarge(
                f"Image member limit exceeded for image {image_id}: The "
                f"limit has been exceeded on the number of allowed image "
                f"members for this image. Attempted: {count + 1}, "
                f"Maximum: {limit}:")
        duplicate = exception.Duplicate(
            f"Member {member} is duplicated for image {image_id}")
        if session.scalars(sa.select(models.ImageMember.id).where(
                models.ImageMember.image_id == image_id,
                models.ImageMember.member == member)).first() is not None:
            raise duplicate
        row = models.ImageMember(image_id=image_id, member=member,
                                 status="pending")
        session.add(row)
        try:
            session.flush()
        except sa_exc.IntegrityError as err:  # a concurrent add won
            raise duplicate from err
        return _dict(row)


def member_set_status(db: Database, image_id: str, member: str,
                      status: str) -> dict:
    with db.session() as session:
        row = session.scalars(sa.select(models.ImageMember).where(
            models.ImageMember.image_id == image_id,
            models.ImageMember.member == member)).first()
        if row is None:
            raise _not_a_member(member, image_id)
        row.status = status
        session.flush()
        return _dict(row)


def member_delete(db: Database, image_id: str, member: str) -> None:
    with db.session() as session:
        session.execute(sa.delete(models.ImageMember).where(
            models.ImageMember.image_id == image_id,
            models.ImageMember.member == member))
