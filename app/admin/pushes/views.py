"""The push pages' routes: the list and settings, a push's editor, its preview on test
followers, its send, approval and cancellation, and its delivery report."""

import logging

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import select

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.lookups import paginate, scoped_or_404
from app.admin.pushes.forms import SettingsForm, fill, form_of, push_form, zone
from app.admin.pushes.presenters import funnel, labels
from app.extensions import harpoon
from core.jobs import Job
from crm.channels import channels_of
from crm.directory import contacts_by_openid, openids_of
from crm.users import user_names
from models import (
    Channel,
    ChannelKind,
    EmailTemplate,
    Material,
    MaterialKind,
    Push,
    PushStatus,
    SavedSegment,
    Workspace,
    utcnow,
)
from outreach import materials, pushes
from outreach.pushes import PushError
from outreach.segments import saved_segments
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

PAGE_SIZE = 50


def _oa_channels() -> list[Channel]:
    return channels_of(db(), workspace_id(), ChannelKind.OA, by_name=True)


def _library() -> list[Material]:
    return materials.choices(db(), workspace_id(), (MaterialKind.ARTICLE, MaterialKind.IMAGE))


def _email_templates() -> list[EmailTemplate]:
    return list(
        db().scalars(
            select(EmailTemplate)
            .where(
                EmailTemplate.workspace_id == workspace_id(), EmailTemplate.archived_at.is_(None)
            )
            .order_by(EmailTemplate.name)
        )
    )


def _can_push() -> bool:
    """An OA to push to, or an email template to send."""
    return bool(_oa_channels()) or bool(_email_templates())


def _form(**kwargs):
    segments = saved_segments(db(), workspace_id())
    return push_form(_oa_channels(), segments, _library(), _email_templates(), **kwargs)


@bp.get("/pushes", endpoint="pushes")
@requires("view")
def pushes_list():
    ws = workspace_id()
    listed = paginate(pushes.pushes_query(ws), PAGE_SIZE)
    workspace = db().get(Workspace, ws)
    settings = None
    if can("pushes.approve"):
        settings = SettingsForm(
            formdata=None,
            threshold=workspace.push_approval_threshold,
            testers="\n".join(_tester_openids(workspace)),
        )
    return render_template(
        "admin/pushes.html",
        rows=listed.rows,
        page=listed.page,
        pages=listed.pages,
        settings=settings,
        threshold=workspace.push_approval_threshold,
        has_channel=_can_push(),
        **labels(),
    )


@bp.route("/pushes/new", methods=["GET", "POST"])
@requires("pushes.manage")
def pushes_new():
    form = _form()
    if request.method == "GET":
        segment = request.args.get("segment", "")
        if segment in {c.value for c in form.audience.choices}:
            form.audience.data = segment
        return render_template("admin/push_form.html", form=form, push=None)
    push = Push(workspace_id=workspace_id(), created_by=current_user.id)
    if not fill(db(), push, form):
        return render_template("admin/push_form.html", form=form, push=None), 400
    db().add(push)
    db().flush()
    audit(db(), "push.create", "push", push.id, {"name": push.name, "content": push.content})
    db().commit()
    flash(_("Draft saved: preview it on your test followers, then send it."), "success")
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.route("/pushes/<int:push_id>/edit", methods=["GET", "POST"])
@requires("pushes.manage")
def pushes_edit(push_id: int):
    push = scoped_or_404(Push, push_id)
    if push.status not in (PushStatus.DRAFT, PushStatus.AWAITING_APPROVAL):
        flash(_("Only a draft can be changed."), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    if request.method == "GET":
        segments = saved_segments(db(), workspace_id())
        form = form_of(push, _oa_channels(), segments, _library(), _email_templates())
        return render_template("admin/push_form.html", form=form, push=push)
    form = _form()
    if not fill(db(), push, form):
        db().rollback()
        return render_template("admin/push_form.html", form=form, push=push), 400
    push.status = PushStatus.DRAFT  # a changed push needs approving again
    push.approved_by = push.approved_at = None
    audit(db(), "push.update", "push", push.id, {"name": push.name, "content": push.content})
    db().commit()
    flash(_("Draft saved."), "success")
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.get("/pushes/<int:push_id>")
@requires("view")
def pushes_detail(push_id: int):
    push = scoped_or_404(Push, push_id)
    batches = pushes.batches_of(db(), push)
    audience = None
    if push.status in (PushStatus.DRAFT, PushStatus.AWAITING_APPROVAL, PushStatus.SCHEDULED):
        try:
            audience = pushes.count_audience(db(), push)
        except PushError as exc:
            flash(str(exc), "error")
    people = [i for i in (push.created_by, push.approved_by) if i]
    return render_template(
        "admin/push.html",
        push=push,
        channel=db().get(Channel, push.channel_id) if push.channel_id else None,
        email_template=_template_of(push),
        segment=db().get(SavedSegment, push.segment_id) if push.segment_id else None,
        batches=batches,
        audience=audience,
        threshold=db().get(Workspace, push.workspace_id).push_approval_threshold,
        funnel=funnel(push.report or {}),
        names=user_names(db(), push.workspace_id, people),
        **labels(),
    )


def _template_of(push: Push) -> EmailTemplate | None:
    template_id = (push.content or {}).get("email_template_id")
    if template_id is None:
        return None
    return db().scalar(
        select(EmailTemplate).where(
            EmailTemplate.id == template_id, EmailTemplate.workspace_id == push.workspace_id
        )
    )


@bp.post("/pushes/<int:push_id>/preview")
@requires("pushes.manage")
def pushes_preview(push_id: int):
    push = scoped_or_404(Push, push_id)
    if push.channel_id is None:  # an email push: its template's editor previews it
        flash(_("An email push is previewed in its template's editor."), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    workspace = db().get(Workspace, push.workspace_id)
    if not workspace.push_test_contact_ids:
        flash(_("Add test followers on the pushes page first."), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    channel = db().get(Channel, push.channel_id)
    try:
        client = harpoon().wechat.oa(channel.app_id, channel.secret)
        results = pushes.preview_push(db(), push, client, workspace.push_test_contact_ids)
    except (WeChatApiError, PushError) as exc:
        flash(_("The preview failed: %(error)s", error=str(exc)), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    sent = [openid for openid, result in results.items() if result == "ok"]
    refused = [f"{openid} ({result})" for openid, result in results.items() if result != "ok"]
    if sent:
        flash(_("Preview sent to %(openids)s.", openids=", ".join(sent)), "success")
    if refused:
        flash(_("Preview refused for %(openids)s.", openids=", ".join(refused)), "error")
    if not results:
        flash(_("None of the test followers follows this Official Account."), "error")
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.post("/pushes/<int:push_id>/send")
@requires("pushes.manage")
def pushes_send(push_id: int):
    push = scoped_or_404(Push, push_id)
    if push.status != PushStatus.DRAFT:
        flash(_("This push was already sent or scheduled."), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    threshold = db().get(Workspace, push.workspace_id).push_approval_threshold
    try:
        status = pushes.submit_push(db(), push, threshold)
    except PushError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    audit(db(), "push.submit", "push", push.id, {"status": status, "audience": push.targeted})
    db().commit()
    if status == PushStatus.AWAITING_APPROVAL:
        flash(
            _(
                "%(count)s followers is more than %(threshold)s: an admin approves it first.",
                count=push.targeted,
                threshold=threshold,
            ),
            "success",
        )
    else:
        _start_if_due(push)
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.post("/pushes/<int:push_id>/approve")
@requires("pushes.approve")
def pushes_approve(push_id: int):
    push = scoped_or_404(Push, push_id)
    try:
        pushes.approve_push(push, current_user.id)
    except PushError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    audit(db(), "push.approve", "push", push.id, {"audience": push.targeted})
    db().commit()
    _start_if_due(push)
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.post("/pushes/<int:push_id>/cancel")
@requires("pushes.manage")
def pushes_cancel(push_id: int):
    push = scoped_or_404(Push, push_id)
    try:
        pushes.cancel_push(push)
    except PushError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    audit(db(), "push.cancel", "push", push.id, {})
    db().commit()
    flash(_("Cancelled."), "success")
    return redirect(url_for("admin.pushes_detail", push_id=push.id))


@bp.post("/pushes/settings")
@requires("pushes.approve")
def pushes_settings():
    form = SettingsForm()
    workspace = db().get(Workspace, workspace_id())
    contact_ids = []
    if form.validate_on_submit():
        openids = [line.strip() for line in form.testers.data.splitlines() if line.strip()]
        found = contacts_by_openid(db(), workspace.id, openids)
        unknown = [openid for openid in openids if openid not in found]
        if unknown:
            form.testers.errors = [_("Not followers: %(openids)s", openids=", ".join(unknown))]
        contact_ids = sorted(set(found.values()))
    if form.errors or form.testers.errors:
        flash(_("The settings were not saved: see the messages below."), "error")
        return _settings_page(form), 400
    workspace.push_approval_threshold = form.threshold.data
    workspace.push_test_contact_ids = contact_ids
    audit(
        db(),
        "push.settings",
        "workspace",
        workspace.id,
        {"threshold": form.threshold.data, "testers": contact_ids},
    )
    db().commit()
    flash(_("Push settings saved."), "success")
    return redirect(url_for("admin.pushes"))


def _settings_page(form: SettingsForm):
    workspace = db().get(Workspace, workspace_id())
    return render_template(
        "admin/pushes.html",
        rows=[],
        page=1,
        pages=1,
        settings=form,
        threshold=workspace.push_approval_threshold,
        has_channel=_can_push(),
        **labels(),
    )


def _tester_openids(workspace: Workspace) -> list[str]:
    if not workspace.push_test_contact_ids:
        return []
    return openids_of(db(), workspace.id, workspace.push_test_contact_ids)


def _start_if_due(push: Push) -> None:
    if push.scheduled_at and push.scheduled_at > utcnow():
        flash(
            _(
                "Scheduled for %(when)s.",
                when=push.scheduled_at.astimezone(zone()).strftime("%Y-%m-%d %H:%M"),
            ),
            "success",
        )
        return
    try:
        harpoon().queue.enqueue(Job.SEND_PUSH, push.id, timeout=3600)
    except RedisError as exc:
        log.warning("push %s could not be queued: %s", push.id, exc)
        flash(_("The job queue is unreachable: the push starts within a minute of its return."))
        return
    flash(_("Sending: the report fills in as the batches go out."), "success")
