"""联系我 codes that rotate their staff: rotation mode, daily cap per member, backup staff,
schedule, auto-accept windows, and the config last applied in WeCom with its sync error

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 22:15:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_ways") as batch:
        batch.add_column(
            sa.Column("rotation", sa.String(length=12), server_default="all", nullable=False)
        )
        batch.add_column(sa.Column("daily_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("backup_userids", JSON, nullable=True))
        batch.add_column(sa.Column("schedule", JSON, nullable=True))
        batch.add_column(sa.Column("auto_accept", JSON, nullable=True))
        batch.add_column(sa.Column("applied_userids", JSON, nullable=True))
        batch.add_column(sa.Column("applied_skip_verify", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("applied_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("sync_error", sa.String(length=500), nullable=True))
        batch.add_column(
            sa.Column("sync_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("sync_retry_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE contact_ways SET backup_userids = '[]'")
    op.execute(
        "UPDATE contact_ways SET applied_userids = staff_userids, applied_skip_verify = skip_verify"
    )
    with op.batch_alter_table("contact_ways") as batch:
        batch.alter_column("backup_userids", existing_type=JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("contact_ways") as batch:
        for name in (
            "sync_retry_at",
            "sync_failures",
            "sync_error",
            "applied_at",
            "applied_skip_verify",
            "applied_userids",
            "auto_accept",
            "schedule",
            "backup_userids",
            "daily_cap",
            "rotation",
        ):
            batch.drop_column(name)
