"""request keys and open program orders: the admin opportunity form's nonce
(opportunities.request_key, unique per workspace), and at most one open order per program
and account

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 19:53:24.032287
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('requested', 'approved')")


def upgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_key", sa.String(length=40), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_opportunities_workspace_id_request_key"),
            ["workspace_id", "request_key"],
        )
    # Twins two taps made before the index: the first stays open, the others are cancelled.
    op.execute(
        "UPDATE program_orders SET status = 'cancelled' "
        "WHERE status IN ('requested', 'approved') AND id NOT IN ("
        "SELECT MIN(id) FROM program_orders WHERE status IN ('requested', 'approved') "
        "GROUP BY program_id, account_id)"
    )
    with op.batch_alter_table("program_orders", schema=None) as batch_op:
        batch_op.create_index(
            "uq_program_orders_open",
            ["program_id", "account_id"],
            unique=True,
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("program_orders", schema=None) as batch_op:
        batch_op.drop_index("uq_program_orders_open", postgresql_where=OPEN, sqlite_where=OPEN)
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_opportunities_workspace_id_request_key"), type_="unique"
        )
        batch_op.drop_column("request_key")
