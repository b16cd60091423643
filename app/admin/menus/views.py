"""The menu pages' routes: per Official Account, the draft editor (the default menu and
one conditional menu per tag), publishing with a confirmation, preview as a follower, and
the history with rollback. Every button of the editor saves the draft, then does what it
says (add, remove, move, publish), so nothing typed is lost."""

import logging

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from redis.exceptions import RedisError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts.presenters import tag_filter_options
from app.admin.lookups import scoped_or_404
from app.admin.menus.forms import apply, digest, parse_document, starter_document
from app.admin.menus.presenters import follower_choices, labels, tag_names, wechat_refusal
from app.extensions import harpoon
from core.jobs import Followups
from crm.channels import channels_of
from crm.tags import TagBook
from crm.users import user_names
from models import Channel, ChannelKind, MenuStatus, MenuVersion
from outreach import menus
from outreach.menus import MenuInvalid
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

HISTORY_ROWS = 30
FOLLOWER_CHOICES = 100
IS_OA = Channel.kind == ChannelKind.OA


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
    document = document or starter_document()
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
        history=menus.menu_history(db(), channel, HISTORY_ROWS),
        users=user_names(db(), workspace_id()),
        tag_options=tag_filter_options(book),
        tag_names=tag_names(book),
        follower_counts=menus.follower_counts(db(), channel, document),
        hand_rules=menus.hand_rules(db(), workspace_id(), published),
        followers=follower_choices(menus.recent_followers(db(), channel, FOLLOWER_CHOICES)),
        preview=_follower_preview(channel, published),
        **labels(),
    )
    return page, status


def _oa_channels() -> list[Channel]:
    return channels_of(db(), workspace_id(), ChannelKind.OA)


# ---- preview as a follower --------------------------------------------------------------


def _follower_preview(channel: Channel, published: MenuVersion | None) -> dict | None:
    """What WeChat shows the follower in ?openid= (menu/trymatch), and what Harpoon expects
    from their tags; None when no follower is asked about."""
    openid = request.args.get("openid", "").strip()
    if not openid:
        return None
    preview = {"openid": openid, "contact": menus.follower(db(), channel, openid)}
    try:
        buttons = menus.try_match(_client(channel), openid)
    except WeChatApiError as exc:
        preview["error"] = wechat_refusal(exc)
        return preview
    preview["buttons"] = buttons
    if buttons is not None and published is not None:
        preview["found"], preview["tag_id"] = menus.matched_menu(published.document, buttons)
    if preview["contact"] is not None and published is not None:
        preview["expected"] = menus.expected_menu(db(), preview["contact"], published.document)
    return preview


def _client(channel: Channel):
    return harpoon().wechat.oa(channel.app_id, channel.secret)


# ---- editing the draft --------------------------------------------------------------------


@bp.post("/menus/<int:channel_id>/draft")
@requires("menus.manage")
def menus_draft(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_OA)
    document = parse_document(request.form)
    op, _sep, target = request.form.get("op", "save").partition(":")
    anchor = apply(document, op, target)
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


@bp.post("/menus/<int:channel_id>/discard")
@requires("menus.manage")
def menus_discard(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_OA)
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
    channel = scoped_or_404(Channel, channel_id, IS_OA)
    draft = menus.draft_of(db(), channel.id)
    if draft is None:
        flash(_("There is no draft to publish."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    if menus.validate_menu(draft.document, menus.menu_context(db(), channel, draft.document)):
        flash(_("The draft cannot be published yet: fix the marked fields."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    book = TagBook(db(), workspace_id())
    names = tag_names(book)
    tag_ids = [t for _, t, _ in menus.menus_of(draft.document) if t is not None]
    return render_template(
        "admin/menus_publish.html",
        channel=channel,
        document=draft.document,
        published=menus.published_of(db(), channel.id),
        tag_names=names,
        new_wechat_tags=[names[t] for t in tag_ids if not book.by_id(t).sync_wechat],
        follower_counts=menus.follower_counts(db(), channel, draft.document),
        actions=menus.click_actions(draft.document),
        digest=digest(draft.document),
        **labels(),
    )


@bp.post("/menus/<int:channel_id>/publish")
@requires("menus.manage")
def menus_publish_confirmed(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_OA)
    draft = menus.draft_of(db(), channel.id)
    if draft is None:
        flash(_("There is no draft to publish."), "error")
        return redirect(url_for("admin.menus", channel=channel.id))
    if request.form.get("digest") != digest(draft.document):
        flash(_("The draft changed since this page was opened: check it again."), "error")
        return redirect(url_for("admin.menus_publish", channel_id=channel.id))
    version = menus.new_version(channel, draft.document, current_user.id)
    return _publish(channel, version, "menu.publish")


@bp.post("/menus/<int:channel_id>/versions/<int:version_id>/rollback")
@requires("menus.manage")
def menus_rollback(channel_id: int, version_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_OA)
    earlier = scoped_or_404(
        MenuVersion,
        version_id,
        MenuVersion.channel_id == channel.id,
        MenuVersion.status.in_((MenuStatus.PUBLISHED, MenuStatus.SUPERSEDED)),
    )
    version = menus.new_version(channel, earlier.document, current_user.id, earlier.id)
    return _publish(channel, version, "menu.rollback")


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
