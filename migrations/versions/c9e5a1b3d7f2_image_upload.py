"""Images through the API: protected, os_hidden and the multihash on
images; the image_tags table.

Revision ID: c9e5a1b3d7f2
Revises: e3a9c5f1b7d2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import table_opts

revision = "c9e5a1b3d7f2"
down_revision = "e3a9c5f1b7d2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        # existing images are neither protected nor hidden
        batch.add_column(sa.Column("protected", sa.Boolean(),
                                   nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("os_hidden", sa.Boolean(),
                                   nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("os_hash_algo", sa.String(64),
                                   nullable=True))
        batch.add_column(sa.Column("os_hash_value", sa.String(128),
                                   nullable=True))
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("image_id", "value"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"],
                                ondelete="CASCADE"),
        sa.Index("image_tags_value_idx", "value"),
        **table_opts(),
    )


def downgrade() -> None:
    op.drop_table("image_tags")
    with op.batch_alter_table("images") as batch:
        for column in ("os_hash_value", "os_hash_algo", "os_hidden",
                       "protected"):
            batch.drop_column(column)
