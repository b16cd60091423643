"""The due-step runner: `run_due` claims a workspace's enrolments whose time has come and
walks each through its nodes until it waits, ends, or is deferred by the daily cap.

An action that talks to a person is logged (and committed) before its call, so a
retried job or a crash between claim and send never sends twice; the price is that a
crash right after the log leaves that one message unsent.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.jobs import Followups
from core.outbound import Outbound
from core.references import scoped_get
from crm.tags import TagBook, apply_tags, remove_tags
from journeys.actions import is_external, perform
from journeys.conditions import holds
from journeys.model import MESSAGE_ACTIONS, Node, event_filter
from journeys.steps import complete_step, finish, log_step, move, new_step
from journeys.versions import Versions
from models import (
    OPEN_STATUSES,
    Channel,
    Contact,
    Enrolment,
    EnrolmentStatus,
    Interaction,
    JourneyStatus,
    PushRecipient,
    Step,
    TagSource,
    Workspace,
    utcnow,
)
from models import Journey as JourneyRow

log = logging.getLogger(__name__)

MAX_HOPS = 50  # nodes one enrolment may pass in one run (loops need a wait anyway)
LEASE = timedelta(minutes=5)


@dataclass
class RunResult:
    """What a run did (the job logs it), and the jobs its actions ask for."""

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
    platform: Platform,
    *,
    now: Callable[[], datetime] = utcnow,
    batch_size: int = 500,
    max_batches: int = 200,
) -> RunResult:
    """Claim due enrolments in batches (SKIP LOCKED on PostgreSQL, so runners share the
    work) and walk each until it waits, ends, or is deferred by the frequency cap."""
    result = RunResult()
    runner = Runner(session, workspace_id, platform, now, result)
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


class Runner:
    """Walks one workspace's claimed enrolments; actions and conditions read the run
    through it (its session, platform, clock, tag book and follow-ups)."""

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
        session, action = self.session, node.action
        skipped_because = self._already_done(enrolment, node)
        if skipped_because:
            self._log(enrolment, "skipped", {"because": skipped_because})
            self.result.skipped += 1
            move(enrolment, node.next, now)
            return True
        contact = self.contact(enrolment)
        capped = action["kind"] in MESSAGE_ACTIONS and contact is not None
        if capped and self._messages_today(contact.id, now) >= self.cap:
            enrolment.next_run_at = self._next_local_midnight(now)  # deferred, not dropped
            self.result.deferred += 1
            return False
        if self._already_logged(enrolment):
            move(enrolment, node.next, now)  # a runner that died took this step
            return True
        if is_external(action["kind"]):
            # Logged and committed before the call: a retry finds it and never sends twice.
            self.apply_tag_changes()
            try:
                with session.begin_nested():
                    step = log_step(
                        session, enrolment, node.id, "sending", {"action": action["kind"]}
                    )
                session.commit()
            except IntegrityError:  # another runner logged it a moment ago
                return False
        else:  # a database change: atomic with its step in the batch's transaction
            step = self._log(enrolment, "sending", {"action": action["kind"]})
        outcome, detail = perform(self, enrolment, contact, action)
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
        move(enrolment, node.next, now)
        if is_external(action["kind"]):
            session.commit()
        return True

    def _already_done(self, enrolment: Enrolment, node: Node) -> str | None:
        skip = node.skip_if
        if not skip:
            return None
        event = event_filter(skip["event"])
        since = enrolment.entered_at if skip.get("since", "enrolment") == "enrolment" else None
        for kind, properties in self.interactions(enrolment, event.kind, since):
            if event.matches(kind, properties):
                when = "since enrolment" if since else "ever"
                return f"{event.kind} {when}"
        return None

    def interactions(self, enrolment: Enrolment, kind: str, since: datetime | None):
        """(kind, properties) of the subject's interactions of a kind, since a moment."""
        query = select(Interaction.kind, Interaction.properties).where(Interaction.kind == kind)
        if enrolment.contact_id is not None:
            query = query.where(Interaction.contact_id == enrolment.contact_id)
        else:
            query = query.where(Interaction.account_id == enrolment.account_id)
        if since is not None:
            query = query.where(Interaction.occurred_at >= since)
        return self.session.execute(query.limit(500)).all()

    def contact(self, enrolment: Enrolment) -> Contact | None:
        """The enrolment's contact; for an account journey, the one whose touch enrolled it."""
        contact_id = enrolment.contact_id or enrolment.entered_because.get("contact_id")
        return scoped_get(self.session, Contact, contact_id, self.workspace_id)

    def members(self, enrolment: Enrolment, contact: Contact | None) -> list[int]:
        """The contact an enrolment moves, or every contact of the account it moves."""
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

    def _branch(self, enrolment: Enrolment, node: Node) -> tuple[int | None, str | None]:
        for n, branch in enumerate(node.branches):
            if holds(self, enrolment, branch["condition"]):
                return n, branch["next"]
        return None, node.otherwise
