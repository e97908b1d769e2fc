"""Floating IPs: addresses of the external network held by projects, each
associated with at most one port.

Revision ID: a4c6e8b0d2f1
Revises: a1c3e5b7d9f2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "a4c6e8b0d2f1"
down_revision = "a1c3e5b7d9f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "floating_ips",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("floating_network_id", sa.String(36), nullable=False),
        sa.Column("floating_ip_address", sa.String(39), nullable=False),
        sa.Column("port_id", sa.String(36),
                  sa.ForeignKey("ports.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.UniqueConstraint("floating_ip_address",
                            name="uniq_floating_ips0floating_ip_address"),
        sa.UniqueConstraint("port_id", name="uniq_floating_ips0port_id"),
        **table_opts(),
    )
    op.create_index("floating_ips_project_id_idx", "floating_ips",
                    ["project_id"])


def downgrade() -> None:
    op.drop_table("floating_ips")
