"""webhook_secrets: each workspace signs its webhooks with a key of its own

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("secret", models.base.EncryptedString(length=512), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("previous_secret", models.base.EncryptedString(length=512), nullable=True),
        sa.Column("previous_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_webhook_secrets_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_webhook_secrets_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_secrets")),
        sa.UniqueConstraint("workspace_id", name=op.f("uq_webhook_secrets_workspace_id")),
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
