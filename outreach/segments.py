"""Segments: a saved filter over a workspace's contacts, compiled to one SQL query.

A segment is a `Segment` (plain data, stored as a document); `contacts_query` turns
it into a single SELECT of contact ids — tags, roles, stages, scores, tiers, MQA,
regions, channels, activity windows, interaction counts and account attributes all
become WHERE clauses, EXISTS / IN subqueries and one join to accounts, never Python
filtering. Counting, sampling and materializing a segment are that query wrapped.
"""

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import Select, distinct, exists, func, select
from sqlalchemy.orm import Session

from models import Account, Contact, ContactTag, Identity, IdentityKind, Interaction, utcnow
from scoring.engine import decay_factor


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
        return {k: v for k, v in asdict(self).items() if v not in ((), None, {})}

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
    conditions += _tags(segment)
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
        conditions.append(_in_channels(segment.channel_ids))
    if segment.active_within_days is not None:
        conditions.append(Contact.last_seen_at >= now - timedelta(days=segment.active_within_days))
    if segment.inactive_for_days is not None:
        conditions.append(Contact.last_seen_at < now - timedelta(days=segment.inactive_for_days))
    if segment.interactions is not None:
        conditions.append(_interaction_count(segment.interactions, now))
    return query.where(*conditions)


def _tags(segment: Segment) -> list:
    conditions = []
    if segment.tags_all:
        holders = (
            select(ContactTag.contact_id)
            .where(ContactTag.tag_id.in_(segment.tags_all))
            .group_by(ContactTag.contact_id)
            .having(func.count(distinct(ContactTag.tag_id)) == len(set(segment.tags_all)))
        )
        conditions.append(Contact.id.in_(holders))
    if segment.tags_any:
        conditions.append(_has_tag(segment.tags_any))
    if segment.tags_none:
        conditions.append(~_has_tag(segment.tags_none))
    return conditions


def _has_tag(tag_ids):
    return exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag_id.in_(tag_ids))


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


def _in_channels(channel_ids):
    """Reachable there: following the OA (an openid identity that follows) or a customer
    of the corp (an external_userid identity)."""
    return exists().where(
        Identity.contact_id == Contact.id,
        Identity.channel_id.in_(channel_ids),
        (Identity.kind == IdentityKind.EXTERNAL_USERID) | Identity.following.is_(True),
    )


def _interaction_count(count: InteractionCount, now: datetime):
    since = now - timedelta(days=count.within_days)
    active = select(Interaction.contact_id).where(Interaction.occurred_at >= since)
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
