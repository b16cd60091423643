"""The library pages' routes: the list by kind with the upload form, an image's or file's
bytes, a card's or article's editor, one item's page with its state on each channel, and
its "upload now" (a job) and archive."""

import io
import logging

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError as SchemaError
from redis.exceptions import RedisError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.labels import error_messages
from app.admin.lookups import paginate, scoped_or_404
from app.admin.materials.forms import CARD_ERROR_FIELDS, UploadForm, card_form, card_values
from app.admin.materials.presenters import KIND_LABELS, labels
from app.extensions import harpoon
from core.jobs import Job
from crm.channels import channel_names
from models import Material, MaterialKind
from outreach import materials

log = logging.getLogger(__name__)
PAGE_SIZE = 40
CARD_KINDS = tuple(kind.value for kind in materials.CARD_KINDS)
# The largest upload and the form around it; a bigger body is refused before it is read.
UPLOAD_BODY_BYTES = materials.FILE_MAX_BYTES + 64 * 1024


@bp.url_value_preprocessor
def _limit_material_upload(endpoint, _values):
    if endpoint == "admin.materials_upload" and request.method == "POST":
        request.max_content_length = UPLOAD_BODY_BYTES


def _list_page(form: UploadForm, status: int = 200):
    kind = request.args.get("kind", "")
    kind = kind if kind in KIND_LABELS else ""
    listed = paginate(materials.materials_query(workspace_id(), kind or None), PAGE_SIZE)
    page = render_template(
        "admin/materials.html",
        rows=[row[0] for row in listed.rows],
        page=listed.page,
        pages=listed.pages,
        kind=kind,
        form=form,
        **labels(),
    )
    return page, status


@bp.get("/materials", endpoint="materials")
@requires("view")
def materials_list():
    return _list_page(UploadForm(formdata=None))


@bp.post("/materials/upload")
@requires("content.manage")
def materials_upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    upload = form.file.data
    data = upload.read(materials.FILE_MAX_BYTES + 1)
    save = materials.save_image if form.kind.data == MaterialKind.IMAGE else materials.save_file
    extra = {} if form.kind.data == MaterialKind.IMAGE else {"mime": upload.mimetype or ""}
    try:
        material = save(
            db(),
            workspace_id(),
            name=form.name.data or "",
            filename=upload.filename or "",
            data=data,
            created_by=current_user.id,
            **extra,
        )
    except SchemaError as exc:
        db().rollback()
        for key, messages in exc.messages.items():
            field = form.name if key == "name" else form.file
            field.errors = [*field.errors, *(_(m) for m in error_messages(messages))]
        return _list_page(form, 400)
    audit(db(), "material.create", "material", material.id, {"kind": material.kind})
    db().commit()
    flash(_("Added to the library."), "success")
    return redirect(url_for("admin.materials_detail", material_id=material.id))


def _covers() -> list[Material]:
    return materials.choices(db(), workspace_id(), (MaterialKind.IMAGE,))


def _card_page(kind: str, form, material: Material | None, status: int = 200):
    page = render_template(
        "admin/material_form.html", kind=kind, form=form, material=material, **labels()
    )
    return page, status


def _save_card(kind: str, material: Material | None):
    form = card_form(_covers())
    if not form.validate_on_submit():
        return _card_page(kind, form, material, 400)
    try:
        saved = materials.save_card(
            db(), workspace_id(), kind, card_values(form), material, created_by=current_user.id
        )
    except SchemaError as exc:
        db().rollback()
        for key, messages in exc.messages.items():
            field = form[CARD_ERROR_FIELDS.get(key, key)] if key != "kind" else form.name
            field.errors = [*field.errors, *(_(m) for m in error_messages(messages))]
        return _card_page(kind, form, material, 400)
    action = "material.update" if material else "material.create"
    audit(db(), action, "material", saved.id, {"kind": kind, "title": saved.title})
    db().commit()
    flash(_("Saved."), "success")
    return redirect(url_for("admin.materials_detail", material_id=saved.id))


@bp.route("/materials/new/<kind>", methods=["GET", "POST"])
@requires("content.manage")
def materials_new(kind: str):
    if kind not in CARD_KINDS:
        abort(404)
    if request.method == "GET":
        return _card_page(kind, card_form(_covers(), formdata=None), None)
    return _save_card(kind, None)


@bp.route("/materials/<int:material_id>/edit", methods=["GET", "POST"])
@requires("content.manage")
def materials_edit(material_id: int):
    material = scoped_or_404(Material, material_id)
    if material.kind not in CARD_KINDS:
        abort(404)
    if request.method == "GET":
        return _card_page(material.kind, card_form(_covers(), material), material)
    return _save_card(material.kind, material)


@bp.get("/materials/<int:material_id>")
@requires("view")
def materials_detail(material_id: int):
    material = scoped_or_404(Material, material_id)
    cover = (
        db().get(Material, material.cover_id)
        if material.cover_id and material.cover_id != material.id
        else None
    )
    return render_template(
        "admin/material.html",
        material=material,
        cover=cover if cover and cover.workspace_id == material.workspace_id else None,
        uploads=materials.uploads_of(db(), material),
        channels=channel_names(db(), workspace_id()),
        **labels(),
    )


@bp.get("/materials/<int:material_id>/file")
@requires("view")
def materials_file(material_id: int):
    material = scoped_or_404(Material, material_id)
    if material.kind not in (MaterialKind.IMAGE, MaterialKind.FILE):
        abort(404)
    return send_file(
        io.BytesIO(material.data),
        mimetype=material.mime or "application/octet-stream",
        download_name=material.filename or material.name,
        as_attachment=material.kind == MaterialKind.FILE,
        max_age=3600,
    )


@bp.post("/materials/<int:material_id>/upload-now")
@requires("content.manage")
def materials_upload_now(material_id: int):
    material = scoped_or_404(Material, material_id)
    try:
        harpoon().queue.enqueue(Job.UPLOAD_MATERIAL, material.id)
    except RedisError as exc:
        log.warning("upload of material %s could not be queued: %s", material.id, exc)
        flash(_("The job queue is unreachable: try again in a moment."), "error")
    else:
        flash(_("Uploading to every connected channel: refresh in a moment."), "success")
    return redirect(url_for("admin.materials_detail", material_id=material.id))


@bp.post("/materials/<int:material_id>/archive")
@requires("content.manage")
def materials_archive(material_id: int):
    material = scoped_or_404(Material, material_id)
    materials.archive(material)
    audit(db(), "material.archive", "material", material.id, {})
    db().commit()
    flash(_("Archived: it no longer appears in the library or its pickers."), "success")
    return redirect(url_for("admin.materials"))
