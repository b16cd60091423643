"""Telling the workspace's CRM that an account reached MQA or was routed to a salesperson.

Decided where it happens (scoring's MQA alerts, routing's assignment), in that transaction:
an outbox row with its idempotency key (`crm:mqa:<account>:<day>`, `crm:routed:<assignment>`),
so a batch that runs again adds nothing. The journeys' sender delivers it after the commit,
signed with the workspace's webhook secret like a journey webhook, with the same delivery id
on every retry; nothing here calls out. A workspace without a CRM address or without a
signing secret tells nobody.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from core.transient import is_rerunnable
from models import Account, OutboxItem, User, WebhookSecret, Workspace, utcnow
from models.base import insert_ignoring_conflicts

ACCOUNT_MQA = "account.mqa"
ACCOUNT_ROUTED = "account.routed"
EVENTS = (ACCOUNT_MQA, ACCOUNT_ROUTED)
log = logging.getLogger(__name__)


def crm_webhook_url(session: Session, workspace_id: int) -> str | None:
    """The address the workspace's CRM is told at, when it has one and a signing secret."""
    url = session.scalar(select(Workspace.crm_webhook_url).where(Workspace.id == workspace_id))
    if not url:
        return None
    signed = session.scalar(
        select(WebhookSecret.id).where(WebhookSecret.workspace_id == workspace_id)
    )
    return url if signed is not None else None


def account_document(session: Session, workspace_id: int, account_id: int) -> dict | None:
    """The account as the CRM reads it (its values as the database holds them now: scoring
    writes them in bulk, past the session's objects)."""
    row = session.execute(
        select(
            Account.id,
            Account.name,
            Account.domain,
            Account.score,
            Account.scaled_score,
            Account.tier,
            Account.stage,
            User.email,
        )
        .outerjoin(User, (User.id == Account.owner_id) & (User.workspace_id == workspace_id))
        .where(Account.workspace_id == workspace_id, Account.id == account_id)
    ).one_or_none()
    if row is None:
        return None
    return {
        "id": row.id,
        "name": row.name,
        "domain": row.domain,
        # The 0-100 reading people see; the raw points behind it for the curious.
        "score": round(row.scaled_score or 0.0, 1),
        "score_points": round(row.score or 0.0, 2),
        "tier": row.tier,
        "stage": row.stage,
        "owner_email": row.email,
    }


def tell_crm(
    session: Session,
    workspace_id: int,
    event: str,
    account_id: int,
    key: str,
    *,
    followups: Followups | None = None,
    now: datetime | None = None,
) -> bool:
    """Queue one signed delivery of `event` for the account; False when the workspace tells
    no CRM or this key was queued before. In a savepoint of its own: a failure is logged and
    costs the caller (scoring, routing) nothing."""
    assert event in EVENTS
    try:
        with session.begin_nested():
            return _queue(session, workspace_id, event, account_id, key, followups, now)
    except Exception as exc:
        if is_rerunnable(exc):
            raise  # the caller's work runs again
        log.exception("CRM webhook not queued: workspace %s %s %s", workspace_id, event, key)
        return False


def _queue(session, workspace_id, event, account_id, key, followups, now) -> bool:
    url = crm_webhook_url(session, workspace_id)
    if url is None:
        return False
    account = account_document(session, workspace_id, account_id)
    if account is None:
        return False
    now = now or utcnow()
    body = {
        "delivery_id": key,  # signed, unlike its header: what the CRM drops repeats on
        "workspace_id": workspace_id,
        "event": event,
        "account": account,
        "occurred_at": now.isoformat(),
    }
    host = urlsplit(url).netloc.lower() or url
    inserted = session.execute(
        insert_ignoring_conflicts(session.get_bind().dialect.name, OutboxItem.__table__)
        .values(
            workspace_id=workspace_id,
            kind="webhook",
            idempotency_key=key,
            destination=f"webhook:{host}"[:300],
            payload={"url": url, "body": body},
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(OutboxItem.id)
    ).scalar()
    if inserted is None:
        return False
    if followups is not None:
        followups.add(Job.DELIVER_OUTBOX, workspace_id)
    return True


def tell_crm_of_mqa(
    session: Session,
    workspace_id: int,
    alerts: Iterable,
    followups: Followups | None = None,
    now: datetime | None = None,
) -> int:
    """Scoring's MQA alerts (scoring.engine.OwnerAlert, kind account_mqa), one delivery per
    account and day; how many were queued."""
    now = now or utcnow()
    day = now.date().isoformat()
    accounts = sorted({alert.account_id for alert in alerts if alert.kind == "account_mqa"})
    return sum(
        tell_crm(
            session,
            workspace_id,
            ACCOUNT_MQA,
            account_id,
            f"crm:mqa:{account_id}:{day}",
            followups=followups,
            now=now,
        )
        for account_id in accounts
    )
