"""kpi indexes: an account's interactions by time (dormant accounts), NPS answers by time

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 18:44:21.445363
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

NPS = sa.text("kind = 'survey.nps'")


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_interactions_account_occurred", ["account_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_interactions_nps",
            ["workspace_id", "occurred_at"],
            unique=False,
            postgresql_where=NPS,
            sqlite_where=NPS,
        )


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_nps", postgresql_where=NPS, sqlite_where=NPS)
        batch_op.drop_index("ix_interactions_account_occurred")
