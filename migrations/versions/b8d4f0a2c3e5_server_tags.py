"""Server tags (microversion 2.26): the tags table; the zone a server was
booted into on request (2.96 pinned_availability_zone).

Revision ID: b8d4f0a2c3e5
Revises: a7c3e9f1b2d4
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = "b8d4f0a2c3e5"
down_revision = "a7c3e9f1b2d4"
branch_labels = None
depends_on = None


def _table_opts() -> dict[str, str]:
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return {}
    collate = ("utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb",
                                              False) else "utf8mb4_bin")
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": collate}


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "tag"),
        sa.Index("tags_tag_idx", "tag"),
        **_table_opts(),
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("pinned_availability_zone",
                                   sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("pinned_availability_zone")
    op.drop_table("tags")
