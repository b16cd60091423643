"""Reading the points ledger back: the newest entries an account's or a contact's page shows."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Contact, Interaction, ScoreEntry


def newest_entries(session: Session, workspace_id: int, *conditions, limit: int) -> list:
    """The newest `limit` ledger entries matching `conditions` (on ScoreEntry or Contact):
    (entry, interaction kind, contact name)."""
    return session.execute(
        select(ScoreEntry, Interaction.kind, Contact.name)
        .join(Contact, Contact.id == ScoreEntry.contact_id)
        .join(Interaction, Interaction.id == ScoreEntry.interaction_id)
        .where(ScoreEntry.workspace_id == workspace_id, *conditions)
        .order_by(ScoreEntry.occurred_at.desc(), ScoreEntry.id.desc())
        .limit(limit)
    ).all()
