"""Record one touchpoint, once per inbound event and kind."""

from sqlalchemy.orm import Session

from crm.activity import note_activity
from crm.contacts import live
from handlers.registry import EventContext
from models import Contact, Interaction, utcnow
from models.base import insert_ignoring_conflicts


def record_interaction(
    session: Session,
    ctx: EventContext,
    contact: Contact,
    *,
    kind: str | None = None,
    properties: dict | None = None,
    engagement_minutes: float = 0.0,
) -> None:
    """Insert the interaction (or hold it for the batch's one INSERT); a reprocessed event
    inserts nothing."""
    event = ctx.event
    row = {
        "workspace_id": ctx.workspace_id,
        "contact_id": contact.id,
        "account_id": contact.account_id,
        "channel_id": ctx.channel_id,
        "kind": kind or event.kind,
        "properties": event.properties if properties is None else properties,
        "engagement_minutes": engagement_minutes,
        "occurred_at": event.occurred_at,
        "source_event_id": ctx.inbound_event_id,
        "created_at": utcnow(),
    }
    if ctx.batch.buffer_interactions:
        ctx.batch.interactions.append(row)
    else:
        session.execute(_insert(session), row)
        note_activity(session, ctx.workspace_id, [(row["account_id"], row["occurred_at"])])


def record_buffered_interactions(session: Session, batch) -> None:
    """The batch's held-back interactions, in one statement, each with its contact and
    account as of now (a later event of the batch may have named the account, or merged
    the person into another contact)."""
    if batch.interactions:
        for row in batch.interactions:
            contact = live(session, session.get(Contact, row["contact_id"]))
            row["contact_id"], row["account_id"] = contact.id, contact.account_id
        session.execute(_insert(session), batch.interactions)
        note_activity(
            session,
            batch.interactions[0]["workspace_id"],
            [(row["account_id"], row["occurred_at"]) for row in batch.interactions],
        )
        batch.interactions = []


def _insert(session: Session):
    return insert_ignoring_conflicts(session.get_bind().dialect.name, Interaction.__table__)
