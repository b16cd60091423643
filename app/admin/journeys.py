"""Journeys: the list with live counts; the editor (settings, goals, and the nodes with
their type's fields); the journey page (a graph of a version with its counts per node,
the same counts in a table, the version history, go live / pause / resume / archive);
moving enrolments between versions; and a contact's journey history, which the contact
page shows through the `journey_history` template global.

The editor is one form whose inputs are named by their path in the journey document
("nodes.2.action.text"), so journeys.model.validate's messages land beside their input.
Its buttons that add, remove or move a node, a branch or a goal change the document as
typed and show it again; only Save stores it (journeys.definitions decides the version).
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts import INTERACTION_LABELS, tag_filter_options
from app.admin.labels import stage_names, tag_label
from core.forms import flat_errors
from crm.tags import TagBook
from journeys import definitions
from journeys.definitions import (
    ACTION_LABELS,
    CONDITION_LABELS,
    NODE_TYPE_LABELS,
    TRIGGER_LABELS,
    WAIT_LABELS,
    JourneyError,
)
from journeys.model import MAX_NODES, NODE_TYPES
from models import Journey, JourneyStatus, SavedSegment, Tag, User
from scoring.engine import load_model
from scoring.forms import RULE_KINDS

STATUS_LABELS = {
    JourneyStatus.DRAFT: _l("Draft"),
    JourneyStatus.LIVE: _l("Live"),
    JourneyStatus.PAUSED: _l("Paused"),
    JourneyStatus.ARCHIVED: _l("Archived"),
}
STATUS_BADGES = {JourneyStatus.LIVE: "ok", JourneyStatus.PAUSED: "warn"}
STATUS_ORDER = [
    JourneyStatus.LIVE,
    JourneyStatus.PAUSED,
    JourneyStatus.DRAFT,
    JourneyStatus.ARCHIVED,
]
OUTCOME_LABELS = {
    "entered": _l("Entered"),
    "jumped": _l("Jumped"),
    "done": _l("Done"),
    "skipped": _l("Skipped"),
    "failed": _l("Failed"),
    "sending": _l("Sending"),
    "waiting": _l("Waiting"),
    "timed_out": _l("Timed out"),
    "goal": _l("Goal"),
}
OUTCOME_BADGES = {
    "done": "ok",
    "goal": "ok",
    "skipped": "warn",
    "timed_out": "warn",
    "failed": "error",
}
SCOPE_LABELS = {"contact": _l("Each contact on their own"), "account": _l("Each account as one")}
REENTRY_LABELS = {
    "once": _l("Once"),
    "period": _l("Again after some days"),
    "always": _l("Every time the trigger happens"),
}
SINCE_LABELS = {"enrolment": _l("since entering the journey"), "ever": _l("at any time")}
WINDOW_LABELS = {**SINCE_LABELS, "days": _l("in the last days")}
SCORE_OF_LABELS = {"lead": _l("Lead score"), "account": _l("Account score")}
# Durations are typed as an amount and a unit; the document holds minutes.
UNITS = {"minutes": 1, "hours": 60, "days": 1440}
UNIT_LABELS = {"minutes": _l("minutes"), "hours": _l("hours"), "days": _l("days")}
MAX_BRANCHES = 20
MAX_GOALS = 20
# The graph: where columns and rows of nodes go (data units, about pixels at 100%).
COLUMN_WIDTH, ROW_HEIGHT = 230, 100
ZERO_COUNTS = {"current": 0, "entered": 0, "done": 0, "skipped": 0, "failed": 0}
ZERO_TOTALS = {"open": 0, "completed": 0, "goal": 0, "exited": 0, "total": 0}


# ---- the list -----------------------------------------------------------------------------


@bp.get("/journeys", endpoint="journeys")
@requires("view")
def journeys_list():
    journeys = sorted(
        db().scalars(select(Journey).where(Journey.workspace_id == workspace_id())),
        key=lambda j: (STATUS_ORDER.index(j.status), j.name.casefold()),
    )
    counts = definitions.journey_counts(db(), [j.id for j in journeys])
    return render_template(
        "admin/journeys.html",
        rows=[(journey, counts.get(journey.id, ZERO_TOTALS)) for journey in journeys],
        **_labels(),
    )


# ---- the editor ---------------------------------------------------------------------------


@bp.route("/journeys/new", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_new():
    if request.method == "POST":
        return _save(None)
    return _editor(None, {"name": "", "description": "", "note": ""}, starter_document(), {})


@bp.route("/journeys/<int:journey_id>/edit", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_edit(journey_id: int):
    journey = _journey_or_404(journey_id)
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


def starter_document() -> dict:
    """A follow, a welcome, the end: the shape most journeys start from."""
    return {
        "scope": "contact",
        "reentry": "once",
        "goals": [],
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
                "next": "welcome",
            },
            {
                "id": "welcome",
                "type": "action",
                "action": {"kind": "cs_message", "text": ""},
                "next": "done",
            },
            {"id": "done", "type": "exit"},
        ],
    }


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
            errors=_errors(exc),
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
        **_choices(model, document),
        **_labels(),
        **_form_helpers(),
    ), status


# ---- the form <-> the document -----------------------------------------------------------


def parse_document(form) -> tuple[dict, dict]:
    """The document the editor's inputs describe, as typed (validated on save), and the
    unit chosen for each duration that is not a whole number of minutes yet."""
    units: dict[str, str] = {}
    document: dict = {"scope": _text(form, "scope") or "contact"}
    document["reentry"] = _text(form, "reentry") or "once"
    if document["reentry"] == "period":
        document["reentry_days"] = _whole(_text(form, "reentry_days"))
    document["goals"] = [
        _event(form, f"goals.{n}") for n in range(MAX_GOALS) if f"goals.{n}.kind" in form
    ]
    nodes = []
    for n in range(MAX_NODES + 1):
        if f"nodes.{n}.id" not in form:
            break
        nodes.append(_node(form, f"nodes.{n}", units))
    document["nodes"] = nodes
    _follow_renames(form, nodes)
    return document, units


def _node(form, at: str, units: dict) -> dict:
    kind = _text(form, f"{at}.type")
    node: dict = {"id": _text(form, f"{at}.id"), "type": kind}
    trigger = _text(form, f"{at}.trigger.kind")
    if trigger:
        node["trigger"] = _trigger(form, f"{at}.trigger", trigger)
    match kind:
        case "wait":
            mode = _text(form, f"{at}.wait_mode") or "minutes"
            if mode == "until_time":
                node["wait"] = {"until_time": _text(form, f"{at}.wait.until_time")}
            elif mode == "event":
                node["wait"] = {
                    "event": _event(form, f"{at}.wait.event"),
                    "timeout_minutes": _duration(form, f"{at}.wait.timeout_minutes", units),
                }
                _link(node, "timeout_next", form, at)
            else:
                node["wait"] = {"minutes": _duration(form, f"{at}.wait.minutes", units)}
        case "action":
            node["action"] = _action(form, f"{at}.action")
            if _text(form, f"{at}.skip_if.event.kind"):
                node["skip_if"] = {
                    "event": _event(form, f"{at}.skip_if.event"),
                    "since": _text(form, f"{at}.skip_if.since") or "enrolment",
                }
        case "branch":
            node["branches"] = [
                {
                    "condition": _condition(form, f"{at}.branches.{m}.condition"),
                    "next": _text(form, f"{at}.branches.{m}.next") or None,
                }
                for m in range(MAX_BRANCHES)
                if f"{at}.branches.{m}.condition.kind" in form
            ]
            node["otherwise"] = _text(form, f"{at}.otherwise") or None
    if kind in ("entry", "wait", "action"):
        _link(node, "next", form, at)
    return node


def _link(node: dict, key: str, form, at: str) -> None:
    if target := _text(form, f"{at}.{key}"):
        node[key] = target


def _trigger(form, at: str, kind: str) -> dict:
    trigger = {"kind": kind}
    match kind:
        case "interaction":
            trigger["event"] = _event(form, f"{at}.event")
        case "tag_added":
            trigger["tag_id"] = _whole(_text(form, f"{at}.tag_id"))
        case "segment_entered":
            trigger["segment_id"] = _whole(_text(form, f"{at}.segment_id"))
        case "stage_reached":
            trigger["stage"] = _text(form, f"{at}.stage")
        case "score_crossed":
            trigger["of"] = _text(form, f"{at}.of")
            trigger["at_least"] = _number(_text(form, f"{at}.at_least"))
        case "date":
            trigger["at"] = _moment(_text(form, f"{at}.at"))
            trigger["segment_id"] = _whole(_text(form, f"{at}.segment_id"))
    return trigger


def _action(form, at: str) -> dict:
    kind = _text(form, f"{at}.kind")
    action: dict = {"kind": kind}
    match kind:
        case "cs_message" | "wecom_message" | "wecom_group_task" | "notify_owner":
            action["text"] = _text(form, f"{at}.text")
        case "template_message":
            action["template_id"] = _text(form, f"{at}.template_id")
            action["data"] = _pairs(_text(form, f"{at}.data"))
            if url := _text(form, f"{at}.url"):
                action["url"] = url
        case "add_tag" | "remove_tag":
            action["tag_id"] = _whole(_text(form, f"{at}.tag_id"))
        case "set_stage":
            action["stage"] = _text(form, f"{at}.stage")
        case "webhook":
            action["url"] = _text(form, f"{at}.url")
    return action


def _condition(form, at: str) -> dict:
    kind = _text(form, f"{at}.kind")
    condition: dict = {"kind": kind}
    match kind:
        case "has_tag":
            condition["tag_id"] = _whole(_text(form, f"{at}.tag_id"))
        case "score_at_least":
            condition["of"] = _text(form, f"{at}.of")
            condition["at_least"] = _number(_text(form, f"{at}.at_least"))
        case "stage_in":
            condition["stages"] = [s for s in form.getlist(f"{at}.stages") if s]
        case "interacted":
            condition["event"] = _event(form, f"{at}.event")
            window = _text(form, f"{at}.window")
            if window == "days":
                condition["within_days"] = _whole(_text(form, f"{at}.within_days"))
            else:
                condition["since"] = window or "enrolment"
        case "first_event":
            condition["a"] = _event(form, f"{at}.a")
            condition["b"] = _event(form, f"{at}.b")
    return condition


def _event(form, at: str) -> dict:
    event = {"kind": _text(form, f"{at}.kind")}
    where = _pairs(_text(form, f"{at}.where"))
    if where:
        event["where"] = where
    return event


def _text(form, name: str) -> str:
    return (form.get(name) or "").strip()


def _whole(text: str):
    """A whole number, or the text as typed (the document's check names the mistake)."""
    return int(text) if text.isascii() and text.isdigit() else text or None


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text or None
    return int(value) if value.is_integer() else value


def _duration(form, path: str, units: dict):
    """Minutes from an amount and its unit; the amount as typed when it is not a whole
    number of minutes (its unit kept for the form)."""
    amount, unit = _text(form, path), form.get(f"{path}_unit", "minutes")
    factor = UNITS.get(unit, 1)
    try:
        minutes = float(amount) * factor
    except ValueError:
        minutes = None
    if minutes is not None and minutes.is_integer():
        return int(minutes)
    units[path] = unit
    return amount


def _pairs(text: str):
    """ "name: value" lines as a dict; the text as typed when a line is not one."""
    pairs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return text
        pairs[name.strip()] = value.strip()
    return pairs


def _moment(text: str) -> str:
    """A date and time typed in the workspace's zone, stored with its offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.replace(tzinfo=moment.tzinfo or _zone()).isoformat()


def _zone() -> ZoneInfo:
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


def _follow_renames(form, nodes: list[dict]) -> None:
    """Links name nodes by the ids the page was drawn with: a renamed node keeps them."""
    ids = {node["id"] for node in nodes}
    renamed = {}
    for n, node in enumerate(nodes):
        was = _text(form, f"nodes.{n}.was")
        if was and was != node["id"] and was not in ids:
            renamed[was] = node["id"]
    if renamed:
        _relink(nodes, lambda target: renamed.get(target, target))


def _relink(nodes: list[dict], change) -> None:
    for node in nodes:
        for key in ("next", "otherwise", "timeout_next"):
            if node.get(key):
                node[key] = change(node[key])
                if node[key] is None:
                    del node[key]
        for branch in node.get("branches") or ():
            if branch.get("next"):
                branch["next"] = change(branch["next"])


def apply_op(document: dict, op: str, target: str) -> str | None:
    """Change the document as the pressed button asks; returns the element to scroll to,
    or None for a request no form makes."""
    nodes, goals = document["nodes"], document["goals"]
    try:
        match op:
            case "add_node" if target in NODE_TYPES and len(nodes) < MAX_NODES:
                node = new_node(target, {n["id"] for n in nodes})
                last = nodes[-1] if nodes else None
                if last and last["type"] in ("entry", "wait", "action") and not last.get("next"):
                    last["next"] = node["id"]
                nodes.append(node)
                return f"node-{len(nodes) - 1}"
            case "remove":
                removed = nodes.pop(int(target))["id"]
                _relink(nodes, lambda link: None if link == removed else link)
                return f"node-{max(int(target) - 1, 0)}" if nodes else "nodes"
            case "up" | "down":
                index = int(target)
                other = index - 1 if op == "up" else index + 1
                if not (0 <= index < len(nodes) and 0 <= other < len(nodes)):
                    return None
                nodes[index], nodes[other] = nodes[other], nodes[index]
                return f"node-{other}"
            case "add_branch":
                branches = nodes[int(target)].setdefault("branches", [])
                if len(branches) >= MAX_BRANCHES:
                    return None
                branches.append({"condition": {"kind": "has_tag"}, "next": None})
                return f"node-{int(target)}"
            case "remove_branch":
                index, _sep, branch = target.partition(".")
                nodes[int(index)]["branches"].pop(int(branch))
                return f"node-{int(index)}"
            case "add_goal" if len(goals) < MAX_GOALS:
                goals.append({"kind": ""})
                return "goals"
            case "remove_goal":
                goals.pop(int(target))
                return "goals"
    except (IndexError, KeyError, ValueError, TypeError, AttributeError):
        return None
    return None


def new_node(kind: str, taken: set[str]) -> dict:
    """A node of this type with the first free id ("wait_2") and fields to fill in."""
    number = 1
    while f"{kind}_{number}" in taken:
        number += 1
    node = {"id": f"{kind}_{number}", "type": kind}
    match kind:
        case "entry":
            node["trigger"] = {"kind": "interaction", "event": {"kind": ""}}
        case "wait":
            node["wait"] = {"minutes": 1440}
        case "action":
            node["action"] = {"kind": "cs_message", "text": ""}
        case "branch":
            node["branches"] = [{"condition": {"kind": "has_tag"}, "next": None}]
    return node


def _form_helpers() -> dict:
    """What the editor's template uses to show document values in inputs."""

    def pairs_text(value) -> str:
        if isinstance(value, dict):
            return "\n".join(f"{k}: {v}" for k, v in value.items())
        return value or ""

    def duration(value, path: str, units: dict) -> tuple[str, str]:
        if path in units or not isinstance(value, int) or value <= 0:
            return ("" if value is None else str(value)), units.get(path, "minutes")
        for unit in ("days", "hours"):
            if value % UNITS[unit] == 0:
                return str(value // UNITS[unit]), unit
        return str(value), "minutes"

    def local_moment(value) -> str:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return value or ""
        if moment.tzinfo is not None:
            moment = moment.astimezone(_zone()).replace(tzinfo=None)
        return moment.isoformat(timespec="minutes")

    def shown(value) -> str:
        return "" if value is None else str(value)

    return {
        "pairs_text": pairs_text,
        "duration": duration,
        "local_moment": local_moment,
        "shown": shown,
    }


def _choices(model, document: dict) -> dict:
    """What the editor's selects offer; a value the document holds that is no longer
    offered (a deleted tag, a renamed stage) shows too, so its mistake points at it."""
    ws = workspace_id()
    tag_groups = [(str(group), list(tags)) for group, tags in tag_filter_options(TagBook(db(), ws))]
    offered = {tag_id for _group, tags in tag_groups for tag_id, _label in tags}
    used = {value for value in _values(document, "tag_id") if isinstance(value, int)}
    if used - offered:
        tag_groups.append(
            (_("Not a tag any more"), [(t, _("Tag #%(id)s", id=t)) for t in sorted(used - offered)])
        )
    stages = stage_names(model.stages)
    for stage in [*_values(document, "stage"), *_values(document, "stages")]:
        for key in stage if isinstance(stage, list) else [stage]:
            if isinstance(key, str) and key and key not in stages:
                stages[key] = _("%(value)s (unknown)", value=key)
    segments = dict(
        db()
        .execute(
            select(SavedSegment.id, SavedSegment.name)
            .where(SavedSegment.workspace_id == ws)
            .order_by(SavedSegment.name)
        )
        .all()
    )
    for segment_id in _values(document, "segment_id"):
        if isinstance(segment_id, int) and segment_id not in segments:
            segments[segment_id] = _("Segment #%(id)s (deleted)", id=segment_id)
    kinds = {kind: str(INTERACTION_LABELS.get(kind, kind)) for kind in _event_kinds()}
    for kind in _values(document, "kind"):
        if isinstance(kind, str) and "." in kind and kind not in kinds:
            kinds[kind] = kind
    return {
        "tag_groups": tag_groups,
        "stage_options": list(stages.items()),
        "segment_options": list(segments.items()),
        "event_kinds": list(kinds.items()),
        "node_options": [(node.get("id", ""), node.get("id", "")) for node in document["nodes"]],
    }


def _event_kinds() -> list[str]:
    """Interactions a journey may wait for or enter on: every kind Harpoon labels or scores."""
    return list(dict.fromkeys([*INTERACTION_LABELS, *RULE_KINDS]))


def _values(data, key: str):
    """Every value under `key` anywhere in the document."""
    if isinstance(data, dict):
        for name, value in data.items():
            if name == key:
                yield value
            yield from _values(value, key)
    elif isinstance(data, list):
        for item in data:
            yield from _values(item, key)


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    """The messages by input name, in the user's language."""
    return {
        path: [_(message) for message in messages]
        for path, messages in flat_errors(exc.messages).items()
    }


# ---- the journey page ---------------------------------------------------------------------


@bp.get("/journeys/<int:journey_id>")
@requires("view")
def journeys_detail(journey_id: int):
    journey = _journey_or_404(journey_id)
    history = definitions.versions(db(), journey.id)
    wanted = request.args.get("version", type=int) or journey.live_version or history[0].version
    shown = next((v for v in history if v.version == wanted), None)
    if shown is None:
        abort(404)
    counts = definitions.node_counts(db(), journey.id, shown.version)
    open_versions = definitions.open_by_version(db(), journey.id)
    names = _names(journey.workspace_id)
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
        rows=[
            (node, describe_node(node, names), {**ZERO_COUNTS, **counts.get(node["id"], {})})
            for node in shown.document.get("nodes", ())
        ],
        goals=[names.event(goal) for goal in shown.document.get("goals", ())],
        users=dict(
            db()
            .execute(select(User.id, User.name).where(User.workspace_id == journey.workspace_id))
            .all()
        ),
        **_labels(),
    )


class _Names:
    """Labels of what a document refers to: interaction kinds, tags, stages, segments."""

    def __init__(self, tags: dict[int, str], stages: dict[str, str], segments: dict[int, str]):
        self.tags, self.stages, self.segments = tags, stages, segments

    def event(self, event) -> str:
        if not isinstance(event, dict):
            return str(event)
        kind = event.get("kind", "")
        label = str(INTERACTION_LABELS[kind]) if kind in INTERACTION_LABELS else kind
        where = event.get("where") or {}
        if isinstance(where, dict) and where:
            label += " (" + ", ".join(f"{k} = {v}" for k, v in where.items()) + ")"
        return label

    def tag(self, tag_id) -> str:
        return self.tags.get(tag_id, _("Tag #%(id)s", id=tag_id))

    def stage(self, key) -> str:
        return self.stages.get(key, str(key))

    def segment(self, segment_id) -> str:
        return self.segments.get(segment_id, _("Segment #%(id)s", id=segment_id))


def _names(ws: int) -> _Names:
    tags = {
        tag.id: tag_label(tag) for tag in db().scalars(select(Tag).where(Tag.workspace_id == ws))
    }
    segments = dict(
        db()
        .execute(select(SavedSegment.id, SavedSegment.name).where(SavedSegment.workspace_id == ws))
        .all()
    )
    return _Names(tags, stage_names(load_model(db(), ws).stages), segments)


def _minutes(value) -> str:
    if not isinstance(value, int):
        return str(value)
    if value % 1440 == 0:
        return _("%(n)s d", n=value // 1440)
    if value % 60 == 0:
        return _("%(n)s h", n=value // 60)
    return _("%(n)s min", n=value)


def describe_trigger(trigger: dict, names: _Names) -> str:
    kind = trigger.get("kind")
    match kind:
        case "interaction":
            return names.event(trigger.get("event"))
        case "tag_added":
            return _("Tagged %(tag)s", tag=names.tag(trigger.get("tag_id")))
        case "stage_reached":
            return _("Reaches the stage %(stage)s", stage=names.stage(trigger.get("stage")))
        case "segment_entered":
            return _(
                "Enters the segment %(segment)s", segment=names.segment(trigger.get("segment_id"))
            )
        case "score_crossed":
            return _(
                "%(score)s reaches %(at_least)s",
                score=SCORE_OF_LABELS.get(trigger.get("of"), "?"),
                at_least=trigger.get("at_least"),
            )
        case "date":
            return _(
                "The segment %(segment)s on %(at)s",
                segment=names.segment(trigger.get("segment_id")),
                at=trigger.get("at", "?")[:16].replace("T", " "),
            )
    return _(TRIGGER_LABELS[kind]) if kind in TRIGGER_LABELS else str(kind)


def describe_condition(condition: dict, names: _Names) -> str:
    match condition.get("kind"):
        case "has_tag":
            return _("Has the tag %(tag)s", tag=names.tag(condition.get("tag_id")))
        case "score_at_least":
            return _(
                "%(score)s ≥ %(at_least)s",
                score=SCORE_OF_LABELS.get(condition.get("of"), "?"),
                at_least=condition.get("at_least"),
            )
        case "stage_in":
            return _(
                "Stage is %(stages)s",
                stages=" / ".join(names.stage(s) for s in condition.get("stages") or ()),
            )
        case "interacted":
            if "within_days" in condition:
                window = _("in the last %(days)s days", days=condition["within_days"])
            else:
                window = SINCE_LABELS.get(condition.get("since", "enrolment"), "")
            return _(
                "%(event)s %(window)s", event=names.event(condition.get("event")), window=window
            )
        case "first_event":
            return _(
                "%(a)s before %(b)s",
                a=names.event(condition.get("a")),
                b=names.event(condition.get("b")),
            )
    return str(condition.get("kind"))


def describe_node(node: dict, names: _Names) -> str:
    """One line saying what a node does, for the table and the graph's tooltip."""
    match node.get("type"):
        case "wait":
            wait = node.get("wait") or {}
            if wait.get("event"):
                text = _(
                    "Wait for %(event)s, at most %(time)s",
                    event=names.event(wait["event"]),
                    time=_minutes(wait.get("timeout_minutes")),
                )
            elif wait.get("until_time"):
                text = _("Wait until %(time)s", time=wait["until_time"])
            else:
                text = _("Wait %(time)s", time=_minutes(wait.get("minutes")))
        case "action":
            action = node.get("action") or {}
            kind = action.get("kind")
            text = _(ACTION_LABELS[kind]) if kind in ACTION_LABELS else str(kind)
            if action.get("text"):
                text += f": {action['text'][:40]}"
            elif kind in ("add_tag", "remove_tag"):
                text += f": {names.tag(action.get('tag_id'))}"
            elif kind == "set_stage":
                text += f": {names.stage(action.get('stage'))}"
            elif kind == "webhook":
                text += f": {action.get('url', '')}"
            elif kind == "template_message":
                text += f": {action.get('template_id', '')}"
            if (node.get("skip_if") or {}).get("event"):
                text += " · " + _(
                    "skipped if %(event)s %(since)s",
                    event=names.event(node["skip_if"]["event"]),
                    since=SINCE_LABELS.get(node["skip_if"].get("since", "enrolment"), ""),
                )
        case "branch":
            text = " · ".join(
                f"{n}. {describe_condition(branch.get('condition') or {}, names)}"
                for n, branch in enumerate(node.get("branches") or (), start=1)
            )
        case "exit":
            text = _("The journey ends")
        case _:
            text = ""
    if node.get("trigger"):
        entry = _("Entry: %(trigger)s", trigger=describe_trigger(node["trigger"], names))
        text = f"{entry} · {text}" if text else entry
    return text


def journey_graph(document: dict, counts: dict, names: _Names) -> dict:
    """ECharts `graph` data: nodes placed left to right by depth from the entries, each
    with its label and counts; a link per next / branch / otherwise / timeout."""
    placed = definitions.layout(document)
    by_id = {node["id"]: node for node in document.get("nodes", ())}
    nodes = []
    for node in document.get("nodes", ()):
        column, row = placed[node["id"]]
        count = {**ZERO_COUNTS, **counts.get(node["id"], {})}
        nodes.append(
            {
                "id": node["id"],
                "name": node["id"],
                "x": column * COLUMN_WIDTH,
                "y": row * ROW_HEIGHT,
                "category": NODE_TYPES.index(node["type"]),
                "counts": count,
                "type_label": _(NODE_TYPE_LABELS[node["type"]]),
                "entry": bool(node.get("trigger")),
                "summary": describe_node(node, names),
            }
        )
    links = []
    for source, target, why in definitions.edges(document):
        if target not in by_id:
            continue
        label = ""
        if why.startswith("branch."):
            branch = by_id[source]["branches"][int(why.split(".")[1])]
            label = describe_condition(branch.get("condition") or {}, names)
        elif why == "otherwise":
            label = _("otherwise")
        elif why == "timeout":
            label = _("timed out")
        backwards = placed[target][0] <= placed[source][0]
        links.append(
            {"source": source, "target": target, "label": label, "why": why, "back": backwards}
        )
    return {
        "nodes": nodes,
        "links": links,
        "categories": [{"name": _(NODE_TYPE_LABELS[kind])} for kind in NODE_TYPES],
        "column": COLUMN_WIDTH,
        "row": ROW_HEIGHT,
        "names": {
            "current": _("now"),
            "entered": _("reached"),
            "done": _("done"),
            "skipped": _("skipped"),
        },
    }


# ---- going live, pausing, archiving -------------------------------------------------------


@bp.post("/journeys/<int:journey_id>/live")
@requires("journeys.manage")
def journeys_go_live(journey_id: int):
    journey = _journey_or_404(journey_id)
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
    journey = _journey_or_404(journey_id)
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


# ---- moving enrolments between versions ---------------------------------------------------


@bp.route("/journeys/<int:journey_id>/migrate", methods=["GET", "POST"])
@requires("journeys.manage")
def journeys_migrate(journey_id: int):
    """Open enrolments of one version, node by node, to a node of another (or stay)."""
    journey = _journey_or_404(journey_id)
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
            errors = _errors(exc)
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
    names = _names(journey.workspace_id)
    source_nodes = {node["id"]: node for node in source.document.get("nodes", ())} if source else {}
    return render_template(
        "admin/journey_migrate.html",
        journey=journey,
        history=history,
        open_versions=open_versions,
        source=source,
        target=target,
        rows=[
            (node_id, count, describe_node(source_nodes.get(node_id, {}), names))
            for node_id, count in sorted(at_nodes.items())
        ],
        mapping=mapping,
        target_nodes=[
            (node["id"], describe_node(node, names)) for node in target.document.get("nodes", ())
        ],
        errors=errors,
        **_labels(),
    ), (400 if errors else 200)


# ---- a contact's history (the contact page) ---------------------------------------------


@bp.app_template_global("journey_history")
def journey_history(contact_id: int) -> dict:
    """The contact's journeys, told in the user's language, for the contact page."""
    ws = workspace_id()
    names = _Names({}, stage_names(load_model(db(), ws).stages), {})
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


# ---- helpers ------------------------------------------------------------------------------


def _journey_or_404(journey_id: int) -> Journey:
    journey = db().scalar(
        select(Journey).where(Journey.id == journey_id, Journey.workspace_id == workspace_id())
    )
    if journey is None:
        abort(404)
    return journey


def _labels() -> dict:
    return {
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "outcome_labels": OUTCOME_LABELS,
        "outcome_badges": OUTCOME_BADGES,
        "type_labels": {kind: _(label) for kind, label in NODE_TYPE_LABELS.items()},
        "trigger_labels": {kind: _(label) for kind, label in TRIGGER_LABELS.items()},
        "action_labels": {kind: _(label) for kind, label in ACTION_LABELS.items()},
        "condition_labels": {kind: _(label) for kind, label in CONDITION_LABELS.items()},
        "wait_labels": {kind: _(label) for kind, label in WAIT_LABELS.items()},
        "scope_labels": SCOPE_LABELS,
        "reentry_labels": REENTRY_LABELS,
        "since_labels": SINCE_LABELS,
        "window_labels": WINDOW_LABELS,
        "score_of_labels": SCORE_OF_LABELS,
        "unit_labels": UNIT_LABELS,
        "max_nodes": MAX_NODES,
    }
