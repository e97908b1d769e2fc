"""Console auth tokens: one-time tokens of the serial console proxy.

Revision ID: f5b1d7e3a9c6
Revises: b8d4f0a2c3e5
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import table_opts

revision = "f5b1d7e3a9c6"
down_revision = "b8d4f0a2c3e5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_auth_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("console_type", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("internal_access_path", sa.String(255), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("access_url_base", sa.String(255), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("token_hash"),
        sa.Index("console_auth_tokens_instance_uuid_idx", "instance_uuid"),
        sa.Index("console_auth_tokens_expires_idx", "expires"),
        **table_opts(),
    )


def downgrade() -> None:
    op.drop_table("console_auth_tokens")
