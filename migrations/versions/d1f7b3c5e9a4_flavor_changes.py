"""Resize: the old and new flavor of each resize (instance_flavor_changes).

Revision ID: d1f7b3c5e9a4
Revises: c9e5a1b3d7f2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "d1f7b3c5e9a4"
down_revision = "c9e5a1b3d7f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_flavor_changes",
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("migration_uuid", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("status", sa.String(255), nullable=False),
        sa.Column("old_flavor_id", sa.String(255), nullable=False),
        sa.Column("old_flavor", sa.JSON(), nullable=False),
        sa.Column("new_flavor_id", sa.String(255), nullable=False),
        sa.Column("new_flavor", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("migration_uuid"),
        sa.Index("instance_flavor_changes_instance_uuid_idx",
                 "instance_uuid"),
        **table_opts(),
    )


def downgrade() -> None:
    op.drop_table("instance_flavor_changes")
