"""Group sends: a salesperson's message to their customers, or to the customer groups they
own (externalcontact/add_msg_template, chat_type "single" or "group").

WeCom only queues such a message: the staff member confirms it in the WeCom
client, and each customer receives a limited number a month. So a group send
goes queued -> sent (WeCom holds it, waiting for the confirmation) ->
confirmed (the results show it went out), or failed when WeCom refuses it.
Its msgid is the idempotency key: a group send that has one is never handed
to WeCom again.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.references import (
    CHANNEL,
    CUSTOMER_GROUP,
    MATERIAL,
    NOT_WORKSPACE_GROUPS,
    STAFF,
    Reference,
    check_references,
    declare,
    scoped_get,
)
from core.text import N_, Formatted, Length
from core.transient import is_transient, may_have_gone_out
from crm.channels import wecom_channel
from models import (
    Channel,
    CustomerGroup,
    FollowRelation,
    GroupSend,
    Material,
    MaterialKind,
    Staff,
    utcnow,
)
from wechat.clients import WeChatApiError, chunks

log = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_RECIPIENTS = 10_000  # WeCom's limit of external_userid per add_msg_template
MAX_GROUPS = 2000  # WeCom's limit of chat_id_list per add_msg_template
SINGLE, GROUP = "single", "group"  # add_msg_template's chat_type
RESULTS_PAGE_SIZE = 1000  # get_groupmsg_send_result's largest page
# Results keep changing until the staff member confirms; a week covers a forgotten task.
REFRESH_WINDOW = timedelta(days=7)
# A send still queued this long after it was made lost its job (Redis down, a worker died).
QUEUED_GRACE = timedelta(minutes=10)
LOOKUP_CHUNK = 500
# Per-customer send statuses in get_groupmsg_send_result.
NOT_SENT, SENT, NOT_A_FRIEND, MONTHLY_LIMIT = 0, 1, 2, 3
MAX_ATTACHMENTS = 9  # add_msg_template
INVALID_MEDIA_ID = 40007  # WeCom forgot a temporary media_id (3 days) or never had it
# Library items a group send may carry (outreach.materials.attachments_for builds them).
ATTACHABLE = (
    MaterialKind.IMAGE,
    MaterialKind.FILE,
    MaterialKind.LINK,
    MaterialKind.ARTICLE,
    MaterialKind.MINIPROGRAM,
)
REFERENCES = declare(
    "group_send",
    Reference("channel_id", CHANNEL),
    Reference("staff_userid", STAFF),
    Reference("material_ids", MATERIAL),
    Reference("chat_ids", CUSTOMER_GROUP, NOT_WORKSPACE_GROUPS),
)


class ExpiredMedia(Exception):
    """WeCom answered 40007 to a send's attachments: upload them again and retry once."""


class GroupSendStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"  # WeCom has it; the staff member has not confirmed yet
    CONFIRMED = "confirmed"
    FAILED = "failed"


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Required.")


def _text() -> fields.String:
    return fields.String(
        required=True,
        validate=[
            validate.Length(1, MAX_TEXT, error=f"1 to {MAX_TEXT} characters."),
            _not_blank,
        ],
    )


class GroupSendSchema(Schema):
    staff_userid = fields.String(required=True, validate=validate.Length(1, 64))
    text = _text()
    external_userids = fields.List(
        fields.String(validate=validate.Length(1, 128)),
        required=True,
        validate=validate.Length(
            1, MAX_RECIPIENTS, error=f"At least one recipient, at most {MAX_RECIPIENTS:,}."
        ),
    )
    material_ids = fields.List(
        fields.Integer(strict=True),
        load_default=list,
        validate=validate.Length(max=MAX_ATTACHMENTS, error=N_("At most 9 attachments.")),
    )


class GroupChatSendSchema(Schema):
    staff_userid = fields.String(required=True, validate=validate.Length(1, 64))
    text = _text()
    chat_ids = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        required=True,
        validate=Length(
            1,
            MAX_GROUPS,
            error=Formatted(N_("At least one group, at most %(max)s."), max=MAX_GROUPS),
        ),
    )
    material_ids = fields.List(
        fields.Integer(strict=True),
        load_default=list,
        validate=validate.Length(max=MAX_ATTACHMENTS, error=N_("At most 9 attachments.")),
    )


@dataclass
class NewGroupSend:
    group_send: GroupSend
    # Asked for, but not the staff member's customers: left out, and said so.
    not_customers: list[str]


def create_group_send(
    session: Session,
    workspace_id: int,
    channel_id: int,
    staff_userid: str,
    text: str,
    external_userids: list[str],
    created_by: int | None,
    material_ids: list[int] = (),
) -> NewGroupSend:
    """A queued group send to those of `external_userids` who are the staff member's
    customers (flushed, not committed), with up to 9 library items as attachments. Raises
    a ValidationError keyed by argument."""
    data = GroupSendSchema().load(
        {
            "staff_userid": staff_userid,
            "text": text,
            "external_userids": external_userids,
            "material_ids": list(material_ids),
        }
    )
    named = {"channel_id": channel_id, "staff_userid": data["staff_userid"]}
    check_references(session, workspace_id, {"material_ids": data["material_ids"]}, REFERENCES)
    check_attachable(session, workspace_id, data["material_ids"])
    channel, staff = _sender(session, workspace_id, named)
    requested = list(dict.fromkeys(data["external_userids"]))
    customers = active_customers(session, channel.id, staff.userid, requested)
    recipients = [ext for ext in requested if ext in customers]
    if not recipients:
        raise ValidationError(
            {"external_userids": ["None of them is this staff member's customer."]}
        )
    group_send = GroupSend(
        workspace_id=workspace_id,
        channel_id=channel.id,
        staff_userid=staff.userid,
        text=data["text"],
        external_userids=recipients,
        material_ids=data["material_ids"],
        status=GroupSendStatus.QUEUED,
        created_by=created_by,
    )
    session.add(group_send)
    session.flush()
    return NewGroupSend(group_send, [ext for ext in requested if ext not in customers])


def check_attachable(session: Session, workspace_id: int, material_ids: list[int]) -> None:
    """A ValidationError keyed "material_ids" when one is archived or not sendable to WeCom
    (the ids are the workspace's: checked by REFERENCES)."""
    sendable = set(
        session.scalars(
            select(Material.id).where(
                Material.workspace_id == workspace_id,
                Material.id.in_(material_ids or [-1]),
                Material.kind.in_(ATTACHABLE),
                Material.archived_at.is_(None),
            )
        )
    )
    if set(material_ids) - sendable:
        raise ValidationError({"material_ids": [N_("Not an item the library can attach.")]})


def create_group_chat_send(
    session: Session,
    workspace_id: int,
    channel_id: int,
    staff_userid: str,
    text: str,
    chat_ids: list[str],
    created_by: int | None,
    material_ids: list[int] = (),
) -> NewGroupSend:
    """A queued group send to those of `chat_ids` that are live customer groups the staff
    member owns (flushed, not committed), with up to 9 library items as attachments;
    `not_customers` names the others, left out. Raises a ValidationError keyed by argument."""
    data = GroupChatSendSchema().load(
        {
            "staff_userid": staff_userid,
            "text": text,
            "chat_ids": chat_ids,
            "material_ids": list(material_ids),
        }
    )
    named = {"channel_id": channel_id, "staff_userid": data["staff_userid"]}
    check_references(
        session,
        workspace_id,
        {**named, "chat_ids": data["chat_ids"], "material_ids": data["material_ids"]},
        REFERENCES,
    )
    check_attachable(session, workspace_id, data["material_ids"])
    channel, staff = _sender(session, workspace_id, named)
    requested = list(dict.fromkeys(data["chat_ids"]))
    owned = set(owned_groups(session, workspace_id, channel.id, staff.userid))
    chosen = [chat_id for chat_id in requested if chat_id in owned]
    if not chosen:
        raise ValidationError(
            {"chat_ids": [N_("None of them is a live group this staff member owns.")]}
        )
    group_send = GroupSend(
        workspace_id=workspace_id,
        channel_id=channel.id,
        staff_userid=staff.userid,
        text=data["text"],
        chat_type=GROUP,
        chat_ids=chosen,
        external_userids=[],
        material_ids=data["material_ids"],
        status=GroupSendStatus.QUEUED,
        created_by=created_by,
    )
    session.add(group_send)
    session.flush()
    return NewGroupSend(group_send, [chat_id for chat_id in requested if chat_id not in owned])


def owned_groups(session: Session, workspace_id: int, channel_id: int, userid: str) -> list[str]:
    """The chat_ids of the live customer groups the staff member owns, oldest first."""
    return list(
        session.scalars(
            select(CustomerGroup.chat_id)
            .where(
                CustomerGroup.workspace_id == workspace_id,
                CustomerGroup.channel_id == channel_id,
                CustomerGroup.owner_userid == userid,
                CustomerGroup.dismissed_at.is_(None),
            )
            .order_by(CustomerGroup.created_at, CustomerGroup.id)
        )
    )


def _sender(session: Session, workspace_id: int, named: dict) -> tuple[Channel, Staff]:
    """The corp and the active staff member a send names, both the workspace's."""
    check_references(session, workspace_id, named, REFERENCES)
    channel = wecom_channel(session, workspace_id, named["channel_id"])
    if channel is None:
        raise ValidationError({"channel_id": ["No such WeCom corp in this workspace."]})
    staff = session.scalar(
        select(Staff).where(
            Staff.workspace_id == workspace_id,
            Staff.channel_id == channel.id,
            Staff.userid == named["staff_userid"],
            Staff.active.is_(True),
        )
    )
    if staff is None:
        raise ValidationError({"staff_userid": ["Not an active staff member of this corp."]})
    return channel, staff


def targets(group_send: GroupSend) -> list[str]:
    """Whom the send addresses: external_userids, or the groups' chat_ids."""
    return group_send.chat_ids if group_send.chat_type == GROUP else group_send.external_userids


def active_customers(
    session: Session, channel_id: int, staff_userid: str, external_userids: list[str]
) -> set[str]:
    """Those of `external_userids` who have the staff member in their WeCom contacts now."""
    found = set()
    for batch in chunks(external_userids, LOOKUP_CHUNK):
        found.update(
            session.scalars(
                select(FollowRelation.external_userid).where(
                    FollowRelation.channel_id == channel_id,
                    FollowRelation.staff_userid == staff_userid,
                    FollowRelation.removed_at.is_(None),
                    FollowRelation.external_userid.in_(batch),
                )
            )
        )
    return found


def corp_of(session: Session, group_send: GroupSend) -> Channel | None:
    """The group send's WeCom corp, its own workspace's; None (the send failed, committed)
    for one naming another workspace's corp."""
    channel = scoped_get(session, Channel, group_send.channel_id, group_send.workspace_id)
    if channel is None:
        group_send.status = GroupSendStatus.FAILED
        group_send.error = "the corp is not this workspace's"
        session.commit()
        log.warning("group send %s names another workspace's corp", group_send.id)
    return channel


def send_group_send(
    session: Session,
    group_send: GroupSend,
    client,
    attachments: list[dict] = (),
    *,
    retry_expired_media: bool = False,
) -> None:
    """Hand a queued group send to WeCom, once, with its attachments (built by the caller
    from its material_ids); commits. A transient error is raised and the send stays queued
    (the periodic refresh queues it again); any other refusal fails it, and so does a call
    that went unanswered (it may be waiting for the salesperson already: a second one would
    let them send it twice). With `retry_expired_media`, a 40007 (WeCom forgot a media_id)
    raises ExpiredMedia and the send stays queued, for the caller to upload again and retry."""
    # Row-locked (on PostgreSQL) while WeCom is called: a second job waits, then sees the msgid.
    session.refresh(group_send, with_for_update=True)
    if group_send.msgid or group_send.status != GroupSendStatus.QUEUED:
        session.commit()
        return
    try:
        answer = client.post(
            "externalcontact/add_msg_template",
            data={
                **_template(group_send),
                **({"attachments": list(attachments)} if attachments else {}),
            },
        )
    except WeChatApiError as exc:
        if is_transient(exc) and not may_have_gone_out(exc):
            session.rollback()
            raise
        if exc.errcode == INVALID_MEDIA_ID and attachments and retry_expired_media:
            session.rollback()
            raise ExpiredMedia(str(exc)) from exc
        error = str(exc) if not may_have_gone_out(exc) else f"no answer, check WeCom: {exc}"
        group_send.status, group_send.error = GroupSendStatus.FAILED, error[:500]
        session.commit()
        log.warning("group send %s refused: %s", group_send.id, exc)
        return
    group_send.msgid = answer["msgid"]
    group_send.fail_list = list(answer.get("fail_list") or [])
    group_send.status, group_send.error = GroupSendStatus.SENT, None
    session.commit()


def _template(group_send: GroupSend) -> dict:
    """add_msg_template's body: to the customers, or to the customer groups."""
    if group_send.chat_type == GROUP:
        addressed = {"chat_type": GROUP, "chat_id_list": group_send.chat_ids}
    else:
        addressed = {"chat_type": SINGLE, "external_userid": group_send.external_userids}
    return {
        **addressed,
        "sender": group_send.staff_userid,
        "text": {"content": group_send.text},
    }


def fetch_group_send_results(session: Session, group_send: GroupSend, client) -> None:
    """Each recipient's (customer's or group's) send status as WeCom reports it now; commits.
    All 0 means the staff member has not confirmed yet; once any is not, it is confirmed."""
    if not group_send.msgid:
        return
    results: dict[str, int] = {}
    cursor = ""
    try:
        while True:
            answer = client.post(
                "externalcontact/get_groupmsg_send_result",
                data={
                    "msgid": group_send.msgid,
                    "userid": group_send.staff_userid,
                    "limit": RESULTS_PAGE_SIZE,
                    "cursor": cursor,
                },
            )
            key = "chat_id" if group_send.chat_type == GROUP else "external_userid"
            for row in answer.get("send_list") or []:
                results[row[key]] = int(row["status"])
            cursor = answer.get("next_cursor") or ""
            if not cursor:
                break
    except WeChatApiError as exc:
        if is_transient(exc):
            raise
        group_send.error = str(exc)[:500]
        session.commit()
        log.warning("group send %s results refused: %s", group_send.id, exc)
        return
    group_send.results, group_send.results_at = results, utcnow()
    if any(status != NOT_SENT for status in results.values()):
        group_send.status = GroupSendStatus.CONFIRMED
    session.commit()


def result_counts(group_send: GroupSend) -> Counter:
    """How many recipients have each send status (NOT_SENT, SENT, ...)."""
    return Counter(int(status) for status in (group_send.results or {}).values())


def results_due(session: Session) -> list[int]:
    """Recent group sends whose results may still change: unconfirmed, or some not sent yet."""
    rows = session.scalars(
        select(GroupSend).where(
            GroupSend.status.in_((GroupSendStatus.SENT, GroupSendStatus.CONFIRMED)),
            GroupSend.created_at >= utcnow() - REFRESH_WINDOW,
        )
    )
    return [
        group_send.id
        for group_send in rows
        if group_send.status == GroupSendStatus.SENT or result_counts(group_send)[NOT_SENT]
    ]


def queued_too_long(session: Session) -> list[int]:
    """Recent group sends still queued past the grace: their send job was lost."""
    now = utcnow()
    return list(
        session.scalars(
            select(GroupSend.id).where(
                GroupSend.status == GroupSendStatus.QUEUED,
                GroupSend.created_at >= now - REFRESH_WINDOW,
                GroupSend.created_at < now - QUEUED_GRACE,
            )
        )
    )
