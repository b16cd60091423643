"""The QR code pages' routes: the list by OA, a new code and its edit, one code's scans and
image, its renewal, archive and restore."""

import io
import re
from datetime import datetime

import segno
from flask import abort, flash, g, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError as InputError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.labels import TAG_GROUP_LABELS, error_messages, tag_label
from app.admin.lookups import scoped_or_404
from app.admin.qr_codes.forms import (
    MAX_EXPIRE_DAYS,
    QrCodeEditForm,
    QrCodeForm,
    RenewForm,
    audited,
    expire_seconds,
    scene_value,
    show_input_errors,
)
from app.admin.qr_codes.presenters import (
    STATUS_BADGES,
    STATUS_LABELS,
    scans_chart,
    wechat_refusal,
)
from app.extensions import harpoon
from crm.channels import channels_of
from crm.rule_config import MAX_REPLY
from crm.tags import TagBook
from models import Channel, ChannelKind, QrCode
from outreach.qr_codes import (
    MAX_NAME,
    MAX_PERMANENT_SCENE,
    MAX_SCENE_CHARS,
    archived_count,
    create_qr_code,
    daily_scans,
    day_start,
    local_days,
    next_free_scene,
    qr_codes_of,
    renew_qr_code,
    scan_totals,
    set_archived,
    status_of,
    ticket_url,
    update_qr_code,
)
from wechat.clients import WeChatApiError

RECENT_DAYS = 7
CHART_DAYS = (7, 30, 90)
IS_OA = Channel.kind == ChannelKind.OA


def _timezone() -> str:
    return g.get("workspace_timezone") or "Asia/Shanghai"


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
    channels = channels_of(db(), ws, ChannelKind.OA)
    codes = qr_codes_of(db(), ws, archived=show_archived)
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
        archived_count=archived_count(db(), ws),
        recent_days=RECENT_DAYS,
        book=TagBook(db(), ws),
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
    )


# --- new and edit -----------------------------------------------------------


@bp.route("/qr-codes/new/<int:channel_id>", methods=["GET", "POST"])
@requires("qrcodes.manage")
def qr_codes_new(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_OA)
    form = QrCodeForm(book=TagBook(db(), channel.workspace_id))
    if form.validate_on_submit():
        permanent = form.validity.data == "permanent"
        scene = scene_value(form)
        if not form.scene.errors:
            try:
                code = create_qr_code(
                    db(),
                    channel,
                    _client(channel),
                    name=form.name.data or "",
                    permanent=permanent,
                    scene=scene,
                    expire_seconds=expire_seconds(form.expire_days.data, permanent),
                    tag_ids=form.tag_ids.data,
                    welcome_reply=form.welcome_reply.data or None,
                    user_id=current_user.id,
                )
            except InputError as exc:
                db().rollback()
                show_input_errors(form, exc.messages)
            except WeChatApiError as exc:
                db().rollback()
                form.form_errors.append(wechat_refusal(exc))
            else:
                audit(
                    db(),
                    "qr_code.create",
                    "qr_code",
                    code.id,
                    {
                        **audited(code),
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
    code = scoped_or_404(QrCode, code_id)
    form = QrCodeEditForm(obj=code, book=TagBook(db(), code.workspace_id))
    if form.validate_on_submit():
        before = audited(code)
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
            show_input_errors(form, exc.messages)
        else:
            after = audited(code)
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
    code = scoped_or_404(QrCode, code_id)
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
        chart=scans_chart(days),
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
    code = scoped_or_404(QrCode, code_id)
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
    code = scoped_or_404(QrCode, code_id)
    form = RenewForm()
    if code.permanent or not form.validate_on_submit():
        flash(_("Only a temporary code can be renewed, for 1 to 30 days."), "error")
        return redirect(url_for("admin.qr_codes_detail", code_id=code.id))
    channel = scoped_or_404(Channel, code.channel_id, IS_OA)
    before = code.expires_at
    try:
        renew_qr_code(
            db(),
            code,
            _client(channel),
            expire_seconds=expire_seconds(form.expire_days.data, permanent=False),
        )
    except InputError as exc:
        db().rollback()
        for message in error_messages(exc.messages):
            flash(_(message), "error")
    except WeChatApiError as exc:
        db().rollback()
        flash(wechat_refusal(exc), "error")
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
    code = scoped_or_404(QrCode, code_id)
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
