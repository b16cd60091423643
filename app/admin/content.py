"""Content library: what marketers register (an article elsewhere, or a page Harpoon hosts),
its tracked links (one per placement: a menu, a push, an article, a QR code...), each
staff member's personal share link, and what readers did with it: views per day, per link
and placement, the accounts reached, the latest readers and through whose share.

outreach.library checks the forms and counts (one statement per figure); the public pages
(app/public.py) record the views. The helpers for windows and tracked links here serve
the forms pages too.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.channels import ACCOUNT_TYPE_LABELS
from app.admin.labels import CONTENT_KIND_LABELS, LINK_MEDIUM_LABELS
from app.admin.lookups import Archivable, archive_or_restore, scoped_or_404
from app.extensions import harpoon
from core.forms import flat_errors
from models import Channel, Content, LinkMedium, Staff, TrackedLink, User
from outreach.content import create_link, link_codes, link_path, share_path
from outreach.library import editing, stats
from outreach.qr_codes import local_days

PAGE_SIZE = 50
RECENT_VIEWS = 20
AUDIT_TEXT = 200  # a hosted page's body is long: the audit log keeps its start


def timezone() -> str:
    return g.get("workspace_timezone") or "Asia/Shanghai"


def window() -> tuple[int, datetime]:
    """The window the page counts over (?days=7|30|90) and its first moment."""
    days = stats.window_days(request.args.get("days", type=int))
    return days, stats.window_start(timezone(), days)


def translated(exc: ValidationError) -> dict[str, list[str]]:
    """The schemas' messages by input name, in the user's language."""
    return {
        name: [_(message) for message in messages]
        for name, messages in flat_errors(exc.messages).items()
    }


def for_audit(values: dict) -> dict:
    """What the audit log keeps: long texts cut short."""
    return {
        name: value[:AUDIT_TEXT] + "…"
        if isinstance(value, str) and len(value) > AUDIT_TEXT
        else value
        for name, value in values.items()
    }


def audit_changes(before: dict, after: dict) -> dict:
    return {
        name: [for_audit({name: before[name]})[name], for_audit({name: after[name]})[name]]
        for name in after
        if before[name] != after[name]
    }


# ---- tracked links (content and forms) ----------------------------------------------------


def link_url(link: TrackedLink) -> str:
    return harpoon().public_url(link_path(link))


def share_url(link: TrackedLink, staff: Staff) -> str:
    """A staff member's personal link: views through it count as their shares."""
    return harpoon().public_url(share_path(harpoon().signer, link, staff.id))


def link_form_context(
    channels: list[Channel], values: dict | None = None, errors: dict | None = None
) -> dict:
    """What the "new tracked link" form shows: the OA choices (the first is the default)."""
    return {
        "link_values": values
        or {
            "medium": LinkMedium.OTHER.value,
            "channel_id": str(channels[0].id) if channels else "",
        },
        "link_errors": errors or {},
        "link_channels": [
            (str(channel.id), f"{channel.name} · {ACCOUNT_TYPE_LABELS[channel.account_type]}")
            if channel.account_type in ACCOUNT_TYPE_LABELS
            else (str(channel.id), channel.name)
            for channel in channels
        ],
        "medium_labels": LINK_MEDIUM_LABELS,
        "link_url": link_url,
    }


def posted_link(
    channels: list[Channel], *, content_id: int | None = None, form_id: int | None = None
) -> tuple[TrackedLink | None, dict, dict]:
    """Create the tracked link the form posts: (link, values, {}) or (None, values, errors).
    The caller refuses an archived target first (its links would not open)."""
    values = {name: request.form.get(name, "") for name in ("medium", "label", "channel_id")}
    try:
        checked = editing.load_link(values, frozenset(channel.id for channel in channels))
    except ValidationError as exc:
        return None, values, translated(exc)
    ws = workspace_id()
    link = create_link(
        db(),
        ws,
        content_id=content_id,
        form_id=form_id,
        channel_id=checked["channel_id"],
        medium=checked["medium"],
        label=checked["label"],
        created_by=current_user.id,
    )
    audit(
        db(),
        "tracked_link.create",
        "tracked_link",
        link.id,
        {
            "code": link.code,
            "content_id": content_id,
            "form_id": form_id,
            "medium": link.medium,
            "label": link.label,
            "channel_id": link.channel_id,
        },
    )
    db().commit()
    flash(_("Tracked link %(url)s created.", url=link_url(link)), "success")
    return link, values, {}


def forget_links(*, content_id: int | None = None, form_id: int | None = None) -> None:
    """After a commit that changes what links lead to: this process's link cache reads the
    change at once (other processes within its few seconds)."""
    codes = link_codes(db(), workspace_id(), content_id=content_id, form_id=form_id)
    for code in codes:
        harpoon().links.invalidate(code)


@bp.post("/links/<int:link_id>/archive")
@requires("content.manage")
def links_archive(link_id: int):
    """Retire a link: opening it finds nothing from now on; its views stay counted."""
    link = scoped_or_404(TrackedLink, link_id)
    if editing.set_archived(db(), link, True):
        audit(db(), "tracked_link.archive", "tracked_link", link.id, {"code": link.code})
        db().commit()
        harpoon().links.invalidate(link.code)
    flash(_("Link %(code)s retired: it no longer opens.", code=link.code), "success")
    if link.form_id is not None:
        return redirect(url_for("admin.forms_detail", form_id=link.form_id))
    return redirect(url_for("admin.content_detail", content_id=link.content_id))


# ---- the list -----------------------------------------------------------------------------


@bp.get("/content")
@requires("view")
def content():
    ws = workspace_id()
    days, since = window()
    archived = request.args.get("archived") == "1"
    search = request.args.get("q", "").strip()
    listed = stats.content_page(
        db(),
        ws,
        since,
        page=request.args.get("page", 1, type=int),
        page_size=PAGE_SIZE,
        archived=archived,
        search=search,
    )
    return render_template(
        "admin/contents.html",
        listed=listed,
        days=days,
        windows=stats.WINDOWS,
        archived=archived,
        search=search,
        kind_labels=CONTENT_KIND_LABELS,
    )


# ---- new and edit -------------------------------------------------------------------------


SOURCES = ("url", "body")


def _posted_content() -> tuple[str, dict]:
    """(where it lives, the inputs); the input of the other place is dropped, so switching
    between a link and a hosted page needs no emptying first."""
    source = request.form.get("source")
    source = source if source in SOURCES else "url"
    names = ("kind", "title", "url", "body", "summary", "topics", "products")
    values = {name: request.form.get(name, "") for name in names}
    return source, values


def _editor(row: Content | None, source: str, values: dict, errors=None, status: int = 200):
    return render_template(
        "admin/content_form.html",
        row=row,
        source=source,
        values=values,
        errors=errors or {},
        kind_labels=CONTENT_KIND_LABELS,
        limits={
            "title": editing.MAX_TITLE,
            "url": editing.MAX_URL,
            "summary": editing.MAX_SUMMARY,
            "body": editing.MAX_BODY,
            "names": editing.MAX_NAMES,
            "name": editing.MAX_NAME,
        },
    ), status


def _save(row: Content | None):
    source, values = _posted_content()
    checked = {**values, ("body" if source == "url" else "url"): ""}
    before = editing.audited(row) if row else None
    try:
        saved = editing.save_content(
            db(),
            workspace_id(),
            editing.load_content(checked),
            user_id=current_user.id,
            content=row,
        )
    except ValidationError as exc:
        db().rollback()
        errors = translated(exc)
        if source == "body" and "url" in errors:  # "neither" shows on the input in view
            errors.setdefault("body", []).extend(errors.pop("url"))
        return _editor(row, source, values, errors, 400)
    if before is None:
        audit(db(), "content.create", "content", saved.id, for_audit(editing.audited(saved)))
    else:
        changes = audit_changes(before, editing.audited(saved))
        if changes:
            audit(db(), "content.update", "content", saved.id, changes)
    db().commit()
    forget_links(content_id=saved.id)
    flash(_("“%(title)s” saved.", title=saved.title), "success")
    return redirect(url_for("admin.content_detail", content_id=saved.id))


@bp.route("/content/new", methods=["GET", "POST"])
@requires("content.manage")
def content_new():
    if request.method == "POST":
        return _save(None)
    return _editor(None, "url", editing.content_form())


@bp.route("/content/<int:content_id>/edit", methods=["GET", "POST"])
@requires("content.manage")
def content_edit(content_id: int):
    row = scoped_or_404(Content, content_id)
    if request.method == "POST":
        return _save(row)
    return _editor(row, "url" if row.url else "body", editing.content_form(row))


ARCHIVABLE = Archivable(
    kind="content",
    set_archived=editing.set_archived,
    after_commit=lambda row: forget_links(content_id=row.id),
    archived=lambda row: _("“%(title)s” archived: its links no longer open.", title=row.title),
    restored=lambda row: _("“%(title)s” restored.", title=row.title),
    list_url=lambda: url_for("admin.content"),
    detail_url=lambda row: url_for("admin.content_detail", content_id=row.id),
)


@bp.post("/content/<int:content_id>/archive")
@requires("content.manage")
def content_archive(content_id: int):
    return archive_or_restore(scoped_or_404(Content, content_id), True, ARCHIVABLE)


@bp.post("/content/<int:content_id>/restore")
@requires("content.manage")
def content_restore(content_id: int):
    return archive_or_restore(scoped_or_404(Content, content_id), False, ARCHIVABLE)


# ---- one item -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareRow:
    staff: Staff
    url: str
    yours: bool


@bp.get("/content/<int:content_id>")
@requires("view")
def content_detail(content_id: int):
    return _detail(scoped_or_404(Content, content_id))


@bp.post("/content/<int:content_id>/links")
@requires("content.manage")
def content_links_new(content_id: int):
    row = scoped_or_404(Content, content_id)
    back = url_for("admin.content_detail", content_id=row.id, days=request.args.get("days"))
    if row.archived_at is not None:
        flash(_("Archived content gets no new links: restore it first."), "error")
        return redirect(back)
    channels = editing.oa_channels(db(), row.workspace_id)
    link, values, errors = posted_link(channels, content_id=row.id)
    if link is None:
        return _detail(row, link_context=link_form_context(channels, values, errors), status=400)
    return redirect(f"{back}#links")


def _detail(row: Content, link_context: dict | None = None, status: int = 200):
    ws, session = row.workspace_id, db()
    days, since = window()
    channels = editing.oa_channels(session, ws)
    links = stats.link_stats(session, ws, since, content_id=row.id)
    chart_days = stats.daily_views(
        session, ws, timezone(), local_days(timezone(), days), content_id=row.id
    )
    return render_template(
        "admin/content.html",
        row=row,
        days=days,
        windows=stats.WINDOWS,
        totals=stats.content_totals(session, ws, row.id, since),
        links=links,
        media=stats.medium_stats(session, ws, since, content_id=row.id),
        accounts=stats.top_accounts(session, ws, row.id, since),
        recent=stats.recent_views(session, ws, row.id, RECENT_VIEWS),
        shares=_share_rows(links),
        chart={
            "days": [day.day.isoformat() for day in chart_days],
            "views": [day.views for day in chart_days],
            "readers": [day.readers for day in chart_days],
            "names": {"views": _("Views"), "readers": _("Readers")},
        },
        author=session.get(User, row.created_by) if row.created_by else None,
        paragraphs=len([part for part in re.split(r"\n\s*\n", row.body or "") if part.strip()]),
        kind_labels=CONTENT_KIND_LABELS,
        **(link_context or link_form_context(channels)),
    ), status


def _share_rows(links: list[stats.LinkStats]) -> dict:
    """Each active staff member's personal link through the chosen tracked link (?share=
    its id; the newest by default), the signed-in user's own first."""
    if not links:
        return {"link": None, "rows": [], "links": []}
    wanted = request.args.get("share", type=int)
    chosen = next((item.link for item in links if item.link.id == wanted), links[0].link)
    rows = [
        ShareRow(staff, share_url(chosen, staff), staff.user_id == current_user.id)
        for staff in editing.active_staff(db(), chosen.workspace_id)
    ]
    rows.sort(key=lambda share: not share.yours)
    return {"link": chosen, "rows": rows, "links": [item.link for item in links]}
