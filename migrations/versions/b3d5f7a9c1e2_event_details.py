"""Instance action events: ``details`` (Nova's 2.84 event field; pyct says
there which suspend mode a guest got).

Revision ID: b3d5f7a9c1e2
Revises: d1f7b3c5e9a4
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from pyct_driver.db.migration_types import LONGTEXT

revision = "b3d5f7a9c1e2"
down_revision = "d1f7b3c5e9a4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instance_actions_events",
                  sa.Column("details", LONGTEXT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance_actions_events") as batch:
        batch.drop_column("details")
