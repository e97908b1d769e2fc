"""The server tags table (2.26), beside the instances of ``models``.

Its own module because ``models`` is at its size limit; ``models`` imports
it at its end so the table is on the same ``Base.metadata``.
"""

from __future__ import annotations

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base


class Tag(Base):
    """A server's tag (2.26): a short string, at most 50 per server."""

    __tablename__ = "tags"
    __table_args__ = (
        Index("tags_tag_idx", "tag"),
    )

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(80), primary_key=True)
