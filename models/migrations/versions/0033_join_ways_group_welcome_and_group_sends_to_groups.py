"""group welcome templates, and group sends to customer groups (chat_type, chat_ids)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 22:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_welcome_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=1000), nullable=False),
        sa.Column("link_title", sa.String(length=128), nullable=True),
        sa.Column("link_url", sa.String(length=1000), nullable=True),
        sa.Column("link_desc", sa.String(length=170), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_group_welcome_templates_channel_id_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_group_welcome_templates_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_group_welcome_templates_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_welcome_templates")),
        sa.UniqueConstraint(
            "channel_id",
            "template_id",
            name=op.f("uq_group_welcome_templates_channel_id_template_id"),
        ),
    )
    op.create_index(
        "ix_group_welcome_templates_workspace",
        "group_welcome_templates",
        ["workspace_id"],
        unique=False,
    )
    with op.batch_alter_table("group_sends") as batch_op:
        batch_op.add_column(
            sa.Column("chat_type", sa.String(length=8), server_default="single", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "chat_ids",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default="[]",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("group_sends") as batch_op:
        batch_op.drop_column("chat_ids")
        batch_op.drop_column("chat_type")
    op.drop_index("ix_group_welcome_templates_workspace", table_name="group_welcome_templates")
    op.drop_table("group_welcome_templates")
