"""Initial schema: instances, flavors, images, services, actions, faults.

Revision ID: c0a8f3d1e2b4
Revises:
Create Date: 2026-11-29

Types are spelled out here rather than imported from the models: a
migration is a frozen record of one schema version, the models move on.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import DATETIME, LONGTEXT, table_opts

revision = "c0a8f3d1e2b4"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("updated_at", DATETIME, nullable=True)]


def upgrade() -> None:
    opts = table_opts()
    op.create_table(
        "compute_nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("local_gb", sa.Integer(), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), nullable=False),
        sa.Column("memory_mb_used", sa.Integer(), nullable=False),
        sa.Column("local_gb_used", sa.Integer(), nullable=False),
        sa.Column("running_vms", sa.Integer(), nullable=False),
        sa.Column("cpu_allocation_ratio", sa.Float(), nullable=False),
        sa.Column("ram_allocation_ratio", sa.Float(), nullable=False),
        sa.Column("disk_allocation_ratio", sa.Float(), nullable=False),
        sa.Column("reserved_host_memory_mb", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("host", name="uniq_compute_nodes0host"),
        **opts,
    )
    op.create_table(
        "flavors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flavorid", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("root_gb", sa.Integer(), nullable=False),
        sa.Column("ephemeral_gb", sa.Integer(), nullable=False),
        sa.Column("swap", sa.Integer(), nullable=False),
        sa.Column("rxtx_factor", sa.Float(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flavorid", name="uniq_flavors0flavorid"),
        sa.UniqueConstraint("name", name="uniq_flavors0name"),
        **opts,
    )
    op.create_table(
        "flavor_extra_specs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flavor_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["flavor_id"], ["flavors.id"],
                                name="flavor_extra_specs_flavor_id_fkey",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("flavor_id", "key",
                            name="uniq_flavor_extra_specs0flavor_id0key"),
        **opts,
    )
    op.create_table(
        "images",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("disk_format", sa.String(30), nullable=True),
        sa.Column("container_format", sa.String(30), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("visibility", sa.String(30), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("min_disk", sa.Integer(), nullable=False),
        sa.Column("min_ram", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(1024), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        **opts,
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("image_ref", sa.String(255), nullable=False),
        sa.Column("flavor_id", sa.String(255), nullable=False),
        sa.Column("flavor", sa.JSON(), nullable=False),
        sa.Column("vm_state", sa.String(255), nullable=False),
        sa.Column("task_state", sa.String(255), nullable=True),
        sa.Column("power_state", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("user_data", LONGTEXT, nullable=True),
        sa.Column("key_name", sa.String(255), nullable=True),
        sa.Column("key_data", sa.Text(), nullable=True),
        sa.Column("networks", sa.JSON(), nullable=True),
        sa.Column("block_device_mapping", sa.JSON(), nullable=True),
        sa.Column("config_drive", sa.Boolean(), nullable=False),
        sa.Column("reservation_id", sa.String(255), nullable=False),
        sa.Column("launch_index", sa.Integer(), nullable=False),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("launched_at", DATETIME, nullable=True),
        sa.Column("terminated_at", DATETIME, nullable=True),
        sa.Column("deleted_at", DATETIME, nullable=True),
        sa.Column("deleted", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid", "deleted",
                            name="uniq_instances0uuid0deleted"),
        **opts,
    )
    op.create_index("instances_project_id_deleted_idx", "instances",
                    ["project_id", "deleted"])
    op.create_index("instances_host_deleted_idx", "instances",
                    ["host", "deleted"])
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("last_seen_up", DATETIME, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("host", "binary",
                            name="uniq_services0host0binary"),
        **opts,
    )
    op.create_table(
        "instance_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=True),
        sa.Column("start_time", DATETIME, nullable=False),
        sa.Column("finish_time", DATETIME, nullable=True),
        sa.Column("message", sa.String(255), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        **opts,
    )
    op.create_index("instance_uuid_idx", "instance_actions",
                    ["instance_uuid"])
    op.create_index("instance_actions_request_id_idx", "instance_actions",
                    ["request_id"])
    op.create_table(
        "instance_actions_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("start_time", DATETIME, nullable=False),
        sa.Column("finish_time", DATETIME, nullable=True),
        sa.Column("result", sa.String(255), nullable=True),
        sa.Column("traceback", LONGTEXT, nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(
            ["action_id"], ["instance_actions.id"],
            name="instance_actions_events_action_id_fkey",
            ondelete="CASCADE"),
        **opts,
    )
    op.create_table(
        "instance_faults",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(255), nullable=False),
        sa.Column("details", LONGTEXT, nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        **opts,
    )
    op.create_index("instance_faults_instance_uuid_idx", "instance_faults",
                    ["instance_uuid"])


def downgrade() -> None:
    for table in ("instance_faults", "instance_actions_events",
                  "instance_actions", "services", "instances", "images",
                  "flavor_extra_specs", "flavors", "compute_nodes"):
        op.drop_table(table)
