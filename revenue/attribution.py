"""Attribution, persisted: each opportunity credited to the touches of its account's people
before it was created (basis "created": pipeline) and, once won, before it was won (basis
"won": revenue), under the six models of revenue.credit.

The touches, all read per chunk of opportunities in one query per source, workspace
filtered:
- interactions of the account's contacts (contacts.account_id), and of the contacts merged
  into them (contacts.merged_into_id, one level), except revenue.credit.NOT_TOUCHES;
- pushes sent to those people (push_recipients sent or delivered, at sent_at; the row is
  named by its push id and contact id: it has no id of its own);
- journey steps that reached them: an OA message or a WeCom group task the journey sent
  (outcome "done"; tagging, tasks, webhooks and waits are no touch of the person);
- tier programs executed for the account (program_orders executed, at executed_at).
A window is the WINDOW_DAYS before the end, the end included. Per chunk (CHUNK
opportunities): those reads, the credit in Python, one DELETE of the chunk's rows and one
write of the new ones (a COPY on PostgreSQL, an executemany elsewhere), one transaction.

One attribution_touches row per touch and dimension; per (opportunity, basis, dimension)
each model's shares sum to 1 (see revenue.credit.attribute). So, per dimension, SUM(share
x amount) over a thing's rows is its part of the pipeline (or revenue) its dimension
influenced, and the dimension's total is the amount of the opportunities it touched, each
once. Dimensions are separate lenses: their totals do not add up to one another.

When it runs: app.jobs' attribute_opportunities (a follow-up a save asks for through
request_attribution), a periodic pass over every workspace's changed opportunities
(updated_at later than attributed_at), and a nightly full recompute that catches what no
save announces (late interactions, merges, contacts moving account).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    and_,
    column,
    delete,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased

from models import (
    Account,
    AttributionTouch,
    Contact,
    ContactWay,
    Enrolment,
    GroupJoinWay,
    Interaction,
    Opportunity,
    OpportunityStatus,
    ProgramOrder,
    ProgramOrderStatus,
    Push,
    PushRecipient,
    QrCode,
    RecipientStatus,
    Step,
    TouchSource,
    utcnow,
)
from models.base import UTCDateTime
from revenue.credit import MODELS, NOT_TOUCHES, Touch, attribute, interaction_dimensions

WINDOW_DAYS = 90  # how far before an opportunity's creation (or win) a touch counts
CHUNK = 500  # opportunities per read-credit-write round
CREATED, WON = "created", "won"
# A journey step whose detail names one of these sent something to the person.
JOURNEY_TOUCH_KEYS = ("openid", "group_send_id")
SENT = (RecipientStatus.SENT, RecipientStatus.DELIVERED)
# attribution_touches' columns a chunk's COPY writes.
COPY_COLUMNS = (
    "workspace_id",
    "opportunity_id",
    "basis",
    "source",
    "source_id",
    "contact_id",
    "kind",
    "dimension",
    "ref",
    "occurred_at",
    *MODELS,
)


@dataclass
class Window:
    opportunity_id: int
    account_id: int
    basis: str
    end: datetime
    milestone: datetime | None  # the account's MQA moment, for the W-shaped model

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=WINDOW_DAYS)


@dataclass
class AttributionResult:
    opportunities: int = 0
    rows: int = 0


def changed_opportunity_ids(session: Session, workspace_id: int) -> list[int]:
    """Opportunities never credited, or changed since they last were."""
    return list(
        session.scalars(
            select(Opportunity.id)
            .where(
                Opportunity.workspace_id == workspace_id,
                or_(
                    Opportunity.attributed_at.is_(None),
                    Opportunity.updated_at > Opportunity.attributed_at,
                ),
            )
            .order_by(Opportunity.id)
        )
    )


def workspaces_with_changes(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Opportunity.workspace_id)
            .where(
                or_(
                    Opportunity.attributed_at.is_(None),
                    Opportunity.updated_at > Opportunity.attributed_at,
                )
            )
            .distinct()
            .order_by(Opportunity.workspace_id)
        )
    )


def attribute_opportunities(
    session: Session,
    workspace_id: int,
    opportunity_ids: list[int] | None = None,
    *,
    chunk: int = CHUNK,
    commit: bool = True,
) -> AttributionResult:
    """Recompute the rows of these opportunities (all of the workspace's when None), chunk
    by chunk, each chunk one transaction when `commit`."""
    if opportunity_ids is None:
        opportunity_ids = list(
            session.scalars(
                select(Opportunity.id)
                .where(Opportunity.workspace_id == workspace_id)
                .order_by(Opportunity.id)
            )
        )
    engine = _Engine(session, workspace_id)
    result = AttributionResult()
    for i in range(0, len(opportunity_ids), chunk):
        ids = opportunity_ids[i : i + chunk]
        result.opportunities += len(ids)
        result.rows += engine.run(ids)
        if commit:
            session.commit()
    return result


class _Engine:
    def __init__(self, session: Session, workspace_id: int):
        self.session, self.workspace_id = session, workspace_id
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        ws = workspace_id
        self.qr_codes = {
            (channel_id, scene): code_id
            for code_id, channel_id, scene in session.execute(
                select(QrCode.id, QrCode.channel_id, QrCode.scene).where(QrCode.workspace_id == ws)
            )
        }
        self.contact_ways = {
            (channel_id, state): way_id
            for way_id, channel_id, state in session.execute(
                select(ContactWay.id, ContactWay.channel_id, ContactWay.state).where(
                    ContactWay.workspace_id == ws
                )
            )
        }
        self.join_ways = {
            (channel_id, state): way_id
            for way_id, channel_id, state in session.execute(
                select(GroupJoinWay.id, GroupJoinWay.channel_id, GroupJoinWay.state).where(
                    GroupJoinWay.workspace_id == ws
                )
            )
        }

    def run(self, opportunity_ids: list[int]) -> int:
        # Another run of these opportunities holds them until it commits: this one waits,
        # then reads and rewrites its rows, instead of adding beside rows it cannot see.
        self.session.execute(
            select(Opportunity.id)
            .where(
                Opportunity.workspace_id == self.workspace_id, Opportunity.id.in_(opportunity_ids)
            )
            .order_by(Opportunity.id)
            .with_for_update()
        ).all()
        started = utcnow()
        windows = self._windows(opportunity_ids)
        touches = self._touches(windows) if windows else {}
        rows = []  # values in COPY_COLUMNS order
        for window in windows:
            mine = [
                touch
                for touch in touches.get(window.account_id, ())
                if window.start <= touch.occurred_at <= window.end
            ]
            for credited in attribute(mine, window.end, window.milestone):
                touch, shares = credited.touch, credited.shares
                rows.append(
                    (
                        self.workspace_id,
                        window.opportunity_id,
                        window.basis,
                        touch.source,
                        touch.source_id,
                        touch.contact_id,
                        touch.kind[:64],
                        credited.dimension,
                        credited.ref,
                        touch.occurred_at,
                        *(shares[model] for model in MODELS),
                    )
                )
        self.session.execute(
            delete(AttributionTouch).where(
                AttributionTouch.workspace_id == self.workspace_id,
                AttributionTouch.opportunity_id.in_(opportunity_ids),
            )
        )
        self._insert(rows)
        # The run's start: a save while it ran leaves updated_at later, so it runs again.
        self.session.execute(
            update(Opportunity)
            .where(
                Opportunity.workspace_id == self.workspace_id, Opportunity.id.in_(opportunity_ids)
            )
            .values(attributed_at=started, updated_at=Opportunity.updated_at)
            .execution_options(synchronize_session=False)
        )
        return len(rows)

    def _windows(self, opportunity_ids: list[int]) -> list[Window]:
        rows = self.session.execute(
            select(
                Opportunity.id,
                Opportunity.account_id,
                Opportunity.opened_at,
                Opportunity.status,
                Opportunity.closed_at,
                Account.mqa_since,
            )
            .join(Account, Account.id == Opportunity.account_id)
            .where(
                Opportunity.workspace_id == self.workspace_id,
                Account.workspace_id == self.workspace_id,
                Opportunity.id.in_(opportunity_ids),
            )
            .order_by(Opportunity.id)
        )
        windows = []
        for opp_id, account_id, opened_at, status, closed_at, mqa_since in rows:
            windows.append(Window(opp_id, account_id, CREATED, opened_at, mqa_since))
            if status == OpportunityStatus.WON and closed_at is not None:
                windows.append(Window(opp_id, account_id, WON, closed_at, mqa_since))
        return windows

    def _people(self, account_ids: list[int]):
        """(contact_id, account_id): the accounts' contacts and those merged into them, each
        contact once: a merged one counts for its survivor's account only, never its own."""
        ws = self.workspace_id
        survivor = aliased(Contact)
        direct = select(
            Contact.id.label("contact_id"), Contact.account_id.label("account_id")
        ).where(
            Contact.workspace_id == ws,
            Contact.account_id.in_(account_ids),
            Contact.merged_into_id.is_(None),
        )
        merged = (
            select(Contact.id.label("contact_id"), survivor.account_id.label("account_id"))
            .join(survivor, survivor.id == Contact.merged_into_id)
            .where(
                Contact.workspace_id == ws,
                survivor.workspace_id == ws,
                survivor.account_id.in_(account_ids),
            )
        )
        return union_all(direct, merged).subquery("people")

    def _touches(self, windows: list[Window]) -> dict[int, list[Touch]]:
        ws = self.workspace_id
        account_ids = sorted({w.account_id for w in windows})
        since = min(w.start for w in windows)
        until = max(w.end for w in windows)
        people = self._people(account_ids)
        by_account: dict[int, list[Touch]] = defaultdict(list)

        interactions = (
            select(
                Interaction.id,
                people.c.account_id,
                Interaction.contact_id,
                Interaction.kind,
                Interaction.properties,
                Interaction.channel_id,
                Interaction.occurred_at,
            )
            .join(people, people.c.contact_id == Interaction.contact_id)
            .where(
                Interaction.workspace_id == ws,
                Interaction.occurred_at >= since,
                Interaction.occurred_at <= until,
                Interaction.kind.not_in(NOT_TOUCHES),
            )
        )
        if self.postgresql:
            interactions = self._within_account_windows(interactions, people, windows)
        for (
            row_id,
            account_id,
            contact_id,
            kind,
            properties,
            channel_id,
            at,
        ) in self.session.execute(interactions):
            dimensions = interaction_dimensions(
                kind,
                properties or {},
                channel_id,
                self.qr_codes,
                self.contact_ways,
                self.join_ways,
            )
            by_account[account_id].append(
                Touch(TouchSource.INTERACTION, row_id, contact_id, kind, at, dimensions)
            )

        pushes = (
            select(
                PushRecipient.push_id,
                people.c.account_id,
                PushRecipient.contact_id,
                PushRecipient.sent_at,
            )
            .join(Push, Push.id == PushRecipient.push_id)
            .join(people, people.c.contact_id == PushRecipient.contact_id)
            .where(
                Push.workspace_id == ws,
                PushRecipient.status.in_(SENT),
                PushRecipient.sent_at >= since,
                PushRecipient.sent_at <= until,
            )
        )
        for push_id, account_id, contact_id, at in self.session.execute(pushes):
            by_account[account_id].append(
                Touch(TouchSource.PUSH, push_id, contact_id, "push", at, [("push", str(push_id))])
            )

        steps = (
            select(
                Step.id,
                people.c.account_id,
                Enrolment.contact_id,
                Step.journey_id,
                Step.detail,
                Step.at,
            )
            .join(Enrolment, Enrolment.id == Step.enrolment_id)
            .join(people, people.c.contact_id == Enrolment.contact_id)
            .where(
                Enrolment.workspace_id == ws,
                Step.outcome == "done",
                Step.at >= since,
                Step.at <= until,
            )
        )
        for step_id, account_id, contact_id, journey_id, detail, at in self.session.execute(steps):
            if any(key in (detail or {}) for key in JOURNEY_TOUCH_KEYS):
                by_account[account_id].append(
                    Touch(
                        TouchSource.JOURNEY,
                        step_id,
                        contact_id,
                        "journey",
                        at,
                        [("journey", str(journey_id))],
                    )
                )

        programs = select(
            ProgramOrder.id,
            ProgramOrder.account_id,
            ProgramOrder.program_id,
            ProgramOrder.executed_at,
        ).where(
            ProgramOrder.workspace_id == ws,
            ProgramOrder.account_id.in_(account_ids),
            ProgramOrder.status == ProgramOrderStatus.EXECUTED,
            ProgramOrder.executed_at >= since,
            ProgramOrder.executed_at <= until,
        )
        for order_id, account_id, program_id, at in self.session.execute(programs):
            by_account[account_id].append(
                Touch(
                    TouchSource.PROGRAM,
                    order_id,
                    None,
                    "program",
                    at,
                    [("program", str(program_id))],
                )
            )
        return by_account

    def _within_account_windows(self, query, people, windows: list[Window]):
        """On PostgreSQL, each account's own span (its windows' earliest start to latest
        end) as unnest() arrays, so a chunk reads no touch outside every window."""
        spans: dict[int, list[datetime]] = {}
        for w in windows:
            span = spans.setdefault(w.account_id, [w.start, w.end])
            span[0], span[1] = min(span[0], w.start), max(span[1], w.end)
        ids = sorted(spans)
        span = (
            text(
                "SELECT unnest(CAST(:span_ids AS bigint[])) AS account_id,"
                " unnest(CAST(:span_starts AS timestamptz[])) AS since,"
                " unnest(CAST(:span_ends AS timestamptz[])) AS until"
            )
            .bindparams(
                span_ids=ids,
                span_starts=[spans[i][0] for i in ids],
                span_ends=[spans[i][1] for i in ids],
            )
            .columns(
                column("account_id", BigInteger),
                column("since", UTCDateTime()),
                column("until", UTCDateTime()),
            )
            .subquery("spans")
        )
        return query.join(
            span,
            and_(
                span.c.account_id == people.c.account_id,
                Interaction.occurred_at >= span.c.since,
                Interaction.occurred_at <= span.c.until,
            ),
        )

    def _insert(self, rows: list[tuple]) -> None:
        """All the chunk's rows in one statement: on PostgreSQL a COPY of the rows as text
        (the driver adapts no value one by one), elsewhere an executemany."""
        if not rows:
            return
        if not self.postgresql:
            self.session.execute(
                insert(AttributionTouch),
                [dict(zip(COPY_COLUMNS, row, strict=True)) for row in rows],
            )
            return
        raw = self.session.connection().connection.driver_connection
        with raw.cursor() as cursor:
            statement = f"COPY attribution_touches ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                copy.write("".join(map(_copy_line, rows)))


# COPY's text format escapes these in a value; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(row: tuple) -> str:
    ws, opportunity, basis, source, source_id, contact, kind, dimension, ref, at, *shares = row
    contact_text = "\\N" if contact is None else str(contact)
    return (
        f"{ws}\t{opportunity}\t{basis}\t{source}\t{source_id}\t{contact_text}\t"
        f"{kind.translate(_COPY_ESCAPES)}\t{dimension}\t{ref.translate(_COPY_ESCAPES)}\t"
        f"{at.isoformat()}\t" + "\t".join(map(repr, shares)) + "\n"
    )
