"""Segments: a saved filter over a workspace's contacts, compiled to one SQL query.

A segment is a `Segment` (plain data, stored as a document); `contacts_query` turns
it into a single SELECT of contact ids — tags, roles, stages, scores, tiers, MQA,
regions, channels, activity windows, interaction counts and account attributes all
become WHERE clauses, EXISTS / IN subqueries and one join to accounts, never Python
filtering. Counting, sampling and materializing a segment are that query wrapped.

`load_segment` checks the admin's form (SegmentSchema) and `segment_form` fills it;
a saved segment (models.SavedSegment) is stored by `save_segment` and read back by
`segment_of` / `saved_contacts_query`, which pushes and journeys select from.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from marshmallow import ValidationError, post_load, validate, validates_schema
from marshmallow import fields as schema_fields
from sqlalchemy import Select, delete, distinct, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import forms as form
from core.references import CHANNEL, TAG, Reference, declare, unknown_references
from core.text import N_
from crm.directory import account_names_by_id
from models import (
    Account,
    Contact,
    ContactTag,
    Identity,
    IdentityKind,
    Interaction,
    Push,
    PushStatus,
    SavedSegment,
    User,
    utcnow,
)
from scoring.engine import decay_factor, lead_score_at, load_model
from scoring.forms import TIERS


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; None is open."""

    min: float | None = None
    max: float | None = None

    def __bool__(self) -> bool:
        return self.min is not None or self.max is not None


@dataclass(frozen=True)
class InteractionCount:
    """At least `min` interactions of these kinds (any kind when empty) in the window."""

    kinds: tuple[str, ...] = ()
    min: int = 1
    within_days: int = 30


@dataclass(frozen=True)
class Segment:
    tags_all: tuple[int, ...] = ()
    tags_any: tuple[int, ...] = ()
    tags_none: tuple[int, ...] = ()
    roles: tuple[str, ...] = ()
    seniorities: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()  # the contact's stage
    account_stages: tuple[str, ...] = ()
    lead_score: Range = Range()
    account_score: Range = Range()
    tiers: tuple[int, ...] = ()
    mqa: bool | None = None
    regions: tuple[str, ...] = ()  # the account's region
    industries: tuple[str, ...] = ()  # the account's industry
    target_accounts: bool | None = None
    min_employees: int | None = None
    min_acv: float | None = None
    channel_ids: tuple[int, ...] = ()  # following one of these OAs / a customer in these corps
    active_within_days: int | None = None
    inactive_for_days: int | None = None
    interactions: InteractionCount | None = None

    def to_document(self) -> dict:
        """What is set, as JSON stores it: empty lists, open ranges and None left out."""
        return {
            k: _as_json(v) for k, v in asdict(self).items() if v not in ((), None, asdict(Range()))
        }

    @classmethod
    def from_document(cls, doc: dict) -> "Segment":
        values = {}
        for f in fields(cls):
            if f.name not in doc or doc[f.name] is None:
                continue
            value = doc[f.name]
            if f.name in ("lead_score", "account_score"):
                value = Range(**value)
            elif f.name == "interactions":
                value = InteractionCount(**{**value, "kinds": tuple(value.get("kinds") or ())})
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


def _as_json(value):
    if isinstance(value, tuple | list):
        return [_as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    return value


_ACCOUNT_FILTERS = (
    "account_stages",
    "account_score",
    "tiers",
    "mqa",
    "regions",
    "industries",
    "target_accounts",
    "min_employees",
    "min_acv",
)


def contacts_query(
    segment: Segment,
    workspace_id: int,
    half_life_days: float | None,
    *,
    now: datetime | None = None,
) -> Select:
    """One SELECT of the ids of the workspace's (unmerged) contacts in the segment.

    A lead-score bound becomes a bound on `score_mass` (the lead score is the mass times
    one factor for everyone), so it compares a stored column."""
    now = now or utcnow()
    query = select(Contact.id).where(
        Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None)
    )
    if any(getattr(segment, name) not in ((), None, Range()) for name in _ACCOUNT_FILTERS):
        query = query.join(Account, Account.id == Contact.account_id)
    conditions = []
    conditions += _tags(segment, workspace_id)
    if segment.roles:
        conditions.append(Contact.role.in_(segment.roles))
    if segment.seniorities:
        conditions.append(Contact.seniority.in_(segment.seniorities))
    if segment.stages:
        conditions.append(Contact.stage.in_(segment.stages))
    if segment.lead_score:
        factor = decay_factor(now, half_life_days)
        bounds = segment.lead_score
        if bounds.min is not None:
            conditions.append(Contact.score_mass >= bounds.min / factor)
        if bounds.max is not None:
            conditions.append(Contact.score_mass <= bounds.max / factor)
    conditions += _account(segment)
    if segment.channel_ids:
        conditions.append(_in_channels(segment.channel_ids, workspace_id))
    if segment.active_within_days is not None:
        conditions.append(Contact.last_seen_at >= now - timedelta(days=segment.active_within_days))
    if segment.inactive_for_days is not None:
        conditions.append(Contact.last_seen_at < now - timedelta(days=segment.inactive_for_days))
    if segment.interactions is not None:
        conditions.append(_interaction_count(segment.interactions, workspace_id, now))
    return query.where(*conditions)


def _tags(segment: Segment, workspace_id: int) -> list:
    conditions = []
    if segment.tags_all:
        holders = (
            select(ContactTag.contact_id)
            .where(ContactTag.workspace_id == workspace_id, ContactTag.tag_id.in_(segment.tags_all))
            .group_by(ContactTag.contact_id)
            .having(func.count(distinct(ContactTag.tag_id)) == len(set(segment.tags_all)))
        )
        conditions.append(Contact.id.in_(holders))
    if segment.tags_any:
        conditions.append(_has_tag(segment.tags_any, workspace_id))
    if segment.tags_none:
        conditions.append(~_has_tag(segment.tags_none, workspace_id))
    return conditions


def _has_tag(tag_ids, workspace_id: int):
    return exists().where(
        ContactTag.contact_id == Contact.id,
        ContactTag.workspace_id == workspace_id,
        ContactTag.tag_id.in_(tag_ids),
    )


def _account(segment: Segment) -> list:
    conditions = []
    if segment.account_stages:
        conditions.append(Account.stage.in_(segment.account_stages))
    if segment.account_score.min is not None:
        conditions.append(Account.score >= segment.account_score.min)
    if segment.account_score.max is not None:
        conditions.append(Account.score <= segment.account_score.max)
    if segment.tiers:
        conditions.append(Account.tier.in_(segment.tiers))
    if segment.mqa is not None:
        conditions.append(Account.mqa.is_(segment.mqa))
    if segment.regions:
        conditions.append(Account.region.in_(segment.regions))
    if segment.industries:
        conditions.append(Account.industry.in_(segment.industries))
    if segment.target_accounts is not None:
        conditions.append(Account.is_target.is_(segment.target_accounts))
    if segment.min_employees is not None:
        conditions.append(Account.employees >= segment.min_employees)
    if segment.min_acv is not None:
        conditions.append(Account.acv >= segment.min_acv)
    return conditions


def _in_channels(channel_ids, workspace_id: int):
    """Reachable there: following the OA (an openid identity that follows) or a customer
    of the corp (an external_userid identity)."""
    return exists().where(
        Identity.contact_id == Contact.id,
        Identity.workspace_id == workspace_id,
        Identity.channel_id.in_(channel_ids),
        (Identity.kind == IdentityKind.EXTERNAL_USERID) | Identity.following.is_(True),
    )


def _interaction_count(count: InteractionCount, workspace_id: int, now: datetime):
    since = now - timedelta(days=count.within_days)
    active = select(Interaction.contact_id).where(
        Interaction.workspace_id == workspace_id, Interaction.occurred_at >= since
    )
    if count.kinds:
        active = active.where(Interaction.kind.in_(count.kinds))
    active = active.group_by(Interaction.contact_id).having(func.count() >= count.min)
    return Contact.id.in_(active)


def count(session: Session, query: Select) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery()))


def sample(session: Session, query: Select, limit: int = 20) -> list[Contact]:
    """A few of the segment's contacts, most recently active first (the admin's preview)."""
    ids = query.order_by(Contact.last_seen_at.desc(), Contact.id.desc()).limit(limit)
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    return sorted(contacts.values(), key=lambda c: (c.last_seen_at, c.id), reverse=True)


# --- the admin's form ------------------------------------------------------------------

MAX_DAYS = 3650  # ten years: any activity window a marketer means
MAX_PICKED = 200  # values one list filter may hold
MAX_INTERACTIONS = 10_000
DEFAULT_WINDOW_DAYS = 30  # what a new form offers for an interaction count's window
NOT_CHOICES = N_("Not a list of choices.")
NAME_TAKEN = N_("Another segment has this name.")
UNKNOWN_TAG = N_("Not a tag of this workspace: was it deleted?")
UNKNOWN_STAGE = N_("Not one of the workspace's stages.")
REFERENCES = declare(
    "segment",
    Reference("tags_all", TAG, UNKNOWN_TAG),
    Reference("tags_any", TAG, UNKNOWN_TAG),
    Reference("tags_none", TAG, UNKNOWN_TAG),
    Reference("channel_ids", CHANNEL),
)
# The inputs that post several values (checkboxes, multiple selects), by their form names.
LIST_FILTERS = (
    "tags_all",
    "tags_any",
    "tags_none",
    "roles",
    "seniorities",
    "stages",
    "account_stages",
    "tiers",
    "regions",
    "industries",
    "channel_ids",
)
MULTIPLE_INPUTS = (*LIST_FILTERS, "interactions.kinds")
# Yes / no / either (empty) for the account's MQA and target flags.
EITHER = {"yes": True, "no": False}


@dataclass(frozen=True)
class SegmentChoices:
    """The values a workspace's segments may name, read by the caller (the schema never
    queries); its tags and channels are checked by `load_segment` (core.references).
    Contacts and accounts move through the same stages."""

    roles: frozenset[str] = frozenset()
    seniorities: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()


class Picked(schema_fields.Field):
    """What a multiple select or a group of checkboxes posts: nothing, one value or several;
    ids and tiers with `whole`, else short texts. Each kept once."""

    def __init__(self, *, whole: bool = False, **kwargs):
        super().__init__(load_default=list, **kwargs)
        self.whole = whole

    def _deserialize(self, value, attr, data, **kwargs):
        values = value if isinstance(value, list | tuple) else [value]
        picked = []
        for item in values:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise ValidationError(NOT_CHOICES)
            text = str(item).strip()
            if not text:
                continue
            if self.whole and not (text.isascii() and text.isdigit() and len(text) < 19):
                raise ValidationError(NOT_CHOICES)
            if len(text) > 50:
                raise ValidationError(N_("Each value at most 50 characters."))
            picked.append(int(text) if self.whole else text)
        picked = list(dict.fromkeys(picked))
        if len(picked) > MAX_PICKED:
            raise ValidationError(N_("At most 200 choices."))
        return sorted(picked) if self.whole else picked


class RangeSchema(form.FormSchema):
    """A score range; an empty end is open."""

    error_messages = {"type": N_("Not a range.")}

    min = form.number(N_("At least 0; empty for no minimum."), low=0, optional=True)
    max = form.number(N_("At least 0; empty for no maximum."), low=0, optional=True)

    @validates_schema
    def _ordered(self, data, **_kwargs):
        low, high = data.get("min"), data.get("max")
        if low is not None and high is not None and low > high:
            raise ValidationError(N_("At least the minimum."), "max")


class InteractionCountSchema(form.FormSchema):
    """At least `min` interactions (of the ticked kinds, else of any) in the last
    `within_days`; no minimum, no interaction filter."""

    error_messages = {"type": N_("Not an interaction count.")}

    kinds = Picked()
    min = form.count(
        N_("From 1 to 10000; empty for no interaction filter."),
        low=1,
        high=MAX_INTERACTIONS,
        optional=True,
    )
    within_days = form.count(N_("From 1 to 3650 days."), low=1, high=MAX_DAYS, optional=True)

    @validates_schema
    def _complete(self, data, **_kwargs):
        if data["min"] is None and data["kinds"]:
            raise ValidationError(N_("How many at least: required with the kinds."), "min")
        if data["min"] is not None and data["within_days"] is None:
            raise ValidationError(N_("Required with a count."), "within_days")


def _range() -> schema_fields.Nested:
    return schema_fields.Nested(RangeSchema, load_default=dict)


def _either() -> schema_fields.String:
    return form.choice(EITHER, N_("Yes, no or either."), load_default=None)


def _days() -> schema_fields.Integer:
    return form.count(
        N_("From 1 to 3650 days; empty for no limit."), low=1, high=MAX_DAYS, optional=True
    )


class SegmentSchema(form.FormSchema):
    """The admin's segment form -> a Segment, with a message per input for each mistake:
    unknown tags, roles, stages, kinds or channels, reversed ranges, windows that leave
    no one."""

    tags_all = Picked(whole=True)
    tags_any = Picked(whole=True)
    tags_none = Picked(whole=True)
    roles = Picked()
    seniorities = Picked()
    stages = Picked()
    account_stages = Picked()
    lead_score = _range()
    account_score = _range()
    tiers = Picked(whole=True)
    mqa = _either()
    regions = Picked()
    industries = Picked()
    target_accounts = _either()
    min_employees = form.count(
        N_("A whole number, at least 0; empty for any size."), low=0, optional=True
    )
    min_acv = form.number(N_("At least 0; empty for any ACV."), low=0, optional=True)
    channel_ids = Picked(whole=True)
    active_within_days = _days()
    inactive_for_days = _days()
    interactions = schema_fields.Nested(InteractionCountSchema, load_default=dict)

    def __init__(self, choices: SegmentChoices):
        super().__init__()
        self.choices = choices

    @validates_schema(skip_on_field_errors=False)
    def _known_and_satisfiable(self, data, **_kwargs):
        known = self.choices
        checks = {
            "roles": (known.roles, N_("Not a known role.")),
            "seniorities": (known.seniorities, N_("Not a known seniority.")),
            "stages": (known.stages, UNKNOWN_STAGE),
            "account_stages": (known.stages, UNKNOWN_STAGE),
            "tiers": (TIERS, N_("Tier 1, 2 or 3.")),
        }
        errors: dict = {
            name: [message]
            for name, (values, message) in checks.items()
            if any(value not in values for value in data.get(name, ()))
        }
        if any(kind not in known.kinds for kind in data.get("interactions", {}).get("kinds", ())):
            errors["interactions"] = {"kinds": [N_("Not an interaction Harpoon records.")]}
        wanted = {*data.get("tags_all", ()), *data.get("tags_any", ())}
        if wanted & set(data.get("tags_none", ())):
            errors["tags_none"] = [N_("A tag cannot be both wanted and excluded.")]
        active, inactive = data.get("active_within_days"), data.get("inactive_for_days")
        if active is not None and inactive is not None and active <= inactive:
            errors["inactive_for_days"] = [
                N_("Fewer days than “active within”, or no one can match.")
            ]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _segment(self, data, **_kwargs) -> Segment:
        counted = data.pop("interactions")
        values = {name: tuple(v) if isinstance(v, list) else v for name, v in data.items()}
        return Segment(
            **{
                **values,
                "lead_score": Range(**data["lead_score"]),
                "account_score": Range(**data["account_score"]),
                "mqa": EITHER.get(data["mqa"]),
                "target_accounts": EITHER.get(data["target_accounts"]),
                "interactions": InteractionCount(
                    tuple(counted["kinds"]), counted["min"], counted["within_days"]
                )
                if counted.get("min") is not None
                else None,
            }
        )


class LabelSchema(form.FormSchema):
    name = form.text(N_("1 to 100 characters."), high=100, required=True)
    description = schema_fields.String(
        validate=validate.Length(max=300, error=N_("At most 300 characters.")),
        load_default="",
    )


def load_segment(
    session: Session, workspace_id: int, data: Mapping, choices: SegmentChoices
) -> Segment:
    """The segment a form describes (nested data, see core.forms.unflatten), or a
    ValidationError keyed like its inputs, the tags and channels that are not the
    workspace's included (also beside other mistakes)."""
    try:
        segment = SegmentSchema(choices).load(data)
    except ValidationError as exc:
        errors, named = dict(exc.messages), exc.valid_data or {}
    else:
        errors, named = {}, segment.to_document()
    # An unknown tag is the mistake to fix first: it stands for what the schema said of it.
    errors.update(unknown_references(session, workspace_id, named, REFERENCES))
    if errors:
        raise ValidationError(errors)
    return segment


def load_named_segment(
    session: Session, workspace_id: int, data: Mapping, choices: SegmentChoices
) -> tuple[str, str, Segment]:
    """(name, description, segment) from the whole form; every mistake at once."""
    errors: dict = {}
    try:
        label = LabelSchema().load(data)
    except ValidationError as exc:
        errors.update(exc.messages)
    try:
        segment = load_segment(session, workspace_id, data, choices)
    except ValidationError as exc:
        errors.update(exc.messages)
    if errors:
        raise ValidationError(errors)
    return label["name"], label["description"], segment


def segment_form(segment: Segment) -> dict:
    """A segment as its form shows it, by the form's dotted input names."""
    counted = segment.interactions
    shown_either = {value: key for key, value in EITHER.items()}
    return {
        **{name: [str(value) for value in getattr(segment, name)] for name in LIST_FILTERS},
        "lead_score.min": form.shown(segment.lead_score.min),
        "lead_score.max": form.shown(segment.lead_score.max),
        "account_score.min": form.shown(segment.account_score.min),
        "account_score.max": form.shown(segment.account_score.max),
        "mqa": shown_either.get(segment.mqa, ""),
        "target_accounts": shown_either.get(segment.target_accounts, ""),
        "min_employees": form.shown(segment.min_employees),
        "min_acv": form.shown(segment.min_acv),
        "active_within_days": form.shown(segment.active_within_days),
        "inactive_for_days": form.shown(segment.inactive_for_days),
        "interactions.kinds": list(counted.kinds) if counted else [],
        "interactions.min": form.shown(counted.min) if counted else "",
        "interactions.within_days": form.shown(
            counted.within_days if counted else DEFAULT_WINDOW_DAYS
        ),
    }


# --- saved segments --------------------------------------------------------------------


def save_segment(
    session: Session,
    workspace_id: int,
    name: str,
    description: str,
    document: dict,
    user_id: int | None,
    *,
    saved: SavedSegment | None = None,
) -> SavedSegment:
    """A new saved segment, or `saved` changed (its last count forgotten when the filter
    changed). Names are unique in a workspace, and the tags and channels it names are the
    workspace's: a ValidationError keyed by input otherwise. Flushed, not committed."""
    segment = Segment.from_document(document)
    errors = unknown_references(session, workspace_id, segment.to_document(), REFERENCES)
    same_name = [SavedSegment.workspace_id == workspace_id, SavedSegment.name == name]
    if saved is not None:
        same_name.append(SavedSegment.id != saved.id)
    if session.scalar(select(SavedSegment.id).where(*same_name).limit(1)) is not None:
        errors["name"] = [NAME_TAKEN]
    if errors:
        raise ValidationError(errors)
    row = saved or SavedSegment(workspace_id=workspace_id, created_by=user_id)
    if row.document is None or Segment.from_document(row.document) != segment:
        row.last_count = row.counted_at = None
    row.name, row.description, row.document = name, description, segment.to_document()
    row.updated_at = utcnow()
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # saved under this name a moment ago
        raise ValidationError({"name": [NAME_TAKEN]}) from None
    return row


def segment_of(session: Session, saved_segment_id: int, workspace_id: int) -> Segment:
    """A saved segment's filter; LookupError when the workspace has no such segment."""
    document = session.scalar(
        select(SavedSegment.document).where(
            SavedSegment.id == saved_segment_id, SavedSegment.workspace_id == workspace_id
        )
    )
    if document is None:
        raise LookupError(f"no segment {saved_segment_id} in workspace {workspace_id}")
    return Segment.from_document(document)


def saved_contacts_query(
    session: Session, saved: SavedSegment, *, now: datetime | None = None
) -> Select:
    """The saved segment's contacts as of `now`, under the lead-score half-life of the
    workspace's scoring model."""
    half_life = load_model(session, saved.workspace_id).half_life_days
    return contacts_query(
        Segment.from_document(saved.document), saved.workspace_id, half_life, now=now
    )


# ---- the workspace's saved segments, and the pushes that read them ----------------------

# Pushes that still read their segment (to plan or to send): its deletion would make them
# pushes to every follower (pushes.segment_id is ON DELETE SET NULL).
PENDING_PUSHES = (
    PushStatus.DRAFT,
    PushStatus.AWAITING_APPROVAL,
    PushStatus.SCHEDULED,
    PushStatus.SENDING,
)


def saved_segments(session: Session, workspace_id: int) -> list[SavedSegment]:
    """The workspace's saved segments, by name."""
    return list(
        session.scalars(
            select(SavedSegment)
            .where(SavedSegment.workspace_id == workspace_id)
            .order_by(SavedSegment.name)
        )
    )


def segment_names(session: Session, workspace_id: int) -> set[str]:
    return set(
        session.scalars(select(SavedSegment.name).where(SavedSegment.workspace_id == workspace_id))
    )


def segments_with_pushes(session: Session, workspace_id: int) -> list:
    """(segment, its author's name, pushes to it, pushes to it not sent yet), by name."""
    used = (
        select(Push.segment_id, func.count().label("pushes"))
        .where(Push.workspace_id == workspace_id, Push.segment_id.is_not(None))
        .group_by(Push.segment_id)
        .subquery()
    )
    pending = (
        select(Push.segment_id, func.count().label("pushes"))
        .where(
            Push.workspace_id == workspace_id,
            Push.segment_id.is_not(None),
            Push.status.in_(PENDING_PUSHES),
        )
        .group_by(Push.segment_id)
        .subquery()
    )
    return session.execute(
        select(
            SavedSegment,
            User.name,
            func.coalesce(used.c.pushes, 0),
            func.coalesce(pending.c.pushes, 0),
        )
        .outerjoin(User, User.id == SavedSegment.created_by)
        .outerjoin(used, used.c.segment_id == SavedSegment.id)
        .outerjoin(pending, pending.c.segment_id == SavedSegment.id)
        .where(SavedSegment.workspace_id == workspace_id)
        .order_by(SavedSegment.name)
    ).all()


def pending_pushes(session: Session, workspace_id: int, segment_id: int) -> int:
    """How many pushes not sent yet target the segment."""
    return session.scalar(
        select(func.count()).where(
            Push.workspace_id == workspace_id,
            Push.segment_id == segment_id,
            Push.status.in_(PENDING_PUSHES),
        )
    )


def delete_saved_segment(session: Session, saved: SavedSegment) -> bool:
    """Delete the segment unless a push not sent yet targets it (then False). One
    statement: a push that takes the segment meanwhile keeps it."""
    deleted = session.execute(
        delete(SavedSegment)
        .where(
            SavedSegment.id == saved.id,
            SavedSegment.workspace_id == saved.workspace_id,
            ~exists().where(Push.segment_id == saved.id, Push.status.in_(PENDING_PUSHES)),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(deleted.rowcount)


@dataclass(frozen=True)
class SegmentPreview:
    """Who is in a segment now: how many of the workspace's contacts, and a few of them
    (contact, company, lead score today), most recently active first."""

    members: int
    total: int
    people: list[tuple[Contact, str | None, float]]
    counted_at: datetime


def preview_segment(
    session: Session, workspace_id: int, segment: Segment, half_life_days, size: int
) -> SegmentPreview:
    now = utcnow()
    query = contacts_query(segment, workspace_id, half_life_days, now=now)
    people = sample(session, query, size)
    companies = account_names_by_id(
        session, workspace_id, {c.account_id for c in people if c.account_id}
    )
    everyone = contacts_query(Segment(), workspace_id, half_life_days, now=now)
    return SegmentPreview(
        members=count(session, query),
        total=count(session, everyone),
        people=[
            (
                contact,
                companies.get(contact.account_id) or contact.company,
                lead_score_at(contact.score_mass, now, half_life_days),
            )
            for contact in people
        ],
        counted_at=now,
    )
