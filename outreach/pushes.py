"""Pushes: content to a segment of an OA's followers, through the right mechanism each.

`plan_push` writes one row per targeted contact with one INSERT ... SELECT: the
mechanism (mass send, customer-service message, template message) or the reason it
is skipped is a CASE over the follower's openid, this month's mass quota and their
customer-service window; then recipients are numbered into batches with one UPDATE
per mechanism. `dispatch_push` sends the batches in order, recording each before its
call, so a push resumed after a crash never sends twice: mass sends repeat their
`clientmsgid` (the platform answers 45065 with the first msg_id), and a single send
left "sending" is counted as interrupted, never sent again.
"""

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import Select, and_, case, false, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.references import (
    CHANNEL,
    EMAIL_TEMPLATE,
    MATERIAL,
    SEGMENT,
    Reference,
    check_references,
    declare,
    scoped_get,
)
from core.transient import is_transient, may_have_gone_out
from models import (
    MASS_MECHANISMS,
    BatchStatus,
    Channel,
    Contact,
    Identity,
    IdentityKind,
    Interaction,
    MassQuota,
    Mechanism,
    Push,
    PushBatch,
    PushRecipient,
    PushStatus,
    RecipientStatus,
    SavedSegment,
    TagRemote,
    utcnow,
)
from models.tag import RemoteStatus
from outreach import materials, segments
from outreach.segments import Segment
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

# The platform counts a follower's mass messages per calendar month in Beijing time.
PLATFORM_ZONE = ZoneInfo("Asia/Shanghai")
MASS_BATCH = 10_000  # message/mass/send takes 2-10,000 openids
SINGLE_BATCH = 500  # CS and template sends recorded per chunk
SERVICE = "service"
# A CS window must stay open this long after planning to be worth routing through.
WINDOW_MARGIN = timedelta(minutes=30)


class PushError(Exception):
    """The push cannot be planned as asked (e.g. a subscription account and a segment)."""


class Reason:
    """Why a targeted contact gets nothing (or failed): the delivery report's rows."""

    NO_OPENID = "no_openid"  # not a follower of this OA
    UNFOLLOWED = "unfollowed"
    MONTHLY_QUOTA = "monthly_quota"  # 4 mass messages this month, no window, no template
    WINDOW_EXPIRED = "window_expired"  # 45015 at send time
    WINDOW_QUOTA = "window_quota"  # 45047
    INTERRUPTED = "interrupted"  # a single send cut off by a crash: not repeated
    PLATFORM = "platform_error"


@dataclass(frozen=True)
class PushLimits:
    """The platform's numbers (WECHAT.md); the CS window ones are uncertain: settings."""

    mass_per_month: int = 4
    window_hours: float = 48
    window_messages: int = 5


REFERENCES = declare(
    "push",
    Reference("channel_id", CHANNEL),
    Reference("segment_id", SEGMENT),
    Reference("content.material_id", MATERIAL),
    Reference("email_template_id", EMAIL_TEMPLATE),
)


def check_push(session: Session, push: Push) -> None:
    """A ValidationError keyed "channel_id", "segment_id", "email_template_id" or
    "content.material_id" when the push names another workspace's OA, segment, email
    template or library item; a library item of the wrong kind is keyed
    "content.material_id" too. A library article fills the content's card fields (title,
    summary, link) for the followers who get it as a service message."""
    named = {
        "channel_id": push.channel_id,
        "segment_id": push.segment_id,
        "content": push.content or {},
        "email_template_id": (push.content or {}).get("email_template_id"),
    }
    check_references(session, push.workspace_id, named, REFERENCES)
    try:
        push.content = materials.check_push_material(session, push.workspace_id, push.content)
    except ValidationError as exc:
        raise ValidationError(
            {f"content.{key}": value for key, value in exc.messages.items()}
        ) from None


# --- content -----------------------------------------------------------------------------

CONTENT_TYPES = ("text", "news", "image", "template", "email")
MAX_TEXT = 600


class ContentSchema(Schema):
    """A push's content; field errors name the form's fields."""

    type = fields.String(required=True, validate=validate.OneOf(CONTENT_TYPES))
    text = fields.String(validate=validate.Length(max=MAX_TEXT))
    # news: the article's media_id in the OA library (mass sends), and its card (CS); or a
    # library article / image, whose media_id the send gets when it starts
    media_id = fields.String(validate=validate.Length(max=128))
    material_id = fields.Integer(strict=True)
    title = fields.String(validate=validate.Length(max=64))
    description = fields.String(validate=validate.Length(max=120))
    url = fields.Url(schemes={"http", "https"})
    picurl = fields.Url(schemes={"http", "https"})
    # template
    template_id = fields.String(validate=validate.Length(max=64))
    data = fields.Dict(keys=fields.String(), values=fields.String())
    # email: one of the workspace's email templates (outreach.email_pushes)
    email_template_id = fields.Integer(strict=True, validate=validate.Range(min=1))

    @validates_schema(skip_on_field_errors=False)
    def _required_per_type(self, content, **_):
        if content.get("type") not in CONTENT_TYPES:
            return
        needed = {
            "text": ("text",),
            "news": ("media_id", "title", "url"),
            "image": ("media_id",),
            "template": ("template_id", "data"),
            "email": ("email_template_id",),
        }[content["type"]]
        if content["type"] in ("news", "image") and content.get("material_id") is not None:
            needed = ()  # the library item gives them (check_push, prepare_push_content)
        missing = {name: ["Required."] for name in needed if not content.get(name)}
        if missing:
            raise ValidationError(missing)


def clean_content(raw: dict) -> dict:
    """The content with empty fields dropped; raises ValidationError with field errors."""
    content = ContentSchema().load({k: v for k, v in raw.items() if v not in ("", None, {})})
    return content


def mass_message(content: dict) -> dict:
    match content["type"]:
        case "text":
            return {"msgtype": "text", "text": {"content": content["text"]}}
        case "news":
            return {
                "msgtype": "mpnews",
                "mpnews": {"media_id": content["media_id"]},
                "send_ignore_reprint": 0,
            }
        case "image":
            return {"msgtype": "image", "image": {"media_id": content["media_id"]}}
    raise PushError(f"{content['type']} content has no mass-send form")


def service_message(content: dict, openid: str) -> dict:
    """message/custom/send: a news push goes as its link card."""
    match content["type"]:
        case "text":
            body = {"msgtype": "text", "text": {"content": content["text"]}}
        case "news":
            article = {k: content.get(k, "") for k in ("title", "description", "url", "picurl")}
            body = {"msgtype": "news", "news": {"articles": [article]}}
        case "image":
            body = {"msgtype": "image", "image": {"media_id": content["media_id"]}}
        case _:
            raise PushError(f"{content['type']} content has no customer-service form")
    return {"touser": openid, **body}


def template_message(template: dict, openid: str) -> dict:
    return {
        "touser": openid,
        "template_id": template["template_id"],
        "url": template.get("url", ""),
        "data": {key: {"value": value} for key, value in template.get("data", {}).items()},
    }


def platform_month(at: datetime) -> str:
    return at.astimezone(PLATFORM_ZONE).strftime("%Y-%m")


# --- audience ----------------------------------------------------------------------------


def segment_of(session: Session, push: Push) -> Segment | None:
    """The push's segment (None: every follower)."""
    if push.segment_id is None:
        return None
    try:
        return segments.segment_of(session, push.segment_id, push.workspace_id)
    except LookupError:
        raise PushError("the push's segment no longer exists") from None


def audience_query(session: Session, push: Push, now: datetime):
    """One SELECT of the targeted contact ids."""
    if push.segment_id is not None:
        saved = scoped_get(session, SavedSegment, push.segment_id, push.workspace_id)
        if saved is None:
            raise PushError("the push's segment no longer exists")
        return segments.saved_contacts_query(session, saved, now=now)
    if push.channel_id is None:  # an email push to everyone: whoever has an email address
        return (
            select(Identity.contact_id.label("id"))
            .join(Contact, Contact.id == Identity.contact_id)
            .where(
                Identity.workspace_id == push.workspace_id,
                Identity.kind == IdentityKind.EMAIL,
                Contact.merged_into_id.is_(None),
            )
            .distinct()
        )
    return (
        select(Identity.contact_id.label("id"))
        .join(Contact, Contact.id == Identity.contact_id)
        .where(
            Identity.workspace_id == push.workspace_id,
            Identity.channel_id == push.channel_id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.isnot(False),
            Contact.merged_into_id.is_(None),
        )
    )


def count_audience(session: Session, push: Push, now: datetime | None = None) -> int:
    query = audience_query(session, push, now or utcnow()).subquery()
    return session.scalar(select(func.count()).select_from(query))


def sendall_filter(session: Session, push: Push) -> dict | None:
    """The mass/sendall filter when the audience is every follower or exactly one tag
    mirrored on this OA: one call reaches them all."""
    segment = segment_of(session, push)
    if segment is None:
        return {"is_to_all": True}
    tags = segment.tags_all or segment.tags_any
    if len(tags) != 1 or segment.to_document().keys() - {"tags_all", "tags_any"}:
        return None
    remote_id = session.scalar(
        select(TagRemote.remote_id).where(
            TagRemote.workspace_id == push.workspace_id,
            TagRemote.tag_id == tags[0],
            TagRemote.channel_id == push.channel_id,
            TagRemote.status == RemoteStatus.OK,
        )
    )
    return {"is_to_all": False, "tag_id": int(remote_id)} if remote_id else None


# --- planning ----------------------------------------------------------------------------


def plan_push(session: Session, push: Push, limits: PushLimits, now: datetime | None = None):
    """Write the push's recipients and batches (one statement each) and its planned counts.
    Raises PushError when the channel cannot send it."""
    now = now or utcnow()
    channel = scoped_get(session, Channel, push.channel_id, push.workspace_id)
    if channel is None:
        raise PushError("the push's Official Account is not one of the workspace's")
    service = (channel.account_type or SERVICE) == SERVICE
    content = push.content
    mass_filter = sendall_filter(session, push)
    if content["type"] == "template" and not service:
        raise PushError("template messages need a verified service account")
    if content["type"] != "template" and not service and mass_filter is None:
        raise PushError(
            "a subscription account mass-sends only to every follower or to one synced tag"
        )
    mass_mechanism = Mechanism.MASS_TAG if mass_filter is not None else Mechanism.MASS_OPENID
    _insert_recipients(session, push, limits, service, mass_mechanism, now)
    if session.get_bind().dialect.name == "postgresql":
        # Up to a million rows just arrived: the numbering below needs their statistics.
        session.execute(text("ANALYZE push_recipients"))
    number = 0
    if mass_filter is not None:
        number = _batch(session, push, Mechanism.MASS_TAG, 10**9, number, mass_filter)
    number = _batch(session, push, Mechanism.MASS_OPENID, MASS_BATCH, number)
    number = _batch(session, push, Mechanism.CS, SINGLE_BATCH, number)
    _batch(session, push, Mechanism.TEMPLATE, SINGLE_BATCH, number)
    push.audience = {"segment_id": push.segment_id, "filter": mass_filter}
    push.targeted = session.scalar(select(func.count()).where(PushRecipient.push_id == push.id))
    push.report = delivery_report(session, push.id)


def _insert_recipients(
    session: Session,
    push: Push,
    limits: PushLimits,
    service: bool,
    mass_mechanism: str,
    now: datetime,
) -> None:
    audience = audience_query(session, push, now).subquery()
    openids = (
        select(Identity.contact_id, Identity.value.label("openid"), Identity.following)
        .where(
            Identity.workspace_id == push.workspace_id,
            Identity.channel_id == push.channel_id,
            Identity.kind == IdentityKind.OPENID,
        )
        .subquery()
    )
    quota = (
        select(MassQuota.openid, MassQuota.received)
        .where(MassQuota.channel_id == push.channel_id, MassQuota.month == platform_month(now))
        .subquery()
    )
    window_start = now - timedelta(hours=limits.window_hours)
    windows = (
        select(Interaction.contact_id, func.max(Interaction.occurred_at).label("opened_at"))
        .where(
            Interaction.workspace_id == push.workspace_id,
            Interaction.channel_id == push.channel_id,
            Interaction.kind == "wechat.message",
            Interaction.occurred_at > window_start + WINDOW_MARGIN,
        )
        .group_by(Interaction.contact_id)
        .subquery()
    )
    service_sent = (
        select(PushRecipient.contact_id, func.count().label("used"))
        .join(Push, Push.id == PushRecipient.push_id)
        .where(
            Push.channel_id == push.channel_id,
            PushRecipient.mechanism == Mechanism.CS,
            PushRecipient.sent_at > window_start,
        )
        .group_by(PushRecipient.contact_id)
        .subquery()
    )
    over_quota = func.coalesce(quota.c.received, 0) >= limits.mass_per_month if service else false()
    in_window = and_(
        windows.c.opened_at.isnot(None),
        func.coalesce(service_sent.c.used, 0) < limits.window_messages,
    )
    gone = openids.c.openid.is_(None) | openids.c.following.is_(False)
    if push.content["type"] == "template":
        routes = [(gone, None)]
        default = literal(Mechanism.TEMPLATE)
    else:
        routes = [
            (gone, None),
            (
                in_window if push.prefer_service_window else and_(in_window, over_quota),
                Mechanism.CS,
            ),
        ]
        if push.fallback_template:
            routes.append((over_quota, Mechanism.TEMPLATE))
        routes.append((over_quota, None))
        default = literal(mass_mechanism)
    mechanism = case(*routes, else_=default)
    reason = case(
        (openids.c.openid.is_(None), Reason.NO_OPENID),
        (openids.c.following.is_(False), Reason.UNFOLLOWED),
        (mechanism.is_(None), Reason.MONTHLY_QUOTA),
        else_=None,
    )
    status = case(
        (mechanism.is_(None), RecipientStatus.SKIPPED), else_=literal(RecipientStatus.PLANNED)
    )
    routed = (
        select(
            audience.c.id.label("contact_id"),
            openids.c.openid,
            mechanism.label("mechanism"),
            status.label("status"),
            reason.label("reason"),
        )
        .select_from(audience)
        .outerjoin(openids, openids.c.contact_id == audience.c.id)
        .outerjoin(quota, quota.c.openid == openids.c.openid)
        .outerjoin(windows, windows.c.contact_id == audience.c.id)
        .outerjoin(service_sent, service_sent.c.contact_id == audience.c.id)
        .subquery()
    )
    position = func.row_number().over(partition_by=routed.c.mechanism, order_by=routed.c.contact_id)
    rows = select(
        literal(push.id),
        routed.c.contact_id,
        routed.c.openid,
        routed.c.mechanism,
        routed.c.status,
        routed.c.reason,
        case((routed.c.mechanism.isnot(None), position - 1), else_=None),
    )
    session.execute(
        insert(PushRecipient).from_select(
            ["push_id", "contact_id", "openid", "mechanism", "status", "reason", "position"],
            rows,
        )
    )


def _batch(
    session: Session,
    push: Push,
    mechanism: str,
    per_batch: int,
    number: int,
    mass_filter: dict | None = None,
) -> int:
    """Cut the positions of one mechanism's recipients into batches of at most
    `per_batch`, spread evenly (a lone last openid would be refused: 40130). Returns the
    last batch number used."""
    planned = session.scalar(
        select(func.count()).where(
            PushRecipient.push_id == push.id, PushRecipient.mechanism == mechanism
        )
    )
    if not planned:
        return number
    batches = ceil(planned / per_batch)
    size = ceil(planned / batches)
    session.execute(
        insert(PushBatch),
        [
            {
                "push_id": push.id,
                "number": number + n + 1,
                "mechanism": mechanism,
                "clientmsgid": f"harpoon-push-{push.id}-{number + n + 1}",
                "tag_remote_id": (mass_filter or {}).get("tag_id"),
                "first_position": n * size,
                "size": min(size, planned - n * size),
                "status": BatchStatus.PLANNED,
            }
            for n in range(batches)
        ],
    )
    return number + batches


def in_batch(batch: PushBatch) -> list:
    """The WHERE clauses of a batch's recipients."""
    return [
        PushRecipient.push_id == batch.push_id,
        PushRecipient.mechanism == batch.mechanism,
        PushRecipient.position >= batch.first_position,
        PushRecipient.position < batch.first_position + batch.size,
    ]


# --- dispatch ----------------------------------------------------------------------------


@dataclass
class DispatchResult:
    batches: int = 0
    sent: int = 0
    failed: int = 0


def dispatch_push(
    session: Session,
    push: Push,
    client,
    *,
    now: Callable[[], datetime] = utcnow,
    pace: Callable[[float], None] = time.sleep,
) -> DispatchResult:
    """Send every batch not yet submitted, in order, committing around each call."""
    result = DispatchResult()
    limiter = MassCallLimiter(MASS_CALLS_PER_MINUTE, pace)
    reported_at = now()
    _settle_interrupted(session, push)
    batches = session.scalars(
        select(PushBatch)
        .where(
            PushBatch.push_id == push.id,
            PushBatch.status.in_((BatchStatus.PLANNED, BatchStatus.SUBMITTING)),
        )
        .order_by(PushBatch.number)
    ).all()
    for batch in batches:
        push.heartbeat_at = now()
        if batch.mechanism in MASS_MECHANISMS:
            limiter.wait()
            _send_mass(session, push, batch, client, now, pace)
        else:
            sent, failed = _send_singles(session, push, batch, client, now)
            result.sent += sent
            result.failed += failed
        result.batches += 1
        if now() - reported_at >= REPORT_EVERY:  # the page's progress, not per batch
            push.report, reported_at = delivery_report(session, push.id), now()
        session.commit()
    push.status = PushStatus.SENT
    push.finished_at = now()
    push.report = delivery_report(session, push.id)
    session.commit()
    return result


REPORT_EVERY = timedelta(seconds=5)
MASS_CALLS_PER_MINUTE = 60  # the platform's rate for mass-send calls (WECHAT.md)


class MassCallLimiter:
    """Stay under the platform's mass calls a minute rather than meet its 45009: wait
    until the oldest of the last minute's calls is a minute old."""

    def __init__(self, per_minute: int, pace: Callable[[float], None]):
        self.per_minute, self.pace = per_minute, pace
        self.calls: deque[float] = deque()

    MARGIN = 1.0  # the platform stamps a call when it arrives, a little after we send it

    def wait(self) -> None:
        if len(self.calls) >= self.per_minute:
            self.pace(max(0.0, self.calls.popleft() + 60.0 + self.MARGIN - time.monotonic()))
        self.calls.append(time.monotonic())


CLIENTMSGID_EXISTS = 45065


def _send_mass(session, push, batch, client, now, pace) -> None:
    batch.status = BatchStatus.SUBMITTING
    session.commit()  # recorded before the call: a resume repeats the same clientmsgid
    payload = {**mass_message(push.content), "clientmsgid": batch.clientmsgid}
    if batch.mechanism == Mechanism.MASS_TAG:
        mass_filter = push.audience.get("filter") or {"is_to_all": True}
        path, payload = "message/mass/sendall", {**payload, "filter": mass_filter}
    else:
        openids = list(
            session.scalars(
                select(PushRecipient.openid)
                .where(*in_batch(batch))
                .order_by(PushRecipient.position)
            )
        )
        if len(openids) == 1:  # mass/send refuses a single openid (40130); a repeat goes once
            openids *= 2
        path, payload = "message/mass/send", {**payload, "touser": openids}
    answer = _call_paced(client, path, payload, pace)
    if answer is None or isinstance(answer, WeChatApiError):
        batch.status = BatchStatus.FAILED
        batch.errcode = getattr(answer, "errcode", None)
        batch.errmsg = str(getattr(answer, "errmsg", ""))[:300]
        reason = f"{Reason.PLATFORM}:{batch.errcode}"
        _mark_batch(session, batch, RecipientStatus.FAILED, reason, None)
        log.warning("push %s batch %s refused: %s", push.id, batch.number, batch.errmsg)
        return
    batch.status = BatchStatus.SUBMITTED
    batch.msg_id = int(answer["msg_id"])
    batch.submitted_at = now()
    _mark_batch(session, batch, RecipientStatus.SENT, None, batch.submitted_at)
    _count_quota(session, push, batch, batch.submitted_at)


def _call_paced(client, path: str, payload: dict, pace, attempts: int = 6):
    """The answer, or the WeChatApiError that refused it. A transient refusal (the ~60 mass
    calls a minute answer 45009; busy, a token refused) sent nothing: wait and repeat (same
    clientmsgid, so never twice). A call that went unanswered (a POST timeout) may have been
    carried out: it is never repeated here, and the batch fails as before; a resume after a
    crash is what repeats the clientmsgid, and the platform's 45065 then names the msg_id."""
    for attempt in range(attempts):
        try:
            return client.post(path, data=payload)
        except WeChatApiError as exc:
            if exc.errcode == CLIENTMSGID_EXISTS and exc.answer.get("msg_id"):
                return exc.answer
            if not is_transient(exc) or may_have_gone_out(exc) or attempt == attempts - 1:
                return exc
            pace(min(5.0 * 2**attempt, 30.0))
    return None


def _mark_batch(session, batch, status: str, reason: str | None, sent_at) -> None:
    session.execute(
        update(PushRecipient)
        .where(*in_batch(batch))
        .values(status=status, reason=reason, sent_at=sent_at),
        execution_options={"synchronize_session": False},
    )


def _count_quota(session: Session, push: Push, batch: PushBatch, at: datetime) -> None:
    """This month's mass count +1 for each recipient of the batch (one statement)."""
    if (session.get(Channel, push.channel_id).account_type or SERVICE) != SERVICE:
        return
    month = platform_month(at)
    rows = select(literal(push.channel_id), literal(month), PushRecipient.openid, literal(1)).where(
        *in_batch(batch), PushRecipient.openid.isnot(None)
    )
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = upsert(MassQuota).from_select(["channel_id", "month", "openid", "received"], rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["channel_id", "month", "openid"],
            set_={"received": MassQuota.received + 1},
        )
    )


def _send_singles(session, push, batch, client, now) -> tuple[int, int]:
    """One call per recipient, in position order, each outcome committed as it comes: a
    crash leaves at most the one in flight uncertain (see _settle_interrupted)."""
    recipients = session.execute(
        select(PushRecipient.contact_id, PushRecipient.openid)
        .where(*in_batch(batch), PushRecipient.status == RecipientStatus.PLANNED)
        .order_by(PushRecipient.position)
    ).all()
    batch.status = BatchStatus.SUBMITTING
    _mark_where(session, batch, RecipientStatus.PLANNED, RecipientStatus.SENDING)
    session.commit()
    template = push.content if push.content["type"] == "template" else push.fallback_template
    sent = failed = 0
    for contact_id, openid in recipients:
        values = {"status": RecipientStatus.SENT, "reason": None, "sent_at": now()}
        try:
            if batch.mechanism == Mechanism.TEMPLATE:
                answer = client.post(
                    "message/template/send", data=template_message(template, openid)
                )
                values["msgid"] = answer.get("msgid")
            else:
                client.post("message/custom/send", data=service_message(push.content, openid))
        except WeChatApiError as exc:
            # Final even when transient: the client already waited out a busy platform and
            # refreshed a refused token, a timeout may have delivered it, and a push is a
            # moment (a late service message would arrive out of its context).
            reason = SEND_ERRORS.get(exc.errcode, f"{Reason.PLATFORM}:{exc.errcode}")
            values = {"status": RecipientStatus.FAILED, "reason": reason[:40], "sent_at": None}
        session.execute(
            update(PushRecipient)
            .where(PushRecipient.push_id == push.id, PushRecipient.contact_id == contact_id)
            .values(**values),
            execution_options={"synchronize_session": False},
        )
        session.commit()
        if values["status"] == RecipientStatus.SENT:
            sent += 1
        else:
            failed += 1
    batch.status = BatchStatus.FINISHED
    batch.submitted_at = batch.finished_at = now()
    return sent, failed


SEND_ERRORS = {45015: Reason.WINDOW_EXPIRED, 45047: Reason.WINDOW_QUOTA, 43004: Reason.UNFOLLOWED}


def _mark_where(session, batch, current: str, new: str, reason: str | None = None) -> None:
    session.execute(
        update(PushRecipient)
        .where(*in_batch(batch), PushRecipient.status == current)
        .values(status=new, reason=reason),
        execution_options={"synchronize_session": False},
    )


def _settle_interrupted(session: Session, push: Push) -> None:
    """After a crash in single sends: the first recipient still "sending" (by position)
    was in flight and may have received it — counted, never repeated; the rest were not
    reached yet and go back to planned."""
    interrupted = session.scalars(
        select(PushBatch).where(
            PushBatch.push_id == push.id,
            PushBatch.status == BatchStatus.SUBMITTING,
            PushBatch.mechanism.in_((Mechanism.CS, Mechanism.TEMPLATE)),
        )
    ).all()
    for batch in interrupted:
        in_flight = session.scalar(
            select(func.min(PushRecipient.position)).where(
                *in_batch(batch), PushRecipient.status == RecipientStatus.SENDING
            )
        )
        if in_flight is not None:
            session.execute(
                update(PushRecipient)
                .where(*in_batch(batch), PushRecipient.position == in_flight)
                .values(status=RecipientStatus.FAILED, reason=Reason.INTERRUPTED),
                execution_options={"synchronize_session": False},
            )
        _mark_where(session, batch, RecipientStatus.SENDING, RecipientStatus.PLANNED)
        batch.status = BatchStatus.PLANNED
    if interrupted:
        session.commit()


# --- results -----------------------------------------------------------------------------


def delivery_report(session: Session, push_id: int) -> dict:
    """Targeted, planned/sent/failed per mechanism, skipped and failed per reason, and
    what the platform reported delivered — from two grouped queries."""
    report = {"targeted": 0, "planned": {}, "sent": {}, "skipped": {}, "failed": {}}
    rows = session.execute(
        select(
            PushRecipient.mechanism,
            PushRecipient.status,
            PushRecipient.reason,
            func.count(),
        )
        .where(PushRecipient.push_id == push_id)
        .group_by(PushRecipient.mechanism, PushRecipient.status, PushRecipient.reason)
    ).all()
    delivered = 0
    for mechanism, status, reason, count in rows:
        report["targeted"] += count
        if status == RecipientStatus.SKIPPED:
            report["skipped"][reason] = report["skipped"].get(reason, 0) + count
            continue
        report["planned"][mechanism] = report["planned"].get(mechanism, 0) + count
        if status in (RecipientStatus.SENT, RecipientStatus.DELIVERED):
            report["sent"][mechanism] = report["sent"].get(mechanism, 0) + count
        if status == RecipientStatus.FAILED:
            report["failed"][reason] = report["failed"].get(reason, 0) + count
        if status == RecipientStatus.DELIVERED or (
            status == RecipientStatus.SENT and mechanism == Mechanism.CS
        ):
            delivered += count
    mass = session.execute(
        select(
            func.count(PushBatch.finished_at),
            func.coalesce(func.sum(PushBatch.sent_count), 0),
            func.coalesce(func.sum(PushBatch.error_count), 0),
            func.coalesce(func.sum(PushBatch.total_count - PushBatch.filter_count), 0),
        ).where(
            PushBatch.push_id == push_id,
            PushBatch.mechanism.in_(tuple(MASS_MECHANISMS)),
        )
    ).one()
    report["mass_jobs_finished"] = mass[0]
    report["mass_errors"] = int(mass[2])
    report["mass_filtered"] = int(mass[3])
    report["delivered"] = delivered + int(mass[1])
    return report


def record_mass_finished(
    session: Session, channel_id: int, msg_id: int, counts: dict, at: datetime
) -> int | None:
    """MASSSENDJOBFINISH: the batch's counts; returns its push id (None: not ours)."""
    batch = session.scalar(
        select(PushBatch)
        .join(Push, Push.id == PushBatch.push_id)
        .where(PushBatch.msg_id == msg_id, Push.channel_id == channel_id)
    )
    if batch is None:
        return None
    batch.status = BatchStatus.FINISHED
    batch.finished_at = at
    for name in ("total_count", "filter_count", "sent_count", "error_count"):
        setattr(batch, name, int(counts.get(name) or 0))
    session.flush()
    push = session.get(Push, batch.push_id)
    push.report = delivery_report(session, push.id)
    return push.id


def record_template_finished(
    session: Session, channel_id: int, msgid: int, status: str
) -> int | None:
    """TEMPLATESENDJOBFINISH: "success", or "failed:user block" / "failed: system failed"."""
    recipient = session.scalar(
        select(PushRecipient)
        .join(Push, Push.id == PushRecipient.push_id)
        .where(PushRecipient.msgid == msgid, Push.channel_id == channel_id)
    )
    if recipient is None:
        return None
    if status == "success":
        recipient.status = RecipientStatus.DELIVERED
    else:
        recipient.status = RecipientStatus.FAILED
        recipient.reason = status[:40]
    session.flush()
    push = session.get(Push, recipient.push_id)
    push.report = delivery_report(session, push.id)
    return push.id


# --- lifecycle ---------------------------------------------------------------------------

STALE_AFTER = timedelta(minutes=5)  # a sending push this quiet lost its worker


def submit_push(session: Session, push: Push, threshold: int, now: datetime | None = None) -> str:
    """Send now or at its time; a push to more than `threshold` followers waits for an
    admin's approval first. Returns the new status."""
    now = now or utcnow()
    push.targeted = count_audience(session, push, now)
    if push.targeted > threshold and push.approved_at is None:
        push.status = PushStatus.AWAITING_APPROVAL
    else:
        push.status = PushStatus.SCHEDULED
    return push.status


def approve_push(push: Push, user_id: int, now: datetime | None = None) -> None:
    if push.status != PushStatus.AWAITING_APPROVAL:
        raise PushError("only a push awaiting approval can be approved")
    push.approved_by, push.approved_at = user_id, now or utcnow()
    push.status = PushStatus.SCHEDULED


def cancel_push(push: Push) -> None:
    if push.status not in (PushStatus.DRAFT, PushStatus.AWAITING_APPROVAL, PushStatus.SCHEDULED):
        raise PushError("a push already sending cannot be cancelled")
    push.status = PushStatus.CANCELLED


def due_pushes(session: Session, now: datetime | None = None) -> list[int]:
    """Scheduled pushes whose time has come, and sending ones whose worker went quiet."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Push.id)
            .where(
                (
                    (Push.status == PushStatus.SCHEDULED)
                    & (Push.scheduled_at.is_(None) | (Push.scheduled_at <= now))
                )
                | ((Push.status == PushStatus.SENDING) & (Push.heartbeat_at < now - STALE_AFTER))
            )
            .order_by(Push.id)
        )
    )


def claim_push(session: Session, push_id: int, now: datetime) -> bool:
    """Take the push for this worker: a due scheduled one, or a sending one gone quiet.
    The heartbeat is the lock; dispatch renews it before every batch."""
    claimed = session.execute(
        update(Push)
        .where(
            Push.id == push_id,
            Push.heartbeat_at.is_(None) | (Push.heartbeat_at < now - STALE_AFTER),
            (
                (Push.status == PushStatus.SCHEDULED)
                & (Push.scheduled_at.is_(None) | (Push.scheduled_at <= now))
            )
            | (Push.status == PushStatus.SENDING),
        )
        .values(heartbeat_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    session.commit()
    return claimed == 1


def run_push(
    session: Session,
    push_id: int,
    client,
    limits: PushLimits,
    threshold: int,
    *,
    now: Callable[[], datetime] = utcnow,
    pace: Callable[[float], None] = time.sleep,
) -> str:
    """Plan (once) and dispatch a due push; resume a sending one. Returns its status."""
    if not claim_push(session, push_id, now()):
        return "not_due"
    push = session.get(Push, push_id)
    session.refresh(push)
    if push.status == PushStatus.SCHEDULED:
        try:
            plan_push(session, push, limits, now())
        except PushError as exc:
            session.rollback()
            push.status, push.error, push.finished_at = PushStatus.FAILED, str(exc)[:500], now()
            session.commit()
            return push.status
        if push.targeted > threshold and push.approved_at is None:
            session.rollback()  # the audience grew past the threshold since it was submitted
            push.status = PushStatus.AWAITING_APPROVAL
            session.commit()
            return push.status
        push.status, push.started_at = PushStatus.SENDING, now()
        session.commit()
    if not _library_media(session, push, client, now):
        return push.status
    dispatch_push(session, push, client, now=now, pace=pace)
    return push.status


def _library_media(session: Session, push: Push, client, now: Callable[[], datetime]) -> bool:
    """A push of a library item gets the media_id its send needs (uploaded now, after the
    planning's commit). False when it cannot: the push fails with the reason and its
    planned recipients fail with it; a transient refusal is raised for the job to retry."""
    if push.content.get("material_id") is None:
        return True
    channel = scoped_get(session, Channel, push.channel_id, push.workspace_id)
    try:
        content = materials.prepare_push_content(
            session, push.workspace_id, push.content, channel, client
        )
    except materials.MaterialError as exc:
        if exc.transient:
            raise
        session.execute(
            update(PushRecipient)
            .where(
                PushRecipient.push_id == push.id,
                PushRecipient.status == RecipientStatus.PLANNED,
            )
            .values(status=RecipientStatus.FAILED, reason=exc.reason[:40]),
            execution_options={"synchronize_session": False},
        )
        push.status, push.error, push.finished_at = PushStatus.FAILED, exc.reason, now()
        push.report = delivery_report(session, push.id)
        session.commit()
        log.warning("push %s: its library item could not be had: %s", push.id, exc.reason)
        return False
    if content != push.content:
        push.content = content
        session.commit()
    return True


def preview_push(session: Session, push: Push, client, contact_ids: list[int]) -> dict[str, str]:
    """The push as the test followers will see it: mass/preview (not counted in their
    monthly four), or the template message itself. openid -> "ok" or the refusal."""
    openids = session.scalars(
        select(Identity.value).where(
            Identity.workspace_id == push.workspace_id,
            Identity.contact_id.in_(contact_ids or [-1]),
            Identity.channel_id == push.channel_id,
            Identity.kind == IdentityKind.OPENID,
        )
    ).all()
    content = materials.uploaded_push_content(
        session, push.workspace_id, push.content, push.channel_id
    )
    if content is None:
        raise PushError(
            "the library item is not on this Official Account yet: upload it from its page"
        )
    results = {}
    for openid in openids:
        try:
            if content["type"] == "template":
                client.post("message/template/send", data=template_message(content, openid))
            else:
                client.post(
                    "message/mass/preview", data={**mass_message(content), "touser": openid}
                )
        except WeChatApiError as exc:
            results[openid] = f"{exc.errcode} {exc.errmsg}"
            continue
        results[openid] = "ok"
    return results


# --- the admin's lists ------------------------------------------------------------------


def pushes_query(workspace_id: int) -> Select:
    """(push, segment name or None, channel name), the newest first."""
    return (
        select(Push, SavedSegment.name, Channel.name)
        .outerjoin(SavedSegment, SavedSegment.id == Push.segment_id)
        .outerjoin(Channel, Channel.id == Push.channel_id)  # an email push has no OA
        .where(Push.workspace_id == workspace_id)
        .order_by(Push.created_at.desc(), Push.id.desc())
    )


def batches_of(session: Session, push: Push) -> list[PushBatch]:
    return list(
        session.scalars(
            select(PushBatch).where(PushBatch.push_id == push.id).order_by(PushBatch.number)
        )
    )
