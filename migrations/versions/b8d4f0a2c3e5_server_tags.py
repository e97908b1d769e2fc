"""Server tags (microversion 2.26): the tags table; the zone a server was
booted into on request (2.96 pinned_availability_zone).

Revision ID: b8d4f0a2c3e5
Revises: a7c3e9f1b2d4
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import table_opts

revision = "b8d4f0a2c3e5"
down_revision = "a7c3e9f1b2d4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "tag"),
        sa.Index("tags_tag_idx", "tag"),
        **table_opts(),
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("pinned_availability_zone",
                                   sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("pinned_availability_zone")
    op.drop_table("tags")
