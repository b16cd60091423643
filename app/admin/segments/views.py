"""The segment pages' routes: the list, the editor with its live preview, duplicate and
delete. A segment that a push not yet sent still targets cannot be deleted: a push
without a segment goes to every follower."""

from itertools import count as numbers

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from marshmallow import ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts.presenters import tag_filter_options
from app.admin.lookups import scoped_or_404
from app.admin.segments.forms import choices, copy_name, errors_of, posted
from app.admin.segments.presenters import ERROR_INPUTS, options, sample_labels
from core.forms import unflatten
from crm.channels import channel_options
from crm.directory import account_values
from crm.tags import TagBook
from models import Account, SavedSegment
from outreach.segments import (
    Segment,
    SegmentPreview,
    delete_saved_segment,
    load_named_segment,
    load_segment,
    pending_pushes,
    preview_segment,
    save_segment,
    segment_form,
    segment_names,
    segments_with_pushes,
)
from scoring.engine import load_model
from scoring.model import Model

SAMPLE_SIZE = 10


# ---- the list -----------------------------------------------------------------------------


@bp.get("/segments")
@requires("view")
def segments():
    return render_template("admin/segments.html", rows=segments_with_pushes(db(), workspace_id()))


# ---- the editor ---------------------------------------------------------------------------


@bp.route("/segments/new", methods=["GET", "POST"])
@requires("segments.manage")
def segments_new():
    if request.method == "POST":
        return _save(None)
    return _editor({**segment_form(Segment()), "name": "", "description": ""})


@bp.get("/segments/<int:segment_id>")
@requires("view")
def segments_detail(segment_id: int):
    saved = scoped_or_404(SavedSegment, segment_id)
    values = segment_form(Segment.from_document(saved.document))
    return _editor({**values, "name": saved.name, "description": saved.description}, saved)


@bp.post("/segments/<int:segment_id>")
@requires("segments.manage")
def segments_update(segment_id: int):
    return _save(scoped_or_404(SavedSegment, segment_id))


@bp.post("/segments/preview")
@requires("view")
def segments_preview():
    """The count and the sample for the form as posted, or its mistakes; nothing is
    saved. htmx swaps the preview in; without JavaScript it is the whole page."""
    editing = request.form.get("editing", "")
    saved = (
        scoped_or_404(SavedSegment, int(editing))
        if editing.isascii() and editing.isdigit()
        else None
    )
    if not request.headers.get("HX-Request"):
        return _editor(posted(), saved)
    model = load_model(db(), workspace_id())
    errors, preview = _previewed(posted(), model, saved)
    response = make_response(
        render_template(
            "admin/segment_preview.html",
            preview=preview,
            errors=errors,
            error_inputs=ERROR_INPUTS,
            oob=True,
            **sample_labels(model),
        )
    )
    response.vary.add("HX-Request")
    return response


def _editor(values: dict, saved: SavedSegment | None = None, errors=None, status: int = 200):
    """The form with `values`; the preview of its filters (or their mistakes)."""
    ws = workspace_id()
    model = load_model(db(), ws)
    filter_errors, preview = _previewed(values, model, saved)
    return render_template(
        "admin/segment.html",
        saved=saved,
        values=values,
        errors={**filter_errors, **(errors or {})},
        preview=preview,
        error_inputs=ERROR_INPUTS,
        pending_pushes=pending_pushes(db(), ws, saved.id) if saved else 0,
        **options(
            model,
            values,
            tag_filter_options(TagBook(db(), ws)),
            channel_options(db(), ws),
            regions=account_values(db(), ws, Account.region, Account.region != ""),
            industries=account_values(db(), ws, Account.industry, Account.industry != ""),
        ),
        **sample_labels(model),
    ), status


def _previewed(values: dict, model: Model, saved: SavedSegment | None):
    """(errors, None) for a form with mistakes, else ({}, its preview). The count of a
    saved segment's own filter is kept as its last count."""
    try:
        segment = load_segment(db(), workspace_id(), unflatten(values.items()), choices(model))
    except ValidationError as exc:
        return errors_of(exc), None
    preview = _preview(segment, model)
    if saved is not None and Segment.from_document(saved.document) == segment:
        saved.last_count, saved.counted_at = preview.members, preview.counted_at
        db().commit()
    return {}, preview


def _preview(segment: Segment, model: Model) -> SegmentPreview:
    return preview_segment(db(), workspace_id(), segment, model.half_life_days, SAMPLE_SIZE)


def _save(saved: SavedSegment | None):
    ws = workspace_id()
    values = posted()
    model = load_model(db(), ws)
    before = (
        None
        if saved is None
        else {"name": saved.name, "description": saved.description, "filters": saved.document}
    )
    try:
        name, description, segment = load_named_segment(
            db(), ws, unflatten(values.items()), choices(model)
        )
        row = save_segment(
            db(), ws, name, description, segment.to_document(), current_user.id, saved=saved
        )
    except ValidationError as exc:
        db().rollback()
        return _editor(values, saved, errors_of(exc), 400)
    preview = _preview(segment, model)
    row.last_count, row.counted_at = preview.members, preview.counted_at
    after = {"name": name, "description": description, "filters": segment.to_document()}
    if before is None:
        audit(db(), "segment.create", "segment", row.id, after)
    else:
        changes = {
            key: [before[key], after[key]]
            for key in ("name", "description")
            if before[key] != after[key]
        }
        if Segment.from_document(before["filters"]) != segment:
            changes["filters"] = [before["filters"], after["filters"]]
        audit(db(), "segment.update", "segment", row.id, changes)
    db().commit()
    flash(
        ngettext(
            "Segment “%(name)s” saved: %(num)s contact in it now.",
            "Segment “%(name)s” saved: %(num)s contacts in it now.",
            preview.members,
            name=name,
        ),
        "success",
    )
    return redirect(url_for("admin.segments_detail", segment_id=row.id))


# ---- duplicate and delete -----------------------------------------------------------------


@bp.post("/segments/<int:segment_id>/duplicate")
@requires("segments.manage")
def segments_duplicate(segment_id: int):
    saved = scoped_or_404(SavedSegment, segment_id)
    ws = workspace_id()
    taken = segment_names(db(), ws)
    name = next(
        candidate for n in numbers(1) if (candidate := copy_name(saved.name, n)) not in taken
    )
    try:
        copy = save_segment(db(), ws, name, saved.description, saved.document, current_user.id)
    except ValidationError:  # the name was taken a moment ago
        db().rollback()
        flash(_("Someone saved a segment at the same moment: try again."), "error")
        return redirect(url_for("admin.segments_detail", segment_id=segment_id))
    copy.last_count, copy.counted_at = saved.last_count, saved.counted_at
    audit(db(), "segment.duplicate", "segment", copy.id, {"name": name, "copy_of": saved.id})
    db().commit()
    flash(_("“%(name)s” is a copy: rename it and change what differs.", name=name), "success")
    return redirect(url_for("admin.segments_detail", segment_id=copy.id))


@bp.post("/segments/<int:segment_id>/delete")
@requires("segments.manage")
def segments_delete(segment_id: int):
    saved = scoped_or_404(SavedSegment, segment_id)
    name, document = saved.name, saved.document
    if not delete_saved_segment(db(), saved):
        db().rollback()
        pending = pending_pushes(db(), workspace_id(), segment_id)
        flash(
            ngettext(
                "“%(name)s” is the audience of %(num)s push not sent yet: "
                "pick another segment for it, or cancel it, then delete this one.",
                "“%(name)s” is the audience of %(num)s pushes not sent yet: "
                "pick another segment for them, or cancel them, then delete this one.",
                pending,
                name=name,
            ),
            "error",
        )
        return redirect(url_for("admin.segments_detail", segment_id=segment_id))
    audit(db(), "segment.delete", "segment", segment_id, {"name": name, "filters": document})
    db().commit()
    flash(_("Segment “%(name)s” deleted.", name=name), "success")
    return redirect(url_for("admin.segments"))
