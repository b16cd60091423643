"""Condition triggers and manual enrolment: what enrols people without an interaction of
theirs. A periodic scan (`scan_triggers`) enrols those for whom a live journey's condition
came true since its last check; a person enrols contacts by hand (`enrol_manually`).
"""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.references import scoped_get
from journeys.model import Node
from journeys.reactions import may_enter
from journeys.steps import arrive
from journeys.versions import Version, Versions
from models import (
    OPEN_STATUSES,
    Account,
    Contact,
    ContactTag,
    Enrolment,
    EnrolmentStatus,
    JourneyStatus,
    SavedSegment,
    StageChange,
    utcnow,
)
from models import Journey as JourneyRow
from outreach.segments import saved_contacts_query


def live_workspaces(session: Session) -> list[int]:
    """The workspaces with a live journey: those whose triggers a scan checks."""
    return list(
        session.scalars(
            select(JourneyRow.workspace_id)
            .where(JourneyRow.status == JourneyStatus.LIVE)
            .distinct()
        )
    )


def scan_triggers(session: Session, workspace_id: int, now: datetime | None = None) -> int:
    """Enrol those for whom a live journey's condition trigger came true since its last
    check: a tag added, a stage reached, MQA entered, a score crossed (scored again at or
    above it), a segment entered, a date come. Returns how many enrolled."""
    now = now or utcnow()
    versions = Versions(session)
    enrolled = 0
    for version in versions.live(workspace_id):
        journey = session.get(JourneyRow, version.journey_id)
        since = journey.triggers_checked_at or journey.updated_at
        for node in version.model.nodes:
            trigger = node.trigger or {}
            if trigger.get("kind") in (None, "interaction", "manual"):
                continue
            subjects = _trigger_subjects(session, workspace_id, version, trigger, since, now)
            enrolled += _enrol_subjects(session, workspace_id, version, node, subjects, now)
        journey.triggers_checked_at = now
    return enrolled


def enrol_manually(
    session: Session, journey_id: int, contact_ids: list[int], user_id: int | None
) -> int:
    """A person enrols contacts (at the journey's manual trigger, else its first entry);
    the re-entry policy applies. Returns how many were enrolled."""
    journey = session.get(JourneyRow, journey_id)
    if journey is None or journey.status != JourneyStatus.LIVE:
        return 0
    version = Version(
        journey.id,
        journey.live_version,
        Versions(session).model(journey.id, journey.live_version),
    )
    nodes = [n for n in version.model.nodes if n.trigger]
    node = next((n for n in nodes if n.trigger.get("kind") == "manual"), nodes[0])
    rows = session.execute(
        select(Contact.id, Contact.account_id).where(
            Contact.id.in_(contact_ids), Contact.workspace_id == journey.workspace_id
        )
    ).all()
    subjects = [
        (account_id, None) if version.model.scope == "account" else (contact_id, account_id)
        for contact_id, account_id in rows
        if version.model.scope != "account" or account_id
    ]
    return _enrol_subjects(
        session, journey.workspace_id, version, node, subjects, utcnow(), by_user=user_id
    )


def _trigger_subjects(session, workspace_id, version: Version, trigger, since, now) -> list:
    """(contact id, account id) pairs — for account journeys (account id, None)."""
    account_scope = version.model.scope == "account"
    contacts = None
    match trigger["kind"]:
        case "tag_added":
            contacts = select(ContactTag.contact_id).where(
                ContactTag.workspace_id == workspace_id,
                ContactTag.tag_id == trigger["tag_id"],
                ContactTag.created_at > since,
            )
        case "stage_reached":
            changes = select(StageChange.subject_id).where(
                StageChange.workspace_id == workspace_id,
                StageChange.to_stage == trigger["stage"],
                StageChange.changed_at > since,
                StageChange.subject == ("account" if account_scope else "contact"),
            )
            if account_scope:
                return [(account_id, None) for account_id in session.scalars(changes)]
            contacts = changes
        case "mqa_entered":
            accounts = select(Account.id).where(
                Account.workspace_id == workspace_id,
                Account.mqa.is_(True),
                Account.mqa_since > since,
            )
            if account_scope:
                return [(account_id, None) for account_id in session.scalars(accounts)]
            contacts = select(Contact.id).where(Contact.account_id.in_(accounts))
        case "score_crossed":
            if trigger["of"] == "account":
                accounts = select(Account.id).where(
                    Account.workspace_id == workspace_id,
                    Account.score >= trigger["at_least"],
                    Account.scored_at > since,
                )
                if account_scope:
                    return [(account_id, None) for account_id in session.scalars(accounts)]
                contacts = select(Contact.id).where(Contact.account_id.in_(accounts))
            else:
                contacts = select(Contact.id).where(
                    Contact.workspace_id == workspace_id,
                    Contact.lead_score >= trigger["at_least"],
                    Contact.scored_at > since,
                )
        case "segment_entered" | "date":
            if trigger["kind"] == "date" and not (since < _moment(trigger["at"], now) <= now):
                return []
            saved = scoped_get(session, SavedSegment, trigger["segment_id"], workspace_id)
            if saved is None:
                return []
            contacts = saved_contacts_query(session, saved, now=now)
    if contacts is None:
        return []
    rows = session.execute(
        select(Contact.id, Contact.account_id).where(
            Contact.workspace_id == workspace_id,
            Contact.id.in_(contacts),
            Contact.merged_into_id.is_(None),
        )
    ).all()
    if account_scope:
        return sorted({(account_id, None) for _, account_id in rows if account_id})
    return [tuple(row) for row in rows]


def _moment(at: str, now: datetime) -> datetime:
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def _enrol_subjects(
    session, workspace_id, version: Version, node: Node, subjects, now, by_user=None
) -> int:
    """Enrol each subject without an open enrolment whom the re-entry policy lets in: a
    few grouped reads, then one INSERT per enrolment (and its "entered" step)."""
    if not subjects:
        return 0
    account_scope = version.model.scope == "account"
    column = Enrolment.account_id if account_scope else Enrolment.contact_id
    ids = [subject for subject, _ in subjects]
    history = dict(
        session.execute(
            select(column, func.max(Enrolment.entered_at))
            .where(Enrolment.journey_id == version.journey_id, column.in_(ids))
            .group_by(column)
        ).all()
    )
    busy = set(
        session.scalars(
            select(column).where(
                Enrolment.journey_id == version.journey_id,
                column.in_(ids),
                Enrolment.status.in_(OPEN_STATUSES),
            )
        )
    )
    because = {"trigger": node.trigger, "kind": node.trigger.get("kind")}
    if by_user is not None:
        because = {"trigger": {"kind": "manual"}, "kind": "manual", "user_id": by_user}
    enrolled = 0
    for subject, account_id in subjects:
        if subject in busy or not may_enter(version.model, history.get(subject), now):
            continue
        enrolment = Enrolment(
            workspace_id=workspace_id,
            journey_id=version.journey_id,
            version=version.version,
            contact_id=None if account_scope else subject,
            account_id=subject if account_scope else account_id,
            node_id=node.id,
            status=EnrolmentStatus.ACTIVE,
            next_run_at=now,
            visit=1,
            entered_at=now,
            entered_node=node.id,
            entered_because=because,
        )
        session.add(enrolment)
        session.flush()
        arrive(session, enrolment, "entered", {"kind": because["kind"]})
        busy.add(subject)
        enrolled += 1
    return enrolled
