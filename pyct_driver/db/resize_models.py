"""The flavor change of a resize, beside the instances of ``models``.

A resize keeps both flavor snapshots until it is confirmed or reverted:
the instance row carries the new one (what the guest runs with once the
resize finished), this row the old one (what a revert restores) and the
new one (what a finish or a restart after a crash applies). One row per
resize, keyed by the uuid of its ``migrations`` row (os-migrations lists
the same resize). Its own module because ``models`` is at its size limit.
"""

from __future__ import annotations

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin


class FlavorChange(TimestampMixin, Base):
    """Old and new flavor of one resize (``status`` mirrors the
    migration's: pre-migrating, finished, confirmed, reverted, error)."""

    __tablename__ = "instance_flavor_changes"
    __table_args__ = (
        Index("instance_flavor_changes_instance_uuid_idx", "instance_uuid"),
    )

    migration_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    status: Mapped[str] = mapped_column(String(255), nullable=False)
    old_flavor_id: Mapped[str] = mapped_column(String(255), nullable=False)
    old_flavor: Mapped[dict] = mapped_column(JSON, nullable=False)
    new_flavor_id: Mapped[str] = mapped_column(String(255), nullable=False)
    new_flavor: Mapped[dict] = mapped_column(JSON, nullable=False)
