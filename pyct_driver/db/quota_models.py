"""SQLAlchemy models of quotas: limits, quota classes, usage locks.

Part of the schema ``models`` declares (it imports this module, so
``models.Base.metadata`` holds these tables too); the quota logic above
the database is in ``db.quotas``.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, DateTime, TimestampMixin, utcnow


class Quota(TimestampMixin, Base):
    """A project's limit on one resource (Nova's quotas and
    project_user_quotas in one table: ``user_id`` '' is the project's
    own limit, a user id that user's limit within the project)."""

    __tablename__ = "quotas"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id", "resource",
                         name="uniq_quotas0project_id0user_id0resource"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False,
                                         default="")
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaClass(TimestampMixin, Base):
    """A quota class's limit on one resource; class ``default`` overrides
    the configured defaults."""

    __tablename__ = "quota_classes"
    __table_args__ = (
        UniqueConstraint("class_name", "resource",
                         name="uniq_quota_classes0class_name0resource"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaLock(Base):
    """One row per scope ('project:<id>', 'user:<id>') whose usage is
    checked: creates in that scope lock it (SELECT ... FOR UPDATE) while
    they count and insert, so two of them never both see room for one."""

    __tablename__ = "quota_locks"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, nullable=False)
