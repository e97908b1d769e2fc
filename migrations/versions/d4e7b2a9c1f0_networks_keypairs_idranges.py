"""Project networks, ports (IPAM), key pairs and user-namespace id ranges.

Revision ID: d4e7b2a9c1f0
Revises: c0a8f3d1e2b4
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "d4e7b2a9c1f0"
down_revision = "c0a8f3d1e2b4"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def upgrade() -> None:
    opts = table_opts()
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("cidr", sa.String(43), nullable=False),
        sa.Column("gateway", sa.String(39), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("dns_nameservers", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cidr", name="uniq_networks0cidr"),
        **opts,
    )
    op.create_index("networks_project_id_idx", "networks", ["project_id"])
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("network_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("mac_address", sa.String(17), nullable=False),
        sa.Column("ip_address", sa.String(39), nullable=False),
        sa.Column("device_index", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["network_id"], ["networks.id"],
                                name="ports_network_id_fkey",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("network_id", "ip_address",
                            name="uniq_ports0network_id0ip_address"),
        sa.UniqueConstraint("mac_address", name="uniq_ports0mac_address"),
        **opts,
    )
    op.create_index("ports_instance_uuid_idx", "ports", ["instance_uuid"])
    op.create_table(
        "key_pairs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "name",
                            name="uniq_key_pairs0user_id0name"),
        **opts,
    )
    op.create_table(
        "instance_id_ranges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("range_start", sa.BigInteger(), nullable=False),
        sa.Column("range_size", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("range_start",
                            name="uniq_instance_id_ranges0range_start"),
        sa.UniqueConstraint("instance_uuid",
                            name="uniq_instance_id_ranges0instance_uuid"),
        **opts,
    )


def downgrade() -> None:
    for table in ("instance_id_ranges", "key_pairs", "ports", "networks"):
        op.drop_table(table)
