"""Security groups: groups, their rules, the groups of each port and each
project's ``default`` group.

Revision ID: a1c3e5b7d9f2
Revises: b3d5f7a9c1e2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "a1c3e5b7d9f2"
down_revision = "b3d5f7a9c1e2"
branch_labels = None
depends_on = None


def _times() -> list[sa.Column]:
    return [sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        *_times(), **table_opts())
    op.create_index("security_groups_project_id_idx", "security_groups",
                    ["project_id"])
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(7), nullable=False),
        sa.Column("ethertype", sa.String(4), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=True),
        sa.Column("port_range_min", sa.Integer, nullable=True),
        sa.Column("port_range_max", sa.Integer, nullable=True),
        sa.Column("remote_ip_prefix", sa.String(43), nullable=True),
        sa.Column("remote_group_id", sa.String(36),
                  sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("description", sa.String(255), nullable=False),
        *_times(), **table_opts())
    op.create_index("security_group_rules_group_id_idx",
                    "security_group_rules", ["security_group_id"])
    op.create_table(
        "port_security_groups",
        sa.Column("port_id", sa.String(36),
                  sa.ForeignKey("ports.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
                  primary_key=True), **table_opts())
    op.create_index("port_security_groups_group_idx",
                    "port_security_groups", ["security_group_id"])
    op.create_table(
        "default_security_groups",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
                  nullable=False), **table_opts())


def downgrade() -> None:
    for table in ("default_security_groups", "port_security_groups",
                  "security_group_rules", "security_groups"):
        op.drop_table(table)
