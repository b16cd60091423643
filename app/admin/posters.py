"""Posters (海报): a marketer uploads a background design, picks what the QR code leads to
(a content item or a form through each person's share link, or each salesperson's 联系我
code) and places the code and a line of text on it with a preview composed on the server;
then downloads any salesperson's poster, or all of them in a zip. Salespeople find their
own in WeCom (app/wecom_app.py). outreach/posters.py checks, composes and caches.
"""

import io
import zipfile

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.content import translated
from app.admin.lookups import scoped_or_404
from app.extensions import harpoon
from models import Content, Form, Poster, PosterTarget, Staff, utcnow
from outreach import posters
from outreach.content import live_contents
from outreach.library.editing import active_staff

# The body of an upload: the image's limit, plus the form's other inputs; a bigger body is
# refused (413) before it is read.
UPLOAD_BODY_BYTES = posters.MAX_BACKGROUND_BYTES + 1024 * 1024
UPLOAD_ENDPOINTS = ("admin.posters_new", "admin.posters_edit")
FIELDS = (
    "name",
    "target",
    "content_id",
    "form_id",
    "qr_x",
    "qr_y",
    "qr_size",
    "text",
    "text_x",
    "text_y",
    "text_size",
    "text_color",
)
LAYOUT_FIELDS = ("qr_x", "qr_y", "qr_size", "text", "text_x", "text_y", "text_size", "text_color")


def target_labels() -> dict[str, str]:
    return {
        PosterTarget.CONTENT: _("A content item (each person's share link)"),
        PosterTarget.FORM: _("A form (each person's share link)"),
        PosterTarget.CONTACT_WAY: _("The salesperson's own Contact Me code"),
    }


@bp.url_value_preprocessor
def _limit_poster_upload(endpoint, _values):
    # Before the CSRF hook reads the form: past the limit, the body is refused unread.
    if endpoint in UPLOAD_ENDPOINTS and request.method == "POST":
        request.max_content_length = UPLOAD_BODY_BYTES


def _png(data: bytes, filename: str | None = None):
    response = send_file(
        io.BytesIO(data),
        mimetype="image/png",
        as_attachment=filename is not None,
        download_name=filename,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _compose_settings() -> dict:
    h = harpoon()
    return {
        "signer": h.signer,
        "base_url": h.settings.public_base_url,
        "font_path": h.settings.poster_font_path,
        "sandbox_url": h.settings.wechat_api_url,
    }


# ---- the list -----------------------------------------------------------------------------


@bp.get("/posters")
@requires("view")
def posters_page():
    archived = request.args.get("archived") == "1"
    return render_template(
        "admin/posters.html",
        rows=posters.posters_of(db(), workspace_id(), archived=archived),
        archived=archived,
        target_labels=target_labels(),
    )


# ---- new and edit -------------------------------------------------------------------------


def _choices() -> dict:
    ws = workspace_id()
    return {
        "contents": [(str(row.id), row.title) for row in live_contents(db(), ws)],
        "forms": [(str(row.id), row.title) for row in posters.live_forms(db(), ws)],
        "target_labels": target_labels(),
    }


def _editor(poster: Poster | None, values: dict, errors: dict | None = None, status: int = 200):
    return render_template(
        "admin/poster_form.html",
        poster=poster,
        values=values,
        errors=errors or {},
        preview_args={name: values.get(name, "") for name in LAYOUT_FIELDS},
        **_choices(),
    ), status


def _posted() -> dict:
    return {name: request.form.get(name, "") for name in FIELDS}


def _uploaded() -> posters.Background | None:
    """The uploaded design, checked; None when none was chosen."""
    file = request.files.get("background")
    if file is None or not file.filename:
        return None
    return posters.read_background(file.read(posters.MAX_BACKGROUND_BYTES + 1))


def _save(poster: Poster | None):
    values = _posted()
    errors: dict[str, list[str]] = {}
    try:
        background = _uploaded()
    except ValidationError as exc:
        background, errors = None, translated(exc)
    if poster is None and background is None and not errors:
        errors["background"] = [_(posters.NO_FILE)]
    width, height = (
        (background.width, background.height)
        if background is not None
        else (poster.width, poster.height)
        if poster is not None
        else (posters.MAX_SIDE, posters.MAX_SIDE)
    )
    if poster is None and background is not None:
        values = posters.default_layout(values, width, height)
    try:
        checked = posters.load_poster(values, width, height)
        if errors:
            raise ValidationError({})
        before = poster.version if poster is not None else None
        saved = posters.save_poster(
            db(),
            workspace_id(),
            checked,
            background=background,
            user_id=current_user.id,
            poster=poster,
        )
    except ValidationError as exc:
        db().rollback()
        errors = {**translated(exc), **errors}
        return _editor(poster, values, errors, 400)
    audit(
        db(),
        "poster.create" if before is None else "poster.update",
        "poster",
        saved.id,
        {
            "name": saved.name,
            "target": saved.target,
            "content_id": saved.content_id,
            "form_id": saved.form_id,
            "version": saved.version,
            "background_bytes": len(background.data) if background else None,
        },
    )
    db().commit()
    flash(_("Poster “%(name)s” saved.", name=saved.name), "success")
    if before is None:  # a new design: place the code and the text with the preview
        return redirect(url_for("admin.posters_edit", poster_id=saved.id))
    return redirect(url_for("admin.posters_detail", poster_id=saved.id))


@bp.route("/posters/new", methods=["GET", "POST"])
@requires("content.manage")
def posters_new():
    if request.method == "POST":
        return _save(None)
    return _editor(None, posters.poster_form())


@bp.route("/posters/<int:poster_id>/edit", methods=["GET", "POST"])
@requires("content.manage")
def posters_edit(poster_id: int):
    poster = scoped_or_404(Poster, poster_id)
    if request.method == "POST":
        return _save(poster)
    return _editor(poster, posters.poster_form(poster))


@bp.get("/posters/<int:poster_id>/preview.png")
@requires("view")
def posters_preview(poster_id: int):
    """The design with a sample person's code, laid out as the query says (the editor's
    inputs as they are typed); a layout that does not check out shows the saved one."""
    poster = scoped_or_404(Poster, poster_id)
    values = {**posters.poster_form(poster), **request.args.to_dict()}
    try:
        checked = posters.load_poster(values, poster.width, poster.height)
        layout = posters.Layout(**{name: checked[name] for name in LAYOUT_FIELDS})
    except ValidationError:
        layout = posters.Layout.of(poster)
    settings = _compose_settings()
    return _png(
        posters.preview_png(
            poster, layout, base_url=settings["base_url"], font_path=settings["font_path"]
        )
    )


@bp.get("/posters/<int:poster_id>/background")
@requires("view")
def posters_background(poster_id: int):
    poster = scoped_or_404(Poster, poster_id)
    return send_file(io.BytesIO(poster.background), mimetype=poster.background_type)


# ---- a poster's page: everyone's version ---------------------------------------------------


@bp.get("/posters/<int:poster_id>")
@requires("view")
def posters_detail(poster_id: int):
    poster = scoped_or_404(Poster, poster_id)
    target = None
    if poster.content_id is not None:
        target = db().get(Content, poster.content_id)
    elif poster.form_id is not None:
        target = db().get(Form, poster.form_id)
    staff = active_staff(db(), poster.workspace_id)
    ways = (
        {member.id: posters.own_contact_way(db(), member) for member in staff}
        if poster.target == PosterTarget.CONTACT_WAY
        else {}
    )
    return render_template(
        "admin/poster.html",
        poster=poster,
        target=target,
        staff=staff,
        ways=ways,
        target_labels=target_labels(),
    )


def _staff_png(poster: Poster, member: Staff) -> bytes | None:
    return posters.poster_png(db(), poster, posters.staff_person(member), **_compose_settings())


@bp.get("/posters/<int:poster_id>/staff/<int:staff_id>.png")
@requires("view")
def posters_staff_png(poster_id: int, staff_id: int):
    poster = scoped_or_404(Poster, poster_id)
    member = scoped_or_404(Staff, staff_id)
    try:
        png = _staff_png(poster, member)
    except posters.CodePictureUnavailable:
        message = _(posters.UNAVAILABLE)
        response = _png(posters.unavailable_png(poster, message, _compose_settings()["font_path"]))
        response.status_code = 503
        return response
    if png is None:
        abort(404)
    db().commit()  # the render's cache row
    name = f"poster-{poster.id}-{member.userid}.png"
    return _png(png, name if request.args.get("download") == "1" else None)


@bp.get("/posters/<int:poster_id>/staff.zip")
@requires("view")
def posters_staff_zip(poster_id: int):
    """Every active salesperson's poster in one zip (those without a code left out)."""
    poster = scoped_or_404(Poster, poster_id)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for member in active_staff(db(), poster.workspace_id):
            try:
                png = _staff_png(poster, member)
            except posters.CodePictureUnavailable:
                png = None  # left out: a poster without its code is no poster to hand out
            if png is not None:
                archive.writestr(f"{member.name or member.userid}-{member.userid}.png", png)
    db().commit()
    out.seek(0)
    return send_file(
        out,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"poster-{poster.id}.zip",
    )


# ---- archive ------------------------------------------------------------------------------


@bp.post("/posters/<int:poster_id>/archive")
@requires("content.manage")
def posters_archive(poster_id: int):
    return _set_archived(scoped_or_404(Poster, poster_id), True)


@bp.post("/posters/<int:poster_id>/restore")
@requires("content.manage")
def posters_restore(poster_id: int):
    return _set_archived(scoped_or_404(Poster, poster_id), False)


def _set_archived(poster: Poster, archived: bool):
    if (poster.archived_at is not None) != archived:
        poster.archived_at = utcnow() if archived else None
        action = "poster.archive" if archived else "poster.restore"
        audit(db(), action, "poster", poster.id, {"name": poster.name})
        db().commit()
    if archived:
        flash(
            _("Poster “%(name)s” archived: salespeople no longer see it.", name=poster.name),
            "success",
        )
        return redirect(url_for("admin.posters_page"))
    flash(_("Poster “%(name)s” restored.", name=poster.name), "success")
    return redirect(url_for("admin.posters_detail", poster_id=poster.id))
