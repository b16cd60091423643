"""Forms: lead forms Harpoon hosts (which fields they ask, consent, thank-you text, the tags
a submission gives, the content the follow-up hands out), their tracked links, and their
submissions with the contact each made and how its follow-up went.

outreach.library checks the editor and counts; the public form and the follow-ups are
outreach.forms' and app/public.py's.
"""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_login import current_user
from marshmallow import ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts.presenters import tag_filter_options
from app.admin.content import (
    audit_changes,
    for_audit,
    forget_links,
    link_form_context,
    posted_link,
    translated,
    window,
)
from app.admin.labels import CONTENT_KIND_LABELS, TAG_GROUP_LABELS, tag_label
from app.admin.lookups import Archivable, archive_or_restore, scoped_or_404
from app.admin.masking import reveal_for
from core.forms import unflatten
from crm.tags import TagBook, workspace_tag_ids
from models import Content, FollowUpStatus, Form, FormField, User
from outreach.content import live_contents
from outreach.library import editing, stats

PAGE_SIZE = 50
FIELD_LABELS = {
    FormField.NAME: lazy_pgettext("person", "Name"),
    FormField.COMPANY: _l("Company"),
    FormField.TITLE: _l("Job title"),
    FormField.PHONE: _l("Phone"),
    FormField.EMAIL: _l("Email"),
}
REQUIREMENT_LABELS = {"": _l("Not asked"), "optional": _l("Optional"), "required": _l("Required")}
FOLLOW_UP_LABELS = {
    FollowUpStatus.NONE: _l("None"),
    FollowUpStatus.PENDING: _l("Waiting"),
    FollowUpStatus.SENDING: _l("Sending"),
    FollowUpStatus.SENT: _l("Sent"),
    FollowUpStatus.FAILED: _l("Failed"),
}
FOLLOW_UP_BADGES = {
    FollowUpStatus.PENDING: "warn",
    FollowUpStatus.SENDING: "warn",
    FollowUpStatus.SENT: "ok",
    FollowUpStatus.FAILED: "error",
}
FOLLOW_UP_CHANNELS = {"wechat": _l("WeChat"), "email": _l("Email")}
MULTIPLE_INPUTS = ("tag_ids",)


# ---- the list -----------------------------------------------------------------------------


@bp.get("/forms")
@requires("view")
def forms():
    days, since = window()
    archived = request.args.get("archived") == "1"
    return render_template(
        "admin/forms.html",
        rows=stats.forms_with_totals(db(), workspace_id(), since, archived=archived),
        days=days,
        windows=stats.WINDOWS,
        archived=archived,
        field_labels=FIELD_LABELS,
    )


# ---- new and edit -------------------------------------------------------------------------


def _posted() -> dict:
    """The editor as typed, by input name (the tags as a list)."""
    return {
        name: request.form.getlist(name) if name in MULTIPLE_INPUTS else request.form.get(name, "")
        for name in request.form
        if name != "csrf_token"
    }


def _choices(row: Form | None) -> tuple[editing.FormChoices, list, list]:
    """What the editor offers: the workspace's tags by group, and the library's content
    (an archived download the form still names shows, marked, so its mistake shows)."""
    ws = workspace_id()
    book = TagBook(db(), ws)
    contents = live_contents(db(), ws)
    offered = [
        (str(item.id), f"{item.title} · {CONTENT_KIND_LABELS.get(item.kind, item.kind)}")
        for item in contents
    ]
    current = (
        db().get(Content, row.download_content_id) if row and row.download_content_id else None
    )
    if current is not None and current.archived_at is not None:
        offered.append((str(current.id), _("%(title)s (archived)", title=current.title)))
    tag_groups = [
        (str(group), [(str(tag_id), label) for tag_id, label in tags])
        for group, tags in tag_filter_options(book)
    ]
    choices = editing.FormChoices(
        tag_ids=frozenset(workspace_tag_ids(db(), ws)),
        content_ids=frozenset(item.id for item in contents),
    )
    return choices, tag_groups, offered


def _editor(row: Form | None, values: dict, errors=None, status: int = 200):
    _known, tag_groups, contents = _choices(row)
    return render_template(
        "admin/form_edit.html",
        row=row,
        values=values,
        errors=errors or {},
        field_labels=FIELD_LABELS,
        requirement_labels=REQUIREMENT_LABELS,
        tag_groups=tag_groups,
        contents=contents,
        limits={
            "title": editing.MAX_TITLE,
            "intro": editing.MAX_INTRO,
            "text": editing.MAX_FORM_TEXT,
            "message": editing.MAX_FOLLOW_UP,
        },
    ), status


def _save(row: Form | None):
    values = _posted()
    choices, _tag_groups, _contents = _choices(row)
    before = editing.audited(row) if row else None
    try:
        checked = editing.load_form_definition(unflatten(values.items()), choices)
        saved = editing.save_form(db(), workspace_id(), checked, user_id=current_user.id, row=row)
    except ValidationError as exc:
        db().rollback()
        return _editor(row, values, translated(exc), 400)
    if before is None:
        audit(db(), "form.create", "form", saved.id, for_audit(editing.audited(saved)))
    else:
        changes = audit_changes(before, editing.audited(saved))
        if changes:
            audit(db(), "form.update", "form", saved.id, changes)
    db().commit()
    forget_links(form_id=saved.id)
    flash(_("Form “%(title)s” saved.", title=saved.title), "success")
    return redirect(url_for("admin.forms_detail", form_id=saved.id))


@bp.route("/forms/new", methods=["GET", "POST"])
@requires("content.manage")
def forms_new():
    if request.method == "POST":
        return _save(None)
    return _editor(None, editing.form_values())


@bp.route("/forms/<int:form_id>/edit", methods=["GET", "POST"])
@requires("content.manage")
def forms_edit(form_id: int):
    row = scoped_or_404(Form, form_id)
    if request.method == "POST":
        return _save(row)
    return _editor(row, editing.form_values(row))


ARCHIVABLE = Archivable(
    kind="form",
    set_archived=editing.set_archived,
    after_commit=lambda row: forget_links(form_id=row.id),
    archived=lambda row: _("Form “%(title)s” archived: its links no longer open.", title=row.title),
    restored=lambda row: _("Form “%(title)s” restored.", title=row.title),
    list_url=lambda: url_for("admin.forms"),
    detail_url=lambda row: url_for("admin.forms_detail", form_id=row.id),
)


@bp.post("/forms/<int:form_id>/archive")
@requires("content.manage")
def forms_archive(form_id: int):
    return archive_or_restore(scoped_or_404(Form, form_id), True, ARCHIVABLE)


@bp.post("/forms/<int:form_id>/restore")
@requires("content.manage")
def forms_restore(form_id: int):
    return archive_or_restore(scoped_or_404(Form, form_id), False, ARCHIVABLE)


# ---- one form -----------------------------------------------------------------------------


@bp.get("/forms/<int:form_id>")
@requires("view")
def forms_detail(form_id: int):
    return _detail(scoped_or_404(Form, form_id))


@bp.post("/forms/<int:form_id>/links")
@requires("content.manage")
def forms_links_new(form_id: int):
    row = scoped_or_404(Form, form_id)
    back = url_for("admin.forms_detail", form_id=row.id, days=request.args.get("days"))
    if row.archived_at is not None:
        flash(_("An archived form gets no new links: restore it first."), "error")
        return redirect(back)
    channels = editing.oa_channels(db(), row.workspace_id)
    link, values, errors = posted_link(channels, form_id=row.id)
    if link is None:
        return _detail(row, link_context=link_form_context(channels, values, errors), status=400)
    return redirect(f"{back}#links")


def _detail(row: Form, link_context: dict | None = None, status: int = 200):
    ws, session = row.workspace_id, db()
    days, since = window()
    book = TagBook(session, ws)
    submissions = stats.submissions_page(
        session, ws, row.id, page=request.args.get("page", 1, type=int), page_size=PAGE_SIZE
    )
    return render_template(
        "admin/form.html",
        row=row,
        days=days,
        windows=stats.WINDOWS,
        totals=stats.form_totals(session, ws, row.id, since),
        links=stats.link_stats(session, ws, since, form_id=row.id),
        submissions=submissions,
        reveal=reveal_for(
            session,
            ws,
            current_user,
            [item.contact.id for item in submissions.items if item.contact],
        ),
        tags=[tag for tag_id in row.tag_ids or [] if (tag := book.by_id(tag_id))],
        download=session.get(Content, row.download_content_id) if row.download_content_id else None,
        author=session.get(User, row.created_by) if row.created_by else None,
        tag_label=tag_label,
        group_labels=TAG_GROUP_LABELS,
        field_labels=FIELD_LABELS,
        requirement_labels=REQUIREMENT_LABELS,
        follow_up_labels=FOLLOW_UP_LABELS,
        follow_up_badges=FOLLOW_UP_BADGES,
        follow_up_channels=FOLLOW_UP_CHANNELS,
        **(link_context or link_form_context(editing.oa_channels(session, ws))),
    ), status
