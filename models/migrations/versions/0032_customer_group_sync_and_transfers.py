"""customer group sync and transfers: a group's pending refresh (an event or the sync asked
for groupchat/get), the QuitScene awaiting it, its last activity; and the groups that move
with a customer transfer

Revision ID: 0032
Revises: 0030
Create Date: 2026-12-07 22:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0032"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customer_groups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refresh_requested_at", models.base.UTCDateTime(timezone=True))
        )
        batch_op.add_column(sa.Column("pending_quit_scene", sa.Integer()))
        batch_op.add_column(sa.Column("activity_at", models.base.UTCDateTime(timezone=True)))
        batch_op.create_index(
            "ix_customer_groups_refresh", ["channel_id", "refresh_requested_at"], unique=False
        )
        batch_op.create_index(
            "ix_customer_groups_workspace_activity", ["workspace_id", "activity_at"], unique=False
        )
    op.create_table(
        "group_transfer_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("call_key", sa.String(length=64), nullable=True),
        sa.Column("sent_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_group_transfer_items_group_id_customer_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name=op.f("fk_group_transfer_items_transfer_id_transfers"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_group_transfer_items_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_transfer_items")),
        sa.UniqueConstraint(
            "transfer_id", "group_id", name=op.f("uq_group_transfer_items_transfer_id_group_id")
        ),
    )
    op.create_index(
        "ix_group_transfer_items_workspace_status",
        "group_transfer_items",
        ["workspace_id", "status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_group_transfer_items_workspace_status", table_name="group_transfer_items")
    op.drop_table("group_transfer_items")
    with op.batch_alter_table("customer_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_groups_workspace_activity")
        batch_op.drop_index("ix_customer_groups_refresh")
        batch_op.drop_column("activity_at")
        batch_op.drop_column("pending_quit_scene")
        batch_op.drop_column("refresh_requested_at")
