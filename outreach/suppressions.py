"""Addresses a workspace no longer mails (models.EmailSuppression): unsubscribed, bounced
for good, or marked as spam. Every sender asks `suppressed` before mailing anyone: form
follow-ups, journey steps and pushes alike."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import EmailSuppression, SuppressionReason, utcnow
from models.base import insert_ignoring_conflicts

ADDRESS_LENGTH = 320  # EmailSuppression.address
DETAIL_LENGTH = 300


def normalized(address: str) -> str:
    return address.strip().lower()


def suppressed(session: Session, workspace_id: int, addresses: Iterable[str]) -> set[str]:
    """Which of these addresses (lower-cased, as they come back) the workspace must not mail;
    one query."""
    wanted = {normalized(a) for a in addresses if a and a.strip()}
    if not wanted:
        return set()
    found = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 1000):
        found.update(
            session.scalars(
                select(EmailSuppression.address).where(
                    EmailSuppression.workspace_id == workspace_id,
                    EmailSuppression.address.in_(ordered[start : start + 1000]),
                )
            )
        )
    return found


def suppress(
    session: Session,
    workspace_id: int,
    address: str,
    reason: SuppressionReason,
    *,
    detail: str | None = None,
    message_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Never mail this address again; False when it was suppressed already (the first
    reason stays)."""
    row = {
        "workspace_id": workspace_id,
        "address": normalized(address)[:ADDRESS_LENGTH],
        "reason": str(reason),
        "detail": detail[:DETAIL_LENGTH] if detail else None,
        "message_id": message_id,
        "created_at": now or utcnow(),
    }
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflicts(dialect, EmailSuppression.__table__).values(row)
    inserted = session.execute(stmt.returning(EmailSuppression.address)).scalar()
    return inserted is not None


def unsuppress(session: Session, workspace_id: int, address: str) -> EmailSuppression | None:
    """Mail this address again (an admin's decision); the removed row, or None."""
    row = session.get(EmailSuppression, (workspace_id, normalized(address)))
    if row is None:
        return None
    session.delete(row)
    return row


def suppression_of(session: Session, workspace_id: int, address: str) -> EmailSuppression | None:
    """Why one address is not mailed (its row), or None when it may be."""
    if not address or not address.strip():
        return None
    return session.get(EmailSuppression, (workspace_id, normalized(address)))
