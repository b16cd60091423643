"""account activity: stages reached, last activity and returns after silence, backfilled

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 19:50:00
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# crm.activity.REACTIVATION_DAYS when this was written.
DAYS = 90


def upgrade() -> None:
    op.create_table(
        "account_reactivations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("previous_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reactivated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account_reactivations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_reactivations_account", ["account_id", "reactivated_at"], unique=False
        )
        batch_op.create_index(
            "ix_account_reactivations_workspace_at",
            ["workspace_id", "reactivated_at"],
            unique=False,
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stages_reached", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("last_active_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_accounts_workspace_last_active", ["workspace_id", "last_active_at"], unique=False
        )
    _backfill(op.get_bind())


def _backfill(bind) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        reached = "',' || string_agg(DISTINCT s.to_stage, ',') || ','"
        gap = f"i.occurred_at - i.previous_at >= interval '{DAYS} days'"
    else:
        reached = "',' || group_concat(DISTINCT s.to_stage) || ','"
        gap = f"julianday(i.occurred_at) - julianday(i.previous_at) >= {DAYS}"
    bind.execute(
        sa.text(
            f"UPDATE accounts SET stages_reached = (SELECT {reached} FROM stage_changes s"
            " WHERE s.subject = 'account' AND s.subject_id = accounts.id"
            " AND s.workspace_id = accounts.workspace_id)"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE accounts SET last_active_at = (SELECT max(i.occurred_at) FROM interactions i"
            " WHERE i.account_id = accounts.id AND i.workspace_id = accounts.workspace_id)"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO account_reactivations"
            " (workspace_id, account_id, previous_at, reactivated_at)"
            " SELECT i.workspace_id, i.account_id, i.previous_at, i.occurred_at FROM ("
            " SELECT workspace_id, account_id, occurred_at, lag(occurred_at) OVER"
            " (PARTITION BY workspace_id, account_id ORDER BY occurred_at) AS previous_at"
            " FROM interactions WHERE account_id IS NOT NULL) i"
            f" WHERE i.previous_at IS NOT NULL AND {gap}"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_workspace_last_active")
        batch_op.drop_column("last_active_at")
        batch_op.drop_column("stages_reached")
    with op.batch_alter_table("account_reactivations", schema=None) as batch_op:
        batch_op.drop_index("ix_account_reactivations_workspace_at")
        batch_op.drop_index("ix_account_reactivations_account")
    op.drop_table("account_reactivations")
