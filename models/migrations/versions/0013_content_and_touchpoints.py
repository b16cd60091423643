"""Content, tracked links, page views, forms, API keys; touchpoints in the inbox

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 23:40:19.030908
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("signing_secret", models.base.EncryptedString(length=512), nullable=False),
        sa.Column("require_signature", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_api_keys_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_api_keys_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_workspace_id"), "api_keys", ["workspace_id"], unique=False)
    op.create_table(
        "contents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column(
            "topics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "products",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_contents_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_contents_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contents")),
    )
    op.create_index(
        "ix_contents_workspace_created", "contents", ["workspace_id", "created_at"], unique=False
    )
    op.create_table(
        "forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("intro", sa.Text(), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("consent_text", sa.String(length=500), nullable=False),
        sa.Column("thank_you", sa.String(length=500), nullable=False),
        sa.Column(
            "tag_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("download_content_id", sa.Integer(), nullable=True),
        sa.Column(
            "follow_up",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_forms_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["download_content_id"],
            ["contents.id"],
            name=op.f("fk_forms_download_content_id_contents"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_forms_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
    )
    op.create_index(
        "ix_forms_workspace_created", "forms", ["workspace_id", "created_at"], unique=False
    )
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=True),
        sa.Column("form_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("medium", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_tracked_links_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["content_id"], ["contents.id"], name=op.f("fk_tracked_links_content_id_contents")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_tracked_links_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_tracked_links_form_id_forms")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_tracked_links_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_links")),
        sa.UniqueConstraint("code", name=op.f("uq_tracked_links_code")),
    )
    op.create_index("ix_tracked_links_content", "tracked_links", ["content_id"], unique=False)
    op.create_index("ix_tracked_links_form", "tracked_links", ["form_id"], unique=False)
    op.create_table(
        "page_views",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=True),
        sa.Column("form_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("openid", sa.String(length=128), nullable=True),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("new_lead", sa.Boolean(), nullable=False),
        sa.Column("sharer_staff_id", sa.Integer(), nullable=True),
        sa.Column("sharer_openid", sa.String(length=128), nullable=True),
        sa.Column(
            "sharer_contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Integer(), nullable=False),
        sa.Column("recorded_seconds", sa.Integer(), nullable=False),
        sa.Column("last_beacon_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("liked", sa.Boolean(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_page_views_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_page_views_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["content_id"], ["contents.id"], name=op.f("fk_page_views_content_id_contents")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_page_views_form_id_forms")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["tracked_links.id"], name=op.f("fk_page_views_link_id_tracked_links")
        ),
        sa.ForeignKeyConstraint(
            ["sharer_contact_id"],
            ["contacts.id"],
            name=op.f("fk_page_views_sharer_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["sharer_staff_id"], ["staff.id"], name=op.f("fk_page_views_sharer_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_page_views_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_views")),
    )
    op.create_index("ix_page_views_contact", "page_views", ["contact_id"], unique=False)
    op.create_index(
        "ix_page_views_content_started", "page_views", ["content_id", "started_at"], unique=False
    )
    op.create_index(
        "ix_page_views_form_started", "page_views", ["form_id", "started_at"], unique=False
    )
    op.create_index(
        "ix_page_views_sharer_contact",
        "page_views",
        ["workspace_id", "sharer_contact_id"],
        unique=False,
    )
    op.create_index(
        "ix_page_views_sharer_staff",
        "page_views",
        ["workspace_id", "sharer_staff_id"],
        unique=False,
    )
    op.create_table(
        "form_submissions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column(
            "page_view_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("openid", sa.String(length=128), nullable=True),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("sharer_staff_id", sa.Integer(), nullable=True),
        sa.Column("sharer_openid", sa.String(length=128), nullable=True),
        sa.Column(
            "sharer_contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("submitted_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("followup_status", sa.String(length=10), nullable=False),
        sa.Column("followup_channel", sa.String(length=10), nullable=True),
        sa.Column("followup_error", sa.Text(), nullable=True),
        sa.Column("followup_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_form_submissions_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_form_submissions_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_form_submissions_form_id_forms")
        ),
        sa.ForeignKeyConstraint(
            ["page_view_id"],
            ["page_views.id"],
            name=op.f("fk_form_submissions_page_view_id_page_views"),
        ),
        sa.ForeignKeyConstraint(
            ["sharer_contact_id"],
            ["contacts.id"],
            name=op.f("fk_form_submissions_sharer_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["sharer_staff_id"],
            ["staff.id"],
            name=op.f("fk_form_submissions_sharer_staff_id_staff"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_form_submissions_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_submissions")),
        sa.UniqueConstraint("form_id", "nonce", name=op.f("uq_form_submissions_form_id_nonce")),
    )
    op.create_index(
        op.f("ix_form_submissions_contact_id"), "form_submissions", ["contact_id"], unique=False
    )
    op.create_index(
        "ix_form_submissions_followup",
        "form_submissions",
        ["workspace_id", "followup_status"],
        unique=False,
    )
    op.create_index(
        "ix_form_submissions_form_submitted",
        "form_submissions",
        ["form_id", "submitted_at"],
        unique=False,
    )
    # A touchpoint may name no channel (SQLite alters columns by copying the table).
    with op.batch_alter_table("inbound_events") as batch:
        batch.alter_column("channel_id", existing_type=sa.INTEGER(), nullable=True)
    op.create_index(
        "uq_inbound_events_workspace_dedupe_no_channel",
        "inbound_events",
        ["workspace_id", "dedupe_key"],
        unique=True,
        postgresql_where=sa.text("channel_id IS NULL"),
        sqlite_where=sa.text("channel_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_inbound_events_workspace_dedupe_no_channel",
        table_name="inbound_events",
        postgresql_where=sa.text("channel_id IS NULL"),
        sqlite_where=sa.text("channel_id IS NULL"),
    )
    op.execute("DELETE FROM inbound_events WHERE channel_id IS NULL")
    with op.batch_alter_table("inbound_events") as batch:
        batch.alter_column("channel_id", existing_type=sa.INTEGER(), nullable=False)
    op.drop_index("ix_form_submissions_form_submitted", table_name="form_submissions")
    op.drop_index("ix_form_submissions_followup", table_name="form_submissions")
    op.drop_index(op.f("ix_form_submissions_contact_id"), table_name="form_submissions")
    op.drop_table("form_submissions")
    op.drop_index("ix_page_views_sharer_staff", table_name="page_views")
    op.drop_index("ix_page_views_sharer_contact", table_name="page_views")
    op.drop_index("ix_page_views_form_started", table_name="page_views")
    op.drop_index("ix_page_views_content_started", table_name="page_views")
    op.drop_index("ix_page_views_contact", table_name="page_views")
    op.drop_table("page_views")
    op.drop_index("ix_tracked_links_form", table_name="tracked_links")
    op.drop_index("ix_tracked_links_content", table_name="tracked_links")
    op.drop_table("tracked_links")
    op.drop_index("ix_forms_workspace_created", table_name="forms")
    op.drop_table("forms")
    op.drop_index("ix_contents_workspace_created", table_name="contents")
    op.drop_table("contents")
    op.drop_index(op.f("ix_api_keys_workspace_id"), table_name="api_keys")
    op.drop_table("api_keys")
