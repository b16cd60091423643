"""Turn a callback's plaintext XML into one platform-neutral event.

The XML is parsed once (`wechat.callbacks.parse_xml`); wechatpy's typed messages and
events are built from that document, and this module maps them onto Harpoon's
interaction kinds. A kind of None means "stored, not
handled": the platform sent something Harpoon does not act on (yet).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wechatpy import events as oa_events
from wechatpy import messages as oa_messages
from wechatpy.messages import UnknownMessage
from wechatpy.work import events as wecom_events
from wechatpy.work import messages as wecom_messages

from wechat.callbacks import OA, WECOM, CallbackRejected, parse_xml


@dataclass(frozen=True)
class NormalizedEvent:
    kind: str | None
    platform: str
    # openid (OA) or external_userid (WeCom): the person the event is about.
    subject: str | None
    occurred_at: datetime
    properties: dict = field(default_factory=dict)
    # The WeCom staff member (UserID) involved, if any.
    staff_userid: str | None = None
    # The platform's own name for the event, kept for logs and the inbox page.
    source_type: str = ""
    # A touchpoint's (handlers.touchpoints) identities, person, minutes and references.
    details: dict = field(default_factory=dict)


class Unnormalizable(ValueError):
    """A callback no handler can read: refused at the callback, dead at once in the drain."""


# Shapes of the elements the platforms nest: an element's children hold text, except those
# its shape names, which hold elements of their own shape (or text) and may repeat (the
# platforms' lists, e.g. <PicList><item>...</item><item>...</item></PicList>).
Shape = Mapping[str, "Shape"]
TEXT_CHILDREN: Shape = {}
# Menu scans, photos and locations; push results' copyright checks and article urls;
# subscription-message events; WeCom batch jobs, template-card selections, approvals
# (sys_approval_change and open_approval_change) and member attributes. Every other
# top-level element holds text only.
NESTED_ELEMENTS: dict[str, Shape] = {
    "ScanCodeInfo": TEXT_CHILDREN,
    "SendPicsInfo": {"PicList": {"item": TEXT_CHILDREN}},
    "SendLocationInfo": TEXT_CHILDREN,
    "CopyrightCheckResult": {"ResultList": {"item": TEXT_CHILDREN}},
    "ArticleUrlResult": {"ResultList": {"item": TEXT_CHILDREN}},
    "SubscribeMsgPopupEvent": {"List": TEXT_CHILDREN},
    "SubscribeMsgChangeEvent": {"List": TEXT_CHILDREN},
    "SubscribeMsgSentEvent": {"List": TEXT_CHILDREN},
    "BatchJob": TEXT_CHILDREN,
    "SelectedItems": {"SelectedItem": {"OptionIds": {"OptionId": TEXT_CHILDREN}}},
    "ApprovalInfo": {
        "Applyer": TEXT_CHILDREN,
        "SpRecord": {"Details": {"Approver": TEXT_CHILDREN, "MediaId": TEXT_CHILDREN}},
        "Notifyer": TEXT_CHILDREN,
        "Comments": {"CommentUserInfo": TEXT_CHILDREN, "Attach": TEXT_CHILDREN},
        "ApprovalNodes": {"ApprovalNode": {"Items": {"Item": TEXT_CHILDREN}}},
        "NotifyNodes": {"NotifyNode": TEXT_CHILDREN},
    },
    "ExtAttr": {"Item": {"Text": TEXT_CHILDREN, "Web": TEXT_CHILDREN}},
}
# Unix seconds: 12 digits reach past the year 9999, which datetime cannot hold anyway.
_CREATE_TIME = re.compile(r"[0-9]{1,12}")


def normalize(platform: str, xml: str) -> NormalizedEvent:
    """A stored payload as one event (the drain's reading of the inbox)."""
    try:
        fields = parse_xml(xml)
    except CallbackRejected as rejected:
        raise Unnormalizable(rejected.reason) from None
    return normalize_fields(platform, fields)


def normalize_fields(platform: str, fields: Mapping) -> NormalizedEvent:
    """The one judge of "normalizable", over the document `wechat.callbacks.parse_xml` made
    of the XML: the callback, which has parsed it already, refuses what this raises
    Unnormalizable on, so the drain, reading the same XML, never meets it."""
    read = _READERS.get(platform)
    if read is None:
        raise ValueError(f"unknown platform {platform!r}")
    problem = _shape_problem(fields)
    if problem:
        raise Unnormalizable(problem)
    try:
        return read(dict(fields))  # a copy: wechatpy writes into the document it reads
    except (ValueError, OverflowError) as exc:  # a number field wechatpy cannot convert
        raise Unnormalizable(f"{type(exc).__name__}: {exc}") from None


def _shape_problem(fields: Mapping) -> str | None:
    """What keeps a WeChat document from being one event, if anything."""
    for name, value in fields.items():
        if name in NESTED_ELEMENTS:
            if value is not None and not isinstance(value, dict):
                return f"<{name}> holds text, not elements"
            problem = _nesting_problem(name, value, NESTED_ELEMENTS[name])
            if problem:
                return problem
        elif value is not None and not isinstance(value, str):
            return f"nested elements or attributes in <{name}>"
    if not fields.get("MsgType"):
        return "no MsgType"
    if fields["MsgType"].lower() == "event" and not fields.get("Event"):
        return "an event without Event"
    if not fields.get("FromUserName"):
        return "no FromUserName"
    if not _CREATE_TIME.fullmatch(fields.get("CreateTime") or ""):
        return "CreateTime missing or not a number"
    return None


def _nesting_problem(name: str, value, shape: Shape) -> str | None:
    """Whether an element (or each item of a repeated one) holds more than its shape."""
    for item in value if isinstance(value, list) else [value]:
        if item is None or isinstance(item, str):
            continue
        for child, held in item.items():
            if child.startswith(("@", "#")):  # an attribute, or text beside elements
                return f"attributes or mixed content in <{name}>"
            if child in shape:
                problem = _nesting_problem(child, held, shape[child])
                if problem:
                    return problem
            elif held is not None and not isinstance(held, str):
                return f"nested elements in <{name}><{child}>"
    return None


def _oa_typed(fields: dict):
    """wechatpy's typed OA message or event of a parsed document: what its parse_message
    makes of the XML, without parsing it again."""
    message_type = fields["MsgType"].lower()
    if message_type != "event":
        return oa_messages.MESSAGE_TYPES.get(message_type, UnknownMessage)(fields)
    event = fields["Event"].lower()
    key = fields.get("EventKey") or ""
    if event == "subscribe" and key.startswith(("scanbarcode|", "scanimage|")):
        event = fields["Event"] = "subscribe_scan_product"
    elif event == "subscribe" and key.startswith("qrscene_"):
        event = fields["Event"] = "subscribe_scan"
        fields["EventKey"] = key.removeprefix("qrscene_")
    return oa_events.EVENT_TYPES.get(event, UnknownMessage)(fields)


def _wecom_typed(fields: dict):
    """wechatpy's typed WeCom message or event of a parsed document, as its parse_message
    makes it."""
    message_type = fields["MsgType"].lower()
    if message_type != "event":
        return wecom_messages.MESSAGE_TYPES.get(message_type, UnknownMessage)(fields)
    return wecom_events.EVENT_TYPES.get(fields["Event"].lower(), UnknownMessage)(fields)


def _when(msg) -> datetime:
    return datetime.fromtimestamp(int(msg.time or 0), UTC)


def _oa_event(msg, kind: str | None, **properties) -> NormalizedEvent:
    return NormalizedEvent(
        kind=kind,
        platform=OA,
        subject=msg.source or None,
        occurred_at=_when(msg),
        properties={k: v for k, v in properties.items() if v not in (None, "")},
        source_type=_source_type(msg),
    )


def _source_type(msg) -> str:
    """The platform's own name: the Event, else the MsgType (wechatpy keeps the raw dict)."""
    raw = msg._data
    return str(raw.get("Event") or raw.get("MsgType") or "unknown").lower()


def _normalize_oa(msg) -> NormalizedEvent:
    match msg:
        case oa_events.SubscribeScanEvent():
            return _oa_event(msg, "wechat.follow", scene=msg.scene_id, ticket=msg.ticket)
        case oa_events.SubscribeEvent():
            return _oa_event(msg, "wechat.follow")
        case oa_events.UnsubscribeEvent():
            return _oa_event(msg, "wechat.unfollow")
        case oa_events.ScanEvent():
            return _oa_event(msg, "wechat.scan", scene=msg.scene_id, ticket=msg.ticket)
        case oa_events.ClickEvent():
            return _oa_event(msg, "wechat.menu_click", key=msg.key)
        case oa_events.ViewEvent():
            return _oa_event(msg, "wechat.menu_view", url=msg.url)
        case oa_events.LocationEvent():
            return _oa_event(
                msg,
                "wechat.location",
                latitude=msg.latitude,
                longitude=msg.longitude,
                precision=msg.precision,
            )
        case oa_events.ScanCodePushEvent() | oa_events.ScanCodeWaitMsgEvent():
            info = msg.scan_code_info or {}
            return _oa_event(msg, "wechat.menu_scan", key=msg.key, result=info.get("ScanResult"))
        case oa_events.MassSendJobFinishEvent():
            return _oa_event(
                msg,
                "wechat.mass_send_finished",
                msg_id=msg.id,
                status=msg.status,
                total_count=msg.total_count,
                filter_count=msg.filter_count,
                sent_count=msg.sent_count,
                error_count=msg.error_count,
            )
        case oa_events.TemplateSendJobFinishEvent():
            return _oa_event(msg, "wechat.template_send_finished", msg_id=msg.id, status=msg.status)
        case oa_messages.TextMessage():
            return _oa_message(msg, content=msg.content)
        case oa_messages.LinkMessage():
            return _oa_message(msg, title=msg.title, url=msg.url)
        case oa_messages.LocationMessage():
            return _oa_message(msg, label=msg.label, x=msg.location_x, y=msg.location_y)
        case oa_messages.VoiceMessage():
            return _oa_message(msg, media_id=msg.media_id, recognition=msg.recognition)
        case (
            oa_messages.ImageMessage()
            | oa_messages.VideoMessage()
            | oa_messages.ShortVideoMessage()
        ):
            return _oa_message(msg, media_id=msg.media_id)
        case _:
            return _oa_event(msg, None)


def _oa_message(msg, **properties) -> NormalizedEvent:
    return _oa_event(msg, "wechat.message", msg_type=msg.type, msg_id=str(msg.id), **properties)


_WECOM_CONTACT_KINDS = {
    "add_external_contact": "wecom.contact_added",
    "add_half_external_contact": "wecom.contact_added",
    "edit_external_contact": "wecom.contact_edited",
    "del_external_contact": "wecom.contact_removed",
    "del_follow_user": "wecom.contact_removed",
    "transfer_fail": "wecom.transfer_failed",
}


def _normalize_wecom(msg) -> NormalizedEvent:
    if isinstance(msg, wecom_events.ChangeExternalContactEvent):
        change = msg.change_type or ""
        properties = {
            "change_type": change,
            "state": msg.state,
            "welcome_code": msg.welcome_code,
            "source": msg.del_source,
            "fail_reason": msg.fail_reason,
        }
        if change == "add_half_external_contact":
            properties["half"] = True
        if change == "del_external_contact":
            properties["removed_by"] = "staff"
        elif change == "del_follow_user":
            properties["removed_by"] = "customer"
        return NormalizedEvent(
            kind=_WECOM_CONTACT_KINDS.get(change),
            platform=WECOM,
            subject=msg.external_user_id or None,
            occurred_at=_when(msg),
            properties={k: v for k, v in properties.items() if v not in (None, "")},
            staff_userid=msg.user_id or None,
            source_type=f"change_external_contact:{change}",
        )
    if isinstance(msg, wecom_events.ChangeExternalTagEvent):
        # A corp tag changed in the WeCom console (API changes send no callback).
        return NormalizedEvent(
            kind="wecom.corp_tags_changed",
            platform=WECOM,
            subject=None,
            occurred_at=_when(msg),
            properties={"change_type": msg.change_type, "id": msg.tag_id, "type": msg.tag_type},
            source_type=f"change_external_tag:{msg.change_type}",
        )
    if isinstance(msg, wecom_events.ChangeExternalChatEvent):
        # A customer group changed; who joined or left is read later with groupchat/get.
        properties = {
            "chat_id": msg.chat_id,
            "change_type": msg.change_type,
            "update_detail": msg.update_detail,
            "join_scene": msg.join_scene,
            "quit_scene": msg.quit_scene,
            "mem_change_cnt": msg.mem_change_cnt,
        }
        detail = f":{msg.update_detail}" if msg.update_detail else ""
        return NormalizedEvent(
            kind="wecom.group_changed" if msg.chat_id else None,
            platform=WECOM,
            subject=None,
            occurred_at=_when(msg),
            properties={k: v for k, v in properties.items() if v not in (None, "")},
            source_type=f"change_external_chat:{msg.change_type}{detail}",
        )
    return NormalizedEvent(
        kind=None,
        platform=WECOM,
        subject=None,
        occurred_at=_when(msg),
        source_type=_source_type(msg),
    )


# The platform -> its reading of a checked document.
_READERS = {
    OA: lambda fields: _normalize_oa(_oa_typed(fields)),
    WECOM: lambda fields: _normalize_wecom(_wecom_typed(fields)),
}
