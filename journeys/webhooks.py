"""Signing the webhooks a workspace's journeys send, with a secret of the workspace's own.

Each delivery's body carries the workspace and a delivery id (the same on every retry of
one step, so a receiver can drop repeats), signed by `X-Harpoon-Signature: t=<unix
seconds>,v1=<hex>`, hex = HMAC-SHA256(secret, "<t>." + body), the scheme the touchpoint
API checks. The workspace and delivery headers repeat them unsigned, for routing only. After a
rotation the previous secret signs too, as a second v1, for ROTATION_GRACE: a receiver
accepts a delivery when any v1 matches a secret it holds, and switches at its own pace.
Rotating again during the grace is allowed (a leaked secret must be replaceable at once)
and ends it: the secret replaced first stops signing. A workspace without a secret sends
no webhook: it must create one first (shown once).
"""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.api_keys import signature_digest
from models import WebhookSecret, utcnow

SECRET_PREFIX = "whsec_"
SHOWN_PREFIX_LENGTH = 10
ROTATION_GRACE = timedelta(hours=24)
WORKSPACE_HEADER = "X-Harpoon-Workspace"
DELIVERY_HEADER = "X-Harpoon-Delivery"
SIGNATURE_HEADER = "X-Harpoon-Signature"


@dataclass(frozen=True)
class NewSecret:
    """A secret as created or rotated: the only time its value leaves Harpoon."""

    row: WebhookSecret
    secret: str
    rotated: bool
    ended_grace: bool  # a previous secret still in its grace stopped signing


def secret_of(session: Session, workspace_id: int) -> WebhookSecret | None:
    return session.scalar(select(WebhookSecret).where(WebhookSecret.workspace_id == workspace_id))


def in_grace(row: WebhookSecret, now: datetime) -> bool:
    """The previous secret still signs beside the current one."""
    return bool(row.previous_secret and row.previous_until and row.previous_until > now)


def rotate_secret(
    session: Session, workspace_id: int, *, created_by: int | None = None
) -> NewSecret | None:
    """A new secret for the workspace: its first, or one replacing the current, which
    keeps signing beside it for ROTATION_GRACE (and the one before stops). None when
    another request created the workspace's first secret meanwhile. Flushed, not
    committed."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = secret_of(session, workspace_id)
    if row is None:
        row = WebhookSecret(
            workspace_id=workspace_id,
            secret=secret,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            created_by=created_by,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # the unique workspace_id: the other request's is kept
            return None
        return NewSecret(row, secret, rotated=False, ended_grace=False)
    ended_grace = in_grace(row, now)
    row.previous_secret, row.previous_until = row.secret, now + ROTATION_GRACE
    row.secret, row.prefix = secret, secret[:SHOWN_PREFIX_LENGTH]
    row.created_by, row.created_at = created_by, now
    session.flush()
    return NewSecret(row, secret, rotated=True, ended_grace=ended_grace)


def signing_secrets(session: Session, workspace_id: int, now: datetime) -> tuple[str, ...]:
    """The secrets a delivery is signed with now: the current one, then the previous one
    while its grace lasts. Empty when the workspace has none."""
    row = secret_of(session, workspace_id)
    if row is None:
        return ()
    if in_grace(row, now):
        return (row.secret, row.previous_secret)
    return (row.secret,)


def delivery_headers(
    signing: tuple[str, ...],
    workspace_id: int,
    delivery_id: str,
    body: bytes,
    timestamp: int | None = None,
) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signatures = ",".join(f"v1={signature_digest(s, timestamp, body)}" for s in signing)
    return {
        "Content-Type": "application/json",
        WORKSPACE_HEADER: str(workspace_id),
        DELIVERY_HEADER: delivery_id,
        SIGNATURE_HEADER: f"t={timestamp},{signatures}",
    }
