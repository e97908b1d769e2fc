"""Floating IPs: addresses of the external network held by projects, each
associated with at most one port.

Revision ID: a4c6e8b0d2f1
Revises: a1c3e5b7d9f2
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "a4c6e8b0d2f1"
down_revision = "a1c3e5b7d9f2"
branch_labels = None
depends_on = None
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                      "mariadb")


def _table_opts() -> dict[str, str]:
    # the same charset and collation as ports, which the key points at
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return {}
    collate = ("utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb",
                                              False) else "utf8mb4_bin")
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": collate}


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
        **_table_opts(),
    )
    op.create_index("floating_ips_project_id_idx", "floating_ips",
                    ["project_id"])


def downgrade() -> None:
    op.drop_table("floating_ips")
