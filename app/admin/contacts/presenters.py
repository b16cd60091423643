"""What the contact pages show: interactions and their key properties in words, the labels
of roles, seniorities, tags and sources, and the tag filter's options."""

from flask_babel import lazy_gettext as _l

from app.admin.labels import (
    ACCOUNT_SOURCE_LABELS,
    CONTACT_ROLE_LABELS,
    JOIN_SCENES,
    LINK_MEDIUM_LABELS,
    QUIT_SCENES,
    SENIORITY_LABELS,
    TAG_GROUP_LABELS,
    TAG_SOURCE_LABELS,
    tag_label,
)
from crm.tags import TagBook
from models import TagGroup

INTERACTION_LABELS = {
    "wechat.follow": _l("Followed the account"),
    "wechat.unfollow": _l("Unfollowed the account"),
    "wechat.scan": _l("Scanned a QR code"),
    "wechat.menu_click": _l("Tapped a menu"),
    "wechat.menu_view": _l("Opened a menu link"),
    "wechat.menu_scan": _l("Scanned from the menu"),
    "wechat.message": _l("Sent a message"),
    "wechat.location": _l("Shared a location"),
    "wecom.contact_added": _l("Added a staff member on WeCom"),
    "wecom.contact_edited": _l("WeCom contact edited"),
    "wecom.contact_removed": _l("WeCom contact removed"),
    "wecom.transfer_failed": _l("WeCom transfer failed"),
    "wecom.group_join": _l("Joined a WeCom customer group"),
    "wecom.group_leave": _l("Left a WeCom customer group"),
    # Recorded by content, forms, email, live streams, events and sales (scored too).
    "content.view": _l("Viewed content"),
    "content.read": _l("Read content"),
    "content.like": _l("Liked content"),
    "content.share": _l("Shared content"),
    "content.comment": _l("Commented on content"),
    "form.submit": _l("Submitted a form"),
    "email.open": _l("Opened an email"),
    "email.click": _l("Clicked a link in an email"),
    "email.unsubscribe": _l("Unsubscribed from email"),
    "email.bounce": _l("An email to them bounced"),
    "email.complaint": _l("Marked an email as spam"),
    "live.join": _l("Joined a live stream"),
    "live.leave": _l("Left a live stream"),
    "live.watch": _l("Watched a live stream"),
    "event.register": _l("Registered for an event"),
    "event.checkin": _l("Checked in at an event"),
    "webinar.register": _l("Registered for a webinar"),
    "webinar.attend": _l("Attended a webinar"),
    "sales.meeting": _l("Met sales"),
    "sales.call": _l("Had a call with sales"),
    "sales.task_done": _l("A sales task for them was done"),
    "sales.note": _l("A salesperson wrote a note about them"),
    "sales.chat_send": _l("Sent content in the WeCom chat by sales"),
    "survey.nps": _l("Answered the NPS survey"),
}
# The properties worth a glance on the timeline, in display order.
PROPERTY_LABELS = {
    "key": _l("Menu key"),
    "scene": _l("Scene"),
    "content": _l("Message"),
    "title": _l("Title"),
    "url": _l("Link"),
    "subject": _l("Subject"),
    "detail": _l("Detail"),
    "label": _l("Place"),
    "recognition": _l("Voice text"),
    "result": _l("Scan result"),
    "staff_userid": _l("Staff"),
    "state": _l("Contact Me state"),
    "removed_by": _l("Removed by"),
    "fail_reason": _l("Reason"),
    "group_name": _l("Customer group"),
    "join_scene": _l("Join scene"),
    "quit_scene": _l("Quit scene"),
    "medium": _l("Placed in"),
    "topics": _l("Topics"),
    "products": _l("Products"),
    "campaign": _l("Campaign"),
    "score": _l("NPS score"),
}
# Properties holding a code, shown by its label.
PROPERTY_VALUE_LABELS = {
    "medium": LINK_MEDIUM_LABELS,
    "join_scene": JOIN_SCENES,
    "quit_scene": QUIT_SCENES,
}
LABELS = {
    "role_labels": CONTACT_ROLE_LABELS,
    "seniority_labels": SENIORITY_LABELS,
    "group_labels": TAG_GROUP_LABELS,
    "tag_source_labels": TAG_SOURCE_LABELS,
    "account_source_labels": ACCOUNT_SOURCE_LABELS,
    "tag_label": tag_label,
}


def key_properties(properties: dict) -> list[tuple[str, object]]:
    return [
        (label, _property_value(name, properties[name]))
        for name, label in PROPERTY_LABELS.items()
        if name in properties
    ]


def _property_value(name: str, value):
    if isinstance(value, list):  # topics, products
        return "、".join(str(item) for item in value)
    labels = PROPERTY_VALUE_LABELS.get(name, {})
    known = isinstance(value, str | int) and not isinstance(value, bool) and value in labels
    return str(labels[value]) if known else value


def timeline_rows(timeline: list) -> list[tuple]:
    """(interaction, channel name) -> (interaction, channel name, its key properties)."""
    return [
        (interaction, channel_name, key_properties(interaction.properties))
        for interaction, channel_name in timeline
    ]


def tag_filter_options(book: TagBook) -> list[tuple[str, list[tuple[int, str]]]]:
    """The tags that exist, by group, for the list's filter."""
    groups = []
    for group in TagGroup:
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        if tags:
            groups.append((TAG_GROUP_LABELS[group], [(tag.id, tag_label(tag)) for tag in tags]))
    return groups
