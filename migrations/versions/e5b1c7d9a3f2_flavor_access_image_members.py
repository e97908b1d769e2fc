"""Flavor access lists (private flavors) and image members (shared images).

Revision ID: e5b1c7d9a3f2
Revises: d4e7b2a9c1f0
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "e5b1c7d9a3f2"
down_revision = "d4e7b2a9c1f0"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def upgrade() -> None:
    opts = table_opts()
    op.create_table(
        "flavor_projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flavor_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["flavor_id"], ["flavors.id"],
                                name="flavor_projects_flavor_id_fkey",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("flavor_id", "project_id",
                            name="uniq_flavor_projects0flavor_id0project_id"),
        **opts,
    )
    op.create_table(
        "image_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"],
                                name="image_members_image_id_fkey",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("image_id", "member",
                            name="uniq_image_members0image_id0member"),
        **opts,
    )
    op.create_index("image_members_member_idx", "image_members", ["member"])


def downgrade() -> None:
    for table in ("image_members", "flavor_projects"):
        op.drop_table(table)
