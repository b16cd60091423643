"""inbound_events: an index for claiming WeCom's events before the OA's

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch_op:
        batch_op.create_index(
            "ix_inbound_events_platform_due",
            ["workspace_id", "platform", "status", "next_attempt_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch_op:
        batch_op.drop_index("ix_inbound_events_platform_due")
