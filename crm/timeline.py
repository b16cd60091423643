"""An account's sales timeline (account_events): who was routed, what sales did, the
opportunities and programs on it. Every layer above writes it through here."""

from datetime import datetime

from sqlalchemy.orm import Session

from models import AccountEvent, AccountEventKind, utcnow


def record_account_event(
    session: Session,
    *,
    workspace_id: int,
    account_id: int,
    kind: AccountEventKind,
    text: str,
    contact_id: int | None = None,
    user_id: int | None = None,
    data: dict | None = None,
    now: datetime | None = None,
) -> AccountEvent:
    event = AccountEvent(
        workspace_id=workspace_id,
        account_id=account_id,
        contact_id=contact_id,
        kind=kind,
        user_id=user_id,
        text=text[:500],
        data=data or {},
        created_at=now or utcnow(),
    )
    session.add(event)
    return event
