"""Record one touchpoint, once per inbound event and kind."""

from sqlalchemy.orm import Session

from handlers.registry import EventContext
from models import Contact, Interaction
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
    """Insert the interaction; a reprocessed event inserts nothing."""
    event = ctx.event
    stmt = insert_ignoring_conflicts(session.get_bind().dialect.name, Interaction.__table__)
    session.execute(
        stmt.values(
            workspace_id=ctx.workspace_id,
            contact_id=contact.id,
            account_id=contact.account_id,
            channel_id=ctx.channel_id,
            kind=kind or event.kind,
            properties=event.properties if properties is None else properties,
            engagement_minutes=engagement_minutes,
            occurred_at=event.occurred_at,
            source_event_id=ctx.inbound_event_id,
        )
    )
