"""Scoring model, ledger, stages, snapshots

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 19:11:42.088512
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scoring_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_scoring_models_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_scoring_models_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_models")),
        sa.UniqueConstraint(
            "workspace_id", "version", name=op.f("uq_scoring_models_workspace_id_version")
        ),
    )
    op.create_table(
        "stage_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column(
            "subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("from_stage", sa.String(length=30), nullable=True),
        sa.Column("to_stage", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_stage_changes_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_stage_changes_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_changes")),
    )
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stage_changes_subject", ["subject", "subject_id", "changed_at"], unique=False
        )
        batch_op.create_index(
            "ix_stage_changes_workspace_changed", ["workspace_id", "changed_at"], unique=False
        )

    op.create_table(
        "account_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False, server_default="0"),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=30), nullable=True),
        sa.Column("mqa", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("surging", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("engaged_contacts", sa.Integer(), nullable=False),
        sa.Column("engagement_points", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_snapshots_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_account_snapshots_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_snapshots")),
        sa.UniqueConstraint("account_id", "day", name=op.f("uq_account_snapshots_account_id_day")),
    )
    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_snapshots_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "score_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "interaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rule_key", sa.String(length=40), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=False),
        sa.Column("signal", sa.String(length=12), nullable=True),
        sa.Column("occurred_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_score_ledger_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_score_ledger_interaction_id_interactions"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_score_ledger_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_ledger")),
        sa.UniqueConstraint(
            "interaction_id", "rule_key", name=op.f("uq_score_ledger_interaction_id_rule_key")
        ),
    )
    with op.batch_alter_table("score_ledger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_score_ledger_contact_occurred", ["contact_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_score_ledger_workspace_id"), ["workspace_id"], unique=False
        )

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("fit", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tier", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stage", sa.String(length=30), nullable=True))
        batch_op.add_column(
            sa.Column("mqa", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("mqa_since", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("surging", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("surge_ratio", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("intent_points", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("engagement_points", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("scored_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        for column in ("score", "tier", "stage"):
            batch_op.create_index(
                f"ix_accounts_workspace_{column}", ["workspace_id", column], unique=False
            )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score_mass", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lead_score", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("scored_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_engaged_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("stage", sa.String(length=30), nullable=True))

    # Accounts already on the ICP list start in the first stage.
    op.execute("UPDATE accounts SET stage = 'target' WHERE is_target")


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("stage")
        batch_op.drop_column("last_engaged_at")
        batch_op.drop_column("scored_at")
        batch_op.drop_column("lead_score")
        batch_op.drop_column("score_mass")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for column in ("score", "tier", "stage"):
            batch_op.drop_index(f"ix_accounts_workspace_{column}")
        batch_op.drop_column("scored_at")
        batch_op.drop_column("engagement_points")
        batch_op.drop_column("intent_points")
        batch_op.drop_column("surge_ratio")
        batch_op.drop_column("surging")
        batch_op.drop_column("mqa_since")
        batch_op.drop_column("mqa")
        batch_op.drop_column("stage")
        batch_op.drop_column("tier")
        batch_op.drop_column("fit")
        batch_op.drop_column("score")

    with op.batch_alter_table("score_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_score_ledger_workspace_id"))
        batch_op.drop_index("ix_score_ledger_contact_occurred")

    op.drop_table("score_ledger")
    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_snapshots_workspace_id"))

    op.drop_table("account_snapshots")
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_changes_workspace_changed")
        batch_op.drop_index("ix_stage_changes_subject")

    op.drop_table("stage_changes")
    op.drop_table("scoring_models")
    # ### end Alembic commands ###
