"""inbox lanes: each inbound event names the lane (a hash of its person) a drain claims

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.add_column(sa.Column("lane", sa.SmallInteger(), server_default="0", nullable=False))
        batch.drop_index("ix_inbound_events_platform_due")
        batch.create_index(
            "ix_inbound_events_lane_due",
            ["workspace_id", "lane", "platform", "status", "next_attempt_at"],
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_index("ix_inbound_events_lane_due")
        batch.create_index(
            "ix_inbound_events_platform_due",
            ["workspace_id", "platform", "status", "next_attempt_at"],
        )
        batch.drop_column("lane")
