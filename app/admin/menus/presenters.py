"""What the menu pages show: statuses and button kinds in words, tag names, the preview's
follower picker, and WeChat's refusals."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.admin.labels import TAG_GROUP_LABELS, tag_label
from crm.rule_config import MAX_REPLY
from crm.tags import TagBook
from models import MenuStatus
from outreach import menus
from wechat.clients import WeChatApiError

STATUS_LABELS = {
    MenuStatus.DRAFT: _l("Draft"),
    MenuStatus.PUBLISHED: _l("Live"),
    MenuStatus.SUPERSEDED: _l("Replaced"),
    MenuStatus.FAILED: _l("Refused"),
}
STATUS_BADGES = {MenuStatus.PUBLISHED: "ok", MenuStatus.FAILED: "error"}
TYPE_LABELS = {
    "click": _l("Click (tag, reply, journeys)"),
    "view": _l("Web page"),
    "miniprogram": _l("Mini program"),
}
KIND_LABELS = {"action": _l("One action"), "submenu": _l("A sub-menu")}


def labels() -> dict:
    return {
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "type_labels": TYPE_LABELS,
        "kind_labels": KIND_LABELS,
        "group_labels": TAG_GROUP_LABELS,
        "max_top": menus.MAX_TOP_BUTTONS,
        "max_sub": menus.MAX_SUB_BUTTONS,
        "max_reply": MAX_REPLY,
        "is_submenu": menus.is_submenu,
    }


def tag_names(book: TagBook) -> dict[int, str]:
    return {
        tag.id: f"{TAG_GROUP_LABELS.get(tag.group, tag.group)} · {tag_label(tag)}"
        for group in TAG_GROUP_LABELS
        for tag in book.in_group(group)
    }


def follower_choices(followers: list) -> list[tuple[str, str]]:
    """(openid, name, company) -> (openid, who) for the preview picker."""
    return [
        (openid, " · ".join(part for part in (name, company) if part) or openid)
        for openid, name, company in followers
    ]


def wechat_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeChat could not be reached: %(reason)s", reason=exc.errmsg)
    return _("WeChat refused (%(code)s): %(reason)s", code=exc.errcode, reason=exc.errmsg)
