"""Operator views: service uuids and forced_down, what compute nodes tell
os-hypervisors, host aggregates, the migrations table.

Existing services and compute nodes get their uuid here, so every row has
the id the API shows from microversion 2.53 on.

Revision ID: a7c3e9f1b2d4
Revises: e5b1c7d9a3f2
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, table_opts

revision = "a7c3e9f1b2d4"
down_revision = "f1a2b3c4d5e6"
branch_labels = None
depends_on = None


def _common() -> list[sa.Column]:
    return [sa.Column("id", sa.Integer(), autoincrement=True,
                      nullable=False),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def _fill_uuids(table: str) -> None:
    bind = op.get_bind()
    tbl = sa.table(table, sa.column("id", sa.Integer),
                   sa.column("uuid", sa.String))
    for (row_id,) in bind.execute(sa.select(tbl.c.id)).fetchall():
        bind.execute(tbl.update().where(tbl.c.id == row_id).values(
            uuid=str(uuid.uuid4())))


def upgrade() -> None:
    opts = table_opts()
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=True))
        batch.add_column(sa.Column("forced_down", sa.Boolean(),
                                   nullable=False,
                                   server_default=sa.false()))
        batch.create_unique_constraint("uniq_services0uuid", ["uuid"])
    with op.batch_alter_table("compute_nodes") as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=True))
        batch.add_column(sa.Column("hypervisor_type", sa.String(255),
                                   nullable=True))
        batch.add_column(sa.Column("hypervisor_version", sa.Integer(),
                                   nullable=True))
        batch.add_column(sa.Column("host_ip", sa.String(39), nullable=True))
        batch.add_column(sa.Column("uptime", sa.String(255), nullable=True))
        batch.create_unique_constraint("uniq_compute_nodes0uuid", ["uuid"])
    _fill_uuids("services")
    _fill_uuids("compute_nodes")
    # the default only served the existing rows; the models have none
    with op.batch_alter_table("services") as batch:
        batch.alter_column("forced_down", server_default=None,
                           existing_type=sa.Boolean(), existing_nullable=False)
    op.create_table(
        "aggregates", *_common(),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uniq_aggregates0name"),
        sa.UniqueConstraint("uuid", name="uniq_aggregates0uuid"),
        **opts,
    )
    for table, column, unique in (
            ("aggregate_hosts", "host",
             ("host", "aggregate_id",
              "uniq_aggregate_hosts0host0aggregate_id")),
            ("aggregate_metadata", "key",
             ("aggregate_id", "key",
              "uniq_aggregate_metadata0aggregate_id0key"))):
        extra = [sa.Column("value", sa.String(255), nullable=False)] \
            if table == "aggregate_metadata" else []
        op.create_table(
            table, *_common(),
            sa.Column("aggregate_id", sa.Integer(), nullable=False),
            sa.Column(column, sa.String(255), nullable=False), *extra,
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["aggregate_id"], ["aggregates.id"],
                                    name=f"{table}_aggregate_id_fkey",
                                    ondelete="CASCADE"),
            sa.UniqueConstraint(unique[0], unique[1], name=unique[2]),
            **opts,
        )
    op.create_table(
        "migrations", *_common(),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        *[sa.Column(name, sa.String(255), nullable=True) for name in (
            "source_compute", "dest_compute", "source_node", "dest_node",
            "dest_host")],
        sa.Column("old_instance_type_id", sa.Integer(), nullable=True),
        sa.Column("new_instance_type_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(255), nullable=False),
        sa.Column("migration_type", sa.String(255), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid", name="uniq_migrations0uuid"),
        **opts,
    )
    op.create_index("migrations_instance_uuid_idx", "migrations",
                    ["instance_uuid"])


def downgrade() -> None:
    for table in ("migrations", "aggregate_metadata", "aggregate_hosts",
                  "aggregates"):
        op.drop_table(table)
    with op.batch_alter_table("compute_nodes") as batch:
        batch.drop_constraint("uniq_compute_nodes0uuid", type_="unique")
        for column in ("uptime", "host_ip", "hypervisor_version",
                       "hypervisor_type", "uuid"):
            batch.drop_column(column)
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint("uniq_services0uuid", type_="unique")
        batch.drop_column("forced_down")
        batch.drop_column("uuid")
