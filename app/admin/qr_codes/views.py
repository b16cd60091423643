"""Channel QR codes: parametric OA codes per event, poster or webinar, with the tags a
scan gives, the welcome reply it answers with, and their scans and follows per day.

outreach.qr_codes asks WeChat first and stores the code after, so a refusal leaves
nothing behind; the image is drawn here from the code's content (segno), so no
image service is needed.
"""

import io
import re
from datetime import datetime

import segno
from flask import abort, flash, g, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_login import current_user
from flask_wtf import FlaskForm
from marshmallow import ValidationError as InputError
from sqlalchemy import func, select
from wtforms import (
    IntegerField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.labels import TAG_GROUP_LABELS, error_messages, tag_label
from app.extensions import harpoon
from crm.rule_config import MAX_REPLY
from crm.tags import TagBook
from models import Channel, ChannelKind, QrCode, TagGroup
from outreach.qr_codes import (
    MAX_EXPIRE_SECONDS,
    MAX_NAME,
    MAX_PERMANENT_SCENE,
    MAX_SCENE_CHARS,
    QrStatus,
    create_qr_code,
    daily_scans,
    day_start,
    local_days,
    next_free_scene,
    renew_qr_code,
    scan_totals,
    set_archived,
    status_of,
    ticket_url,
    update_qr_code,
)
from wechat.clients import WeChatApiError

DAY_SECONDS = 86_400
MAX_EXPIRE_DAYS = MAX_EXPIRE_SECONDS // DAY_SECONDS
RECENT_DAYS = 7
CHART_DAYS = (7, 30, 90)
STATUS_LABELS = {
    QrStatus.ACTIVE: _l("Active"),
    QrStatus.EXPIRED: _l("Expired"),
    QrStatus.ARCHIVED: _l("Archived"),
}
STATUS_BADGES = {QrStatus.ACTIVE: "ok", QrStatus.EXPIRED: "warn", QrStatus.ARCHIVED: ""}
# Where each of outreach.qr_codes' error keys shows on the form.
ERROR_FIELDS = {"permanent": "validity", "expire_seconds": "expire_days"}
# What WeChat's refusals of qrcode/create mean for the person filling in the form.
WECHAT_REFUSALS = {
    40053: _l("WeChat refused this kind of code or scene."),
    48001: _l("Only a verified service account may create parametric QR codes."),
    45009: _l("The Official Account used up today's API calls."),
}
# Source and interest tags first: they are what a code usually gives.
TAG_GROUP_ORDER = [
    TagGroup.SOURCE,
    TagGroup.INTEREST,
    *(group for group in TagGroup if group not in (TagGroup.SOURCE, TagGroup.INTEREST)),
]
AUDITED_FIELDS = ("name", "tag_ids", "welcome_reply")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class QrCodeEditForm(FlaskForm):
    """What Harpoon alone keeps of a code; outreach.qr_codes checks it."""

    name = StringField(_l("Name"), filters=[_strip])
    tag_ids = SelectMultipleField(_l("Tags"), choices=[], coerce=int)
    welcome_reply = TextAreaField(_l("Welcome reply"), filters=[_strip])

    def __init__(self, *args, book: TagBook, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag_ids.choices = _tag_choices(book)


class QrCodeForm(QrCodeEditForm):
    """A new code: also its kind, scene and validity, which WeChat fixes for good."""

    validity = RadioField(
        _l("Kind"),
        choices=[
            SelectChoice("temporary", _l("Temporary")),
            SelectChoice("permanent", _l("Permanent")),
        ],
        default="temporary",
    )
    scene_kind = RadioField(
        _l("Scene"),
        choices=[
            SelectChoice("number", lazy_pgettext("scene", "Number")),
            SelectChoice("text", lazy_pgettext("scene", "Text")),
        ],
        default="number",
    )
    scene = StringField(_l("Scene value"), filters=[_strip])
    expire_days = IntegerField(
        _l("Valid for (days)"), default=MAX_EXPIRE_DAYS, validators=[Optional()]
    )


class RenewForm(FlaskForm):
    expire_days = IntegerField(
        _l("Valid for (days)"), default=MAX_EXPIRE_DAYS, validators=[Optional()]
    )


def _tag_choices(book: TagBook) -> list[SelectChoice]:
    choices = []
    for group in TAG_GROUP_ORDER:
        optgroup = str(TAG_GROUP_LABELS[group])
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        choices += [SelectChoice(tag.id, tag_label(tag), optgroup=optgroup) for tag in tags]
    return choices


def _timezone() -> str:
    return g.get("workspace_timezone") or "Asia/Shanghai"


def _oa_channels(ws: int) -> list[Channel]:
    return list(
        db().scalars(
            select(Channel)
            .where(Channel.workspace_id == ws, Channel.kind == ChannelKind.OA)
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


def _code_or_404(code_id: int) -> QrCode:
    code = db().scalar(
        select(QrCode).where(QrCode.id == code_id, QrCode.workspace_id == workspace_id())
    )
    if code is None:
        abort(404)
    return code


def _client(channel: Channel):
    return harpoon().wechat.oa(channel.app_id, channel.secret)


def _recent_since() -> datetime:
    return day_start(local_days(_timezone(), RECENT_DAYS)[0], _timezone())


def _changed() -> None:
    """Commit; this process's callbacks answer with the new welcome at once (others within
    the reply cache's few seconds)."""
    db().commit()
    harpoon().replies.invalidate(workspace_id())


# --- the list ---------------------------------------------------------------


@bp.get("/qr-codes")
@requires("view")
def qr_codes():
    ws = workspace_id()
    show_archived = request.args.get("archived") == "1"
    channels = _oa_channels(ws)
    query = select(QrCode).where(QrCode.workspace_id == ws)
    if not show_archived:
        query = query.where(QrCode.archived.is_(False))
    codes = list(db().scalars(query.order_by(QrCode.created_at.desc(), QrCode.id.desc())))
    archived_count = db().scalar(
        select(func.count()).where(QrCode.workspace_id == ws, QrCode.archived.is_(True))
    )
    by_channel: dict[int, list[QrCode]] = {channel.id: [] for channel in channels}
    for code in codes:
        by_channel.setdefault(code.channel_id, []).append(code)
    return render_template(
        "admin/qr_codes.html",
        channels=channels,
        by_channel=by_channel,
        totals=scan_totals(db(), ws, codes, recent_since=_recent_since()),
        statuses={code.id: status_of(code) for code in codes},
        show_archived=show_archived,
        archived_count=archived_count,
        recent_days=RECENT_DAYS,
        book=TagBook(db(), ws),
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
    )


# --- new and edit -----------------------------------------------------------


def _scene_value(form: QrCodeForm) -> int | str | None:
    """The scene as outreach.qr_codes takes it: an int for a number (None: the next free
    one), a str for a text."""
    if form.scene_kind.data == "text":
        return form.scene.data or ""
    if not form.scene.data:
        return None
    if not form.scene.data.isascii() or not form.scene.data.isdigit():
        form.scene.errors = [*form.scene.errors, _("A number scene is a whole number.")]
        return None
    return int(form.scene.data)


def _expire_seconds(days: int | None, permanent: bool) -> int | None:
    if permanent:
        return None
    return None if days is None else days * DAY_SECONDS


def _show_input_errors(form: FlaskForm, messages: dict) -> None:
    """outreach.qr_codes' refusals, translated, on the fields they concern."""
    for key, errors in messages.items():
        name = ERROR_FIELDS.get(key, key)
        shown = [_(message) for message in error_messages(errors)]
        if name in form:
            form[name].errors = [*form[name].errors, *shown]
        else:
            form.form_errors.extend(shown)


def _wechat_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeChat could not be reached, so nothing changed. Try again in a moment.")
    reason = WECHAT_REFUSALS.get(exc.errcode) or exc.errmsg
    return _("WeChat refused the code (%(code)s): %(reason)s", code=exc.errcode, reason=reason)


def _audited(code: QrCode) -> dict:
    return {name: getattr(code, name) for name in AUDITED_FIELDS}


@bp.route("/qr-codes/new/<int:channel_id>", methods=["GET", "POST"])
@requires("qrcodes.manage")
def qr_codes_new(channel_id: int):
    channel = _oa_channel_or_404(channel_id)
    form = QrCodeForm(book=TagBook(db(), channel.workspace_id))
    if form.validate_on_submit():
        permanent = form.validity.data == "permanent"
        scene = _scene_value(form)
        if not form.scene.errors:
            try:
                code = create_qr_code(
                    db(),
                    channel,
                    _client(channel),
                    name=form.name.data or "",
                    permanent=permanent,
                    scene=scene,
                    expire_seconds=_expire_seconds(form.expire_days.data, permanent),
                    tag_ids=form.tag_ids.data,
                    welcome_reply=form.welcome_reply.data or None,
                    user_id=current_user.id,
                )
            except InputError as exc:
                db().rollback()
                _show_input_errors(form, exc.messages)
            except WeChatApiError as exc:
                db().rollback()
                form.form_errors.append(_wechat_refusal(exc))
            else:
                audit(
                    db(),
                    "qr_code.create",
                    "qr_code",
                    code.id,
                    {
                        **_audited(code),
                        "channel_id": channel.id,
                        "permanent": code.permanent,
                        "scene": code.scene,
                        "expires_at": code.expires_at.isoformat() if code.expires_at else None,
                    },
                )
                _changed()
                flash(_("QR code %(name)s created.", name=code.name), "success")
                return redirect(url_for("admin.qr_codes_detail", code_id=code.id))
    return render_template(
        "admin/qr_code_form.html",
        form=form,
        channel=channel,
        code=None,
        next_scene=next_free_scene(db(), channel.id, permanent=False),
        limits={
            "days": MAX_EXPIRE_DAYS,
            "number": MAX_PERMANENT_SCENE,
            "chars": MAX_SCENE_CHARS,
            "name": MAX_NAME,
            "reply": MAX_REPLY,
        },
    )


@bp.route("/qr-codes/<int:code_id>/edit", methods=["GET", "POST"])
@requires("qrcodes.manage")
def qr_codes_edit(code_id: int):
    code = _code_or_404(code_id)
    form = QrCodeEditForm(obj=code, book=TagBook(db(), code.workspace_id))
    if form.validate_on_submit():
        before = _audited(code)
        try:
            update_qr_code(
                db(),
                code,
                name=form.name.data or "",
                tag_ids=form.tag_ids.data,
                welcome_reply=form.welcome_reply.data or None,
            )
        except InputError as exc:
            db().rollback()
            _show_input_errors(form, exc.messages)
        else:
            after = _audited(code)
            changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            if changes:
                audit(db(), "qr_code.update", "qr_code", code.id, changes)
            _changed()
            flash(_("QR code %(name)s saved.", name=code.name), "success")
            return redirect(url_for("admin.qr_codes_detail", code_id=code.id))
    return render_template(
        "admin/qr_code_form.html",
        form=form,
        channel=db().get(Channel, code.channel_id),
        code=code,
        limits={"name": MAX_NAME, "reply": MAX_REPLY},
    )


# --- one code ---------------------------------------------------------------


@bp.get("/qr-codes/<int:code_id>")
@requires("view")
def qr_codes_detail(code_id: int):
    code = _code_or_404(code_id)
    tz = _timezone()
    chart_days = request.args.get("days", 30, type=int)
    if chart_days not in CHART_DAYS:
        chart_days = 30
    days = daily_scans(db(), code, tz, local_days(tz, chart_days))
    totals = scan_totals(db(), code.workspace_id, [code], recent_since=_recent_since())
    return render_template(
        "admin/qr_code.html",
        code=code,
        channel=db().get(Channel, code.channel_id),
        status=status_of(code),
        totals=totals[code.id],
        chart={
            "days": [day.day.isoformat() for day in days],
            "scans": [day.scans for day in days],
            "follows": [day.follows for day in days],
            "people": [day.people for day in days],
            "names": {
                "scans": _("Scans"),
                "follows": _("Follows"),
                "people": _("People"),
            },
        },
        chart_days=chart_days,
        chart_day_options=CHART_DAYS,
        recent_days=RECENT_DAYS,
        ticket_url=ticket_url(code),
        renew_form=RenewForm(),
        book=TagBook(db(), code.workspace_id),
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
    )


@bp.get("/qr-codes/<int:code_id>/qr.<any(svg, png):kind>")
@requires("view")
def qr_codes_image(code_id: int, kind: str):
    """The code's image, drawn from its content; `?download=1` saves it as a file."""
    code = _code_or_404(code_id)
    if not code.url:
        abort(404)
    image = io.BytesIO()
    segno.make(code.url, error="m").save(image, kind=kind, scale=10, border=2)
    image.seek(0)
    safe_name = re.sub(r'[\\/:*?"<>|\s]+', "_", code.name).strip("_") or "qrcode"
    return send_file(
        image,
        mimetype="image/svg+xml" if kind == "svg" else "image/png",
        as_attachment=request.args.get("download") == "1",
        download_name=f"{safe_name}-{code.scene}.{kind}",
        max_age=0,
    )


@bp.post("/qr-codes/<int:code_id>/renew")
@requires("qrcodes.manage")
def qr_codes_renew(code_id: int):
    code = _code_or_404(code_id)
    form = RenewForm()
    if code.permanent or not form.validate_on_submit():
        flash(_("Only a temporary code can be renewed, for 1 to 30 days."), "error")
        return redirect(url_for("admin.qr_codes_detail", code_id=code.id))
    channel = _oa_channel_or_404(code.channel_id)
    before = code.expires_at
    try:
        renew_qr_code(
            db(),
            code,
            _client(channel),
            expire_seconds=_expire_seconds(form.expire_days.data, permanent=False),
        )
    except InputError as exc:
        db().rollback()
        for message in error_messages(exc.messages):
            flash(_(message), "error")
    except WeChatApiError as exc:
        db().rollback()
        flash(_wechat_refusal(exc), "error")
    else:
        audit(
            db(),
            "qr_code.renew",
            "qr_code",
            code.id,
            {"expires_at": [before.isoformat() if before else None, code.expires_at.isoformat()]},
        )
        db().commit()
        flash(
            _(
                "QR code %(name)s renewed: its image changed, so replace it wherever it is shown.",
                name=code.name,
            ),
            "success",
        )
    return redirect(url_for("admin.qr_codes_detail", code_id=code.id))


def _archive(code_id: int, archived: bool):
    code = _code_or_404(code_id)
    if code.archived != archived:
        set_archived(db(), code, archived)
        audit(db(), "qr_code.archive" if archived else "qr_code.restore", "qr_code", code.id, {})
        db().commit()  # the welcome stays: WeChat still answers an archived code's scans
    if archived:
        flash(_("QR code %(name)s archived.", name=code.name), "success")
        return redirect(url_for("admin.qr_codes"))
    flash(_("QR code %(name)s restored.", name=code.name), "success")
    return redirect(url_for("admin.qr_codes_detail", code_id=code.id))


@bp.post("/qr-codes/<int:code_id>/archive")
@requires("qrcodes.manage")
def qr_codes_archive(code_id: int):
    return _archive(code_id, True)


@bp.post("/qr-codes/<int:code_id>/restore")
@requires("qrcodes.manage")
def qr_codes_restore(code_id: int):
    return _archive(code_id, False)
