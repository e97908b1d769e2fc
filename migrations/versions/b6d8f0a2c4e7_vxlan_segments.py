"""VXLAN segments: each network's VNI (unique), each service's tunnel
address (the compute hosts' VXLAN endpoints). Networks made before get
VNIs in their creation order.

Revision ID: b6d8f0a2c4e7
Revises: a4c6e8b0d2f1
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = "b6d8f0a2c4e7"
down_revision = "a4c6e8b0d2f1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("networks") as batch:
        batch.add_column(sa.Column("vni", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uniq_networks0vni", ["vni"])
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("tunnel_address", sa.String(39),
                                   nullable=True))
    networks = sa.table("networks", sa.column("id", sa.String),
                        sa.column("vni", sa.Integer),
                        sa.column("created_at", sa.DateTime))
    bind = op.get_bind()
    ids = bind.execute(sa.select(networks.c.id).order_by(
        networks.c.created_at, networks.c.id)).scalars().all()
    for vni, network_id in enumerate(ids, start=1):
        bind.execute(networks.update().where(
            networks.c.id == network_id).values(vni=vni))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("tunnel_address")
    with op.batch_alter_table("networks") as batch:
        batch.drop_constraint("uniq_networks0vni", type_="unique")
        batch.drop_column("vni")
