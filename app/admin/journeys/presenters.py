"""What the journey pages show: the labels of a journey's states and codes, one line
saying what a node does, the graph of a version with its counts, the list's order."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin.contacts import INTERACTION_LABELS
from app.admin.labels import stage_names, tag_label
from crm.tags import workspace_tags
from journeys import definitions
from journeys.definitions import (
    ACTION_LABELS,
    CONDITION_LABELS,
    NODE_TYPE_LABELS,
    TRIGGER_LABELS,
    WAIT_LABELS,
    segment_names,
)
from journeys.model import MAX_NODES, NODE_TYPES
from models import EmailTemplate, Journey, JourneyStatus, JourneyVersion
from scoring.engine import load_model

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
    "queued": _l("Queued to send"),
    "merged": _l("Merged"),
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
UNIT_LABELS = {"minutes": _l("minutes"), "hours": _l("hours"), "days": _l("days")}
# The graph: where columns and rows of nodes go (data units, about pixels at 100%).
COLUMN_WIDTH, ROW_HEIGHT = 230, 100
ZERO_COUNTS = {"current": 0, "entered": 0, "done": 0, "skipped": 0, "failed": 0}
ZERO_TOTALS = {"open": 0, "completed": 0, "goal": 0, "exited": 0, "total": 0}


def labels() -> dict:
    """The labels every journey template uses, in the user's language."""
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


class Names:
    """Labels of what a document refers to: interaction kinds, tags, stages, segments."""

    def __init__(
        self,
        tags: dict[int, str],
        stages: dict[str, str],
        segments: dict[int, str],
        email_templates: dict[int, str] | None = None,
    ):
        self.tags, self.stages, self.segments = tags, stages, segments
        self.email_templates = email_templates or {}

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

    def email_template(self, template_id) -> str:
        return self.email_templates.get(template_id, _("Email template #%(id)s", id=template_id))


def document_names(session: Session, ws: int) -> Names:
    """The names of the workspace's tags, stages and segments a document may refer to."""
    tags = {tag.id: tag_label(tag) for tag in workspace_tags(session, ws)}
    stages = stage_names(load_model(session, ws).stages)
    email_templates = dict(
        session.execute(
            select(EmailTemplate.id, EmailTemplate.name).where(EmailTemplate.workspace_id == ws)
        ).all()
    )
    return Names(tags, stages, segment_names(session, ws), email_templates)


def _minutes(value) -> str:
    if not isinstance(value, int):
        return str(value)
    if value % 1440 == 0:
        return _("%(n)s d", n=value // 1440)
    if value % 60 == 0:
        return _("%(n)s h", n=value // 60)
    return _("%(n)s min", n=value)


def describe_trigger(trigger: dict, names: Names) -> str:
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


def describe_condition(condition: dict, names: Names) -> str:
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


def describe_node(node: dict, names: Names) -> str:
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
            elif kind == "owner_task":
                text += ": " + _(
                    "%(title)s, due in %(hours)s h",
                    title=str(action.get("title", ""))[:40],
                    hours=action.get("due_hours", ""),
                )
            elif kind == "webhook":
                text += f": {action.get('url', '')}"
            elif kind == "template_message":
                text += f": {action.get('template_id', '')}"
            elif kind == "send_material":
                text += f": #{action.get('material_id', '')}"
            elif kind == "send_email":
                text += f": {names.email_template(action.get('email_template_id'))}"
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


def journey_graph(document: dict, counts: dict, names: Names) -> dict:
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


def listed(journeys: list[Journey], counts: dict) -> list[tuple[Journey, dict]]:
    """The list's rows: live first, then paused, drafts, archived; by name within each."""
    ordered = sorted(journeys, key=lambda j: (STATUS_ORDER.index(j.status), j.name.casefold()))
    return [(journey, counts.get(journey.id, ZERO_TOTALS)) for journey in ordered]


def node_rows(document: dict, counts: dict, names: Names) -> list[tuple[dict, str, dict]]:
    """The table under the graph: each node, what it does, its counts."""
    return [
        (node, describe_node(node, names), {**ZERO_COUNTS, **counts.get(node["id"], {})})
        for node in document.get("nodes", ())
    ]


def waiting_rows(
    source: JourneyVersion | None, at_nodes: dict[str, int], names: Names
) -> list[tuple[str, int, str]]:
    """The migration's rows: each node of the source version with open enrolments, how
    many, and what the node does."""
    nodes = {node["id"]: node for node in source.document.get("nodes", ())} if source else {}
    return [
        (node_id, count, describe_node(nodes.get(node_id, {}), names))
        for node_id, count in sorted(at_nodes.items())
    ]


def described_nodes(version: JourneyVersion, names: Names) -> list[tuple[str, str]]:
    """(node id, what it does) of each node of the version: the migration's targets."""
    return [(node["id"], describe_node(node, names)) for node in version.document.get("nodes", ())]
