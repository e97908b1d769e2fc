"""The tables of the operator's views: host aggregates and migrations.

They share ``models.Base`` (so one metadata, one migration chain) and live
apart only to keep each models module readable. Aggregates group hosts;
an aggregate's ``availability_zone`` metadata puts its hosts in that zone.
Migrations are Nova's table of instance moves, listed by os-migrations.
"""

from __future__ import annotations

from sqlalchemy import (Boolean, ForeignKey, Index, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pyct_driver.db.models import Base, TimestampMixin


class Aggregate(TimestampMixin, Base):
    """A named group of hosts; its ``availability_zone`` metadata puts
    them in that zone."""

    __tablename__ = "aggregates"
    __table_args__ = (
        UniqueConstraint("name", name="uniq_aggregates0name"),
        UniqueConstraint("uuid", name="uniq_aggregates0uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    hosts: Mapped[list["AggregateHost"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin",
        order_by="AggregateHost.id")
    metadata_items: Mapped[list["AggregateMetadata"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin",
        order_by="AggregateMetadata.id")


class AggregateHost(TimestampMixin, Base):
    __tablename__ = "aggregate_hosts"
    __table_args__ = (
        UniqueConstraint("host", "aggregate_id",
                         name="uniq_aggregate_hosts0host0aggregate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)


class AggregateMetadata(TimestampMixin, Base):
    __tablename__ = "aggregate_metadata"
    __table_args__ = (
        UniqueConstraint("aggregate_id", "key",
                         name="uniq_aggregate_metadata0aggregate_id0key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Migration(TimestampMixin, Base):
    """A move of an instance between hosts (Nova's migrations table);
    nothing writes it yet, os-migrations lists it."""

    __tablename__ = "migrations"
    __table_args__ = (
        Index("migrations_instance_uuid_idx", "instance_uuid"),
        UniqueConstraint("uuid", name="uniq_migrations0uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    source_compute: Mapped[str | None] = mapped_column(String(255))
    dest_compute: Mapped[str | None] = mapped_column(String(255))
    source_node: Mapped[str | None] = mapped_column(String(255))
    dest_node: Mapped[str | None] = mapped_column(String(255))
    dest_host: Mapped[str | None] = mapped_column(String(255))
    old_instance_type_id: Mapped[int | None] = mapped_column(Integer)
    new_instance_type_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(255), nullable=False)
    migration_type: Mapped[str] = mapped_column(String(255), nullable=False)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                         default=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(255))

