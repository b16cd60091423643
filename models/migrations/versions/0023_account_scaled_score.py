"""account scaled score: the 0-100 score people read, beside the raw points

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 18:35:10.246939
"""

import math

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# scoring.model.Scale's default: the scale every model stored before this one reads on.
SCALE_POINTS = 300.0


def upgrade() -> None:
    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scaled_score", sa.Float(), nullable=True))

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scaled_score", sa.Float(), server_default="0", nullable=False)
        )

    # Today's scores read on the scale at once, not at the next scoring.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, score FROM accounts WHERE score > 0")).all()
    if rows:
        bind.execute(
            sa.text("UPDATE accounts SET scaled_score = :scaled WHERE id = :id"),
            [
                {"id": row.id, "scaled": round(100 * (1 - math.exp(-row.score / SCALE_POINTS)), 1)}
                for row in rows
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("scaled_score")

    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.drop_column("scaled_score")
