"""The image catalogue's side tables: members of shared images and image
tags, beside the ``images`` table of ``models``.

Their own module because ``models`` is at its size limit; ``models``
imports it at its end so the tables are on the same ``Base.metadata``.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin


class ImageMember(TimestampMixin, Base):
    """A project a shared image is shared with; Glance's member status
    (pending, accepted, rejected) decides whether it is listed."""

    __tablename__ = "image_members"
    __table_args__ = (
        UniqueConstraint("image_id", "member",
                         name="uniq_image_members0image_id0member"),
        Index("image_members_member_idx", "member"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), nullable=False)
    member: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False,
                                        default="pending")


class ImageTag(Base):
    """A tag on an image (Glance's ``image_tags``): a string of at most
    255 characters, unique per image."""

    __tablename__ = "image_tags"
    __table_args__ = (
        Index("image_tags_value_idx", "value"),
    )

    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
