"""Request claims: each request on an instance carried out at most once
(a compute handler's or the API's stuck-work task's claim).

Revision ID: c4f8a2e6b0d3
Revises: b6d8f0a2c4e7
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "c4f8a2e6b0d3"
down_revision = "b6d8f0a2c4e7"
branch_labels = None
depends_on = None
# microseconds on MySQL/MariaDB too, as the models' DateTime
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                      "mariadb")


def _table_opts() -> dict[str, str]:
    # binary, as the other tables: request ids compare byte for byte
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return {}
    collate = ("utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb",
                                              False) else "utf8mb4_bin")
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": collate}


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
        **_table_opts(),
    )


def downgrade() -> None:
    op.drop_table("request_claims")
