"""Quotas: per-project (and per-user) limits, quota classes, usage locks.

Revision ID: f1a2b3c4d5e6
Revises: e5b1c7d9a3f2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "f1a2b3c4d5e6"
down_revision = "e5b1c7d9a3f2"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def upgrade() -> None:
    opts = table_opts()
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "project_id", "user_id", "resource",
            name="uniq_quotas0project_id0user_id0resource"),
        **opts,
    )
    op.create_table(
        "quota_classes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("class_name", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "class_name", "resource",
            name="uniq_quota_classes0class_name0resource"),
        **opts,
    )
    op.create_table(
        "quota_locks",
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("scope"),
        **opts,
    )


def downgrade() -> None:
    for table in ("quota_locks", "quota_classes", "quotas"):
        op.drop_table(table)
