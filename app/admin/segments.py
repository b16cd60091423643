"""Segments: saved filters over the workspace's contacts, reused by pushes and journeys.

The form covers every filter of outreach.segments.Segment. As the marketer edits it,
htmx posts it to the preview, which answers with the count and a sample of contacts, or
with the mistakes beside their inputs (out-of-band swaps); nothing is saved until Save.
A segment that a push not yet sent still targets cannot be deleted: pushes.segment_id is
ON DELETE SET NULL, and a push without a segment goes to every follower.
"""

from dataclasses import dataclass
from datetime import datetime
from itertools import count as numbers

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import delete, exists, func, select

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.channels import KIND_LABELS
from app.admin.contacts import INTERACTION_LABELS, tag_filter_options
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS, stage_names
from core.forms import flat_errors, unflatten
from crm.tags import TagBook
from crm.titles import SENIORITIES
from models import (
    Account,
    Channel,
    Contact,
    Push,
    PushStatus,
    SavedSegment,
    User,
    utcnow,
)
from outreach.segments import (
    LIST_FILTERS,
    MULTIPLE_INPUTS,
    Segment,
    SegmentChoices,
    contacts_query,
    count,
    load_named_segment,
    load_segment,
    sample,
    save_segment,
    segment_form,
)
from scoring.engine import lead_score_at, load_model
from scoring.forms import RULE_KINDS, TIERS
from scoring.model import Model

SAMPLE_SIZE = 10
# Pushes that still read their segment (to plan or to send): its deletion would make them
# pushes to every follower.
PENDING_PUSHES = (
    PushStatus.DRAFT,
    PushStatus.AWAITING_APPROVAL,
    PushStatus.SCHEDULED,
    PushStatus.SENDING,
)
# Every input whose mistakes the live preview shows beside it.
ERROR_INPUTS = (
    *LIST_FILTERS,
    "lead_score.min",
    "lead_score.max",
    "account_score.min",
    "account_score.max",
    "mqa",
    "target_accounts",
    "min_employees",
    "min_acv",
    "active_within_days",
    "inactive_for_days",
    "interactions.kinds",
    "interactions.min",
    "interactions.within_days",
)


@dataclass(frozen=True)
class Preview:
    """Who is in the segment now: how many of the workspace's contacts, and a few of them
    (contact, company, lead score today), most recently active first."""

    members: int
    total: int
    people: list[tuple[Contact, str | None, float]]
    counted_at: datetime


# ---- the list -----------------------------------------------------------------------------


@bp.get("/segments")
@requires("view")
def segments():
    ws = workspace_id()
    used = (
        select(Push.segment_id, func.count().label("pushes"))
        .where(Push.workspace_id == ws, Push.segment_id.is_not(None))
        .group_by(Push.segment_id)
        .subquery()
    )
    pending = (
        select(Push.segment_id, func.count().label("pushes"))
        .where(
            Push.workspace_id == ws,
            Push.segment_id.is_not(None),
            Push.status.in_(PENDING_PUSHES),
        )
        .group_by(Push.segment_id)
        .subquery()
    )
    rows = db().execute(
        select(
            SavedSegment,
            User.name,
            func.coalesce(used.c.pushes, 0),
            func.coalesce(pending.c.pushes, 0),
        )
        .outerjoin(User, User.id == SavedSegment.created_by)
        .outerjoin(used, used.c.segment_id == SavedSegment.id)
        .outerjoin(pending, pending.c.segment_id == SavedSegment.id)
        .where(SavedSegment.workspace_id == ws)
        .order_by(SavedSegment.name)
    )
    return render_template("admin/segments.html", rows=rows.all())


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
    saved = _segment_or_404(segment_id)
    values = segment_form(Segment.from_document(saved.document))
    return _editor({**values, "name": saved.name, "description": saved.description}, saved)


@bp.post("/segments/<int:segment_id>")
@requires("segments.manage")
def segments_update(segment_id: int):
    return _save(_segment_or_404(segment_id))


@bp.post("/segments/preview")
@requires("view")
def segments_preview():
    """The count and the sample for the form as posted, or its mistakes; nothing is
    saved. htmx swaps the preview in; without JavaScript it is the whole page."""
    editing = request.form.get("editing", "")
    saved = _segment_or_404(int(editing)) if editing.isascii() and editing.isdigit() else None
    if not request.headers.get("HX-Request"):
        return _editor(_posted(), saved)
    model = load_model(db(), workspace_id())
    errors, preview = _previewed(_posted(), model, saved)
    response = make_response(
        render_template(
            "admin/segment_preview.html",
            preview=preview,
            errors=errors,
            error_inputs=ERROR_INPUTS,
            oob=True,
            **_sample_labels(model),
        )
    )
    response.vary.add("HX-Request")
    return response


def _editor(values: dict, saved: SavedSegment | None = None, errors=None, status: int = 200):
    """The form with `values`; the preview of its filters (or their mistakes)."""
    model = load_model(db(), workspace_id())
    filter_errors, preview = _previewed(values, model, saved)
    return render_template(
        "admin/segment.html",
        saved=saved,
        values=values,
        errors={**filter_errors, **(errors or {})},
        preview=preview,
        error_inputs=ERROR_INPUTS,
        pending_pushes=_pending_pushes(saved.id) if saved else 0,
        **_options(model, values),
        **_sample_labels(model),
    ), status


def _previewed(values: dict, model: Model, saved: SavedSegment | None):
    """(errors, None) for a form with mistakes, else ({}, its Preview). The count of a
    saved segment's own filter is kept as its last count."""
    try:
        segment = load_segment(db(), workspace_id(), unflatten(values.items()), _choices(model))
    except ValidationError as exc:
        return _errors(exc), None
    preview = _preview(segment, model)
    if saved is not None and Segment.from_document(saved.document) == segment:
        saved.last_count, saved.counted_at = preview.members, preview.counted_at
        db().commit()
    return {}, preview


def _preview(segment: Segment, model: Model) -> Preview:
    session, ws, now = db(), workspace_id(), utcnow()
    query = contacts_query(segment, ws, model.half_life_days, now=now)
    people = sample(session, query, SAMPLE_SIZE)
    companies = dict(
        session.execute(
            select(Account.id, Account.name).where(
                Account.workspace_id == ws,
                Account.id.in_({c.account_id for c in people if c.account_id}),
            )
        ).all()
    )
    return Preview(
        members=count(session, query),
        total=count(session, contacts_query(Segment(), ws, model.half_life_days, now=now)),
        people=[
            (
                contact,
                companies.get(contact.account_id) or contact.company,
                lead_score_at(contact.score_mass, now, model.half_life_days),
            )
            for contact in people
        ],
        counted_at=now,
    )


def _save(saved: SavedSegment | None):
    ws = workspace_id()
    values = _posted()
    model = load_model(db(), ws)
    before = (
        None
        if saved is None
        else {"name": saved.name, "description": saved.description, "filters": saved.document}
    )
    try:
        name, description, segment = load_named_segment(
            db(), ws, unflatten(values.items()), _choices(model)
        )
        row = save_segment(
            db(), ws, name, description, segment.to_document(), current_user.id, saved=saved
        )
    except ValidationError as exc:
        db().rollback()
        return _editor(values, saved, _errors(exc), 400)
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
    saved = _segment_or_404(segment_id)
    ws = workspace_id()
    taken = set(db().scalars(select(SavedSegment.name).where(SavedSegment.workspace_id == ws)))
    name = next(
        candidate for n in numbers(1) if (candidate := _copy_name(saved.name, n)) not in taken
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


def _copy_name(name: str, n: int) -> str:
    """“Name (copy)”, “Name (copy 2)”…; the name shortened to keep within 100 characters."""

    def named(base: str) -> str:
        if n == 1:
            return _("%(name)s (copy)", name=base)
        return _("%(name)s (copy %(n)s)", name=base, n=n)

    overflow = len(named(name)) - 100
    return named(name[:-overflow] if overflow > 0 else name)


@bp.post("/segments/<int:segment_id>/delete")
@requires("segments.manage")
def segments_delete(segment_id: int):
    saved = _segment_or_404(segment_id)
    name, document = saved.name, saved.document
    # One statement: a push that takes the segment meanwhile keeps it.
    deleted = db().execute(
        delete(SavedSegment)
        .where(
            SavedSegment.id == saved.id,
            ~exists().where(Push.segment_id == saved.id, Push.status.in_(PENDING_PUSHES)),
        )
        .execution_options(synchronize_session=False)
    )
    if not deleted.rowcount:
        db().rollback()
        pending = _pending_pushes(segment_id)
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


# ---- helpers ------------------------------------------------------------------------------


def _segment_or_404(segment_id: int) -> SavedSegment:
    saved = db().scalar(
        select(SavedSegment).where(
            SavedSegment.id == segment_id, SavedSegment.workspace_id == workspace_id()
        )
    )
    if saved is None:
        abort(404)
    return saved


def _pending_pushes(segment_id: int) -> int:
    return db().scalar(
        select(func.count()).where(Push.segment_id == segment_id, Push.status.in_(PENDING_PUSHES))
    )


def _kinds() -> list[str]:
    """Interactions a segment may count: every kind Harpoon labels or scores."""
    return list(dict.fromkeys([*INTERACTION_LABELS, *RULE_KINDS]))


def _choices(model: Model) -> SegmentChoices:
    return SegmentChoices(
        roles=frozenset(CONTACT_ROLE_LABELS),
        seniorities=frozenset(SENIORITIES),
        stages=frozenset(stage.key for stage in model.stages),
        kinds=frozenset(_kinds()),
    )


def _options(model: Model, values: dict) -> dict:
    """What each input offers, labelled; a value the form holds that is no longer offered
    (a deleted tag, a renamed stage) shows too, so its mistake has something to point at."""
    ws = workspace_id()
    stages = list(stage_names(model.stages).items())
    tag_groups = [
        (str(group), [(str(tag_id), label) for tag_id, label in tags])
        for group, tags in tag_filter_options(TagBook(db(), ws))
    ]
    offered_tags = {value for _group, tags in tag_groups for value, _label in tags}
    missing_tags = {
        value
        for name in ("tags_all", "tags_any", "tags_none")
        for value in values.get(name, [])
        if value not in offered_tags
    }
    if missing_tags:
        tag_groups.append(
            (
                _("Not a tag any more"),
                [(value, _("Tag #%(id)s", id=value)) for value in sorted(missing_tags)],
            )
        )
    channels = db().execute(
        select(Channel.id, Channel.name, Channel.kind)
        .where(Channel.workspace_id == ws)
        .order_by(Channel.kind, Channel.name)
    )
    options = {
        "roles": [(code, str(label)) for code, label in CONTACT_ROLE_LABELS.items()],
        "seniorities": [(level, str(SENIORITY_LABELS[level])) for level in SENIORITIES],
        "stages": stages,
        "account_stages": stages,
        "tiers": [(str(tier), _("Tier %(tier)s", tier=tier)) for tier in TIERS],
        "regions": _account_values(Account.region),
        "industries": _account_values(Account.industry),
        "channel_ids": [
            (str(channel_id), f"{name} · {KIND_LABELS.get(kind, kind)}")
            for channel_id, name, kind in channels
        ],
        "interactions.kinds": [
            (kind, str(INTERACTION_LABELS[kind]) if kind in INTERACTION_LABELS else kind)
            for kind in _kinds()
        ],
    }
    for name, offered in options.items():
        known = {value for value, _label in offered}
        options[name] = offered + [
            (value, _("%(value)s (unknown)", value=value))
            for value in values.get(name, [])
            if value not in known
        ]
    return {"tag_groups": tag_groups, "options": options}


def _account_values(column) -> list[tuple[str, str]]:
    """The values the workspace's accounts hold in a column."""
    values = db().scalars(
        select(column)
        .where(Account.workspace_id == workspace_id(), column.is_not(None), column != "")
        .distinct()
        .order_by(column)
    )
    return [(value, value) for value in values]


def _sample_labels(model: Model) -> dict:
    return {"role_labels": CONTACT_ROLE_LABELS, "stage_labels": stage_names(model.stages)}


def _posted() -> dict:
    """The form as typed, by input name; checkboxes and multiple selects as lists."""
    return {
        name: request.form.getlist(name) if name in MULTIPLE_INPUTS else request.form.get(name, "")
        for name in request.form
        if name not in ("csrf_token", "editing")
    }


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    """The schemas' messages by input name, in the user's language."""
    return {
        name: [_(message) for message in messages]
        for name, messages in flat_errors(exc.messages).items()
    }
