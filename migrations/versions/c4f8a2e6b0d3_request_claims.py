"""Request claims: each request on an instance carried out at most once
(a compute handler's or the API's stuck-work task's claim).

Revision ID: c4f8a2e6b0d3
Revises: b6d8f0a2c4e7
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "c4f8a2e6b0d3"
down_revision = "b6d8f0a2c4e7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_claims",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("method", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("state", sa.String(36), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.UniqueConstraint(
            "instance_uuid", "request_id", "method",
            name="uniq_request_claims0instance_uuid0request_id0method"),
        **table_opts(),
    )


def downgrade() -> None:
    op.drop_table("request_claims")
