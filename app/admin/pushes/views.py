"""Pushes: write content for a segment of an OA's followers, preview it on test followers,
send it now or at a time (an admin approves a large one), and read its delivery report."""

import logging
from datetime import datetime
from math import ceil
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from redis.exceptions import RedisError
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.labels import error_messages
from app.extensions import harpoon
from core.jobs import Job
from models import (
    BatchStatus,
    Channel,
    ChannelKind,
    Identity,
    IdentityKind,
    Mechanism,
    Push,
    PushBatch,
    PushStatus,
    SavedSegment,
    User,
    Workspace,
    utcnow,
)
from outreach import pushes
from outreach.pushes import MAX_TEXT, PushError, Reason
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

PAGE_SIZE = 50
STATUS_LABELS = {
    PushStatus.DRAFT: _l("Draft"),
    PushStatus.AWAITING_APPROVAL: _l("Awaiting approval"),
    PushStatus.SCHEDULED: _l("Scheduled"),
    PushStatus.SENDING: _l("Sending"),
    PushStatus.SENT: _l("Sent"),
    PushStatus.FAILED: _l("Failed"),
    PushStatus.CANCELLED: _l("Cancelled"),
}
STATUS_BADGES = {
    PushStatus.AWAITING_APPROVAL: "warn",
    PushStatus.SCHEDULED: "warn",
    PushStatus.SENDING: "warn",
    PushStatus.SENT: "ok",
    PushStatus.FAILED: "error",
}
MECHANISM_LABELS = {
    Mechanism.MASS_TAG: _l("Mass send to a tag / everyone"),
    Mechanism.MASS_OPENID: _l("Mass send by openid lists"),
    Mechanism.CS: _l("Customer-service message"),
    Mechanism.TEMPLATE: _l("Template message"),
}
REASON_LABELS = {
    Reason.NO_OPENID: _l("Not a follower of this account"),
    Reason.UNFOLLOWED: _l("Unfollowed"),
    Reason.MONTHLY_QUOTA: _l("Had this month's 4 mass messages"),
    Reason.WINDOW_EXPIRED: _l("Service window closed before the send"),
    Reason.WINDOW_QUOTA: _l("Service window's messages used up"),
    Reason.INTERRUPTED: _l("Interrupted by a crash (maybe delivered)"),
}
BATCH_LABELS = {
    BatchStatus.PLANNED: _l("Planned"),
    BatchStatus.SUBMITTING: _l("Submitting"),
    BatchStatus.SUBMITTED: _l("Submitted, waiting for WeChat's result"),
    BatchStatus.FINISHED: _l("Finished"),
    BatchStatus.FAILED: _l("Failed"),
}
CONTENT_TYPES = [
    SelectChoice("text", _l("Text")),
    SelectChoice("news", _l("Article")),
    SelectChoice("image", _l("Image")),
    SelectChoice("template", _l("Template message")),
]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _key_values(text: str) -> dict[str, str]:
    """Template data typed one "key: value" per line."""
    data = {}
    for line in (text or "").splitlines():
        if line.strip():
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise ValidationError(_("Write each line as key: value."))
            data[key.strip()] = value.strip()
    return data


class PushForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    channel = SelectField(_l("Official Account"), choices=[], validators=[DataRequired()])
    audience = SelectField(_l("Audience"), choices=[], default="")
    content_type = RadioField(_l("Content"), choices=CONTENT_TYPES, default="text")
    text = TextAreaField(_l("Text"), filters=[_strip])
    media_id = StringField(
        _l("media_id"),
        filters=[_strip],
        description=_l("The article's or image's media_id in the Official Account's library."),
    )
    title = StringField(_l("Title"), filters=[_strip])
    description = StringField(_l("Summary"), filters=[_strip])
    url = StringField(_l("Link"), filters=[_strip])
    picurl = StringField(_l("Cover image URL"), filters=[_strip])
    template_id = StringField(_l("Template ID"), filters=[_strip])
    template_data = TextAreaField(_l("Template data"), filters=[_strip])
    schedule = RadioField(
        _l("When"),
        choices=[SelectChoice("now", _l("As soon as it is sent")), SelectChoice("at", _l("At"))],
        default="now",
    )
    send_at = DateTimeLocalField(_l("Send at"), validators=[Optional()])
    prefer_service_window = BooleanField(
        _l("Followers in their customer-service window get a service message (sparing their 4)")
    )
    fallback = BooleanField(_l("Followers past this month's 4 get a template message"))
    fallback_template_id = StringField(_l("Fallback template ID"), filters=[_strip])
    fallback_data = TextAreaField(_l("Fallback template data"), filters=[_strip])
    fallback_url = StringField(_l("Fallback link"), filters=[_strip])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # send_at is Optional(): its own inline check never sees it empty
        if self.schedule.data == "at" and self.send_at.data is None:
            self.send_at.errors = [*self.send_at.errors, _("Choose the date and time.")]
            return False
        return valid

    def validate_template_data(self, field):
        _key_values(field.data)

    def validate_fallback_data(self, field):
        _key_values(field.data)

    def validate_fallback_template_id(self, field):
        if self.fallback.data and not field.data:
            raise ValidationError(_("Required."))


class SettingsForm(FlaskForm):
    threshold = IntegerField(
        _l("Approval needed above"),
        validators=[DataRequired(), NumberRange(min=1, max=100_000_000)],
    )
    testers = TextAreaField(
        _l("Test followers (openids, one per line)"),
        filters=[_strip],
        validators=[Length(max=20_000)],
    )


def _form(**kwargs) -> PushForm:
    form = PushForm(**kwargs)
    form.channel.choices = [SelectChoice(str(c.id), c.name) for c in _oa_channels()]
    form.audience.choices = [SelectChoice("", _("Every follower"))] + [
        SelectChoice(str(s.id), s.name)
        for s in db().scalars(
            select(SavedSegment)
            .where(SavedSegment.workspace_id == workspace_id())
            .order_by(SavedSegment.name)
        )
    ]
    return form


def _oa_channels() -> list[Channel]:
    return list(
        db().scalars(
            select(Channel)
            .where(Channel.workspace_id == workspace_id(), Channel.kind == ChannelKind.OA)
            .order_by(Channel.name)
        )
    )


def _zone() -> ZoneInfo:
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


def _push_or_404(push_id: int) -> Push:
    push = db().get(Push, push_id)
    if push is None or push.workspace_id != workspace_id():
        abort(404)
    return push


def _content(form: PushForm) -> dict | None:
    """The validated content, or None with its errors shown on the form's fields."""
    raw = {"type": form.content_type.data}
    for name in ("text", "media_id", "title", "description", "url", "picurl", "template_id"):
        raw[name] = form[name].data
    try:
        raw["data"] = _key_values(form.template_data.data)
    except ValidationError:  # the field's own validator shows it
        raw["data"] = {"": ""}
    try:
        content = pushes.clean_content(raw)
    except SchemaError as exc:
        for key, messages in exc.messages.items():
            target = form[{"type": "content_type", "data": "template_data"}.get(key, key)]
            target.errors = [*target.errors, *error_messages(messages)]
        return None
    return content


def _fill(push: Push, form: PushForm) -> bool:
    """The form into the push; False when a field is wrong (its message is on the form)."""
    valid = form.validate_on_submit()
    content = _content(form)
    if not valid or content is None:
        return False
    push.name = form.name.data
    push.channel_id = int(form.channel.data)
    push.segment_id = int(form.audience.data) if form.audience.data else None
    try:
        pushes.check_push(db(), push)
    except SchemaError as exc:
        for key, messages in exc.messages.items():
            target = form[{"channel_id": "channel", "segment_id": "audience"}[key]]
            target.errors = [*target.errors, *(_(message) for message in messages)]
        return False
    push.content = content
    push.prefer_service_window = form.prefer_service_window.data
    push.fallback_template = (
        {
            "template_id": form.fallback_template_id.data,
            "data": _key_values(form.fallback_data.data),
            "url": form.fallback_url.data or "",
        }
        if form.fallback.data
        else None
    )
    if form.schedule.data == "at":
        push.scheduled_at = form.send_at.data.replace(tzinfo=_zone())
    else:
        push.scheduled_at = None
    return True


def _form_of(push: Push) -> PushForm:
    content = push.content or {}
    fallback = push.fallback_template or {}
    local = (
        push.scheduled_at.astimezone(_zone()).replace(tzinfo=None) if push.scheduled_at else None
    )
    return _form(
        formdata=None,
        name=push.name,
        channel=str(push.channel_id),
        audience=str(push.segment_id or ""),
        content_type=content.get("type", "text"),
        template_data="\n".join(f"{k}: {v}" for k, v in content.get("data", {}).items()),
        schedule="at" if local else "now",
        send_at=local,
        prefer_service_window=push.prefer_service_window,
        fallback=bool(fallback),
        fallback_template_id=fallback.get("template_id", ""),
        fallback_data="\n".join(f"{k}: {v}" for k, v in fallback.get("data", {}).items()),
        fallback_url=fallback.get("url", ""),
        **{k: v for k, v in content.items() if k not in ("type", "data")},
    )


# --- views ---------------------------------------------------------------------------------


@bp.get("/pushes", endpoint="pushes")
@requires("view")
def pushes_list():
    ws = workspace_id()
    total = db().scalar(select(func.count()).where(Push.workspace_id == ws))
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = (
        db()
        .execute(
            select(Push, SavedSegment.name, Channel.name)
            .outerjoin(SavedSegment, SavedSegment.id == Push.segment_id)
            .join(Channel, Channel.id == Push.channel_id)
            .where(Push.workspace_id == ws)
            .order_by(Push.created_at.desc(), Push.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
        .all()
    )
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
        rows=rows,
        page=page,
        pages=pages,
        settings=settings,
        threshold=workspace.push_approval_threshold,
        has_channel=bool(_oa_channels()),
        **_labels(),
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
    if not _fill(push, form):
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
    push = _push_or_404(push_id)
    if push.status not in (PushStatus.DRAFT, PushStatus.AWAITING_APPROVAL):
        flash(_("Only a draft can be changed."), "error")
        return redirect(url_for("admin.pushes_detail", push_id=push.id))
    if request.method == "GET":
        return render_template("admin/push_form.html", form=_form_of(push), push=push)
    form = _form()
    if not _fill(push, form):
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
    push = _push_or_404(push_id)
    batches = (
        db()
        .scalars(select(PushBatch).where(PushBatch.push_id == push.id).order_by(PushBatch.number))
        .all()
    )
    audience = None
    if push.status in (PushStatus.DRAFT, PushStatus.AWAITING_APPROVAL, PushStatus.SCHEDULED):
        try:
            audience = pushes.count_audience(db(), push)
        except PushError as exc:
            flash(str(exc), "error")
    names = dict(
        db()
        .execute(
            select(User.id, User.name).where(
                User.id.in_([i for i in (push.created_by, push.approved_by) if i])
            )
        )
        .all()
    )
    return render_template(
        "admin/push.html",
        push=push,
        channel=db().get(Channel, push.channel_id),
        segment=db().get(SavedSegment, push.segment_id) if push.segment_id else None,
        batches=batches,
        audience=audience,
        threshold=db().get(Workspace, push.workspace_id).push_approval_threshold,
        funnel=_funnel(push.report or {}),
        names=names,
        **_labels(),
    )


@bp.post("/pushes/<int:push_id>/preview")
@requires("pushes.manage")
def pushes_preview(push_id: int):
    push = _push_or_404(push_id)
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
    push = _push_or_404(push_id)
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
    push = _push_or_404(push_id)
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
    push = _push_or_404(push_id)
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
        found = dict(
            db()
            .execute(
                select(Identity.value, Identity.contact_id).where(
                    Identity.workspace_id == workspace.id,
                    Identity.kind == IdentityKind.OPENID,
                    Identity.value.in_(openids),
                )
            )
            .all()
        )
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
        has_channel=bool(_oa_channels()),
        **_labels(),
    )


def _tester_openids(workspace: Workspace) -> list[str]:
    if not workspace.push_test_contact_ids:
        return []
    return list(
        db().scalars(
            select(Identity.value)
            .where(
                Identity.contact_id.in_(workspace.push_test_contact_ids),
                Identity.kind == IdentityKind.OPENID,
            )
            .order_by(Identity.value)
        )
    )


def _start_if_due(push: Push) -> None:
    if push.scheduled_at and push.scheduled_at > utcnow():
        flash(
            _(
                "Scheduled for %(when)s.",
                when=push.scheduled_at.astimezone(_zone()).strftime("%Y-%m-%d %H:%M"),
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


def _funnel(report: dict) -> list[tuple[str, int]]:
    """Targeted -> reachable -> sent -> delivered, for the funnel chart."""
    targeted = report.get("targeted", 0)
    skipped = sum(report.get("skipped", {}).values())
    return [
        (_("Targeted"), targeted),
        (_("Reachable"), targeted - skipped),
        (_("Sent"), sum(report.get("sent", {}).values())),
        (_("Delivered"), report.get("delivered", 0)),
    ]


def _labels() -> dict:
    return {
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "mechanism_labels": MECHANISM_LABELS,
        "reason_labels": REASON_LABELS,
        "batch_labels": BATCH_LABELS,
        "max_text": MAX_TEXT,
        "now": datetime.now(_zone()),
    }
