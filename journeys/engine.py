"""Journeys at work: interactions from the drain enrol, jump, satisfy waits and reach
goals (`on_interactions`, in the batch's transaction); the due-step runner (`run_due`)
claims enrolments whose time has come and walks them through their nodes.

Every node an enrolment reaches is logged in `journey_steps`, unique per enrolment,
version, node and move. An action that talks to a person is logged (and committed)
before its call, so a retried job or a crash between claim and send never sends twice;
the price is that a crash right after the log leaves that one message unsent.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from core.outbound import Outbound, Refused, Unreachable
from core.references import scoped_get
from crm.tags import TagBook, apply_tags, remove_tags
from journeys.model import MESSAGE_ACTIONS, Journey, Node, event_filter
from journeys.webhooks import delivery_headers, signing_secrets
from models import (
    OPEN_STATUSES,
    Account,
    Channel,
    Contact,
    ContactTag,
    Enrolment,
    EnrolmentStatus,
    FollowRelation,
    Identity,
    IdentityKind,
    Interaction,
    JourneyStatus,
    JourneyVersion,
    PushRecipient,
    SavedSegment,
    StageChange,
    Step,
    TagSource,
    Workspace,
    utcnow,
)
from models import Journey as JourneyRow
from outreach.segments import saved_contacts_query
from sales.group_send import create_group_send
from sales.notify import notify_owner
from scoring.engine import set_stage
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MAX_HOPS = 50  # nodes one enrolment may pass in one run (loops need a wait anyway)
LEASE = timedelta(minutes=5)
# Actions whose effect is outside the database: committed as "sending" before the call.
EXTERNAL_ACTIONS = frozenset({"cs_message", "template_message", "webhook"})
WEBHOOK_NO_SECRET = "webhook not sent: the workspace has no webhook signing secret yet"
WEBHOOK_REFUSED = "webhook not sent: not a public address"
WEBHOOK_UNREACHABLE = "webhook failed: no answer from the address"


@dataclass(frozen=True)
class Version:
    journey_id: int
    version: int
    model: Journey


class Versions:
    """Journey documents by (journey, version), parsed once per batch or run."""

    def __init__(self, session: Session):
        self.session = session
        self._cache: dict[tuple[int, int], Journey] = {}

    def model(self, journey_id: int, version: int) -> Journey:
        key = (journey_id, version)
        if key not in self._cache:
            doc = self.session.scalar(
                select(JourneyVersion.document).where(
                    JourneyVersion.journey_id == journey_id, JourneyVersion.version == version
                )
            )
            self._cache[key] = Journey.from_document(doc or {"nodes": []})
        return self._cache[key]

    def live(self, workspace_id: int) -> list[Version]:
        rows = self.session.execute(
            select(JourneyRow.id, JourneyRow.live_version)
            .where(
                JourneyRow.workspace_id == workspace_id,
                JourneyRow.status == JourneyStatus.LIVE,
                JourneyRow.live_version.isnot(None),
            )
            .order_by(JourneyRow.id)
        ).all()
        return [Version(j, v, self.model(j, v)) for j, v in rows]


# --- interactions from the drain --------------------------------------------------------


@dataclass(frozen=True)
class Touch:
    id: int
    contact_id: int
    account_id: int | None
    kind: str
    properties: dict
    occurred_at: datetime


def touches_of_events(session: Session, event_ids: list[int]) -> list[Touch]:
    if not event_ids:
        return []
    rows = session.execute(
        select(
            Interaction.id,
            Interaction.contact_id,
            Interaction.account_id,
            Interaction.kind,
            Interaction.properties,
            Interaction.occurred_at,
        )
        .where(Interaction.source_event_id.in_(event_ids))
        .order_by(Interaction.occurred_at, Interaction.id)
    ).all()
    return [Touch(*row) for row in rows]


def on_interactions(
    session: Session,
    workspace_id: int,
    touches: list[Touch],
    followups: Followups | None = None,
    now: datetime | None = None,
) -> int:
    """Goals, event waits, jumps and new enrolments for these interactions; returns how many
    enrolments are due now (a `run_journeys` job is asked for)."""
    now = now or utcnow()
    versions = Versions(session)
    live = versions.live(workspace_id)
    if not live or not touches:
        return 0
    journey_ids = [v.journey_id for v in live]
    contact_ids = {t.contact_id for t in touches}
    account_ids = {t.account_id for t in touches if t.account_id}
    open_rows = session.scalars(
        select(Enrolment).where(
            Enrolment.workspace_id == workspace_id,
            Enrolment.journey_id.in_(journey_ids),
            Enrolment.status.in_(OPEN_STATUSES),
            or_(
                Enrolment.contact_id.in_(contact_ids),
                Enrolment.account_id.in_(account_ids or {-1}),
            ),
        )
    ).all()
    open_by_subject = {(e.journey_id, _subject(e)): e for e in open_rows}
    last_entered = _last_entries(session, journey_ids, contact_ids, account_ids)
    due = 0
    for touch in touches:
        for version in live:
            subject = _touch_subject(version.model, touch)
            if subject is None:
                continue
            enrolment = open_by_subject.get((version.journey_id, subject))
            if enrolment is not None:
                due += _react(session, versions, enrolment, touch, now)
                if enrolment.status not in OPEN_STATUSES:
                    del open_by_subject[(version.journey_id, subject)]
                continue
            entries = version.model.entry_points(touch.kind, touch.properties)
            if not entries or not _may_enter(
                version.model, last_entered.get((version.journey_id, subject)), now
            ):
                continue
            enrolment = _enrol(session, workspace_id, version, entries[0], touch, now)
            open_by_subject[(version.journey_id, subject)] = enrolment
            last_entered[(version.journey_id, subject)] = now
            due += 1
    if due and followups is not None:
        followups.add(Job.RUN_JOURNEYS, workspace_id)
    return due


def _subject(enrolment: Enrolment) -> tuple[str, int]:
    if enrolment.account_id is not None and enrolment.contact_id is None:
        return ("account", enrolment.account_id)
    return ("contact", enrolment.contact_id)


def _touch_subject(model: Journey, touch: Touch) -> tuple[str, int] | None:
    if model.scope == "account":
        return ("account", touch.account_id) if touch.account_id else None
    return ("contact", touch.contact_id)


def _last_entries(session, journey_ids, contact_ids, account_ids) -> dict:
    rows = session.execute(
        select(
            Enrolment.journey_id,
            Enrolment.contact_id,
            Enrolment.account_id,
            func.max(Enrolment.entered_at),
        )
        .where(
            Enrolment.journey_id.in_(journey_ids),
            or_(
                Enrolment.contact_id.in_(contact_ids),
                Enrolment.account_id.in_(account_ids or {-1}),
            ),
        )
        .group_by(Enrolment.journey_id, Enrolment.contact_id, Enrolment.account_id)
    ).all()
    last = {}
    for journey_id, contact_id, account_id, entered in rows:
        key = ("contact", contact_id) if contact_id is not None else ("account", account_id)
        last[(journey_id, key)] = max(entered, last.get((journey_id, key), entered))
    return last


def _may_enter(model: Journey, last_entered: datetime | None, now: datetime) -> bool:
    if last_entered is None or model.reentry == "always":
        return True
    if model.reentry == "period":
        return now - last_entered >= timedelta(days=model.reentry_days or 0)
    return False  # once


def _enrol(session, workspace_id, version: Version, node: Node, touch: Touch, now) -> Enrolment:
    account_scope = version.model.scope == "account"
    enrolment = Enrolment(
        workspace_id=workspace_id,
        journey_id=version.journey_id,
        version=version.version,
        contact_id=None if account_scope else touch.contact_id,
        account_id=touch.account_id,
        node_id=node.id,
        status=EnrolmentStatus.ACTIVE,
        next_run_at=now,
        visit=1,
        entered_at=now,
        entered_node=node.id,
        entered_because={
            "trigger": node.trigger,
            "interaction_id": touch.id,
            "kind": touch.kind,
            "contact_id": touch.contact_id,
        },
    )
    session.add(enrolment)
    session.flush()
    _arrive(session, enrolment, "entered", {"kind": touch.kind, "interaction_id": touch.id})
    return enrolment


def _react(session, versions: Versions, enrolment: Enrolment, touch: Touch, now) -> int:
    """A goal ends it; the awaited event moves it on; another entry node's trigger makes it
    jump there. Returns 1 when it became due now."""
    model = versions.model(enrolment.journey_id, enrolment.version)
    detail = {"kind": touch.kind, "interaction_id": touch.id, "contact_id": touch.contact_id}
    if model.goal_met(touch.kind, touch.properties):
        enrolment.visit += 1  # a move of its own, beside the step it was on
        _log(session, enrolment, enrolment.node_id, "goal", detail)
        _finish(enrolment, EnrolmentStatus.GOAL, now)
        return 0
    node = model.node(enrolment.node_id)
    awaited = node.wait.get("event") if node.type == "wait" and node.wait else None
    waiting = enrolment.status == EnrolmentStatus.WAITING and awaited
    if waiting and event_filter(awaited).matches(touch.kind, touch.properties):
        _complete_step(session, enrolment, "done", detail)
        _move(enrolment, node.next, now)
        return 1
    for target in model.entry_points(touch.kind, touch.properties):
        if target.id != enrolment.node_id and not _visited(session, enrolment, target.id):
            _move(enrolment, target.id, now)
            _arrive(session, enrolment, "jumped", detail)
            return 1
    return 0


# --- condition triggers and manual enrolment --------------------------------------------


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
        if subject in busy or not _may_enter(version.model, history.get(subject), now):
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
        _arrive(session, enrolment, "entered", {"kind": because["kind"]})
        busy.add(subject)
        enrolled += 1
    return enrolled


# --- the due-step runner ------------------------------------------------------------------


@dataclass
class RunResult:
    enrolments: int = 0
    steps: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    followups: Followups = field(default_factory=Followups)


@dataclass
class Platform:
    """What actions reach outside the database with: an OA client for a channel, and the
    outbound client webhooks go through (public addresses only, unless allow-listed). The
    app composes it; tests point it at the sandbox and at receivers they allow-list."""

    oa_client: Callable[[Channel], object]
    outbound: Outbound = field(default_factory=Outbound)


def live_workspaces(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(JourneyRow.workspace_id)
            .where(JourneyRow.status == JourneyStatus.LIVE)
            .distinct()
        )
    )


def due_workspaces(session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    return list(
        session.scalars(
            select(Enrolment.workspace_id)
            .where(Enrolment.status.in_(OPEN_STATUSES), Enrolment.next_run_at <= now)
            .distinct()
        )
    )


def run_due(
    session: Session,
    workspace_id: int,
    platform: Platform,
    *,
    now: Callable[[], datetime] = utcnow,
    batch_size: int = 500,
    max_batches: int = 200,
) -> RunResult:
    """Claim due enrolments in batches (SKIP LOCKED on PostgreSQL, so runners share the
    work) and walk each until it waits, ends, or is deferred by the frequency cap."""
    result = RunResult()
    runner = _Runner(session, workspace_id, platform, now, result)
    for _ in range(max_batches):
        query = (
            select(Enrolment)
            .join(JourneyRow, JourneyRow.id == Enrolment.journey_id)
            .where(
                Enrolment.workspace_id == workspace_id,
                Enrolment.status.in_(OPEN_STATUSES),
                Enrolment.next_run_at <= now(),
                JourneyRow.status == JourneyStatus.LIVE,  # a paused journey holds everyone
            )
            .order_by(Enrolment.next_run_at)
            .limit(batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Enrolment)
        claimed = session.scalars(query).all()
        if not claimed:
            break
        # A lease, committed: other runners pass over these until it runs out (a runner
        # that dies leaves them due again, and the step log makes the retry harmless).
        for enrolment in claimed:
            enrolment.next_run_at = now() + LEASE
        session.commit()
        runner.prefetch(claimed)
        with session.no_autoflush:  # steps and moves go to the database together
            for enrolment in claimed:
                runner.advance(enrolment)
                result.enrolments += 1
            runner.apply_tag_changes()
        session.commit()
    return result


class _Runner:
    def __init__(self, session, workspace_id, platform, now, result: RunResult):
        self.session, self.platform, self.now, self.result = session, platform, now, result
        self.workspace_id = workspace_id
        self.versions = Versions(session)
        workspace = session.get(Workspace, workspace_id)
        self.zone = ZoneInfo(workspace.timezone or "Asia/Shanghai")
        self.cap = workspace.messages_per_day
        self.book = TagBook(session, workspace_id)
        self.logged: set[tuple] = set()  # (enrolment, version, node, move) already logged
        # (add_tag | remove_tag, tag id) -> contacts: applied once per batch
        self.tag_changes: dict[tuple[str, int], set[int]] = {}

    def prefetch(self, claimed: list[Enrolment]) -> None:
        """One query for the claimed enrolments' logged steps, one for their contacts."""
        ids = [e.id for e in claimed]
        self.logged = {
            tuple(row)
            for row in self.session.execute(
                select(Step.enrolment_id, Step.version, Step.node_id, Step.visit).where(
                    Step.enrolment_id.in_(ids)
                )
            )
        }
        contact_ids = {e.contact_id or e.entered_because.get("contact_id") for e in claimed}
        self.session.scalars(
            select(Contact).where(
                Contact.workspace_id == self.workspace_id, Contact.id.in_(contact_ids - {None})
            )
        ).all()

    def _already_logged(self, enrolment: Enrolment) -> bool:
        key = (enrolment.id, enrolment.version, enrolment.node_id, enrolment.visit)
        return not self.fresh and key in self.logged

    def apply_tag_changes(self) -> None:
        for (kind, tag_id), contact_ids in sorted(self.tag_changes.items()):
            tag = self.book.by_id(tag_id)
            if kind == "add_tag":
                apply_tags(
                    self.session,
                    self.book,
                    contact_ids,
                    [tag],
                    source=TagSource.RULE,
                    followups=self.result.followups,
                )
            else:
                remove_tags(
                    self.session, self.book, contact_ids, [tag], followups=self.result.followups
                )
        self.tag_changes.clear()

    def advance(self, enrolment: Enrolment) -> None:
        model = self.versions.model(enrolment.journey_id, enrolment.version)
        # Its first move this run may have been logged by a runner that died; every move
        # after that is new, so the step log needs no lookup for it.
        self.fresh = False
        for _ in range(MAX_HOPS):
            if enrolment.status not in OPEN_STATUSES:
                return
            if not self._step(enrolment, model.node(enrolment.node_id)):
                return
            self.fresh = True
        log.warning("enrolment %s passed %s nodes in one run", enrolment.id, MAX_HOPS)

    def _step(self, enrolment: Enrolment, node: Node) -> bool:
        """Run one node; True to go straight on to the next."""
        session, now = self.session, self.now()
        self.result.steps += 1
        if enrolment.status == EnrolmentStatus.WAITING:  # its event never came
            _complete_step(session, enrolment, "timed_out", {})
            _move(enrolment, node.timeout_next, now)
            return True
        match node.type:
            case "entry":
                self._log(enrolment, "done", {})
                _move(enrolment, node.next, now)
            case "exit":
                self._log(enrolment, "done", {})
                _finish(enrolment, EnrolmentStatus.COMPLETED, now)
                return False
            case "wait":
                return self._wait(enrolment, node, now)
            case "branch":
                taken, target = self._branch(enrolment, node)
                self._log(enrolment, "done", {"branch": taken})
                _move(enrolment, target, now)
            case "action":
                return self._action(enrolment, node, now)
        return True

    def _wait(self, enrolment: Enrolment, node: Node, now: datetime) -> bool:
        if self._already_logged(enrolment):  # woken: the wait is over
            _complete_step(self.session, enrolment, "done", {})
            _move(enrolment, node.next, now)
            return True
        wait = node.wait
        if wait.get("event"):
            enrolment.status = EnrolmentStatus.WAITING
            enrolment.next_run_at = now + timedelta(minutes=wait["timeout_minutes"])
        elif wait.get("until_time"):
            enrolment.next_run_at = self._next_time_of_day(wait["until_time"], now)
        else:
            enrolment.next_run_at = now + timedelta(minutes=wait["minutes"])
        self._log(enrolment, "waiting", {"until": enrolment.next_run_at.isoformat()})
        return False

    def _log(self, enrolment: Enrolment, outcome: str, detail: dict) -> Step:
        if self._already_logged(enrolment):
            return _log(self.session, enrolment, enrolment.node_id, outcome, detail)
        step = _new_step(enrolment, enrolment.node_id, outcome, detail)
        self.session.add(step)
        return step

    def _next_time_of_day(self, hhmm: str, now: datetime) -> datetime:
        hour, minute = (int(part) for part in hhmm.split(":"))
        local = now.astimezone(self.zone)
        at = datetime.combine(local.date(), time(hour, minute), self.zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), self.zone)
        return at.astimezone(now.tzinfo)

    # --- actions -----------------------------------------------------------------

    def _action(self, enrolment: Enrolment, node: Node, now: datetime) -> bool:
        session, action = self.session, node.action
        skipped_because = self._already_done(enrolment, node)
        if skipped_because:
            self._log(enrolment, "skipped", {"because": skipped_because})
            self.result.skipped += 1
            _move(enrolment, node.next, now)
            return True
        contact = self._contact(enrolment)
        capped = action["kind"] in MESSAGE_ACTIONS and contact is not None
        if capped and self._messages_today(contact.id, now) >= self.cap:
            enrolment.next_run_at = self._next_local_midnight(now)  # deferred, not dropped
            self.result.deferred += 1
            return False
        if self._already_logged(enrolment):
            _move(enrolment, node.next, now)  # a runner that died took this step
            return True
        if action["kind"] in EXTERNAL_ACTIONS:
            # Logged and committed before the call: a retry finds it and never sends twice.
            self.apply_tag_changes()
            try:
                with session.begin_nested():
                    step = _log(session, enrolment, node.id, "sending", {"action": action["kind"]})
                session.commit()
            except IntegrityError:  # another runner logged it a moment ago
                return False
        else:  # a database change: atomic with its step in the batch's transaction
            step = self._log(enrolment, "sending", {"action": action["kind"]})
        outcome, detail = self._execute(enrolment, contact, action)
        step.outcome = outcome
        step.detail = {
            **detail,
            "action": action["kind"],
            "message": action["kind"] in MESSAGE_ACTIONS and outcome == "done",
            "contact_id": contact.id if contact else None,
        }
        if outcome == "done":
            self.result.sent += 1
        else:
            self.result.failed += 1
        _move(enrolment, node.next, now)
        if action["kind"] in EXTERNAL_ACTIONS:
            session.commit()
        return True

    def _already_done(self, enrolment: Enrolment, node: Node) -> str | None:
        skip = node.skip_if
        if not skip:
            return None
        event = event_filter(skip["event"])
        since = enrolment.entered_at if skip.get("since", "enrolment") == "enrolment" else None
        for kind, properties in self._interactions(enrolment, event.kind, since):
            if event.matches(kind, properties):
                when = "since enrolment" if since else "ever"
                return f"{event.kind} {when}"
        return None

    def _interactions(self, enrolment: Enrolment, kind: str, since: datetime | None):
        query = select(Interaction.kind, Interaction.properties).where(Interaction.kind == kind)
        if enrolment.contact_id is not None:
            query = query.where(Interaction.contact_id == enrolment.contact_id)
        else:
            query = query.where(Interaction.account_id == enrolment.account_id)
        if since is not None:
            query = query.where(Interaction.occurred_at >= since)
        return self.session.execute(query.limit(500)).all()

    def _contact(self, enrolment: Enrolment) -> Contact | None:
        contact_id = enrolment.contact_id or enrolment.entered_because.get("contact_id")
        return scoped_get(self.session, Contact, contact_id, self.workspace_id)

    def _messages_today(self, contact_id: int, now: datetime) -> int:
        start = self._local_midnight(now)
        journey_messages = self.session.scalar(
            select(func.count())
            .select_from(Step)
            .join(Enrolment, Enrolment.id == Step.enrolment_id)
            .where(
                or_(
                    Enrolment.contact_id == contact_id,
                    Step.detail["contact_id"].as_integer() == contact_id,
                ),
                Step.at >= start,
                Step.outcome == "done",
                Step.detail["message"].as_boolean().is_(True),
            )
        )
        pushes = self.session.scalar(
            select(func.count()).where(
                PushRecipient.contact_id == contact_id, PushRecipient.sent_at >= start
            )
        )
        return journey_messages + pushes

    def _local_midnight(self, now: datetime) -> datetime:
        local = now.astimezone(self.zone)
        return datetime.combine(local.date(), time(0), self.zone).astimezone(now.tzinfo)

    def _next_local_midnight(self, now: datetime) -> datetime:
        return self._local_midnight(now) + timedelta(days=1)

    def _execute(self, enrolment, contact, action) -> tuple[str, dict]:
        kind = action["kind"]
        try:
            match kind:
                case "add_tag" | "remove_tag":
                    return self._tag(enrolment, contact, action)
                case "set_stage":
                    return self._stage(enrolment, contact, action)
                case "notify_owner" | "wecom_message":
                    return self._notify(enrolment, contact, action)
                case "cs_message" | "template_message":
                    return self._oa_message(contact, action)
                case "wecom_group_task":
                    return self._group_task(enrolment, contact, action)
                case "webhook":
                    return self._webhook(enrolment, contact, action)
        except WeChatApiError as exc:
            return "failed", {"error": f"{exc.errcode} {exc.errmsg}"}
        except ValidationError as exc:  # e.g. a group task to someone no longer a customer
            return "failed", {"error": str(exc.messages)[:300]}
        return "failed", {"error": f"unknown action {kind}"}

    def _tag(self, enrolment, contact, action) -> tuple[str, dict]:
        tag = self.book.by_id(action["tag_id"])
        contacts = self._members(enrolment, contact)
        if tag is None or not contacts:
            return "failed", {"error": "no such tag" if tag is None else "no contact"}
        self.tag_changes.setdefault((action["kind"], tag.id), set()).update(contacts)
        return "done", {"tag_id": tag.id}

    def _members(self, enrolment, contact) -> list[int]:
        if enrolment.contact_id is not None:
            return [enrolment.contact_id]
        return list(
            self.session.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == self.workspace_id,
                    Contact.account_id == enrolment.account_id,
                    Contact.merged_into_id.is_(None),
                )
            )
        )

    def _stage(self, enrolment, contact, action) -> tuple[str, dict]:
        subject = (
            scoped_get(self.session, Account, enrolment.account_id, self.workspace_id)
            if enrolment.contact_id is None
            else contact
        )
        if subject is None:
            return "failed", {"error": "no subject"}
        set_stage(self.session, subject, action["stage"], f"journey {enrolment.journey_id}")
        return "done", {"stage": action["stage"]}

    def _notify(self, enrolment, contact, action) -> tuple[str, dict]:
        account_id = enrolment.account_id or (contact.account_id if contact else None)
        account = scoped_get(self.session, Account, account_id, self.workspace_id)
        if account is None or account.owner_id is None:
            return "failed", {"error": "no owner"}
        who = (contact.name or f"#{contact.id}") if contact else account.name
        text = (
            action["text"]
            if action["kind"] == "notify_owner"
            else f"请联系 {who}：{action['text']}"
        )
        sent = notify_owner(
            self.session,
            account,
            kind="journey",
            text=f"{who} · {text}",
            dedupe_key=f"journey:{enrolment.id}:{enrolment.visit}",
            followups=self.result.followups,
        )
        return ("done" if sent else "failed"), {"notified": sent}

    def _oa_message(self, contact, action) -> tuple[str, dict]:
        if contact is None:
            return "failed", {"error": "no contact"}
        identity = self.session.scalar(
            select(Identity)
            .where(
                Identity.workspace_id == self.workspace_id,
                Identity.contact_id == contact.id,
                Identity.kind == IdentityKind.OPENID,
                Identity.following.isnot(False),
            )
            .order_by(Identity.id)
        )
        channel = (
            scoped_get(self.session, Channel, identity.channel_id, self.workspace_id)
            if identity is not None
            else None
        )
        if channel is None:
            return "failed", {"error": "not a follower"}
        client = self.platform.oa_client(channel)
        if action["kind"] == "cs_message":
            client.post(
                "message/custom/send",
                data={
                    "touser": identity.value,
                    "msgtype": "text",
                    "text": {"content": action["text"]},
                },
            )
            return "done", {"openid": identity.value}
        answer = client.post(
            "message/template/send",
            data={
                "touser": identity.value,
                "template_id": action["template_id"],
                "url": action.get("url", ""),
                "data": {k: {"value": v} for k, v in action["data"].items()},
            },
        )
        return "done", {"openid": identity.value, "msgid": answer.get("msgid")}

    def _group_task(self, enrolment, contact, action) -> tuple[str, dict]:
        relation = self.session.scalar(
            select(FollowRelation)
            .where(
                FollowRelation.contact_id == (contact.id if contact else -1),
                FollowRelation.removed_at.is_(None),
            )
            .order_by(FollowRelation.id)
        )
        if relation is None:
            return "failed", {"error": "not a WeCom customer"}
        new = create_group_send(
            self.session,
            enrolment.workspace_id,
            relation.channel_id,
            relation.staff_userid,
            action["text"],
            [relation.external_userid],
            None,
        )
        self.result.followups.add(Job.SEND_GROUP_SEND, new.group_send.id)
        return "done", {"group_send_id": new.group_send.id, "staff": relation.staff_userid}

    def _webhook(self, enrolment, contact, action) -> tuple[str, dict]:
        """POSTed with the workspace's signing secret; a refused or unreachable address
        is logged for the operator and shown in the step log without its details, so
        the step log cannot map what answers where."""
        signing = signing_secrets(self.session, enrolment.workspace_id, self.now())
        if not signing:
            return "failed", {"error": WEBHOOK_NO_SECRET}
        delivery_id = f"{enrolment.id}-{enrolment.visit}"
        body = json.dumps(
            {
                "delivery_id": delivery_id,  # signed, unlike its header: what receivers dedupe on
                "workspace_id": enrolment.workspace_id,
                "journey_id": enrolment.journey_id,
                "version": enrolment.version,
                "node_id": enrolment.node_id,
                "enrolment_id": enrolment.id,
                "contact_id": contact.id if contact else None,
                "account_id": enrolment.account_id,
            },
            ensure_ascii=False,
        ).encode()
        headers = delivery_headers(signing, enrolment.workspace_id, delivery_id, body)
        try:
            answer = self.platform.outbound.post(action["url"], body, headers)
        except Refused as exc:
            log.warning(
                "webhook refused: workspace %s journey %s enrolment %s: %s",
                enrolment.workspace_id,
                enrolment.journey_id,
                enrolment.id,
                exc,
            )
            return "failed", {"error": WEBHOOK_REFUSED}
        except Unreachable as exc:
            log.warning(
                "webhook unreachable: workspace %s journey %s enrolment %s: %s",
                enrolment.workspace_id,
                enrolment.journey_id,
                enrolment.id,
                exc,
            )
            return "failed", {"error": WEBHOOK_UNREACHABLE}
        if not 200 <= answer.status < 300:  # a redirect too: it is not followed
            return "failed", {"error": f"webhook answered {answer.status}"}
        return "done", {"status": answer.status, "delivery": delivery_id}

    # --- branches ------------------------------------------------------------------

    def _branch(self, enrolment: Enrolment, node: Node) -> tuple[int | None, str | None]:
        for n, branch in enumerate(node.branches):
            if self._holds(enrolment, branch["condition"]):
                return n, branch["next"]
        return None, node.otherwise

    def _holds(self, enrolment: Enrolment, condition: dict) -> bool:
        session = self.session
        contact = self._contact(enrolment)
        match condition["kind"]:
            case "has_tag":
                members = self._members(enrolment, contact)
                return bool(
                    members
                    and session.scalar(
                        select(ContactTag.contact_id)
                        .where(
                            ContactTag.workspace_id == self.workspace_id,
                            ContactTag.contact_id.in_(members),
                            ContactTag.tag_id == condition["tag_id"],
                        )
                        .limit(1)
                    )
                )
            case "score_at_least":
                if condition["of"] == "account":
                    account_id = enrolment.account_id or (contact.account_id if contact else None)
                    account = scoped_get(session, Account, account_id, self.workspace_id)
                    return bool(account and (account.score or 0) >= condition["at_least"])
                return bool(contact and (contact.lead_score or 0) >= condition["at_least"])
            case "stage_in":
                subject = (
                    contact
                    if enrolment.contact_id
                    else scoped_get(session, Account, enrolment.account_id, self.workspace_id)
                )
                return bool(subject and subject.stage in condition["stages"])
            case "interacted":
                event = event_filter(condition["event"])
                if "within_days" in condition:
                    since = self.now() - timedelta(days=condition["within_days"])
                elif condition.get("since", "enrolment") == "enrolment":
                    since = enrolment.entered_at
                else:
                    since = None
                return any(
                    event.matches(kind, props)
                    for kind, props in self._interactions(enrolment, event.kind, since)
                )
            case "first_event":
                first_a = self._first(enrolment, event_filter(condition["a"]))
                first_b = self._first(enrolment, event_filter(condition["b"]))
                return first_a is not None and (first_b is None or first_a <= first_b)
        return False

    def _first(self, enrolment: Enrolment, event) -> datetime | None:
        query = select(Interaction.occurred_at, Interaction.properties).where(
            Interaction.kind == event.kind, Interaction.occurred_at >= enrolment.entered_at
        )
        if enrolment.contact_id is not None:
            query = query.where(Interaction.contact_id == enrolment.contact_id)
        else:
            query = query.where(Interaction.account_id == enrolment.account_id)
        for occurred_at, properties in self.session.execute(
            query.order_by(Interaction.occurred_at)
        ):
            if event.matches(event.kind, properties):
                return occurred_at
        return None


# --- the step log and moves ------------------------------------------------------------


def _new_step(enrolment: Enrolment, node_id: str, outcome: str, detail: dict) -> Step:
    return Step(
        enrolment_id=enrolment.id,
        journey_id=enrolment.journey_id,
        version=enrolment.version,
        node_id=node_id,
        visit=enrolment.visit,
        outcome=outcome,
        detail=detail,
        at=utcnow(),
    )


def _log(session: Session, enrolment: Enrolment, node_id: str, outcome: str, detail: dict) -> Step:
    """The step of this move; one already logged (a retried run) is returned as it is."""
    existing = session.scalar(
        select(Step).where(
            Step.enrolment_id == enrolment.id,
            Step.version == enrolment.version,
            Step.node_id == node_id,
            Step.visit == enrolment.visit,
        )
    )
    if existing is not None:
        return existing
    step = _new_step(enrolment, node_id, outcome, detail)
    session.add(step)
    session.flush()
    return step


def _arrive(session: Session, enrolment: Enrolment, outcome: str, detail: dict) -> None:
    """Entered or jumped here by a trigger: logged as its own move, so running the node
    (the next move) is not mistaken for a step already taken."""
    _log(session, enrolment, enrolment.node_id, outcome, detail)
    enrolment.visit += 1


def _logged(session: Session, enrolment: Enrolment) -> Step | None:
    """The step of the enrolment's current move, if it has one."""
    return session.scalar(
        select(Step).where(
            Step.enrolment_id == enrolment.id,
            Step.version == enrolment.version,
            Step.node_id == enrolment.node_id,
            Step.visit == enrolment.visit,
        )
    )


def _complete_step(session: Session, enrolment: Enrolment, outcome: str, detail: dict) -> None:
    step = _logged(session, enrolment)
    if step is None:
        _log(session, enrolment, enrolment.node_id, outcome, detail)
    else:
        step.outcome, step.detail = outcome, {**step.detail, **detail}


def _visited(session: Session, enrolment: Enrolment, node_id: str) -> bool:
    return (
        session.scalar(
            select(Step.id)
            .where(
                Step.enrolment_id == enrolment.id,
                Step.node_id == node_id,
                Step.outcome.in_(("done", "skipped", "sending", "waiting")),
            )
            .limit(1)
        )
        is not None
    )


def _move(enrolment: Enrolment, target: str | None, now: datetime) -> None:
    if target is None:
        _finish(enrolment, EnrolmentStatus.COMPLETED, now)
        return
    enrolment.node_id = target
    enrolment.visit += 1
    enrolment.status = EnrolmentStatus.ACTIVE
    enrolment.next_run_at = now


def _finish(enrolment: Enrolment, status: str, now: datetime) -> None:
    enrolment.status = status
    enrolment.next_run_at = None
    enrolment.finished_at = now
