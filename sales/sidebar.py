"""The chat sidebar's data: who the person in a WeCom chat is, their account, what to send
them next, and who sits in a customer group.

Each section is one set-based query (the bench, bench/sidebar.py, holds it to a p95 under
150 ms for a person whose account has 50 people and 5,000 interactions). The views in
app/wecom_panel.py only put these together and render them.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from crm.timeline import record_account_event
from crm.touchpoints import person_key
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    Contact,
    Content,
    Enrolment,
    Identity,
    IdentityKind,
    Interaction,
    Journey,
    JourneyVersion,
    Opportunity,
    OpportunityStatus,
    PageView,
    PipelineStage,
    Staff,
    TagGroup,
    User,
    utcnow,
)
from models.journey import OPEN_STATUSES
from sales.tasks import CHAT_SEND, person_identity, record_sales_touch
from scoring.model import Model
from wechat.clients import WeChatApiError

TOUCHES_SHOWN = 8
READS_SHOWN = 5
COLLEAGUES_SHOWN = 6
OPPORTUNITIES_SHOWN = 3
RECOMMENDED = 5
# groupchat/get answers, cached in Redis (every process shares them); WeCom's refusals a
# shorter while, so made-up chat ids do not each cost a call.
GROUP_CACHE_SECONDS = 300
GROUP_ERROR_SECONDS = 60
# Content kinds that fit the first half of the funnel (learning), and the second (deciding).
EARLY_KINDS = frozenset({"article", "video", "live", "event"})
LATE_KINDS = frozenset({"download", "page"})


def person_of(
    session: Session, workspace_id: int, channel_id: int, external_userid: str
) -> Contact | None:
    """The live contact a customer of the corp is (the one a merge kept)."""
    contact = session.scalar(
        select(Contact)
        .join(Identity, Identity.contact_id == Contact.id)
        .where(
            Identity.workspace_id == workspace_id,
            Identity.kind == IdentityKind.EXTERNAL_USERID,
            Identity.channel_id == channel_id,
            Identity.value == external_userid,
            Contact.workspace_id == workspace_id,
        )
    )
    if contact is not None and contact.merged_into_id is not None:
        contact = session.get(Contact, contact.merged_into_id)
    return contact


# ---- the person ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JourneyStep:
    journey: str
    node_id: str
    node_type: str
    status: str
    entered_at: datetime


@dataclass(frozen=True)
class Read:
    content_id: int
    title: str
    seconds: int
    views: int
    last_at: datetime


def journeys_in_progress(session: Session, workspace_id: int, contact: Contact) -> list:
    """The person's open enrolments (and their account's, in account journeys): the journey
    and the node they are at, with that node's type from its version's document."""
    whose = Enrolment.contact_id == contact.id
    if contact.account_id is not None:
        whose = whose | and_(
            Enrolment.account_id == contact.account_id, Enrolment.contact_id.is_(None)
        )
    rows = session.execute(
        select(Enrolment, Journey.name, JourneyVersion.document)
        .join(Journey, Journey.id == Enrolment.journey_id)
        .join(
            JourneyVersion,
            and_(
                JourneyVersion.journey_id == Enrolment.journey_id,
                JourneyVersion.version == Enrolment.version,
            ),
        )
        .where(
            whose,
            Enrolment.workspace_id == workspace_id,
            Journey.workspace_id == workspace_id,
            Enrolment.status.in_(OPEN_STATUSES),
        )
        .order_by(Enrolment.entered_at.desc())
    ).all()
    steps = []
    for enrolment, name, document in rows:
        node = next(
            (n for n in (document or {}).get("nodes", ()) if n.get("id") == enrolment.node_id),
            {},
        )
        steps.append(
            JourneyStep(
                name,
                enrolment.node_id,
                str(node.get("type", "")),
                enrolment.status,
                enrolment.entered_at,
            )
        )
    return steps


def last_touches(session: Session, workspace_id: int, contact_id: int, limit: int) -> list:
    """The person's latest interactions, newest first."""
    return list(
        session.scalars(
            select(Interaction)
            .where(Interaction.contact_id == contact_id, Interaction.workspace_id == workspace_id)
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(limit)
        )
    )


def reads(session: Session, workspace_id: int, contact_id: int, limit: int) -> list[Read]:
    """What the person read, per content item: how long in all, how often, the latest."""
    last = func.max(PageView.started_at)
    rows = session.execute(
        select(
            Content.id,
            Content.title,
            func.coalesce(func.sum(PageView.active_seconds), 0),
            func.count(),
            last,
        )
        .join(Content, Content.id == PageView.content_id)
        .where(
            PageView.contact_id == contact_id,
            PageView.workspace_id == workspace_id,
            Content.workspace_id == workspace_id,
        )
        .group_by(Content.id, Content.title)
        .order_by(last.desc())
        .limit(limit)
    ).all()
    return [Read(*row) for row in rows]


def person_tag_names(tags: list) -> tuple[list[str], str | None]:
    """The interest tags' names and the role, from held_tags rows (tag, source)."""
    interests = [tag.name for tag, _source in tags if tag.group == TagGroup.INTEREST]
    role = next((tag.name for tag, _source in tags if tag.group == TagGroup.ROLE), None)
    return interests, role


# ---- the account --------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """An account's score as people read it: 0-100 on the model's scale (stable: it moves
    with the account's own points, never with the other accounts'), the raw points its
    explanation."""

    points: float
    scaled: float


def standing(account: Account) -> Standing:
    return Standing(account.score or 0.0, account.scaled_score or 0.0)


@dataclass(frozen=True)
class ColleagueTouch:
    contact_id: int
    name: str | None
    role: str | None
    kind: str
    title: str | None
    occurred_at: datetime


def colleagues_activity(
    session: Session, account: Account, contact_id: int, limit: int
) -> list[ColleagueTouch]:
    """The account's other people's latest interactions, newest first."""
    rows = session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.role,
            Interaction.kind,
            Interaction.properties,
            Interaction.occurred_at,
        )
        .join(Contact, Contact.id == Interaction.contact_id)
        .where(
            Interaction.workspace_id == account.workspace_id,
            Interaction.account_id == account.id,
            Interaction.contact_id != contact_id,
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
    ).all()
    return [
        ColleagueTouch(cid, name, role, kind, (props or {}).get("title"), at)
        for cid, name, role, kind, props, at in rows
    ]


def owner_of(session: Session, account: Account) -> User | None:
    if account.owner_id is None:
        return None
    user = session.get(User, account.owner_id)
    return user if user is not None and user.workspace_id == account.workspace_id else None


def open_opportunities(
    session: Session, account: Account, limit: int, *, seller_id: int | None = None
) -> list[tuple]:
    """(name, stage name, amount) of the account's open opportunities, the largest first.
    With `seller_id` (a salesperson looking), all of them only on an account they own,
    else those they own: as the admin's opportunity pages show them."""
    mine = (
        Opportunity.owner_id == seller_id
        if seller_id is not None and account.owner_id != seller_id
        else true()
    )
    return [
        tuple(row)
        for row in session.execute(
            select(
                Opportunity.name,
                func.coalesce(PipelineStage.name, Opportunity.stage),
                Opportunity.amount,
            )
            .outerjoin(
                PipelineStage,
                and_(
                    PipelineStage.workspace_id == account.workspace_id,
                    PipelineStage.key == Opportunity.stage,
                ),
            )
            .where(
                Opportunity.workspace_id == account.workspace_id,
                Opportunity.account_id == account.id,
                Opportunity.status == OpportunityStatus.OPEN,
                mine,
            )
            .order_by(Opportunity.amount.desc(), Opportunity.id)
            .limit(limit)
        )
    ]


# ---- what to send them --------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    content: Content
    score: int
    reasons: list[str] = field(default_factory=list)  # matched topics, "role", "stage"


def recommended_content(
    session: Session,
    workspace_id: int,
    contact: Contact,
    model: Model,
    interests: list[str],
    limit: int = RECOMMENDED,
) -> list[Recommendation]:
    """The workspace's live content the person has not read, best match first: shared
    topics with their interest tags weigh most, then their role and stage among the topics,
    then a kind that fits their point in the funnel; the newest breaks ties."""
    read = select(PageView.content_id).where(
        PageView.workspace_id == workspace_id,
        PageView.contact_id == contact.id,
        PageView.content_id.is_not(None),
    )
    candidates = session.scalars(
        select(Content)
        .where(
            Content.workspace_id == workspace_id,
            Content.archived_at.is_(None),
            Content.id.not_in(read),
        )
        .order_by(Content.created_at.desc(), Content.id.desc())
    ).all()
    wanted = {topic.casefold() for topic in interests}
    keys = [stage.key for stage in model.stages]
    stage = contact.stage if contact.stage in keys else None
    late = stage is not None and keys.index(stage) >= len(keys) // 2
    ranked = []
    for content in candidates:
        topics = {str(topic).casefold() for topic in (content.topics or [])}
        reasons = sorted(topics & wanted)
        score = 3 * len(reasons)
        if contact.role and contact.role.casefold() in topics:
            score += 2
            reasons.append("role")
        if stage and stage.casefold() in topics:
            score += 2
            reasons.append("stage")
        if stage and content.kind in (LATE_KINDS if late else EARLY_KINDS):
            score += 1
        ranked.append(Recommendation(content, score, reasons))
    ranked.sort(key=lambda item: -item.score)  # stable: the newest first among equals
    return ranked[:limit]


def live_content(session: Session, workspace_id: int, content_id: int) -> Content | None:
    content = session.get(Content, content_id)
    if content is None or content.workspace_id != workspace_id or content.archived_at:
        return None
    return content


def record_chat_send(
    session: Session,
    contact: Contact,
    content: Content,
    *,
    user_id: int,
    lanes: int,
    nonce: str,
    now: datetime | None = None,
) -> str | None:
    """A salesperson sent `content` into the chat: the account's timeline says so, and it is
    the person's `sales.chat_send` touchpoint. Returns the touchpoint's lane key (for the
    drain request), None when the person has no identity or the send was recorded already
    (`nonce` names one tap: a retried tap adds no second event and no second touch)."""
    now = now or utcnow()
    if contact.account_id is not None and not _chat_send_recorded(session, contact, user_id, nonce):
        record_account_event(
            session,
            workspace_id=contact.workspace_id,
            account_id=contact.account_id,
            contact_id=contact.id,
            kind=AccountEventKind.CHAT_SEND,
            user_id=user_id,
            text=content.title,
            data={"content_id": content.id, "nonce": nonce},
            now=now,
        )
    stored = record_sales_touch(
        session,
        contact.workspace_id,
        contact.id,
        CHAT_SEND,
        dedupe_key=f"chat-send:{user_id}:{contact.id}:{nonce}",
        properties={
            "content_id": content.id,
            "title": content.title,
            "topics": list(content.topics or []),
            "user_id": user_id,
        },
        lanes=lanes,
        now=now,
    )
    return person_key_of(session, contact) if stored else None


def _chat_send_recorded(session: Session, contact: Contact, user_id: int, nonce: str) -> bool:
    return (
        session.scalar(
            select(AccountEvent.id)
            .where(
                AccountEvent.workspace_id == contact.workspace_id,
                AccountEvent.account_id == contact.account_id,
                AccountEvent.contact_id == contact.id,
                AccountEvent.kind == AccountEventKind.CHAT_SEND,
                AccountEvent.user_id == user_id,
                AccountEvent.data["nonce"].as_string() == nonce,
            )
            .limit(1)
        )
        is not None
    )


def person_key_of(session: Session, contact: Contact) -> str | None:
    """The key of the person's inbox lane (their strongest identity)."""
    return person_key(person_identity(session, contact.workspace_id, contact.id) or {})


# ---- a customer group ---------------------------------------------------------------------


@dataclass(frozen=True)
class GroupMember:
    external_userid: str
    contact: Contact | None
    joined_at: datetime | None


@dataclass
class GroupAccount:
    account: Account
    members: list[GroupMember]


@dataclass
class GroupView:
    accounts: list[GroupAccount]
    without_account: list[GroupMember]  # known people of no account
    unknown: list[GroupMember]  # customers Harpoon does not know yet
    staff: list[str]  # the corp's members in the group, by name


class GroupUnavailable(Exception):
    """WeCom did not give the group's members: `errcode` is its error code (None for the
    network)."""

    def __init__(self, errcode: int | None):
        super().__init__(errcode)
        self.errcode = errcode


def group_chat(redis, key_prefix: str, client, channel_id: int, chat_id: str) -> dict:
    """The group's `group_chat` from `groupchat/get` (name, owner, member_list) through
    the corp's contact `client`, cached in `redis`; GroupUnavailable when WeCom refuses
    (a refusal is cached too, a shorter while; a network failure is not)."""
    key = f"{key_prefix}:wecom-group:{channel_id}:{chat_id}"
    cached = redis.get(key)
    if cached is not None:
        entry = json.loads(cached)
        if "errcode" in entry:
            raise GroupUnavailable(entry["errcode"])
        return entry["group"]
    try:
        answer = client.post(
            "externalcontact/groupchat/get", data={"chat_id": chat_id, "need_name": 1}
        )
    except WeChatApiError as exc:
        if exc.errcode is not None:
            redis.set(key, json.dumps({"errcode": exc.errcode}), ex=GROUP_ERROR_SECONDS)
        raise GroupUnavailable(exc.errcode) from exc
    group = answer.get("group_chat") or {}
    redis.set(key, json.dumps({"group": group}, ensure_ascii=False), ex=GROUP_CACHE_SECONDS)
    return group


def in_group(session: Session, workspace_id: int, channel_id: int, user_id: int, group: dict):
    """Whether one of the user's staff identities on the corp owns the group or is among
    its staff members (type 1)."""
    mine = set(
        session.scalars(
            select(Staff.userid).where(
                Staff.workspace_id == workspace_id,
                Staff.channel_id == channel_id,
                Staff.user_id == user_id,
            )
        )
    )
    if not mine:
        return False
    staff = {
        member.get("userid")
        for member in group.get("member_list") or []
        if isinstance(member, dict) and member.get("type") == 1
    }
    return group.get("owner") in mine or bool(staff & mine)


def group_view(
    session: Session, workspace_id: int, channel_id: int, members: list[dict]
) -> GroupView:
    """Who is in a customer group, from `groupchat/get`'s member list: its customers by
    account (the highest-scored account first, its people by lead score), then the known
    people of no account, then the customers not known yet, and the staff."""
    external = [m for m in members if m.get("type") == 2 and m.get("userid")]
    userids = [m["userid"] for m in external]
    contacts: dict[str, Contact] = {}
    if userids:
        rows = session.execute(
            select(Identity.value, Contact)
            .join(Contact, Contact.id == Identity.contact_id)
            .where(
                Identity.workspace_id == workspace_id,
                Identity.kind == IdentityKind.EXTERNAL_USERID,
                Identity.channel_id == channel_id,
                Identity.value.in_(userids),
                Contact.workspace_id == workspace_id,
            )
        ).all()
        contacts = {value: contact for value, contact in rows}
    account_ids = {c.account_id for c in contacts.values() if c.account_id is not None}
    accounts = (
        {
            account.id: account
            for account in session.scalars(
                select(Account).where(
                    Account.workspace_id == workspace_id, Account.id.in_(account_ids)
                )
            )
        }
        if account_ids
        else {}
    )
    staff_ids = [m["userid"] for m in members if m.get("type") == 1 and m.get("userid")]
    names = (
        dict(
            session.execute(
                select(Staff.userid, Staff.name).where(
                    Staff.workspace_id == workspace_id,
                    Staff.channel_id == channel_id,
                    Staff.userid.in_(staff_ids),
                )
            ).all()
        )
        if staff_ids
        else {}
    )
    grouped: dict[int, GroupAccount] = {}
    without, unknown = [], []
    for member in external:
        contact = contacts.get(member["userid"])
        joined = member.get("join_time")
        row = GroupMember(
            member["userid"],
            contact,
            datetime.fromtimestamp(joined, UTC) if isinstance(joined, int) else None,
        )
        if contact is None:
            unknown.append(row)
        elif contact.account_id in accounts:
            account = accounts[contact.account_id]
            grouped.setdefault(account.id, GroupAccount(account, [])).members.append(row)
        else:
            without.append(row)
    for group in grouped.values():
        group.members.sort(key=lambda m: -(m.contact.lead_score or 0))
    return GroupView(
        accounts=sorted(grouped.values(), key=lambda g: (-(g.account.score or 0), g.account.name)),
        without_account=without,
        unknown=unknown,
        staff=[names.get(userid) or userid for userid in staff_ids],
    )
