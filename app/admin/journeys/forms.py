"""The journey editor's form <-> the journey document.

The editor is one form whose inputs are named by their path in the journey document
("nodes.2.action.text"), so journeys.model.validate's messages land beside their input.
Its buttons that add, remove or move a node, a branch or a goal change the document as
typed (`apply_op`) and show it again; only Save stores it.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import g
from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin.contacts import INTERACTION_LABELS, tag_filter_options
from app.admin.labels import stage_names
from core.forms import flat_errors
from crm.tags import TagBook
from journeys.definitions import segment_names
from journeys.model import MAX_NODES, NODE_TYPES
from models import EmailTemplate, MaterialKind
from outreach import materials
from scoring.forms import RULE_KINDS
from scoring.model import Model

# Durations are typed as an amount and a unit; the document holds minutes.
UNITS = {"minutes": 1, "hours": 60, "days": 1440}
MAX_BRANCHES = 20
MAX_GOALS = 20


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
        case "send_email":
            action["email_template_id"] = _whole(_text(form, f"{at}.email_template_id"))
        case "add_tag" | "remove_tag":
            action["tag_id"] = _whole(_text(form, f"{at}.tag_id"))
        case "set_stage":
            action["stage"] = _text(form, f"{at}.stage")
        case "owner_task":
            action["title"] = _text(form, f"{at}.title")
            action["due_hours"] = _whole(_text(form, f"{at}.due_hours"))
            if detail := _text(form, f"{at}.detail"):
                action["detail"] = detail
        case "webhook":
            action["url"] = _text(form, f"{at}.url")
        case "send_material":
            action["material_id"] = _whole(_text(form, f"{at}.material_id"))
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


def form_helpers() -> dict:
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


def editor_choices(session: Session, ws: int, model: Model, document: dict) -> dict:
    """What the editor's selects offer; a value the document holds that is no longer
    offered (a deleted tag, a renamed stage) shows too, so its mistake points at it."""
    tag_groups = [
        (str(group), list(tags)) for group, tags in tag_filter_options(TagBook(session, ws))
    ]
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
    segments = segment_names(session, ws)
    for segment_id in _values(document, "segment_id"):
        if isinstance(segment_id, int) and segment_id not in segments:
            segments[segment_id] = _("Segment #%(id)s (deleted)", id=segment_id)
    email_templates = dict(
        session.execute(
            select(EmailTemplate.id, EmailTemplate.name)
            .where(EmailTemplate.workspace_id == ws, EmailTemplate.archived_at.is_(None))
            .order_by(EmailTemplate.name)
        ).all()
    )
    for template_id in _values(document, "email_template_id"):
        if isinstance(template_id, int) and template_id not in email_templates:
            email_templates[template_id] = _("Email template #%(id)s (deleted)", id=template_id)
    kinds = {kind: str(INTERACTION_LABELS.get(kind, kind)) for kind in _event_kinds()}
    for kind in _values(document, "kind"):
        if isinstance(kind, str) and "." in kind and kind not in kinds:
            kinds[kind] = kind
    library = {
        material.id: material.name
        for material in materials.choices(session, ws, tuple(MaterialKind))
    }
    for material_id in _values(document, "material_id"):
        if isinstance(material_id, int) and material_id not in library:
            library[material_id] = _("Library item #%(id)s (archived)", id=material_id)
    return {
        "tag_groups": tag_groups,
        "material_options": list(library.items()),
        "stage_options": list(stages.items()),
        "segment_options": list(segments.items()),
        "email_template_options": list(email_templates.items()),
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


def form_errors(exc: ValidationError) -> dict[str, list[str]]:
    """The messages by input name, in the user's language."""
    return {
        path: [_(message) for message in messages]
        for path, messages in flat_errors(exc.messages).items()
    }
