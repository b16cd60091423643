"""What marketing influenced, read from attribution_touches: per dimension and thing (a
content item, push, journey, code, form, campaign...), its touches, the opportunities it
influenced, and its share of their pipeline and won revenue under one model; and the white
paper's value chain of one content item, from its readers to signed revenue."""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Numeric, and_, case, cast, distinct, exists, func, or_, select
from sqlalchemy.orm import Session

from models import (
    Account,
    AttributionTouch,
    Contact,
    ContactWay,
    Content,
    Form,
    FormSubmission,
    GroupJoinWay,
    Identity,
    IdentityKind,
    Interaction,
    Journey,
    Opportunity,
    OpportunityStatus,
    Program,
    Push,
    QrCode,
)
from revenue.attribution import CREATED, WON
from revenue.credit import MODELS
from scoring.engine import load_model

CENT = Decimal("0.01")
# The dimensions whose refs are row ids, and the row and column that name them.
NAMED_BY = {
    "content": (Content, Content.title),
    "push": (Push, Push.name),
    "journey": (Journey, Journey.name),
    "qr": (QrCode, QrCode.name),
    "contact_way": (ContactWay, ContactWay.name),
    "join_way": (GroupJoinWay, GroupJoinWay.name),
    "form": (Form, Form.title),
    "program": (Program, Program.name),
}


@dataclass
class Influence:
    dimension: str
    ref: str
    name: str
    touches: int  # touch rows crediting pipeline (basis "created") in the range
    opportunities: int  # opportunities created in the range it touched
    pipeline: Decimal  # its share of their amounts under the model
    won: int  # opportunities won in the range it touched before the win
    revenue: Decimal  # its share of their amounts under the model


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT, ROUND_HALF_UP)


@dataclass
class Totals:
    """A dimension's whole: each opportunity it touched counted once."""

    touches: int
    opportunities: int
    pipeline: Decimal
    won: int
    revenue: Decimal


def _measures(model: str, since: datetime | None, until: datetime | None) -> tuple:
    """(in range, the columns of a row of Influence after its ref): pipeline counts the
    opportunities created in [since, until), revenue those won (closed) in it."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}")
    # The share is a float: as a numeric, share × amount sums exactly (a float sum of large
    # amounts is off by cents), rounded to cents once at the end.
    share = cast(getattr(AttributionTouch, model), Numeric(asdecimal=True))
    in_range = []
    for basis, at in ((CREATED, Opportunity.opened_at), (WON, Opportunity.closed_at)):
        bounds = [AttributionTouch.basis == basis]
        if since is not None:
            bounds.append(at >= since)
        if until is not None:
            bounds.append(at < until)
        in_range.append(and_(*bounds))
    created, won = in_range
    columns = (
        func.count(case((created, 1))),
        func.count(distinct(case((created, AttributionTouch.opportunity_id)))),
        func.sum(case((created, share * Opportunity.amount), else_=0)),
        func.count(distinct(case((won, AttributionTouch.opportunity_id)))),
        func.sum(case((won, share * Opportunity.amount), else_=0)),
    )
    return or_(created, won), columns


def _rows(session: Session, workspace_id: int, dimension: str, columns, in_range):
    return (
        select(*columns)
        .join(Opportunity, Opportunity.id == AttributionTouch.opportunity_id)
        .where(
            AttributionTouch.workspace_id == workspace_id,
            Opportunity.workspace_id == workspace_id,
            AttributionTouch.dimension == dimension,
            in_range,
        )
    )


def influence(
    session: Session,
    workspace_id: int,
    dimension: str,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[Influence]:
    """The dimension's things, most won revenue first (then pipeline)."""
    in_range, columns = _measures(model, since, until)
    pipeline, revenue = columns[2], columns[4]
    rows = session.execute(
        _rows(session, workspace_id, dimension, (AttributionTouch.ref, *columns), in_range)
        .group_by(AttributionTouch.ref)
        .order_by(revenue.desc(), pipeline.desc(), AttributionTouch.ref)
        .limit(limit)
    ).all()
    names = _names(session, workspace_id, dimension, [row[0] for row in rows])
    return [
        Influence(
            dimension,
            ref,
            names.get(ref, ref),
            touches,
            opportunities,
            _money(pipeline_share),
            won_count,
            _money(revenue_share),
        )
        for ref, touches, opportunities, pipeline_share, won_count, revenue_share in rows
    ]


def influence_totals(
    session: Session,
    workspace_id: int,
    dimension: str,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Totals:
    """The dimension's totals over all its things (the page lists the top ones only)."""
    in_range, columns = _measures(model, since, until)
    touches, opportunities, pipeline, won, revenue = session.execute(
        _rows(session, workspace_id, dimension, columns, in_range)
    ).one()
    return Totals(touches, opportunities, _money(pipeline), won, _money(revenue))


def _names(session: Session, workspace_id: int, dimension: str, refs: list[str]) -> dict:
    """The things' names, of this workspace only: a ref naming another's row keeps its id."""
    if dimension not in NAMED_BY:
        return {}
    ids = [int(ref) for ref in refs if ref.isascii() and ref.isdigit()]
    if not ids:
        return {}
    row, name = NAMED_BY[dimension]
    return {
        str(row_id): text
        for row_id, text in session.execute(
            select(row.id, name).where(row.workspace_id == workspace_id, row.id.in_(ids))
        )
    }


@dataclass
class ChainStep:
    key: str
    value: int | Decimal


def _content_id(session: Session, content_id: int):
    """Interaction.properties content_id equals the id, on either backend (SQLite's
    json_extract gives the number itself, PostgreSQL's ->> its text)."""
    field = Interaction.properties["content_id"]
    if session.get_bind().dialect.name == "postgresql":
        return field.as_string() == str(content_id)
    return field.as_integer() == content_id


def value_chain(session: Session, workspace_id: int, content_id: int) -> list[ChainStep]:
    """The content item's readers and what became of them:
    - readers: people (a merged contact counts as the one it was merged into) with a
      content.view of it;
    - followers: readers following one of the workspace's OAs now;
    - members: readers who left contact details (a phone or email, or a form submission);
    - mql: readers whose lead score reached the stage rules' engaged threshold, or whose
      stage is engaged or later;
    - mqa: the readers' accounts that are MQAs now (accounts, not people);
    - opportunities: on the readers' accounts, created after the account's first read;
    - revenue: the won amount of those opportunities."""
    ws = workspace_id
    person = func.coalesce(Contact.merged_into_id, Contact.id)
    readers = (
        select(person.label("person"), func.min(Interaction.occurred_at).label("first_read"))
        .join(Contact, Contact.id == Interaction.contact_id)
        .where(
            Interaction.workspace_id == ws,
            Contact.workspace_id == ws,
            Interaction.kind == "content.view",
            _content_id(session, content_id),
        )
        .group_by(person)
        .subquery("readers")
    )
    who = readers.c.person

    def count(*conditions) -> int:
        return session.scalar(select(func.count()).select_from(readers).where(*conditions)) or 0

    def has_identity(*kinds, following=None):
        condition = [
            Identity.workspace_id == ws,
            Identity.contact_id == who,
            Identity.kind.in_(kinds),
        ]
        if following is not None:
            condition.append(Identity.following.is_(following))
        return exists().where(*condition)

    model = load_model(session, ws)
    keys = [stage.key for stage in model.stages]
    engaged = model.stage_rules.engaged or "engaged"
    later = keys[keys.index(engaged) :] if engaged in keys else [engaged]
    qualified = exists().where(
        Contact.id == who,
        Contact.workspace_id == ws,
        or_(
            Contact.lead_score >= model.stage_rules.engaged_contact_score,
            Contact.stage.in_(later),
        ),
    )
    submitted = exists().where(FormSubmission.workspace_id == ws, FormSubmission.contact_id == who)
    account_reads = (
        select(Contact.account_id, func.min(readers.c.first_read).label("first_read"))
        .join(readers, readers.c.person == Contact.id)
        .where(Contact.workspace_id == ws, Contact.account_id.is_not(None))
        .group_by(Contact.account_id)
        .subquery("account_reads")
    )
    mqa = session.scalar(
        select(func.count())
        .select_from(account_reads)
        .join(Account, Account.id == account_reads.c.account_id)
        .where(Account.workspace_id == ws, Account.mqa.is_(True))
    )
    opportunities, revenue = session.execute(
        select(
            func.count(Opportunity.id),
            func.sum(
                case((Opportunity.status == OpportunityStatus.WON, Opportunity.amount), else_=0)
            ),
        )
        .join(account_reads, account_reads.c.account_id == Opportunity.account_id)
        .where(
            Opportunity.workspace_id == ws,
            Opportunity.opened_at >= account_reads.c.first_read,
        )
    ).one()
    return [
        ChainStep("readers", count()),
        ChainStep("followers", count(has_identity(IdentityKind.OPENID, following=True))),
        ChainStep(
            "members",
            count(or_(has_identity(IdentityKind.PHONE, IdentityKind.EMAIL), submitted)),
        ),
        ChainStep("mql", count(qualified)),
        ChainStep("mqa", mqa or 0),
        ChainStep("opportunities", opportunities or 0),
        ChainStep("revenue", _money(revenue)),
    ]
