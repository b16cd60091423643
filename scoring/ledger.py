"""Reading the points ledger back: the newest entries an account's or a contact's page shows."""

from sqlalchemy import func, select
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


def points_by_rule(session: Session, workspace_id: int, contact_id: int, limit: int) -> list:
    """What made a person's score: the rules that gave them the most points (before decay),
    largest first: (rule key, points, times it fired, latest)."""
    points = func.sum(ScoreEntry.points)
    return session.execute(
        select(ScoreEntry.rule_key, points, func.count(), func.max(ScoreEntry.occurred_at))
        .where(ScoreEntry.workspace_id == workspace_id, ScoreEntry.contact_id == contact_id)
        .group_by(ScoreEntry.rule_key)
        .order_by(points.desc())
        .limit(limit)
    ).all()
