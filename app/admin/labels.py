"""Labels for the codes stored on contacts and tags: roles, seniorities, tag groups, sources.

Role and seniority tags are named by their code (cio, c_level); every page that shows
one labels it from here, so a role reads the same on Contacts, Accounts and Tags.
"""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

from core.text import Formatted
from crm.titles import SENIORITIES
from models import AccountSource, ContentKind, LinkMedium, Tag, TagGroup, TagSource
from scoring.model import DEFAULT_STAGES, Stage

CONTACT_ROLE_LABELS = {
    "ceo": _l("CEO"),
    "cio": _l("CIO"),
    "cto": _l("CTO"),
    "cfo": _l("CFO"),
    "ciso": _l("CISO"),
    "it_manager": _l("IT manager"),
    "engineer": _l("Engineer"),
    "procurement": _l("Procurement"),
    "finance": _l("Finance"),
    "marketing": _l("Marketing"),
    "sales": _l("Sales"),
    "hr": _l("HR"),
    "product": _l("Product"),
    "operations": _l("Operations"),
    "other": _l("Other"),
}
SENIORITY_LABELS = dict(
    zip(
        SENIORITIES,
        (_l("C-level"), _l("VP"), _l("Director"), _l("Manager"), _l("Staff")),
        strict=True,
    )
)
TAG_GROUP_LABELS = {
    TagGroup.ROLE: _l("Role"),
    TagGroup.SENIORITY: _l("Seniority"),
    TagGroup.INDUSTRY: _l("Industry"),
    TagGroup.INTEREST: _l("Interest"),
    TagGroup.BEHAVIOR: _l("Behavior"),
    TagGroup.SOURCE: _l("Source"),
    TagGroup.LIFECYCLE: _l("Lifecycle"),
    TagGroup.MANUAL: _l("Manual"),
}
TAG_SOURCE_LABELS = {
    TagSource.RULE: _l("Rule"),
    TagSource.TITLE: _l("Title dictionary"),
    TagSource.ACCOUNT: _l("Account industry"),
    TagSource.MANUAL: _l("Manual"),
    TagSource.WECOM: _l("WeCom"),
}
ACCOUNT_SOURCE_LABELS = {
    AccountSource.SELF: _l("Said by the contact"),
    AccountSource.EMAIL: _l("Email domain"),
    AccountSource.FORM: _l("Form"),
    AccountSource.WECOM: _l("WeCom corp name"),
    AccountSource.WECOM_REMARK: _l("WeCom remark by sales"),
    AccountSource.MANUAL: _l("Manual assignment"),
}

# Content.kind and TrackedLink.medium (also in the properties of a view's interactions).
CONTENT_KIND_LABELS = {
    ContentKind.ARTICLE: _l("Article"),
    ContentKind.PAGE: _l("Landing page"),
    ContentKind.VIDEO: _l("Video"),
    ContentKind.DOWNLOAD: _l("Download"),
    ContentKind.LIVE: _l("Live stream"),
    ContentKind.EVENT: _l("Event or webinar"),
}
LINK_MEDIUM_LABELS = {
    LinkMedium.MENU: _l("OA menu"),
    LinkMedium.PUSH: _l("Push"),
    LinkMedium.ARTICLE: _l("In an article"),
    LinkMedium.QR: _l("QR code"),
    LinkMedium.EMAIL: _l("Email"),
    LinkMedium.FORM: _l("Form follow-up"),
    LinkMedium.CHAT: _l("WeCom chat"),
    LinkMedium.OTHER: _l("Other"),
}

# StaffNotification.kind: what the salesperson was told about.
NOTIFICATION_KIND_LABELS = {
    "target_account_add": _l("A target account's contact added them"),
    "customer_lost": _l("A customer deleted them"),
    "account_mqa": _l("An account they own reached MQA"),
    "account_surge": _l("An account they own is surging"),
    "account_routed": _l("An account was routed to them"),
    "routing_unassigned": _l("An account could not be routed"),
    "sla_escalated": _l("A first touch is overdue"),
    "sla_reassigned": _l("An account was reassigned for a missed first touch"),
}

# FollowRelation.add_way: how a customer reached the salesperson (WeCom's codes worth a name).
ADD_WAY_LABELS = {
    0: _l("Unknown"),
    1: _l("Scanned a QR code"),
    2: _l("Searched a phone number"),
    3: _l("Shared business card"),
    4: _l("Group chat"),
    5: _l("Phone contacts"),
    6: _l("WeChat contacts"),
    9: _l("Searched an email"),
    10: _l("Channels (视频号)"),
    16: _l("Customer acquisition link"),
    201: _l("Shared by a colleague"),
    202: _l("Assigned by an administrator"),
}

# The shipped stages, translated (in their own context: "Target" the stage is not the
# audit log's target); a stage a workspace added or renamed shows its own name.
STAGE_LABELS = {
    "target": lazy_pgettext("stage", "Target"),
    "aware": lazy_pgettext("stage", "Aware"),
    "engaged": lazy_pgettext("stage", "Engaged"),
    "mqa": lazy_pgettext("stage", "MQA"),
    "meeting": lazy_pgettext("stage", "Meeting"),
    "opportunity": lazy_pgettext("stage", "Opportunity"),
    "customer": lazy_pgettext("stage", "Customer"),
    "expansion": lazy_pgettext("stage", "Expansion"),
}
SHIPPED_STAGE_NAMES = {stage.key: stage.name for stage in DEFAULT_STAGES}


def stage_names(stages: tuple[Stage, ...]) -> dict[str, str]:
    """A scoring model's stage keys -> the names to show, in the model's order."""
    return {
        stage.key: str(STAGE_LABELS[stage.key])
        if SHIPPED_STAGE_NAMES.get(stage.key) == stage.name
        else stage.name
        for stage in stages
    }


# Groups whose tags are named by a code, with the codes' labels.
CODE_GROUPS = {TagGroup.ROLE: CONTACT_ROLE_LABELS, TagGroup.SENIORITY: SENIORITY_LABELS}


def tag_label(tag: Tag) -> str:
    """A role or seniority tag by its label; any other tag by its own name."""
    return str(CODE_GROUPS.get(tag.group, {}).get(tag.name, tag.name))


def error_messages(messages) -> list[str]:
    """marshmallow's messages for one key, flattened (a list's are keyed by position)."""
    if isinstance(messages, dict):
        return [m for inner in messages.values() for m in error_messages(inner)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]


def translated_messages(messages) -> list[str]:
    """error_messages in the user's language: a schema's N_ messages, and Formatted ones
    with their values filled in again."""
    if isinstance(messages, dict):
        return [m for inner in messages.values() for m in translated_messages(inner)]
    if not isinstance(messages, list):
        messages = [messages]
    return [_(m.msgid, **m.values) if isinstance(m, Formatted) else _(str(m)) for m in messages]


# WeCom's join_scene of a customer group's member, and the QuitScene of one who left.
JOIN_SCENES = {
    1: _l("Invited directly"),
    2: _l("By invitation link"),
    3: _l("By QR code"),
}
QUIT_SCENES = {0: _l("Left on their own"), 1: _l("Removed by the owner")}
