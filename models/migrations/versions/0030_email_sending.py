"""email sending: a message's next attempt (backoff and the sending lease), and pushes
that go by email to no OA

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 22:10:00
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

DUE = "status IN ('planned', 'sending') AND push_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_attempt_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_email_messages_due",
            ["workspace_id", "next_attempt_at"],
            unique=False,
            postgresql_where=sa.text(DUE),
            sqlite_where=sa.text(DUE),
        )
    with op.batch_alter_table("pushes", schema=None) as batch_op:
        batch_op.alter_column("channel_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM pushes WHERE channel_id IS NULL")
    with op.batch_alter_table("pushes", schema=None) as batch_op:
        batch_op.alter_column("channel_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_email_messages_due",
            postgresql_where=sa.text(DUE),
            sqlite_where=sa.text(DUE),
        )
        batch_op.drop_column("next_attempt_at")
