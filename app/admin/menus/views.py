"""OA menus: per Official Account, the draft editor (the default menu and one conditional
menu per tag), publishing with a confirmation, preview as a follower, and the history
with rollback. The menus themselves live in outreach.menus.

The editor is one form whose inputs are named by their position in the menu document
("default.0.sub_button.1.key"), so outreach.menus' error positions land on the input
they concern. Every button of the form saves the draft, then does what it says (add,
remove, move, publish), so nothing typed is lost.
"""

import copy
import hashlib
import json
import logging

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts import tag_filter_options
from app.admin.labels import TAG_GROUP_LABELS, tag_label
from app.extensions import harpoon
from core.jobs import Followups
from crm.rule_config import MAX_REPLY
from crm.tags import TagBook
from models import (
    Channel,
    ChannelKind,
    Contact,
    ContactTag,
    Identity,
    IdentityKind,
    MenuStatus,
    MenuVersion,
    RuleKind,
    TagRule,
    User,
)
from outreach import menus
from outreach.menus import MenuInvalid
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

HISTORY_ROWS = 30
FOLLOWER_CHOICES = 100
MAX_CONDITIONAL_MENUS = 100  # one per OA tag at most
# Enough to read any saved document back; the form never offers more than WeChat allows.
MAX_PARSED_BUTTONS = 20
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


def _new_button() -> dict:
    return {"name": "", "type": "click", "key": ""}


# ---- the page ------------------------------------------------------------------------


@bp.get("/menus", endpoint="menus")
@requires("view")
def menus_page():
    channels = _oa_channels()
    if not channels:
        return render_template("admin/menus.html", channel=None, channels=[])
    wanted = request.args.get("channel", type=int)
    channel = next((c for c in channels if c.id == wanted), channels[0])
    return _render_editor(channel, channels)


def _render_editor(channel: Channel, channels: list[Channel], status: int = 200):
    draft = menus.draft_of(db(), channel.id)
    published = menus.published_of(db(), channel.id)
    document = draft.document if draft else (published.document if published else None)
    document = document or _starter_document()
    # A page never saved shows no complaints about its empty starter button.
    errors = (
        menus.validate_menu(document, menus.menu_context(db(), channel, document)) if draft else {}
    )
    book = TagBook(db(), workspace_id())
    page = render_template(
        "admin/menus.html",
        channel=channel,
        channels=channels,
        document=document,
        errors=errors,
        draft=draft,
        published=published,
        unpublished=draft is not None
        and (published is None or draft.document != published.document),
        history=_history(channel),
        users=_user_names(),
        tag_options=tag_filter_options(book),
        tag_names=_tag_names(book),
        follower_counts=_follower_counts(channel, document),
        hand_rules=_hand_rules(published),
        followers=_follower_choices(channel),
        preview=_follower_preview(channel, published),
        **_labels(),
    )
    return page, status


def _starter_document() -> dict:
    return {"default": [_new_button()], "conditional": []}


def _labels() -> dict:
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


def _oa_channels() -> list[Channel]:
    return list(
        db().scalars(
            select(Channel)
            .where(Channel.workspace_id == workspace_id(), Channel.kind == ChannelKind.OA)
            .order_by(Channel.created_at, Channel.id)
        )
    )


def _oa_channel_or_404(channel_id: int) -> Channel:
    channel = db().scalar(
        select(Channel).where(
            Channel.id == channel_id,
            Channel.workspace_id == workspace_id(),
            Channel.kind == ChannelKind.OA,
        )
    )
    if channel is None:
        abort(404)
    return channel


def _history(channel: Channel) -> list[MenuVersion]:
    return list(
        db().scalars(
            select(MenuVersion)
            .where(MenuVersion.channel_id == channel.id, MenuVersion.status != MenuStatus.DRAFT)
            .order_by(MenuVersion.created_at.desc(), MenuVersion.id.desc())
            .limit(HISTORY_ROWS)
        )
    )


def _user_names() -> dict[int, str]:
    rows = db().execute(select(User.id, User.name).where(User.workspace_id == workspace_id()))
    return dict(rows.all())


def _tag_names(book: TagBook) -> dict[int, str]:
    return {
        tag.id: f"{TAG_GROUP_LABELS.get(tag.group, tag.group)} · {tag_label(tag)}"
        for group in TAG_GROUP_LABELS
        for tag in book.in_group(group)
    }


def _follower_counts(channel: Channel, document: dict) -> dict[int, int]:
    """How many of the OA's followers hold each conditional menu's tag."""
    tag_ids = [tag_id for _, tag_id, _ in menus.menus_of(document) if isinstance(tag_id, int)]
    if not tag_ids:
        return {}
    rows = db().execute(
        select(ContactTag.tag_id, func.count(func.distinct(Identity.id)))
        .join(Identity, Identity.contact_id == ContactTag.contact_id)
        .where(
            ContactTag.tag_id.in_(tag_ids),
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
        )
        .group_by(ContactTag.tag_id)
    )
    return dict(rows.all())


def _hand_rules(published: MenuVersion | None) -> dict[str, list[str]]:
    """Menu-click rules made on the tags page, by key: they act on a tap too."""
    owned = set(((published.remote_ids or {}).get("rules") or {}).values()) if published else set()
    rules = db().scalars(
        select(TagRule).where(
            TagRule.workspace_id == workspace_id(),
            TagRule.kind == RuleKind.MENU,
            TagRule.enabled.is_(True),
        )
    )
    by_key: dict[str, list[str]] = {}
    for rule in rules:
        key = (rule.config or {}).get("key")
        if key and rule.id not in owned:
            by_key.setdefault(key, []).append(rule.name)
    return by_key


def _follower_choices(channel: Channel) -> list[tuple[str, str]]:
    """The OA's most recently active followers, as (openid, who) for the preview picker."""
    rows = db().execute(
        select(Identity.value, Contact.name, Contact.company)
        .join(Contact, Contact.id == Identity.contact_id)
        .where(
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
            Contact.merged_into_id.is_(None),
        )
        .order_by(Contact.last_seen_at.desc().nulls_last(), Identity.id.desc())
        .limit(FOLLOWER_CHOICES)
    )
    return [
        (openid, " · ".join(part for part in (name, company) if part) or openid)
        for openid, name, company in rows
    ]


# ---- preview as a follower --------------------------------------------------------------


def _follower_preview(channel: Channel, published: MenuVersion | None) -> dict | None:
    """What WeChat shows the follower in ?openid= (menu/trymatch), and what Harpoon expects
    from their tags; None when no follower is asked about."""
    openid = request.args.get("openid", "").strip()
    if not openid:
        return None
    preview = {"openid": openid, "contact": _contact_of(channel, openid)}
    try:
        buttons = menus.try_match(_client(channel), openid)
    except WeChatApiError as exc:
        preview["error"] = _wechat_refusal(exc)
        return preview
    preview["buttons"] = buttons
    if buttons is not None and published is not None:
        preview["found"], preview["tag_id"] = menus.matched_menu(published.document, buttons)
    if preview["contact"] is not None and published is not None:
        preview["expected"] = _expected_menu(preview["contact"], published.document)
    return preview


def _contact_of(channel: Channel, openid: str) -> Contact | None:
    return db().scalar(
        select(Contact)
        .join(Identity, Identity.contact_id == Contact.id)
        .where(
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.value == openid,
        )
    )


def _expected_menu(contact: Contact, document: dict) -> int | None:
    """The tag of the first conditional menu the contact's Harpoon tags select, or None."""
    held = set(db().scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == contact.id)))
    for _position, tag_id, _buttons in menus.menus_of(document)[1:]:
        if tag_id in held:
            return tag_id
    return None


def _client(channel: Channel):
    return harpoon().wechat.oa(channel.app_id, channel.secret)


def _wechat_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeChat could not be reached: %(reason)s", reason=exc.errmsg)
    return _("WeChat refused (%(code)s): %(reason)s", code=exc.errcode, reason=exc.errmsg)


# ---- editing the draft --------------------------------------------------------------------


@bp.post("/menus/<int:channel_id>/draft")
@requires("menus.manage")
def menus_draft(channel_id: int):
    channel = _oa_channel_or_404(channel_id)
    document = parse_document(request.form)
    op, _sep, target = request.form.get("op", "save").partition(":")
    anchor = _apply(document, op, target)
    if anchor is None:
        abort(400)
    menus.save_draft(db(), channel, document, current_user.id)
    audit(db(), "menu.draft", "channel", channel.id, {"op": op, "target": target or None})
    db().commit()
    if op == "publish":
        errors = menus.validate_menu(document, menus.menu_context(db(), channel, document))
        if errors:
            flash(
                _("The draft is saved, but it cannot be published yet: fix the marked fields."),
                "error",
            )
            return _render_editor(channel, _oa_channels(), 400)
        return redirect(url_for("admin.menus_publish", channel_id=channel.id))
    if op == "save":
        flash(_("Draft saved. Followers see it once it is published."), "success")
    return redirect(url_for("admin.menus", channel=channel.id) + anchor)


def _apply(document: dict, op: str, target: str) -> str | None:
    """Change the document as the pressed button asks; returns the anchor to show, or None
    for a request no form makes."""
    try:
        match op:
            case "save" | "publish":
                return ""
            case "add":
                buttons = _at(document, target)
                if len(buttons) >= menus.MAX_TOP_BUTTONS:
                    return None
                buttons.append(_new_button())
                return f"#b-{target}.{len(buttons) - 1}"
            case "add_sub":
                button = _at(document, target)
                subs = button.setdefault("sub_button", [])
                if len(subs) >= menus.MAX_SUB_BUTTONS:
                    return None
                subs.append(_new_button())
                return f"#b-{target}.sub_button.{len(subs) - 1}"
            case "add_menu":
                if len(document["conditional"]) >= MAX_CONDITIONAL_MENUS:
                    return None
                # Most conditional menus share buttons with the default: start from a copy.
                buttons = copy.deepcopy(document["default"]) or [_new_button()]
                document["conditional"].append({"tag_id": None, "buttons": buttons})
                return f"#menu-conditional.{len(document['conditional']) - 1}"
            case "remove":
                container, index = _container(document, target)
                container.pop(index)
                return _menu_anchor(target)
            case "up" | "down":
                container, index = _container(document, target)
                other = index - 1 if op == "up" else index + 1
                if not 0 <= other < len(container):
                    return None
                container[index], container[other] = container[other], container[index]
                parent = target.rsplit(".", 1)[0]
                return (
                    f"#menu-{parent}.{other}" if parent == "conditional" else f"#b-{parent}.{other}"
                )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return None


def _menu_anchor(path: str) -> str:
    """The menu a position is in ("conditional.2" itself: the list of conditional menus)."""
    parts = path.split(".")
    if parts[0] == "default":
        return "#menu-default"
    return f"#menu-conditional.{parts[1]}" if len(parts) > 2 else "#conditional-menus"


def _at(document: dict, path: str):
    node = document
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def _container(document: dict, path: str) -> tuple[list, int]:
    parent, _sep, index = path.rpartition(".")
    container = _at(document, parent)
    if not isinstance(container, list):
        raise TypeError(path)
    index = int(index)
    if not 0 <= index < len(container):
        raise IndexError(path)
    return container, index


def parse_document(form) -> dict:
    """The menu document the editor's inputs describe, as typed (checked elsewhere)."""
    document = {"default": _parse_buttons(form, "default"), "conditional": []}
    for n in range(MAX_CONDITIONAL_MENUS):
        prefix = f"conditional.{n}"
        if f"{prefix}.tag_id" not in form:
            break
        document["conditional"].append(
            {
                "tag_id": _tag_id(form.get(f"{prefix}.tag_id")),
                "buttons": _parse_buttons(form, f"{prefix}.buttons"),
            }
        )
    return document


def _parse_buttons(form, prefix: str) -> list[dict]:
    buttons = []
    for i in range(MAX_PARSED_BUTTONS):
        at = f"{prefix}.{i}"
        if f"{at}.name" not in form:
            break
        if form.get(f"{at}.kind") == "submenu":
            subs = []
            for j in range(MAX_PARSED_BUTTONS):
                if f"{at}.sub_button.{j}.name" not in form:
                    break
                subs.append(_parse_action(form, f"{at}.sub_button.{j}"))
            buttons.append({"name": form.get(f"{at}.name", "").strip(), "sub_button": subs})
        else:
            buttons.append(_parse_action(form, at))
    return buttons


def _parse_action(form, at: str) -> dict:
    def text(name: str) -> str:
        return form.get(f"{at}.{name}", "").strip()

    kind = text("type")
    button = {"name": text("name"), "type": kind}
    if kind == "click":
        button["key"] = text("key")
        tag_id = _tag_id(form.get(f"{at}.tag_id"))
        if tag_id is not None:
            button["tag_id"] = tag_id
        if reply := text("reply"):
            button["reply"] = reply
    elif kind == "view":
        button["url"] = text("url")
    elif kind == "miniprogram":
        button.update(appid=text("appid"), pagepath=text("pagepath"), url=text("url"))
    return button


def _tag_id(value) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


@bp.post("/menus/<int:channel_id>/discard")
@requires("menus.manage")
def menus_discard(channel_id: int):
    channel = _oa_channel_or_404(channel_id)
    draft = menus.draft_of(db(), channel.id)
    if draft is not None:
        audit(db(), "menu.discard", "channel", channel.id, {"draft": draft.document})
        db().delete(draft)
        db().commit()
        flash(_("Draft discarded: the editor shows the live menus again."), "success")
    return redirect(url_for("admin.menus", channel=channel.id))


# ---- publishing and rolling back ------------------------------------------------------------


@bp.get("/menus/<int:channel_id>/publish")
@requires("menus.manage")
def menus_publish(channel_id: int):
    """The confirmation: what goes live, which tags WeChat learns, which rules change."""
    channel = _oa_channel_or_404(channel_id)
    draft = menus.draft_of(db(), channel.id)
    if draft is None:
        flash(_("There is no draft to publish."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    if menus.validate_menu(draft.document, menus.menu_context(db(), channel, draft.document)):
        flash(_("The draft cannot be published yet: fix the marked fields."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    book = TagBook(db(), workspace_id())
    tag_names = _tag_names(book)
    tag_ids = [t for _, t, _ in menus.menus_of(draft.document) if t is not None]
    return render_template(
        "admin/menus_publish.html",
        channel=channel,
        document=draft.document,
        published=menus.published_of(db(), channel.id),
        tag_names=tag_names,
        new_wechat_tags=[tag_names[t] for t in tag_ids if not book.by_id(t).sync_wechat],
        follower_counts=_follower_counts(channel, draft.document),
        actions=menus.click_actions(draft.document),
        digest=_digest(draft.document),
        **_labels(),
    )


@bp.post("/menus/<int:channel_id>/publish")
@requires("menus.manage")
def menus_publish_confirmed(channel_id: int):
    channel = _oa_channel_or_404(channel_id)
    draft = menus.draft_of(db(), channel.id)
    if draft is None:
        flash(_("There is no draft to publish."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    if request.form.get("digest") != _digest(draft.document):
        flash(_("The draft changed since this page was opened: check it again."), "error")
        return redirect(url_for("admin.menus_publish", channel_id=channel.id))
    version = menus.new_version(channel, draft.document, current_user.id)
    return _publish(channel, version, "menu.publish")


@bp.post("/menus/<int:channel_id>/versions/<int:version_id>/rollback")
@requires("menus.manage")
def menus_rollback(channel_id: int, version_id: int):
    channel = _oa_channel_or_404(channel_id)
    earlier = db().scalar(
        select(MenuVersion).where(
            MenuVersion.id == version_id,
            MenuVersion.channel_id == channel.id,
            MenuVersion.status.in_((MenuStatus.PUBLISHED, MenuStatus.SUPERSEDED)),
        )
    )
    if earlier is None:
        abort(404)
    version = menus.new_version(channel, earlier.document, current_user.id, earlier.id)
    return _publish(channel, version, "menu.rollback")


def _digest(document: dict) -> str:
    """Names the draft the confirmation showed, so what is published is what was seen."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _publish(channel: Channel, version: MenuVersion, action: str):
    followups = Followups()
    previous = menus.published_of(db(), channel.id)
    try:
        result = menus.publish(db(), channel, _client(channel), version, current_user.id, followups)
    except MenuInvalid:
        db().rollback()
        flash(_("This menu breaks a limit now (a tag may be gone): fix it in the draft."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    audit(
        db(),
        action,
        "menu_version",
        version.id,
        {
            "channel_id": channel.id,
            "status": version.status,
            "restored_from": version.restored_from_id,
            "error": version.error,
        },
    )
    db().commit()
    if result.ok:
        harpoon().replies.invalidate(workspace_id())  # the menu's rules reply at once
        _enqueue_followups(followups)
        flash(
            _(
                "Version %(id)s is live. WeChat clients show it within about 5 minutes.",
                id=version.id,
            ),
            "success",
        )
    elif result.restored is False:
        flash(
            _(
                "WeChat refused the menu and putting the live one back failed too: followers "
                "may see no menu until a publish succeeds. %(error)s",
                error=version.error,
            ),
            "error",
        )
    else:
        live = _("version %(id)s", id=previous.id) if previous else _("no menu")
        flash(
            _(
                "WeChat refused the menu: %(error)s. Followers still see %(live)s.",
                error=version.error,
                live=live,
            ),
            "error",
        )
    return redirect(url_for("admin.menus", channel=channel.id) + "#history")


def _enqueue_followups(followups: Followups) -> None:
    """The new WeChat tags' holders are mirrored by the sync job; if Redis is away the
    items wait in the database for the sweeper."""
    try:
        harpoon().queue.enqueue_followups(followups.jobs)
    except RedisError as exc:
        log.warning("tag sync request failed for %s: %s", sorted(followups.jobs), exc)
        flash(_("The job queue is unreachable: the tags are mirrored with its next run."), "error")
