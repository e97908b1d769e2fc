"""Server locks' owners and reasons, and server groups, beside ``models``.

Its own module because ``models`` is at its size limit; ``models`` imports
it at its end so the tables are on the same ``Base.metadata``. A lock row
exists while a server is locked (``instances.locked`` is the flag the list
filter reads; the row says who locked it and why). A server group is a
project's named placement policy; its members are instance uuids.
"""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin


class InstanceLock(Base):
    """Who locked a server (``owner``: its project; ``admin``: another
    project's admin) and the 2.73 reason."""

    __tablename__ = "instance_locks"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    locked_by: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(255))


class InstanceGroup(TimestampMixin, Base):
    """A server group: one policy and, from 2.64, its rules."""

    __tablename__ = "instance_groups"
    __table_args__ = (
        Index("instance_groups_project_id_idx", "project_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False,
                                      unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    policy: Mapped[str] = mapped_column(String(255), nullable=False)
    rules: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


class InstanceGroupMember(Base):
    """A server in a group (a server is in at most one)."""

    __tablename__ = "instance_group_members"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instance_groups.id", ondelete="CASCADE"),
        nullable=False, index=True)
