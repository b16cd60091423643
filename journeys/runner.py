"""The due-step runner: `run_due` claims a workspace's enrolments whose time has come and
walks each through its nodes until it waits, ends, or is deferred (the daily cap, a new
WeCom customer's enrichment).

The walk touches only the database: an action that reaches the outside (a message, a
webhook) is written to the outbox with its idempotency key, in the batch's transaction,
and journeys.delivery sends it after the commit. So a batch is short, and its claimed
enrolments stay locked (FOR UPDATE SKIP LOCKED) until it commits: no other runner can
take one while it is walked.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from core.references import scoped_get
from core.transient import is_rerunnable
from crm.contacts import live, merged_ids
from crm.tags import TagBook, apply_tags, remove_tags
from journeys.actions import is_external, perform, step_key
from journeys.conditions import holds
from journeys.model import MESSAGE_ACTIONS, Node, event_filter
from journeys.steps import complete_step, finish, log_step, move, new_step
from journeys.versions import Versions
from models import (
    OPEN_STATUSES,
    Contact,
    EmailMessage,
    EmailStatus,
    Enrolment,
    EnrolmentStatus,
    Identity,
    IdentityKind,
    Interaction,
    JourneyStatus,
    OutboxItem,
    PushRecipient,
    Step,
    TagSource,
    Workspace,
    utcnow,
)
from models import Journey as JourneyRow
from outreach.emails import new_token

log = logging.getLogger(__name__)

MAX_RERUNS = 4  # batches run again after losing a deadlock, per run
MAX_HOPS = 50  # nodes one enrolment may pass in one run (loops need a wait anyway)
ENRICHMENT_WAIT = timedelta(seconds=10)
# A message step counts against the daily cap once decided, not only once delivered: a
# burst of journeys cannot queue more than the cap.
COUNTED_OUTCOMES = ("done", "queued")


@dataclass
class RunResult:
    """What a run did (the job logs it), and the jobs its actions ask for."""

    enrolments: int = 0
    steps: int = 0
    sent: int = 0  # actions done in the database
    queued: int = 0  # messages and webhooks written to the outbox
    skipped: int = 0
    deferred: int = 0  # by the daily cap
    awaiting_enrichment: int = 0
    failed: int = 0
    followups: Followups = field(default_factory=Followups)


def due_workspaces(session: Session, now: datetime | None = None) -> list[int]:
    """The workspaces with an open enrolment due by `now`: those a `run_journeys` is for."""
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
    *,
    now: Callable[[], datetime] = utcnow,
    batch_size: int = 500,
    max_batches: int = 200,
    enrichment_wait: timedelta = ENRICHMENT_WAIT,
) -> RunResult:
    """Claim due enrolments in batches (SKIP LOCKED on PostgreSQL, so runners share the
    work) and walk each until it waits, ends, or is deferred; each batch is one
    transaction, holding its enrolments' row locks while it walks them."""
    result = RunResult()
    runner = Runner(session, workspace_id, now, result, enrichment_wait)
    reruns = 0
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
            session.rollback()
            break
        before = replace(result, followups=Followups(set(result.followups.jobs)))
        try:
            runner.prefetch(claimed)
            with session.no_autoflush:  # steps and moves go to the database together
                for enrolment in claimed:
                    runner.advance(enrolment)
                    result.enrolments += 1
                runner.apply_tag_changes()
            session.commit()
        except DBAPIError as exc:
            # Lost a deadlock to a drain touching the same people: nothing of the batch
            # happened; its enrolments are still due and the next claim takes them again.
            session.rollback()
            runner.tag_changes.clear()
            reruns += 1
            if not is_rerunnable(exc) or reruns > MAX_RERUNS:
                raise
            result.__dict__.update(before.__dict__)
            log.info("journey batch of workspace %s run again: %s", workspace_id, exc.orig)
    return result


def walk_now(
    session: Session,
    workspace_id: int,
    enrolments: list[Enrolment],
    *,
    now: Callable[[], datetime] = utcnow,
    enrichment_wait: timedelta = ENRICHMENT_WAIT,
) -> RunResult:
    """Walk enrolments the caller's transaction has just made due (the drain's reactions,
    which hold them locked) until each waits, ends or is deferred: database work only, what
    reaches the outside goes to the outbox. Not committed: the caller's commit is theirs."""
    result = RunResult()
    live = [e for e in enrolments if _journey_is_live(session, e.journey_id)]
    if not live:
        return result
    runner = Runner(session, workspace_id, now, result, enrichment_wait)
    runner.prefetch(live)
    with session.no_autoflush:
        for enrolment in live:
            runner.advance(enrolment)
            result.enrolments += 1
        runner.apply_tag_changes()
    return result


def _journey_is_live(session: Session, journey_id: int) -> bool:
    journey = session.get(JourneyRow, journey_id)
    return journey is not None and journey.status == JourneyStatus.LIVE


class Runner:
    """Walks one workspace's claimed enrolments; actions and conditions read the run
    through it (its session, clock, tag book, follow-ups and the outbox)."""

    def __init__(self, session, workspace_id, now, result: RunResult, enrichment_wait):
        self.session, self.now, self.result = session, now, result
        self.workspace_id, self.enrichment_wait = workspace_id, enrichment_wait
        self.versions = Versions(session)
        workspace = session.get(Workspace, workspace_id)
        self.zone = ZoneInfo(workspace.timezone or "Asia/Shanghai")
        self.cap = workspace.messages_per_day
        self.book = TagBook(session, workspace_id)
        self.logged: set[tuple] = set()  # (enrolment, version, node, move) already logged
        # (add_tag | remove_tag, tag id) -> contacts: applied once per batch
        self.tag_changes: dict[tuple[str, int], set[int]] = {}
        self.acting: Step | None = None  # the step of the action being performed
        self._people: dict[int, list[int]] = {}  # contact -> it and those merged into it

    def prefetch(self, claimed: list[Enrolment]) -> None:
        """One query for the claimed enrolments' logged steps, one for their contacts."""
        ids = [e.id for e in claimed]
        self._people = {}
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

    def people(self, contact_id: int) -> list[int]:
        """The contact and everyone merged into it, once per batch."""
        if contact_id not in self._people:
            self._people[contact_id] = merged_ids(self.session, self.workspace_id, contact_id)
        return self._people[contact_id]

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
            complete_step(session, enrolment, "timed_out", {})
            move(enrolment, node.timeout_next, now)
            return True
        match node.type:
            case "entry":
                self._log(enrolment, "done", {})
                move(enrolment, node.next, now)
            case "exit":
                self._log(enrolment, "done", {})
                finish(enrolment, EnrolmentStatus.COMPLETED, now)
                return False
            case "wait":
                return self._wait(enrolment, node, now)
            case "branch":
                taken, target = self._branch(enrolment, node)
                self._log(enrolment, "done", {"branch": taken})
                move(enrolment, target, now)
            case "action":
                return self._action(enrolment, node, now)
        return True

    def _wait(self, enrolment: Enrolment, node: Node, now: datetime) -> bool:
        if self._already_logged(enrolment):  # woken: the wait is over
            complete_step(self.session, enrolment, "done", {})
            move(enrolment, node.next, now)
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
            return log_step(self.session, enrolment, enrolment.node_id, outcome, detail)
        step = new_step(enrolment, enrolment.node_id, outcome, detail)
        self.session.add(step)
        return step

    def _next_time_of_day(self, hhmm: str, now: datetime) -> datetime:
        hour, minute = (int(part) for part in hhmm.split(":"))
        local = now.astimezone(self.zone)
        at = datetime.combine(local.date(), time(hour, minute), self.zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), self.zone)
        return at.astimezone(now.tzinfo)

    def _action(self, enrolment: Enrolment, node: Node, now: datetime) -> bool:
        action = node.action
        contact = self.contact(enrolment)
        if self._awaits_enrichment(enrolment, contact, now):
            return False
        skipped_because = self._already_done(enrolment, node, contact)
        if skipped_because:
            self._log(enrolment, "skipped", {"because": skipped_because})
            self.result.skipped += 1
            move(enrolment, node.next, now)
            return True
        capped = action["kind"] in MESSAGE_ACTIONS and contact is not None
        if capped and self._messages_today(contact.id, now) >= self.cap:
            enrolment.next_run_at = self._next_local_midnight(now)  # deferred, not dropped
            self.result.deferred += 1
            return False
        if self._already_logged(enrolment):
            move(enrolment, node.next, now)  # a runner that died took this step
            return True
        self.acting = self._log(enrolment, "sending", {"action": action["kind"]})
        outcome, detail = perform(self, enrolment, contact, action)
        self.acting.outcome = outcome
        self.acting.detail = {
            **detail,
            "action": action["kind"],
            "message": action["kind"] in MESSAGE_ACTIONS and outcome in COUNTED_OUTCOMES,
            "contact_id": contact.id if contact else None,
        }
        self.acting = None
        if outcome == "queued":
            self.result.queued += 1
        elif outcome == "done":
            self.result.sent += 1
        else:
            self.result.failed += 1
        move(enrolment, node.next, now)
        return True

    def send_later(self, enrolment: Enrolment, contact: Contact | None, send: dict) -> None:
        """The acting step's message or webhook, into the outbox with its idempotency key
        (the step's own identity: one decision, one row); a sender delivers it."""
        assert self.acting is not None and is_external(send["kind"])
        key = step_key(enrolment)
        if send["kind"] == "send_email":  # the email's own row is its outbox entry
            self.session.add(
                EmailMessage(
                    workspace_id=self.workspace_id,
                    idempotency_key=key,
                    token=new_token(),
                    contact_id=contact.id,
                    template_id=send["payload"]["template_id"],
                    step=self.acting,
                    status=EmailStatus.PLANNED,
                    next_attempt_at=self.now(),
                )
            )
            self.result.followups.add(Job.SEND_EMAILS, self.workspace_id)
            return
        self.session.add(
            OutboxItem(
                workspace_id=self.workspace_id,
                kind=send["kind"],
                idempotency_key=key,
                step=self.acting,
                contact_id=contact.id if contact else None,
                destination=send["destination"][:300],
                payload=send["payload"],
                next_attempt_at=self.now(),
            )
        )
        self.result.followups.add(Job.DELIVER_OUTBOX, self.workspace_id)

    def _awaits_enrichment(self, enrolment: Enrolment, contact: Contact | None, now) -> bool:
        """A new WeCom customer not looked up yet may turn out to be someone known (their
        unionid): the action waits for the enrichment, `enrichment_wait` at most after
        the add, and acts on whoever they are then."""
        if contact is None or not self.enrichment_wait:
            enrolment.awaits_enrichment = False
            return False
        added = self.session.scalar(
            select(func.max(Identity.created_at)).where(
                Identity.workspace_id == self.workspace_id,
                Identity.contact_id.in_(self.people(contact.id)),
                Identity.kind == IdentityKind.EXTERNAL_USERID,
                Identity.enriched_at.is_(None),
            )
        )
        until = added + self.enrichment_wait if added is not None else None
        if until is None or until <= now:
            enrolment.awaits_enrichment = False
            return False
        enrolment.awaits_enrichment = True
        enrolment.next_run_at = until
        self.result.awaiting_enrichment += 1
        return True

    def _already_done(self, enrolment: Enrolment, node: Node, contact: Contact | None):
        """Why the action's step is skipped (its event already happened), or None."""
        skip = node.skip_if
        if not skip:
            return None
        event = event_filter(skip["event"])
        since = enrolment.entered_at if skip.get("since", "enrolment") == "enrolment" else None
        for kind, properties in self.interactions(enrolment, event.kind, since, contact):
            if event.matches(kind, properties):
                when = "since enrolment" if since else "ever"
                return f"{event.kind} {when}"
        return None

    def interactions(
        self, enrolment: Enrolment, kind: str, since: datetime | None, contact: Contact | None
    ):
        """(kind, properties) of the subject's interactions of a kind, since a moment: the
        person's whole history (everyone merged into them too), or, for an account
        journey, the account's and that of the person whose touch enrolled it."""
        query = select(Interaction.kind, Interaction.properties).where(
            Interaction.workspace_id == self.workspace_id, Interaction.kind == kind
        )
        people = self.people(contact.id) if contact else []
        if enrolment.contact_id is not None:
            query = query.where(Interaction.contact_id.in_(people or [enrolment.contact_id]))
        else:
            query = query.where(
                or_(
                    Interaction.account_id == enrolment.account_id,
                    Interaction.contact_id.in_(people or [-1]),
                )
            )
        if since is not None:
            query = query.where(Interaction.occurred_at >= since)
        return self.session.execute(query.limit(500)).all()

    def contact(self, enrolment: Enrolment) -> Contact | None:
        """The enrolment's contact; for an account journey, the one whose touch enrolled it.
        Merged meanwhile: the person they were merged into."""
        contact_id = enrolment.contact_id or enrolment.entered_because.get("contact_id")
        contact = scoped_get(self.session, Contact, contact_id, self.workspace_id)
        return live(self.session, contact) if contact is not None else None

    def members(self, enrolment: Enrolment, contact: Contact | None) -> list[int]:
        """The contact an enrolment moves, or every contact of the account it moves."""
        if enrolment.contact_id is not None:
            return [contact.id if contact is not None else enrolment.contact_id]
        return list(
            self.session.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == self.workspace_id,
                    Contact.account_id == enrolment.account_id,
                    Contact.merged_into_id.is_(None),
                )
            )
        )

    def _messages_today(self, contact_id: int, now: datetime) -> int:
        """Journey messages decided or sent today, and pushes sent, to the person (and
        to anyone merged into them: a merge does not reset the cap)."""
        start = self._local_midnight(now)
        people = self.people(contact_id)
        self.session.flush()  # this batch's messages count too
        journey_messages = self.session.scalar(
            select(func.count())
            .select_from(Step)
            .join(Enrolment, Enrolment.id == Step.enrolment_id)
            .where(
                Enrolment.workspace_id == self.workspace_id,
                or_(
                    Enrolment.contact_id.in_(people),
                    Step.detail["contact_id"].as_integer().in_(people),
                ),
                Step.at >= start,
                Step.outcome.in_(COUNTED_OUTCOMES),
                Step.detail["message"].as_boolean().is_(True),
            )
        )
        pushes = self.session.scalar(
            select(func.count()).where(
                PushRecipient.contact_id.in_(people), PushRecipient.sent_at >= start
            )
        )
        emailed = self.session.scalar(  # email pushes (a journey's emails are its steps)
            select(func.count()).where(
                EmailMessage.workspace_id == self.workspace_id,
                EmailMessage.push_id.isnot(None),
                EmailMessage.contact_id.in_(people),
                EmailMessage.sent_at >= start,
            )
        )
        return journey_messages + pushes + emailed

    def _local_midnight(self, now: datetime) -> datetime:
        local = now.astimezone(self.zone)
        return datetime.combine(local.date(), time(0), self.zone).astimezone(now.tzinfo)

    def _next_local_midnight(self, now: datetime) -> datetime:
        return self._local_midnight(now) + timedelta(days=1)

    def _branch(self, enrolment: Enrolment, node: Node) -> tuple[int | None, str | None]:
        for n, branch in enumerate(node.branches):
            if holds(self, enrolment, branch["condition"]):
                return n, branch["next"]
        return None, node.otherwise
