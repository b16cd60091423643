"""A journey as a graph of nodes (pure: no database, no Flask).

A journey document holds its scope (a contact, or an account whose committee moves it
together), its re-entry policy, its goals and its nodes. Any node may carry an entry
trigger, so a person who performs it enters — or jumps — there; an action may carry a
"skip if already done" event. `validate` returns every problem at once, keyed by the
path of the offending field ("nodes.2.action.text"), the way the admin shows them.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.outbound import url_problem
from scoring.model import properties_match

NODE_TYPES = ("entry", "wait", "action", "branch", "exit")
TRIGGER_KINDS = (
    "interaction",  # an interaction kind + property filter
    "tag_added",
    "stage_reached",
    "segment_entered",
    "score_crossed",  # lead or account score reaches a threshold
    "mqa_entered",
    "manual",  # enrolled from the admin or the API
    "date",  # at a moment (ISO 8601), for a segment
)
ACTION_KINDS = (
    "cs_message",  # OA customer-service message, inside the follower's window
    "template_message",
    "wecom_message",  # a WeCom message through the contact's owner
    "wecom_group_task",  # an add_msg_template task the salesperson confirms
    "notify_owner",
    "owner_task",  # a task for the account's owner (unassigned when nobody owns it)
    "add_tag",
    "remove_tag",
    "set_stage",
    "webhook",  # POST to a public address, signed with the workspace's secret
    "send_material",  # a library item: a service message (OA) or the owner's 1:1 send (WeCom)
    "send_email",  # an email template to the person's email address
)
CONDITION_KINDS = ("has_tag", "score_at_least", "stage_in", "interacted", "first_event")
SCOPES = ("contact", "account")
REENTRY = ("once", "period", "always")
SINCE = ("enrolment", "ever")
# Actions that message a person: counted against the workspace's frequency cap.
MESSAGE_ACTIONS = frozenset(
    {
        "cs_message",
        "template_message",
        "wecom_message",
        "wecom_group_task",
        "send_material",
        "send_email",
    }
)

MAX_NODES = 100
MAX_TEXT = 600
NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_WAIT_MINUTES = 366 * 24 * 60
MAX_TASK_TITLE = 200
MAX_TASK_DETAIL = 1000
MAX_TASK_HOURS = 24 * 90


@dataclass(frozen=True)
class EventFilter:
    """An interaction kind and a property filter (the scoring rules' semantics)."""

    kind: str
    where: dict[str, str] = field(default_factory=dict)

    def matches(self, kind: str, properties: dict) -> bool:
        return kind == self.kind and properties_match(self.where, properties)


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    next: str | None = None
    trigger: dict | None = None  # any node: performing it enters or jumps here
    wait: dict | None = None
    action: dict | None = None
    skip_if: dict | None = None  # action: {"event": {...}, "since": "enrolment" | "ever"}
    branches: tuple[dict, ...] = ()  # branch: ({"condition": {...}, "next": id}, ...)
    otherwise: str | None = None  # branch: where no condition holds
    timeout_next: str | None = None  # wait for an event: where the timeout leads

    def successors(self) -> Iterator[str]:
        for target in (self.next, self.otherwise, self.timeout_next):
            if target:
                yield target
        for branch in self.branches:
            if branch.get("next"):
                yield branch["next"]


@dataclass(frozen=True)
class Journey:
    nodes: tuple[Node, ...]
    scope: str = "contact"
    reentry: str = "once"
    reentry_days: int | None = None  # "period": again once this many days have passed
    goals: tuple[EventFilter, ...] = ()  # exit as soon as one is achieved

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def entry_points(self, kind: str, properties: dict) -> list[Node]:
        """The nodes an interaction enters (or jumps to), in document order."""
        return [
            node
            for node in self.nodes
            if node.trigger
            and node.trigger.get("kind") == "interaction"
            and event_filter(node.trigger["event"]).matches(kind, properties)
        ]

    def goal_met(self, kind: str, properties: dict) -> bool:
        return any(goal.matches(kind, properties) for goal in self.goals)

    @classmethod
    def from_document(cls, doc: dict) -> "Journey":
        nodes = tuple(
            Node(
                id=n["id"],
                type=n["type"],
                next=n.get("next"),
                trigger=n.get("trigger"),
                wait=n.get("wait"),
                action=n.get("action"),
                skip_if=n.get("skip_if"),
                branches=tuple(n.get("branches") or ()),
                otherwise=n.get("otherwise"),
                timeout_next=n.get("timeout_next"),
            )
            for n in doc.get("nodes", ())
        )
        return cls(
            nodes=nodes,
            scope=doc.get("scope", "contact"),
            reentry=doc.get("reentry", "once"),
            reentry_days=doc.get("reentry_days"),
            goals=tuple(event_filter(goal) for goal in doc.get("goals", ())),
        )


def event_filter(doc: dict) -> EventFilter:
    return EventFilter(doc["kind"], dict(doc.get("where") or {}))


# --- validation ----------------------------------------------------------------------


class Problems(dict):
    """path -> messages."""

    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def validate(doc: dict) -> dict[str, list[str]]:
    """Every problem of a journey document; empty when it can go live."""
    problems = Problems()
    if doc.get("scope", "contact") not in SCOPES:
        problems.add("scope", "Contact or account.")
    reentry = doc.get("reentry", "once")
    if reentry not in REENTRY:
        problems.add("reentry", "Once, once per period or always.")
    elif reentry == "period" and not _whole(doc.get("reentry_days"), 1, 3650):
        problems.add("reentry_days", "A whole number of days from 1 to 3650.")
    for n, goal in enumerate(doc.get("goals") or ()):
        _check_event(goal, f"goals.{n}", problems)
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        problems.add("nodes", "A journey needs at least one node.")
        return problems
    if len(nodes) > MAX_NODES:
        problems.add("nodes", f"At most {MAX_NODES} nodes.")
    ids = [n.get("id") if isinstance(n, dict) else None for n in nodes]
    for n, node in enumerate(nodes):
        _check_node(node, f"nodes.{n}", set(ids), problems)
        if ids.count(node.get("id") if isinstance(node, dict) else None) > 1:
            problems.add(f"nodes.{n}.id", "Another node has this id.")
    condition_kinds = {
        n["trigger"].get("kind")
        for n in nodes
        if isinstance(n, dict) and isinstance(n.get("trigger"), dict)
    }
    if reentry == "always" and condition_kinds & {"segment_entered", "score_crossed"}:
        problems.add(
            "reentry",
            "A segment or score trigger holds on every check: choose once or once per period.",
        )
    if not any(isinstance(n, dict) and n.get("trigger") for n in nodes):
        problems.add("nodes", "No node has an entry trigger: nobody could enter.")
    if not problems:
        _check_loops(Journey.from_document(doc), problems)
    return dict(problems)


def _check_node(node, path: str, ids: set, problems: Problems) -> None:
    if not isinstance(node, dict):
        problems.add(path, "Not a node.")
        return
    if not isinstance(node.get("id"), str) or not NODE_ID.match(node["id"]):
        problems.add(f"{path}.id", "1 to 40 letters, digits, - or _.")
    kind = node.get("type")
    if kind not in NODE_TYPES:
        problems.add(f"{path}.type", "Entry, wait, action, branch or exit.")
        return
    for key in ("next", "otherwise", "timeout_next"):
        target = node.get(key)
        if target is not None and target not in ids:
            problems.add(f"{path}.{key}", "No node has this id.")
        if target is not None and target == node.get("id"):
            problems.add(f"{path}.{key}", "A node cannot lead to itself.")
    if kind == "exit" and node.get("next"):
        problems.add(f"{path}.next", "An exit ends the journey.")
    if kind == "entry" and not node.get("trigger"):
        problems.add(f"{path}.trigger", "An entry node needs its trigger.")
    if node.get("trigger"):
        _check_trigger(node["trigger"], f"{path}.trigger", problems)
    if kind == "wait":
        _check_wait(node, path, problems)
    if kind == "action":
        _check_action(node.get("action"), f"{path}.action", problems)
        if node.get("skip_if"):
            skip = node["skip_if"]
            _check_event(
                skip.get("event") if isinstance(skip, dict) else None,
                f"{path}.skip_if.event",
                problems,
            )
            if isinstance(skip, dict) and skip.get("since", "enrolment") not in SINCE:
                problems.add(f"{path}.skip_if.since", "Since enrolment or ever.")
    if kind == "branch":
        branches = node.get("branches")
        if not isinstance(branches, list) or not branches:
            problems.add(f"{path}.branches", "A branch needs at least one condition.")
            branches = []
        for n, branch in enumerate(branches):
            bpath = f"{path}.branches.{n}"
            if not isinstance(branch, dict):
                problems.add(bpath, "Not a branch.")
                continue
            _check_condition(branch.get("condition"), f"{bpath}.condition", problems)
            if branch.get("next") not in ids:
                problems.add(f"{bpath}.next", "No node has this id.")
        if node.get("otherwise") is None:
            problems.add(f"{path}.otherwise", "Where the others go.")


def _check_trigger(trigger, path: str, problems: Problems) -> None:
    if not isinstance(trigger, dict) or trigger.get("kind") not in TRIGGER_KINDS:
        problems.add(f"{path}.kind", "Unknown trigger.")
        return
    match trigger["kind"]:
        case "interaction":
            _check_event(trigger.get("event"), f"{path}.event", problems)
        case "tag_added" | "segment_entered":
            key = "tag_id" if trigger["kind"] == "tag_added" else "segment_id"
            if not _whole(trigger.get(key), 1, 2**31 - 1):
                problems.add(f"{path}.{key}", "Choose one.")
        case "stage_reached":
            if not _text(trigger.get("stage"), 30):
                problems.add(f"{path}.stage", "Choose a stage.")
        case "score_crossed":
            if trigger.get("of") not in ("lead", "account"):
                problems.add(f"{path}.of", "Lead or account score.")
            if not _number(trigger.get("at_least"), 0, 1e9):
                problems.add(f"{path}.at_least", "A score of 0 or more.")
        case "date":
            if not isinstance(trigger.get("at"), str) or not trigger["at"]:
                problems.add(f"{path}.at", "A date and time.")
            if not _whole(trigger.get("segment_id"), 1, 2**31 - 1):
                problems.add(f"{path}.segment_id", "Who enters on that date: choose a segment.")


def _check_wait(node: dict, path: str, problems: Problems) -> None:
    wait = node.get("wait")
    if not isinstance(wait, dict):
        problems.add(f"{path}.wait", "How long to wait.")
        return
    modes = [key for key in ("minutes", "until_time", "event") if wait.get(key) is not None]
    if len(modes) != 1:
        problems.add(f"{path}.wait", "Wait a duration, until a time of day, or for an event.")
        return
    if modes == ["minutes"] and not _whole(wait["minutes"], 1, MAX_WAIT_MINUTES):
        problems.add(f"{path}.wait.minutes", "From 1 minute to a year.")
    if modes == ["until_time"] and not (
        isinstance(wait["until_time"], str) and TIME_OF_DAY.match(wait["until_time"])
    ):
        problems.add(f"{path}.wait.until_time", "A time of day, HH:MM.")
    if modes == ["event"]:
        _check_event(wait["event"], f"{path}.wait.event", problems)
        if not _whole(wait.get("timeout_minutes"), 1, MAX_WAIT_MINUTES):
            problems.add(f"{path}.wait.timeout_minutes", "How long to wait for it at most.")
        if not node.get("timeout_next"):
            problems.add(f"{path}.timeout_next", "Where a timeout leads.")


def _check_action(action, path: str, problems: Problems) -> None:
    if not isinstance(action, dict) or action.get("kind") not in ACTION_KINDS:
        problems.add(f"{path}.kind", "Unknown action.")
        return
    kind = action["kind"]
    if kind in ("cs_message", "wecom_message", "wecom_group_task", "notify_owner"):
        if not _text(action.get("text"), MAX_TEXT):
            problems.add(f"{path}.text", f"1 to {MAX_TEXT} characters.")
    elif kind == "template_message":
        if not _text(action.get("template_id"), 64):
            problems.add(f"{path}.template_id", "Required.")
        if not isinstance(action.get("data"), dict) or not action["data"]:
            problems.add(f"{path}.data", "The template's fields.")
    elif kind == "send_email":
        if not _whole(action.get("email_template_id"), 1, 2**31 - 1):
            problems.add(f"{path}.email_template_id", "Choose an email template.")
    elif kind in ("add_tag", "remove_tag"):
        if not _whole(action.get("tag_id"), 1, 2**31 - 1):
            problems.add(f"{path}.tag_id", "Choose a tag.")
    elif kind == "set_stage":
        if not _text(action.get("stage"), 30):
            problems.add(f"{path}.stage", "Choose a stage.")
    elif kind == "owner_task":
        if not _text(action.get("title"), MAX_TASK_TITLE):
            problems.add(f"{path}.title", f"1 to {MAX_TASK_TITLE} characters.")
        if not _whole(action.get("due_hours"), 1, MAX_TASK_HOURS):
            problems.add(f"{path}.due_hours", "A whole number of hours, from 1 to 2160.")
        detail = action.get("detail")
        if detail is not None and not (isinstance(detail, str) and len(detail) <= MAX_TASK_DETAIL):
            problems.add(f"{path}.detail", f"At most {MAX_TASK_DETAIL} characters.")
    elif kind == "webhook" and (problem := url_problem(action.get("url"))):
        problems.add(f"{path}.url", problem)
    elif kind == "send_material" and not _whole(action.get("material_id"), 1, 2**31 - 1):
        problems.add(f"{path}.material_id", "Choose a library item.")


def _check_condition(condition, path: str, problems: Problems) -> None:
    if not isinstance(condition, dict) or condition.get("kind") not in CONDITION_KINDS:
        problems.add(f"{path}.kind", "Unknown condition.")
        return
    match condition["kind"]:
        case "has_tag":
            if not _whole(condition.get("tag_id"), 1, 2**31 - 1):
                problems.add(f"{path}.tag_id", "Choose a tag.")
        case "score_at_least":
            if condition.get("of") not in ("lead", "account"):
                problems.add(f"{path}.of", "Lead or account score.")
            if not _number(condition.get("at_least"), 0, 1e9):
                problems.add(f"{path}.at_least", "A score of 0 or more.")
        case "stage_in":
            stages = condition.get("stages")
            if not isinstance(stages, list) or not stages:
                problems.add(f"{path}.stages", "Choose at least one stage.")
        case "interacted":
            _check_event(condition.get("event"), f"{path}.event", problems)
            if "within_days" in condition:
                if not _whole(condition["within_days"], 1, 3650):
                    problems.add(f"{path}.within_days", "A whole number of days from 1 to 3650.")
            elif condition.get("since", "enrolment") not in SINCE:
                problems.add(f"{path}.since", "Since enrolment or ever.")
        case "first_event":
            # Which of two events came first since enrolment: the branch holds when it is "a".
            _check_event(condition.get("a"), f"{path}.a", problems)
            _check_event(condition.get("b"), f"{path}.b", problems)


def _check_event(event, path: str, problems: Problems) -> None:
    if not isinstance(event, dict) or not _text(event.get("kind"), 64):
        problems.add(f"{path}.kind", "Choose an interaction kind.")
        return
    where = event.get("where") or {}
    if not isinstance(where, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in where.items()
    ):
        problems.add(f"{path}.where", "Property names and values as text.")


def _check_loops(journey: Journey, problems: Problems) -> None:
    """A cycle must pass through a wait, or one run would go round it forever."""
    waits = {node.id for node in journey.nodes if node.type == "wait"}
    graph = {node.id: [t for t in node.successors() if t not in waits] for node in journey.nodes}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node_id: str) -> bool:
        state[node_id] = 1
        for target in graph[node_id]:
            if state.get(target) == 1 or (target not in state and visit(target)):
                return True
        state[node_id] = 2
        return False

    for node in journey.nodes:
        if node.id not in waits and node.id not in state and visit(node.id):
            problems.add("nodes", "A loop without a wait: add a wait node to it.")
            return


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def _text(value, max_chars: int) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= max_chars
