"""The journey pages' routes: the list, the editor, a journey's page, going live / pause /
resume / archive, moving enrolments between versions; and the `journey_history` template
global the contact page shows."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.journeys.forms import (
    apply_op,
    editor_choices,
    form_errors,
    form_helpers,
    parse_document,
    starter_document,
)
from app.admin.journeys.presenters import (
    OUTCOME_BADGES,
    OUTCOME_LABELS,
    ZERO_TOTALS,
    Names,
    described_nodes,
    document_names,
    journey_graph,
    labels,
    listed,
    node_rows,
    waiting_rows,
)
from app.admin.labels import stage_names
from app.admin.lookups import scoped_or_404
from crm.users import user_names
from journeys import definitions
from journeys.definitions import JourneyError
from models import Journey, JourneyStatus
from scoring.engine import load_model


@bp.get("/journeys", endpoint="journeys")
@requires("view")
def journeys_list():
    journeys = definitions.workspace_journeys(db(), workspace_id())
    counts = definitions.journey_counts(db(), [j.id for j in journeys])
    return render_template(
        "admin/journeys.html",
        rows=listed(journeys, counts),
        **labels(),
    )


@bp.route("/journeys/new", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_new():
    if request.method == "POST":
        return _save(None)
    return _editor(None, {"name": "", "description": "", "note": ""}, starter_document(), {})


@bp.route("/journeys/<int:journey_id>/edit", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_edit(journey_id: int):
    journey = scoped_or_404(Journey, journey_id)
    if journey.status == JourneyStatus.ARCHIVED:
        flash(_("An archived journey cannot change."), "error")
        return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
    if request.method == "POST":
        return _save(journey)
    latest = definitions.latest_version(db(), journey.id)
    start = latest
    wanted = request.args.get("version", type=int)
    if wanted is not None:
        start = definitions.version_of(db(), journey.id, wanted) or abort(404)
    head = {"name": journey.name, "description": journey.description, "note": ""}
    return _editor(journey, head, start.document, {}, based_on=latest.version)


def _save(journey: Journey | None):
    head = {name: request.form.get(name, "").strip() for name in ("name", "description", "note")}
    document, units = parse_document(request.form)
    based_on = request.form.get("based_on", "")
    based_on = int(based_on) if based_on.isascii() and based_on.isdigit() else None
    op, _sep, target = request.form.get("op", "save").partition(":")
    if op not in ("save", "save_live"):
        focus = apply_op(document, op, target)
        if focus is None:
            abort(400)
        return _editor(journey, head, document, units, based_on=based_on, focus=focus)
    ws, user_id = workspace_id(), current_user.id
    is_new = journey is None
    was_live = not is_new and journey.live_version is not None
    try:
        if journey is None:
            journey = definitions.create_journey(
                db(), ws, head["name"], head["description"], document, user_id
            )
            version = definitions.latest_version(db(), journey.id)
            audit(db(), "journey.create", "journey", journey.id, {"name": journey.name})
        else:
            version = _save_existing(journey, head, document, based_on)
        if op == "save_live":
            definitions.go_live(db(), journey, version.version)
            audit(db(), "journey.live", "journey", journey.id, {"version": version.version})
    except ValidationError as exc:
        db().rollback()
        if is_new:
            journey = None
        latest = definitions.latest_version(db(), journey.id) if journey is not None else None
        return _editor(
            journey,
            head,
            document,
            units,
            errors=form_errors(exc),
            based_on=latest.version if latest else None,
            status=400,
        )
    except JourneyError as exc:
        db().rollback()
        flash(_(str(exc)), "error")
        return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
    db().commit()
    if op == "save_live":
        flash(
            _("Version %(version)s is live: new enrolments start on it.", version=version.version),
            "success",
        )
    elif not was_live:
        flash(_("Draft saved. Put it live from its page when it is ready."), "success")
    elif version.version == based_on:
        flash(
            _(
                "Saved. The nodes and settings did not change: still version %(version)s.",
                version=version.version,
            ),
            "success",
        )
    else:
        flash(
            _(
                "Saved as version %(version)s. Version %(live)s stays live until you put "
                "this one live.",
                version=version.version,
                live=journey.live_version,
            ),
            "success",
        )
    return redirect(
        url_for("admin.journeys_detail", journey_id=journey.id, version=version.version)
    )


def _save_existing(journey: Journey, head: dict, document: dict, based_on: int | None):
    """The new name and the new version together; every mistake at once."""
    errors: dict = {}
    before = (journey.name, journey.description)
    try:
        definitions.rename_journey(db(), journey, head["name"], head["description"])
    except ValidationError as exc:
        errors.update(exc.messages)
    try:
        version = definitions.save_version(
            db(), journey, document, current_user.id, head["note"], based_on=based_on
        )
    except ValidationError as exc:
        errors.update(exc.messages)
    if errors:
        raise ValidationError(errors)
    if before != (journey.name, journey.description):
        audit(
            db(),
            "journey.rename",
            "journey",
            journey.id,
            {"name": [before[0], journey.name], "description": [before[1], journey.description]},
        )
    if version.version != based_on:
        audit(
            db(),
            "journey.save",
            "journey",
            journey.id,
            {"version": version.version, "note": version.note},
        )
    return version


def _editor(
    journey: Journey | None,
    head: dict,
    document: dict,
    units: dict,
    *,
    errors: dict | None = None,
    based_on: int | None = None,
    focus: str | None = None,
    status: int = 200,
):
    model = load_model(db(), workspace_id())
    return render_template(
        "admin/journey_edit.html",
        journey=journey,
        head=head,
        document=document,
        units=units,
        errors=errors or {},
        based_on=based_on,
        focus=focus,
        shown_errors=[],
        **editor_choices(db(), workspace_id(), model, document),
        **labels(),
        **form_helpers(),
    ), status


@bp.get("/journeys/<int:journey_id>")
@requires("view")
def journeys_detail(journey_id: int):
    journey = scoped_or_404(Journey, journey_id)
    history = definitions.versions(db(), journey.id)
    wanted = request.args.get("version", type=int) or journey.live_version or history[0].version
    shown = next((v for v in history if v.version == wanted), None)
    if shown is None:
        abort(404)
    counts = definitions.node_counts(db(), journey.id, shown.version)
    open_versions = definitions.open_by_version(db(), journey.id)
    names = document_names(db(), journey.workspace_id)
    return render_template(
        "admin/journey.html",
        journey=journey,
        shown=shown,
        history=history,
        totals=definitions.journey_counts(db(), [journey.id]).get(journey.id, ZERO_TOTALS),
        open_versions=open_versions,
        movable=journey.status != JourneyStatus.ARCHIVED
        and len(history) > 1
        and any(open_versions.values()),
        graph=journey_graph(shown.document, counts, names),
        rows=node_rows(shown.document, counts, names),
        goals=[names.event(goal) for goal in shown.document.get("goals", ())],
        users=user_names(db(), journey.workspace_id),
        **labels(),
    )


@bp.post("/journeys/<int:journey_id>/live")
@requires("journeys.manage")
def journeys_go_live(journey_id: int):
    journey = scoped_or_404(Journey, journey_id)
    wanted = request.form.get("version", type=int)
    try:
        version = definitions.go_live(db(), journey, wanted)
    except JourneyError as exc:
        db().rollback()
        flash(_(str(exc)), "error")
        return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
    except ValidationError:
        db().rollback()
        flash(
            _("This version has mistakes (the rules changed since it was saved): edit it."), "error"
        )
        return redirect(url_for("admin.journeys_edit", journey_id=journey.id, version=wanted))
    audit(db(), "journey.live", "journey", journey.id, {"version": version.version})
    db().commit()
    flash(
        _("Version %(version)s is live: new enrolments start on it.", version=version.version),
        "success",
    )
    return redirect(url_for("admin.journeys_detail", journey_id=journey.id))


@bp.post("/journeys/<int:journey_id>/<any(pause, resume, archive):change>")
@requires("journeys.manage")
def journeys_change(journey_id: int, change: str):
    journey = scoped_or_404(Journey, journey_id)
    try:
        match change:
            case "pause":
                definitions.pause(db(), journey)
                message = _("Paused: nobody enters and enrolments wait where they are.")
            case "resume":
                definitions.resume(db(), journey)
                message = _("Live again: enrolments go on from where they waited.")
            case _:
                exited = definitions.archive(db(), journey)
                message = _("Archived: %(num)s enrolments exited.", num=exited)
    except JourneyError as exc:
        db().rollback()
        flash(_(str(exc)), "error")
        return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
    audit(db(), f"journey.{change}", "journey", journey.id, {})
    db().commit()
    flash(message, "success")
    return redirect(url_for("admin.journeys_detail", journey_id=journey.id))


@bp.route("/journeys/<int:journey_id>/migrate", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_migrate(journey_id: int):
    """Open enrolments of one version, node by node, to a node of another (or stay)."""
    journey = scoped_or_404(Journey, journey_id)
    history = definitions.versions(db(), journey.id)
    open_versions = definitions.open_by_version(db(), journey.id)
    target_number = request.values.get("to", type=int) or journey.live_version or history[0].version
    sources = [v for v in history if open_versions.get(v.version) and v.version != target_number]
    source_number = request.values.get("from", type=int) or (
        sources[0].version if sources else None
    )
    source = next((v for v in history if v.version == source_number), None)
    target = next((v for v in history if v.version == target_number), None)
    if target is None or (source_number is not None and source is None):
        abort(404)
    errors: dict = {}
    mapping: dict[str, str] = {}
    at_nodes = definitions.open_by_node(db(), journey.id, source.version) if source else {}
    target_ids = [node["id"] for node in target.document.get("nodes", ())]
    if request.method == "POST" and source is not None:
        mapping = {node_id: request.form.get(f"node_map.{node_id}", "") for node_id in at_nodes}
        try:
            moved = definitions.migrate_enrolments(
                db(), journey, source.version, target.version, mapping
            )
        except ValidationError as exc:
            db().rollback()
            errors = form_errors(exc)
        except JourneyError as exc:
            db().rollback()
            flash(_(str(exc)), "error")
            return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
        else:
            audit(
                db(),
                "journey.migrate",
                "journey",
                journey.id,
                {"from": source.version, "to": target.version, "map": mapping, "moved": moved},
            )
            db().commit()
            flash(
                _(
                    "%(num)s enrolments moved from version %(from)s to version %(to)s.",
                    num=moved,
                    **{"from": source.version, "to": target.version},
                ),
                "success",
            )
            return redirect(url_for("admin.journeys_detail", journey_id=journey.id))
    elif source is not None:
        mapping = {node_id: node_id if node_id in target_ids else "" for node_id in at_nodes}
    names = document_names(db(), journey.workspace_id)
    return render_template(
        "admin/journey_migrate.html",
        journey=journey,
        history=history,
        open_versions=open_versions,
        source=source,
        target=target,
        rows=waiting_rows(source, at_nodes, names),
        mapping=mapping,
        target_nodes=described_nodes(target, names),
        errors=errors,
        **labels(),
    ), (400 if errors else 200)


@bp.app_template_global("journey_history")
def journey_history(contact_id: int) -> dict:
    """The contact's journeys, told in the user's language, for the contact page."""
    ws = workspace_id()
    names = Names({}, stage_names(load_model(db(), ws).stages), {})
    items = definitions.contact_history(
        db(),
        contact_id,
        event_label=names.event,
        stage_label=names.stage,
        time_label=lambda moment: format_datetime(moment, "yyyy-MM-dd HH:mm"),
    )
    return {
        "items": items,
        "translate": _,
        "outcome_labels": OUTCOME_LABELS,
        "outcome_badges": OUTCOME_BADGES,
    }
