"""Server locks (who locked, 2.73 reason) and server groups with their
members.

Revision ID: e3a9c5f1b7d2
Revises: f5b1d7e3a9c6
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "e3a9c5f1b7d2"
down_revision = "f5b1d7e3a9c6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_locks",
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("locked_by", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("instance_uuid"),
        **table_opts(),
    )
    op.create_table(
        "instance_groups",
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(255), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid", name="uniq_instance_groups0uuid"),
        sa.Index("instance_groups_project_id_idx", "project_id"),
        **table_opts(),
    )
    op.create_table(
        "instance_group_members",
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["instance_groups.id"], ondelete="CASCADE",
            name="instance_group_members_group_id_fkey"),
        sa.PrimaryKeyConstraint("instance_uuid"),
        sa.Index("instance_group_members_group_id_idx", "group_id"),
        **table_opts(),
    )


def downgrade() -> None:
    op.drop_table("instance_group_members")
    op.drop_table("instance_groups")
    op.drop_table("instance_locks")
