"""The email pages' routes: templates (list, new, edit, archive, restore, preview, test
send), the SMTP server (owners and admins) and the suppressions.

A test send and the connection test talk to the SMTP server within the request, under
outreach.mail's timeout (15 s): an admin asking "does it work?" wants the server's answer
on the page, and the call is one message, rate-limited per address and audited. Sending
to contacts is never done here.
"""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.admin import bp, db, limiter
from app.admin.access import audit, can, ids_of_workspace, requires, workspace_id
from app.admin.email import presenters
from app.admin.email.forms import (
    MAX_SMTP_URL,
    PREVIEW_REFERENCES,
    PreviewForm,
    SmtpForm,
    TemplateForm,
    TestSendForm,
    show_template_errors,
    smtp_url_problem,
    template_problem,
)
from app.admin.lookups import paginate, scoped_or_404
from app.extensions import harpoon
from models import Contact, EmailSuppression, EmailTemplate, Workspace, utcnow
from outreach.email_variables import contact_variables
from outreach.emails import (
    PERSON_VARIABLES,
    EmailTemplateError,
    Tracking,
    build_message,
    new_token,
    render,
)
from outreach.mail import MailConnection, MailError, mailer_for
from outreach.suppressions import unsuppress

PAGE_SIZE = 50
AUDITED = ("name", "subject", "body_html")
AUDIT_TEXT = 200


def _tabs() -> list[tuple[str, str]]:
    tabs = [("admin.email_templates", _("Templates"))]
    if can("content.manage"):
        tabs.append(("admin.email_suppressions", _("Unsubscribes and bounces")))
    if can("email.manage"):
        tabs.append(("admin.email_settings", _("Mail server")))
    return tabs


def _render(template: str, **context):
    return render_template(template, tabs=_tabs(), **context)


def _short(value):
    return value[:AUDIT_TEXT] + "…" if isinstance(value, str) and len(value) > AUDIT_TEXT else value


# ---- templates ----------------------------------------------------------------------------


@bp.get("/email/templates")
@requires("view")
def email_templates():
    archived = request.args.get("archived") == "1"
    rows = (
        db()
        .scalars(
            select(EmailTemplate)
            .where(
                EmailTemplate.workspace_id == workspace_id(),
                EmailTemplate.archived_at.isnot(None)
                if archived
                else EmailTemplate.archived_at.is_(None),
            )
            .order_by(EmailTemplate.updated_at.desc(), EmailTemplate.id.desc())
        )
        .all()
    )
    return _render("admin/email_templates.html", rows=rows, archived=archived)


@bp.route("/email/templates/new", methods=["GET", "POST"])
@requires("content.manage")
def email_templates_new():
    form = TemplateForm()
    if request.method == "GET":
        form.subject.data = _("{{ name }}, an invitation from {{ company }}")
        form.body_html.data = _starter_body()
    if form.validate_on_submit() and form.renders():
        row = EmailTemplate(
            workspace_id=workspace_id(),
            created_by=current_user.id,
            **{name: form[name].data for name in AUDITED},
        )
        db().add(row)
        if _saved(form, row):
            audit(
                db(),
                "email_template.create",
                "email_template",
                row.id,
                {name: _short(form[name].data) for name in AUDITED},
            )
            db().commit()
            flash(_("Template %(name)s saved.", name=row.name), "success")
            return redirect(url_for("admin.email_templates_edit", template_id=row.id))
    return _editor(form, None), (400 if form.errors else 200)


def _starter_body() -> str:
    return _("<p>{{ name }}, hello:</p>\n<p>…</p>\n<p>{{ owner }}</p>")


def _saved(form: TemplateForm, row: EmailTemplate) -> bool:
    try:
        db().flush()
    except IntegrityError:
        db().rollback()
        form.name.errors = [*form.name.errors, _("A template of this name exists already.")]
        return False
    return True


@bp.route("/email/templates/<int:template_id>", methods=["GET", "POST"])
@requires("content.manage")
def email_templates_edit(template_id: int):
    row = scoped_or_404(EmailTemplate, template_id)
    form = TemplateForm(obj=row)
    if form.validate_on_submit() and form.renders():
        before = {name: getattr(row, name) for name in AUDITED}
        for name in AUDITED:
            setattr(row, name, form[name].data)
        changes = {
            name: [_short(before[name]), _short(form[name].data)]
            for name in AUDITED
            if before[name] != form[name].data
        }
        if changes:
            row.updated_at = utcnow()
            if _saved(form, row):
                audit(db(), "email_template.update", "email_template", row.id, changes)
                db().commit()
                flash(_("Template %(name)s saved.", name=row.name), "success")
                return redirect(url_for("admin.email_templates_edit", template_id=row.id))
        else:
            return redirect(url_for("admin.email_templates_edit", template_id=row.id))
    return _editor(form, row), (400 if form.errors else 200)


def _editor(form: TemplateForm, row: EmailTemplate | None):
    return _render(
        "admin/email_template_form.html",
        form=form,
        row=row,
        variables=presenters.variables(),
        preview_form=PreviewForm(formdata=None),
        test_form=TestSendForm(formdata=None),
    )


@bp.post("/email/templates/<int:template_id>/archive")
@requires("content.manage")
def email_templates_archive(template_id: int):
    return _set_archived(scoped_or_404(EmailTemplate, template_id), archived=True)


@bp.post("/email/templates/<int:template_id>/restore")
@requires("content.manage")
def email_templates_restore(template_id: int):
    return _set_archived(scoped_or_404(EmailTemplate, template_id), archived=False)


def _set_archived(row: EmailTemplate, *, archived: bool):
    if (row.archived_at is not None) != archived:
        row.archived_at = utcnow() if archived else None
        action = "email_template.archive" if archived else "email_template.restore"
        audit(db(), action, "email_template", row.id, {"name": row.name})
        db().commit()
    if archived:
        flash(_("Template %(name)s archived.", name=row.name), "success")
        return redirect(url_for("admin.email_templates"))
    flash(_("Template %(name)s restored.", name=row.name), "success")
    return redirect(url_for("admin.email_templates_edit", template_id=row.id))


@bp.post("/email/preview")
@requires("content.manage")
def email_preview():
    """The editor's subject and body rendered as they are now, for the sample person or
    one of the workspace's contacts (htmx swaps this part in)."""
    form = PreviewForm()
    context = {"subject": None, "html": None, "person": None, "problems": []}
    if not form.validate() or not ids_of_workspace(db(), form, PREVIEW_REFERENCES):
        context["problems"] = [error for errors in form.errors.values() for error in errors]
        return render_template("admin/email_preview.html", **context)
    if form.contact_id.data is not None:
        contact = scoped_or_404(Contact, form.contact_id.data)
        variables = contact_variables(db(), contact)
        context["person"] = contact.name or _("Contact #%(id)s", id=contact.id)
    else:
        variables = dict(PERSON_VARIABLES)
        context["person"] = _("the sample person, %(name)s", name=PERSON_VARIABLES["name"])
    variables["unsubscribe_url"] = harpoon().public_url("/e/preview/u")
    if not show_template_errors(form):
        context["problems"] = form.subject.errors + form.body_html.errors
        return render_template("admin/email_preview.html", **context)
    try:
        rendered = render(form.subject.data or "", form.body_html.data or "", variables)
    except EmailTemplateError as exc:  # a contact's value a template stumbles on
        context["problems"] = [template_problem(exc)]
        return render_template("admin/email_preview.html", **context)
    context.update(subject=rendered.subject, html=rendered.html)
    return render_template("admin/email_preview.html", **context)


@bp.post("/email/templates/<int:template_id>/test")
@requires("content.manage")
@limiter.limit("10 per minute")
def email_templates_test(template_id: int):
    """The saved template, for the sample person, to one address, through the workspace's
    server (see the module's note)."""
    row = scoped_or_404(EmailTemplate, template_id)
    form = TestSendForm()
    back = redirect(url_for("admin.email_templates_edit", template_id=row.id) + "#test")
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(_("Test not sent: %(error)s", error=error), "error")
        return back
    settings = harpoon().settings
    mailer = mailer_for(
        db().get(Workspace, workspace_id()),
        default_url=settings.smtp_url,
        default_sender=settings.mail_from,
    )
    if mailer is None:
        flash(_("Test not sent: no mail server is set up."), "error")
        return back
    variables = dict(PERSON_VARIABLES, unsubscribe_url=harpoon().public_url("/e/preview/u"))
    try:
        rendered = render(row.subject, row.body_html, variables)
    except EmailTemplateError as exc:
        flash(_("Test not sent: %(error)s", error=template_problem(exc)), "error")
        return back
    tracking = Tracking(settings.public_base_url, settings.secret_key, new_token())
    message = build_message(rendered, sender=mailer.sender, to=form.to.data, tracking=tracking)
    message.replace_header("Subject", _("[Test] %(subject)s", subject=rendered.subject))
    audit(db(), "email_template.test", "email_template", row.id, {"to": form.to.data})
    db().commit()
    try:
        with mailer.connect() as connection:
            connection.send(message)
    except MailError as exc:
        flash(_("Test not sent: the mail server answered %(error)s", error=str(exc)), "error")
        return back
    flash(_("Test sent to %(to)s.", to=form.to.data), "success")
    return back


# ---- suppressions -------------------------------------------------------------------------


@bp.get("/email/suppressions")
@requires("content.manage")
def email_suppressions():
    search = request.args.get("q", "").strip()[:100]
    reason = request.args.get("reason", "")
    conditions = [EmailSuppression.workspace_id == workspace_id()]
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(EmailSuppression.address.like(f"%{escaped}%", escape="\\"))
    if reason in presenters.REASON_LABELS:
        conditions.append(EmailSuppression.reason == reason)
    else:
        reason = ""
    listed = paginate(
        select(EmailSuppression)
        .where(*conditions)
        .order_by(EmailSuppression.created_at.desc(), EmailSuppression.address),
        PAGE_SIZE,
    )
    counts = dict(
        db()
        .execute(
            select(EmailSuppression.reason, func.count())
            .where(EmailSuppression.workspace_id == workspace_id())
            .group_by(EmailSuppression.reason)
        )
        .all()
    )
    return _render(
        "admin/email_suppressions.html",
        listed=listed,
        search=search,
        reason=reason,
        counts=counts,
        reasons=presenters.REASON_LABELS,
    )


@bp.post("/email/suppressions/remove")
@requires("email.manage")
def email_suppressions_remove():
    address = request.form.get("address", "")[:320]
    removed = unsuppress(db(), workspace_id(), address)
    if removed is None:
        flash(_("%(address)s is not on the list.", address=address), "error")
    else:
        audit(
            db(),
            "email_suppression.remove",
            "email_suppression",
            removed.address,
            {"reason": removed.reason, "detail": removed.detail},
        )
        db().commit()
        flash(_("%(address)s may be mailed again.", address=removed.address), "success")
    return redirect(url_for("admin.email_suppressions"))


# ---- the workspace's own SMTP server -----------------------------------------------------


@bp.route("/email/settings", methods=["GET", "POST"])
@requires("email.manage")
def email_settings():
    workspace = db().get(Workspace, workspace_id())
    shown = presenters.smtp_settings(workspace.smtp_url)
    form = SmtpForm(
        data={
            "host": shown.host,
            "port": shown.port,
            "security": shown.security,
            "username": shown.username,
            "mail_from": workspace.mail_from or "",
        }
    )
    if form.validate_on_submit():
        url = _smtp_url_of(form, workspace)
        if url is not False:
            return _save_smtp(workspace, url, form.mail_from.data or None)
    return _settings_page(form, shown), (400 if form.errors else 200)


def _smtp_url_of(form: SmtpForm, workspace: Workspace):
    """The URL the form asks for ("" clears the server), or False with the field errors."""
    if not form.host.data:
        return ""
    problem = smtp_url_problem(form.host.data, form.port.data, form.security.data)
    if problem:
        name, message = problem
        form[name].errors = [*form[name].errors, message]
        return False
    password = form.password.data or ""
    same_user = form.username.data == presenters.smtp_settings(workspace.smtp_url).username
    if not password and same_user:
        password = presenters.stored_password(workspace.smtp_url)
    url = presenters.smtp_url(
        form.host.data.lower(), form.port.data, form.security.data, form.username.data, password
    )
    if len(url) > MAX_SMTP_URL:
        form.password.errors = [*form.password.errors, _("The settings are too long.")]
        return False
    return url


def _save_smtp(workspace: Workspace, url: str, mail_from: str | None):
    before_shown = presenters.smtp_settings(workspace.smtp_url)
    before_url = workspace.smtp_url
    before_from = workspace.mail_from
    workspace.smtp_url = url or None
    workspace.mail_from = mail_from
    after_shown = presenters.smtp_settings(workspace.smtp_url)
    changes = {}
    for name in ("host", "port", "security", "username"):
        if getattr(before_shown, name) != getattr(after_shown, name):
            changes[name] = [getattr(before_shown, name), getattr(after_shown, name)]
    if (before_url or None) != (url or None) and not changes:
        changes["password"] = "changed"  # never the password itself
    if before_from != mail_from:
        changes["mail_from"] = [before_from, mail_from]
    if changes:
        audit(db(), "smtp.set" if url else "smtp.clear", "workspace", workspace.id, changes)
        db().commit()
        flash(_("Mail server saved.") if url else _("Mail server removed."), "success")
    return redirect(url_for("admin.email_settings"))


def _settings_page(form: SmtpForm, shown: presenters.SmtpSettings):
    settings = harpoon().settings
    return _render(
        "admin/email_settings.html",
        form=form,
        shown=shown,
        security_labels=presenters.SECURITY_LABELS,
        service_default=bool(settings.smtp_url),
        service_from=settings.mail_from,
    )


@bp.post("/email/settings/test")
@requires("email.manage")
@limiter.limit("10 per minute")
def email_settings_test():
    """Connect and log in to the server in force (the workspace's, else the service's)."""
    settings = harpoon().settings
    workspace = db().get(Workspace, workspace_id())
    url = workspace.smtp_url or settings.smtp_url
    if not url:
        flash(_("No mail server is set up."), "error")
        return redirect(url_for("admin.email_settings"))
    audit(db(), "smtp.test", "workspace", workspace.id, {"own": bool(workspace.smtp_url)})
    db().commit()
    try:
        MailConnection(url, guarded=bool(workspace.smtp_url)).close()
    except MailError as exc:
        flash(_("Could not connect: %(error)s", error=str(exc)), "error")
    else:
        flash(_("Connected and signed in to the mail server."), "success")
    return redirect(url_for("admin.email_settings"))
