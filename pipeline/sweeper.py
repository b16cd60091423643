"""The sweeper: what a drain or a follow-up job should have taken by now, found in the
database and asked for again (Redis was down, a worker died, a retry is due)."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.jobs import Job
from crm.contacts import settle_merged
from journeys.delivery import due_workspaces as outbox_due_workspaces
from models import (
    CustomerGroup,
    FollowUpStatus,
    FormSubmission,
    Identity,
    IdentityKind,
    InboundEvent,
    InboxStatus,
    SyncStatus,
    TagSyncItem,
    WelcomeMessage,
    WelcomeStatus,
    utcnow,
)
from outreach.email_sending import due_workspaces as email_due_workspaces
from sales.notify import digests_due


@dataclass
class Sweep:
    lanes: list[tuple[int, int]]  # (workspace, lane) with events a drain should have taken
    followups: set[tuple[Job, int]]  # follow-up jobs whose work is still waiting
    settled: int  # late records of merged contacts moved to their survivor


def sweep(session: Session, grace_seconds: int) -> Sweep:
    """What is overdue, found in one pass (and merged contacts' late records settled)."""
    found = Sweep(
        lanes=lanes_due(session, grace_seconds),
        followups=followups_due(session, grace_seconds),
        settled=settle_merged(session),
    )
    session.commit()
    return found


def lanes_due(session: Session, grace_seconds: int) -> list[tuple[int, int]]:
    """(workspace, lane) pairs with events a drain should have taken by now: pending ones
    past the grace, failed ones whose retry time has come (for the sweeper)."""
    now = utcnow()
    stale = now - timedelta(seconds=grace_seconds)
    stmt = (
        select(InboundEvent.workspace_id, InboundEvent.lane)
        .where(
            or_(
                (InboundEvent.status == InboxStatus.PENDING)
                & (InboundEvent.next_attempt_at <= stale),
                (InboundEvent.status == InboxStatus.FAILED) & (InboundEvent.next_attempt_at <= now),
            )
        )
        .distinct()
        .order_by(InboundEvent.workspace_id, InboundEvent.lane)
    )
    return [(workspace_id, lane) for workspace_id, lane in session.execute(stmt)]


def followups_due(session: Session, grace_seconds: int) -> set[tuple[Job, int]]:
    """Enrichment and tag sync left behind (a job failed, Redis was down): for the sweeper."""
    now = utcnow()
    stale = now - timedelta(seconds=grace_seconds)
    jobs = {
        (
            Job.ENRICH_FOLLOWERS if kind == IdentityKind.OPENID else Job.ENRICH_EXTERNAL_CONTACTS,
            channel_id,
        )
        for kind, channel_id in session.execute(
            select(Identity.kind, Identity.channel_id)
            .where(
                Identity.enriched_at.is_(None),
                Identity.channel_id.is_not(None),
                Identity.kind.in_((IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID)),
                Identity.created_at <= stale,
            )
            .distinct()
        )
    }
    jobs |= {
        (Job.SYNC_TAGS, channel_id)
        for (channel_id,) in session.execute(
            select(TagSyncItem.channel_id)
            .where(
                TagSyncItem.status.in_((SyncStatus.PENDING, SyncStatus.FAILED)),
                TagSyncItem.next_attempt_at <= stale,
            )
            .distinct()
        )
    }
    # Digests whose interval has passed, with notes or task reminders for them.
    jobs |= {(Job.SEND_NOTIFICATIONS, channel_id) for channel_id in digests_due(session, now)}
    jobs |= {
        (Job.SEND_FORM_FOLLOWUPS, workspace_id)
        for (workspace_id,) in session.execute(
            select(FormSubmission.workspace_id)
            .where(
                FormSubmission.followup_status == FollowUpStatus.PENDING,
                FormSubmission.contact_id.is_not(None),
                FormSubmission.submitted_at <= stale,
            )
            .distinct()
        )
    }
    jobs |= {
        (Job.SEND_WELCOMES, channel_id)
        for (channel_id,) in session.execute(
            select(WelcomeMessage.channel_id)
            .where(WelcomeMessage.status == WelcomeStatus.PENDING)
            .distinct()
        )
    }
    jobs |= {(Job.DELIVER_OUTBOX, ws) for ws in outbox_due_workspaces(session, stale)}
    # Customer groups an event marked for groupchat/get whose refresh never ran.
    jobs |= {
        (Job.REFRESH_CUSTOMER_GROUPS, channel_id)
        for (channel_id,) in session.execute(
            select(CustomerGroup.channel_id)
            .where(CustomerGroup.refresh_requested_at <= stale)
            .distinct()
        )
    }
    jobs |= {(Job.SEND_EMAILS, ws) for ws in email_due_workspaces(session, stale)}
    return jobs
