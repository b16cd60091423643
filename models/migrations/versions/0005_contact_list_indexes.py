"""Indexes for the contacts list and search by identity value

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contacts_workspace_last_seen", "contacts", ["workspace_id", "last_seen_at"])
    op.create_index("ix_identities_workspace_value", "identities", ["workspace_id", "value"])


def downgrade() -> None:
    op.drop_index("ix_identities_workspace_value", table_name="identities")
    op.drop_index("ix_contacts_workspace_last_seen", table_name="contacts")
