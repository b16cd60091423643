"""Indexes for the bounce and complaint API: an email message by its Message-ID, and an
address's latest sent message

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 23:15:00
"""

from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_email_messages_message_id", "email_messages", ["workspace_id", "message_id"]
    )
    op.create_index(
        "ix_email_messages_address", "email_messages", ["workspace_id", "to_address", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_email_messages_address", table_name="email_messages")
    op.drop_index("ix_email_messages_message_id", table_name="email_messages")
