"""Indexes for the admin lists: inbox by status and time, audit log by action

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_inbound_events_workspace_status_received",
        "inbound_events",
        ["workspace_id", "status", "received_at"],
    )
    op.create_index(
        "ix_audit_log_workspace_action_created",
        "audit_log",
        ["workspace_id", "action", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_workspace_action_created", table_name="audit_log")
    op.drop_index("ix_inbound_events_workspace_status_received", table_name="inbound_events")
