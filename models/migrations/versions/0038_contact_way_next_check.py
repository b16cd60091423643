"""联系我 codes: when the rotation cron next looks at a code (the next moment its wanted
config can change on its own), indexed so the cron reads only the codes that are due

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-07 23:25:00
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_ways") as batch:
        batch.add_column(
            sa.Column("next_check_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_contact_ways_next_check_at", ["next_check_at"])
    # Every live code is looked at once; that look sets its real next moment.
    op.execute("UPDATE contact_ways SET next_check_at = CURRENT_TIMESTAMP WHERE deleted_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("contact_ways") as batch:
        batch.drop_index("ix_contact_ways_next_check_at")
        batch.drop_column("next_check_at")
