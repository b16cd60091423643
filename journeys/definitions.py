"""Journey definitions: creating and versioning journeys, their life cycle (live, paused,
archived), moving enrolments between versions, and reading them back (counts per node,
a contact's history with the reasons for each step).

Versions: a version that has been live never changes; enrolments finish on the version
they started on, or move to another with `migrate_enrolments`. Saving a journey that
has never gone live overwrites its single version 1 (nobody can be on it); saving one
that has makes a new version whenever the document changed, which goes live only when
asked (`go_live`). Every document saved passes journeys.model.validate, and every tag or
segment it names must be one of the workspace's (`document_problems`).

No Flask here: messages are marked N_ and translated by the admin.
"""

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import ValidationError, fields, validate
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import forms as form
from core.references import (
    EMAIL_TEMPLATE,
    MATERIAL,
    SEGMENT,
    TAG,
    Reference,
    declare,
    unknown_references,
)
from core.text import N_
from journeys.model import validate as validate_document
from models import (
    OPEN_STATUSES,
    Contact,
    Enrolment,
    EnrolmentStatus,
    Journey,
    JourneyStatus,
    JourneyVersion,
    SavedSegment,
    Step,
    Tag,
    utcnow,
)

NAME_TAKEN = N_("Another journey has this name.")
STALE = N_(
    "Someone saved a newer version of this journey meanwhile: saving again replaces it with yours."
)
MAX_NOTE = 200
REFERENCES = declare(
    "journey",
    Reference("nodes.*.trigger.tag_id", TAG),
    Reference("nodes.*.trigger.segment_id", SEGMENT),
    Reference("nodes.*.action.tag_id", TAG),
    Reference("nodes.*.action.email_template_id", EMAIL_TEMPLATE),
    Reference("nodes.*.branches.*.condition.tag_id", TAG),
    Reference("nodes.*.action.material_id", MATERIAL),
)

# Labels of the document's codes, for the editor and the history (translated there).
NODE_TYPE_LABELS = {
    "entry": N_("Entry"),
    "wait": N_("Wait"),
    "action": N_("Action"),
    "branch": N_("Branch"),
    "exit": N_("Exit"),
}
TRIGGER_LABELS = {
    "interaction": N_("An interaction"),
    "tag_added": N_("A tag is added"),
    "stage_reached": N_("A stage is reached"),
    "segment_entered": N_("Enters a segment"),
    "score_crossed": N_("A score reaches"),
    "mqa_entered": N_("The account becomes MQA"),
    "manual": N_("Enrolled by hand"),
    "date": N_("On a date, for a segment"),
}
ACTION_LABELS = {
    "cs_message": N_("Customer-service message (OA)"),
    "template_message": N_("Template message (OA)"),
    "wecom_message": N_("WeCom message by the owner"),
    "wecom_group_task": N_("WeCom task for the owner to send"),
    "notify_owner": N_("Notify the owner"),
    "owner_task": N_("Task for the owner"),
    "add_tag": N_("Add a tag"),
    "remove_tag": N_("Remove a tag"),
    "set_stage": N_("Set the stage"),
    "webhook": N_("Call a webhook"),
    "send_material": N_("Send a library item"),
    "send_email": N_("Send an email"),
}
CONDITION_LABELS = {
    "has_tag": N_("Has a tag"),
    "score_at_least": N_("Score at least"),
    "stage_in": N_("Stage is one of"),
    "interacted": N_("Did something"),
    "first_event": N_("Which came first"),
}
WAIT_LABELS = {
    "minutes": N_("For a while"),
    "until_time": N_("Until a time of day"),
    "event": N_("For an event, at most a while"),
}


class JourneyError(Exception):
    """A change the journey's state refuses; the message is marked N_."""


class JourneyHeadSchema(form.FormSchema):
    name = form.text(N_("1 to 100 characters."), high=100, required=True)
    description = fields.String(
        validate=validate.Length(max=300, error=N_("At most 300 characters.")),
        load_default="",
    )


def check_head(name: str, description: str) -> tuple[str, str]:
    """The journey's name and description, stripped; a ValidationError keyed by field."""
    head = JourneyHeadSchema().load({"name": name, "description": description})
    return head["name"], head["description"]


# --- creating and versioning -----------------------------------------------------------


def create_journey(
    session: Session,
    workspace_id: int,
    name: str,
    description: str,
    document: dict,
    user_id: int | None,
) -> Journey:
    """A draft journey with its document as version 1. Every mistake at once, keyed by
    "name", "description" or the document's paths. Flushed, not committed."""
    errors = document_problems(session, workspace_id, document)
    try:
        name, description = check_head(name, description)
    except ValidationError as exc:
        errors.update(exc.messages)
    else:
        if _name_taken(session, workspace_id, name):
            errors["name"] = [NAME_TAKEN]
    if errors:
        raise ValidationError(errors)
    journey = Journey(
        workspace_id=workspace_id,
        name=name,
        description=description,
        status=JourneyStatus.DRAFT,
        created_by=user_id,
    )
    try:
        with session.begin_nested():
            session.add(journey)
            session.flush()
    except IntegrityError:  # the name was taken a moment ago
        raise ValidationError({"name": [NAME_TAKEN]}) from None
    session.add(
        JourneyVersion(journey_id=journey.id, version=1, document=document, created_by=user_id)
    )
    session.flush()
    return journey


def document_problems(session: Session, workspace_id: int, document: dict) -> dict:
    """Every mistake of a journey document by path, the ids it names included: each must
    be one of the workspace's."""
    problems: dict = dict(validate_document(document))
    for path, messages in unknown_references(session, workspace_id, document, REFERENCES).items():
        problems.setdefault(path, []).extend(messages)
    return problems


def segment_names(session: Session, workspace_id: int) -> dict[int, str]:
    """The workspace's segments a journey may name: id -> name, by name."""
    return dict(
        session.execute(
            select(SavedSegment.id, SavedSegment.name)
            .where(SavedSegment.workspace_id == workspace_id)
            .order_by(SavedSegment.name)
        ).all()
    )


def rename_journey(session: Session, journey: Journey, name: str, description: str) -> None:
    """A new name and description (no new version: they are not part of the document)."""
    name, description = check_head(name, description)
    if name != journey.name and _name_taken(session, journey.workspace_id, name, journey.id):
        raise ValidationError({"name": [NAME_TAKEN]})
    journey.name, journey.description, journey.updated_at = name, description, utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ValidationError({"name": [NAME_TAKEN]}) from None


def _name_taken(session: Session, workspace_id: int, name: str, journey_id: int | None = None):
    same = [Journey.workspace_id == workspace_id, Journey.name == name]
    if journey_id is not None:
        same.append(Journey.id != journey_id)
    return session.scalar(select(Journey.id).where(*same).limit(1)) is not None


def save_version(
    session: Session,
    journey: Journey,
    document: dict,
    user_id: int | None,
    note: str = "",
    *,
    based_on: int | None = None,
) -> JourneyVersion:
    """The version holding `document`: version 1 overwritten while the journey has never
    been live, else a new version when the document differs from the latest one (the
    latest itself when it does not). `based_on` is the version the editor started from:
    a later one saved meanwhile refuses the save ("based_on"). A ValidationError keyed by
    path for a document with mistakes. Flushed, not committed."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyError(N_("An archived journey cannot change."))
    errors = document_problems(session, journey.workspace_id, document)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = [N_("At most 200 characters.")]
    latest = latest_version(session, journey.id)
    if based_on is not None and latest is not None and latest.version != based_on:
        errors[""] = [STALE]
    if errors:
        raise ValidationError(errors)
    journey.updated_at = utcnow()
    if latest is not None and journey.live_version is None:
        latest.document, latest.note, latest.created_by = document, note, user_id
        latest.created_at = journey.updated_at
        session.flush()
        return latest
    if latest is not None and latest.document == document:
        return latest
    version = JourneyVersion(
        journey_id=journey.id,
        version=(latest.version if latest else 0) + 1,
        document=document,
        note=note,
        created_by=user_id,
    )
    try:
        with session.begin_nested():
            session.add(version)
            session.flush()
    except IntegrityError:  # another save took this number a moment ago
        raise ValidationError({"": [STALE]}) from None
    return version


def workspace_journeys(session: Session, workspace_id: int) -> list[Journey]:
    """The workspace's journeys, in no particular order."""
    return list(session.scalars(select(Journey).where(Journey.workspace_id == workspace_id)))


def latest_version(session: Session, journey_id: int) -> JourneyVersion | None:
    return session.scalar(
        select(JourneyVersion)
        .where(JourneyVersion.journey_id == journey_id)
        .order_by(JourneyVersion.version.desc())
        .limit(1)
    )


def version_of(session: Session, journey_id: int, version: int) -> JourneyVersion | None:
    return session.scalar(
        select(JourneyVersion).where(
            JourneyVersion.journey_id == journey_id, JourneyVersion.version == version
        )
    )


def versions(session: Session, journey_id: int) -> list[JourneyVersion]:
    """Newest first."""
    return list(
        session.scalars(
            select(JourneyVersion)
            .where(JourneyVersion.journey_id == journey_id)
            .order_by(JourneyVersion.version.desc())
        )
    )


# --- life cycle ------------------------------------------------------------------------


def go_live(session: Session, journey: Journey, version: int | None = None) -> JourneyVersion:
    """New enrolments start on `version` (the latest when None); enrolments on other
    versions finish on theirs. A paused journey goes live too."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyError(N_("An archived journey cannot go live."))
    chosen = (
        latest_version(session, journey.id)
        if version is None
        else version_of(session, journey.id, version)
    )
    if chosen is None:
        raise JourneyError(N_("The journey has no such version."))
    problems = document_problems(session, journey.workspace_id, chosen.document)
    if problems:  # saved under older rules, or naming what the workspace no longer holds
        raise ValidationError(problems)
    journey.live_version, journey.status, journey.updated_at = (
        chosen.version,
        JourneyStatus.LIVE,
        utcnow(),
    )
    session.flush()
    return chosen


def pause(session: Session, journey: Journey) -> None:
    """Nobody new enters and enrolments wait where they are, until `resume`."""
    if journey.status != JourneyStatus.LIVE:
        raise JourneyError(N_("Only a live journey can be paused."))
    journey.status, journey.updated_at = JourneyStatus.PAUSED, utcnow()
    session.flush()


def resume(session: Session, journey: Journey) -> None:
    if journey.status != JourneyStatus.PAUSED:
        raise JourneyError(N_("Only a paused journey can be resumed."))
    journey.status, journey.updated_at = JourneyStatus.LIVE, utcnow()
    session.flush()


def archive(session: Session, journey: Journey, now: datetime | None = None) -> int:
    """The journey ends for good: its open enrolments exit. Returns how many did."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyError(N_("The journey is archived already."))
    now = now or utcnow()
    journey.status, journey.updated_at = JourneyStatus.ARCHIVED, now
    exited = session.execute(
        update(Enrolment)
        .where(Enrolment.journey_id == journey.id, Enrolment.status.in_(OPEN_STATUSES))
        .values(status=EnrolmentStatus.EXITED, finished_at=now, next_run_at=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return exited.rowcount


def migrate_enrolments(
    session: Session,
    journey: Journey,
    from_version: int,
    to_version: int,
    node_map: dict[str, str],
    now: datetime | None = None,
) -> int:
    """Open enrolments at node A of `from_version` move to node node_map[A] of
    `to_version`; those at unmapped nodes stay. Like the engine's trigger jumps, the
    arrival is a move of its own, logged as a "jumped" step at the new node ({"migrated_from":
    version, "from_node": A}). One waiting at a wait moved to a wait of the same kind keeps
    its due time (its "waiting" step is logged for the next move, as the engine logs a wait
    it starts); any other runs its new node at once. Returns how many moved; a
    ValidationError keyed "node_map.<A>" for a bad mapping."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyError(N_("An archived journey cannot change."))
    if from_version == to_version:
        raise JourneyError(N_("Choose two different versions."))
    source = version_of(session, journey.id, from_version)
    target = version_of(session, journey.id, to_version)
    if source is None or target is None:
        raise JourneyError(N_("The journey has no such version."))
    old_nodes = _nodes(source.document)
    new_nodes = _nodes(target.document)
    moves = {old: new for old, new in node_map.items() if new}
    errors = {}
    for old, new in moves.items():
        if old not in old_nodes:
            errors[f"node_map.{old}"] = [N_("No node of the old version has this id.")]
        elif new not in new_nodes:
            errors[f"node_map.{old}"] = [N_("No node of the new version has this id.")]
    if errors:
        raise ValidationError(errors)
    now = now or utcnow()
    moved = 0
    for old, new in moves.items():
        at_node = [
            Enrolment.journey_id == journey.id,
            Enrolment.version == from_version,
            Enrolment.node_id == old,
            Enrolment.status.in_(OPEN_STATUSES),
        ]
        jumped = {"migrated_from": from_version, "from_node": old}
        same_wait = _wait_kind(old_nodes[old]) is not None and _wait_kind(
            old_nodes[old]
        ) == _wait_kind(new_nodes[new])
        if same_wait:
            started = exists().where(
                Step.enrolment_id == Enrolment.id,
                Step.version == from_version,
                Step.node_id == old,
                Step.visit == Enrolment.visit,
                Step.outcome == "waiting",
            )
            rows = _move_rows(session, [*at_node, started], to_version, new, {})
            steps = [
                step
                for enrolment_id, visit, due in rows
                for step in (
                    _step_row(
                        journey.id, to_version, new, enrolment_id, visit - 1, "jumped", now, jumped
                    ),
                    _step_row(
                        journey.id,
                        to_version,
                        new,
                        enrolment_id,
                        visit,
                        "waiting",
                        now,
                        {"until": due.isoformat() if due else None, "migrated": True},
                    ),
                )
            ]
            moved += _log_steps(session, steps) // 2
        timing = {"status": EnrolmentStatus.ACTIVE, "next_run_at": now}
        rows = _move_rows(session, at_node, to_version, new, timing)
        moved += _log_steps(
            session,
            [
                _step_row(
                    journey.id, to_version, new, enrolment_id, visit - 1, "jumped", now, jumped
                )
                for enrolment_id, visit, _due in rows
            ],
        )
    journey.updated_at = now
    session.flush()
    return moved


def _move_rows(session: Session, where: list, version: int, node_id: str, timing: dict) -> list:
    """Moves the enrolments `where` selects in one statement (one the runner moved
    meanwhile no longer matches); returns (id, visit, next_run_at) of those moved."""
    return session.execute(
        update(Enrolment)
        .where(*where)
        .values(version=version, node_id=node_id, visit=Enrolment.visit + 1, **timing)
        .returning(Enrolment.id, Enrolment.visit, Enrolment.next_run_at)
        .execution_options(synchronize_session=False)
    ).all()


def _log_steps(session: Session, steps: list[dict]) -> int:
    if steps:
        session.execute(insert(Step), steps)
    return len(steps)


def _step_row(journey_id, version, node_id, enrolment_id, visit, outcome, at, detail) -> dict:
    return {
        "enrolment_id": enrolment_id,
        "journey_id": journey_id,
        "version": version,
        "node_id": node_id,
        "visit": visit,
        "outcome": outcome,
        "detail": detail,
        "at": at,
    }


def _nodes(document: dict) -> dict[str, dict]:
    return {node["id"]: node for node in document.get("nodes", ())}


def _wait_kind(node: dict) -> str | None:
    """ "event" or "time" for a wait node (they run differently), None for any other."""
    if node.get("type") != "wait":
        return None
    return "event" if (node.get("wait") or {}).get("event") else "time"


# --- counts ----------------------------------------------------------------------------


# Outcomes of a node's own run (an arrival by a trigger or a migration is logged apart,
# as "entered" or "jumped", before the run).
RUN_OUTCOMES = frozenset({"done", "skipped", "failed", "sending", "waiting", "timed_out"})


def node_counts(
    session: Session, journey_id: int, version: int | None = None
) -> dict[str, dict[str, int]]:
    """Per node id (of one version, or of all when None): "current" open enrolments at
    it; "entered" the runs of the node (each time an enrolment reached and ran it); those
    runs by outcome ("done", "skipped", "failed", "waiting" still, "timed_out",
    "sending"); and "entries", "jumped" and "goal": enrolments that started there, came
    there by a trigger or a migration, or reached a goal there. Two grouped queries."""
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"current": 0, "entered": 0, "done": 0, "skipped": 0, "failed": 0}
    )
    open_at = select(Enrolment.node_id, func.count()).where(
        Enrolment.journey_id == journey_id, Enrolment.status.in_(OPEN_STATUSES)
    )
    steps = select(Step.node_id, Step.outcome, func.count()).where(Step.journey_id == journey_id)
    if version is not None:
        open_at = open_at.where(Enrolment.version == version)
        steps = steps.where(Step.version == version)
    for node_id, current in session.execute(open_at.group_by(Enrolment.node_id)):
        counts[node_id]["current"] = current
    for node_id, outcome, logged in session.execute(steps.group_by(Step.node_id, Step.outcome)):
        key = "entries" if outcome == "entered" else outcome
        counts[node_id][key] = counts[node_id].get(key, 0) + logged
        if outcome in RUN_OUTCOMES:
            counts[node_id]["entered"] += logged
    return dict(counts)


def journey_counts(session: Session, journey_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Per journey: enrolments "open" now, "completed", "goal" reached, "exited", and
    "total" (one grouped query)."""
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: {"open": 0, "completed": 0, "goal": 0, "exited": 0, "total": 0}
    )
    ids = list(journey_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Enrolment.journey_id, Enrolment.status, func.count())
        .where(Enrolment.journey_id.in_(ids))
        .group_by(Enrolment.journey_id, Enrolment.status)
    )
    for journey_id, status, enrolments in rows:
        key = "open" if status in OPEN_STATUSES else status
        counts[journey_id][key] = counts[journey_id].get(key, 0) + enrolments
        counts[journey_id]["total"] += enrolments
    return dict(counts)


def open_by_version(session: Session, journey_id: int) -> dict[int, int]:
    """Open enrolments per version."""
    rows = session.execute(
        select(Enrolment.version, func.count())
        .where(Enrolment.journey_id == journey_id, Enrolment.status.in_(OPEN_STATUSES))
        .group_by(Enrolment.version)
    )
    return dict(rows.all())


def open_by_node(session: Session, journey_id: int, version: int) -> dict[str, int]:
    return {
        node_id: counts["current"]
        for node_id, counts in node_counts(session, journey_id, version).items()
        if counts["current"]
    }


# --- the graph -------------------------------------------------------------------------


def edges(document: dict) -> list[tuple[str, str, str]]:
    """(from, to, why) for every link of the document: "next", "otherwise", "timeout",
    or "branch.<n>" for the n-th branch's condition."""
    links = []
    for node in document.get("nodes", ()):
        if node.get("next"):
            links.append((node["id"], node["next"], "next"))
        for n, branch in enumerate(node.get("branches") or ()):
            if isinstance(branch, dict) and branch.get("next"):
                links.append((node["id"], branch["next"], f"branch.{n}"))
        if node.get("otherwise"):
            links.append((node["id"], node["otherwise"], "otherwise"))
        if node.get("timeout_next"):
            links.append((node["id"], node["timeout_next"], "timeout"))
    return links


def layout(document: dict) -> dict[str, tuple[int, int]]:
    """Node id -> (column, row): columns by the shortest distance from the entry nodes
    (nodes of type entry, else those with a trigger), exits in a last column of their
    own; rows in document order. A node no entry leads to starts from its own trigger,
    else goes in the last column."""
    typed = document.get("nodes", ())
    nodes = [node["id"] for node in typed]
    exits = {node["id"] for node in typed if node.get("type") == "exit"}
    following: dict[str, list[str]] = defaultdict(list)
    for source, target, _why in edges(document):
        following[source].append(target)
    depth: dict[str, int] = {}

    def spread(roots: list[str]) -> None:
        queue = deque(roots)
        for root in roots:
            depth.setdefault(root, 0)
        while queue:
            node_id = queue.popleft()
            for target in following[node_id]:
                if target in nodes and target not in depth:
                    depth[target] = depth[node_id] + 1
                    queue.append(target)

    entries = [n["id"] for n in typed if n.get("type") == "entry"]
    spread(entries or [n["id"] for n in typed if n.get("trigger")])
    spread([n["id"] for n in typed if n.get("trigger") and n["id"] not in depth])
    last = max((d for node_id, d in depth.items() if node_id not in exits), default=-1) + 1
    rows: dict[int, int] = defaultdict(int)
    placed = {}
    for node_id in nodes:
        column = last if node_id in exits else depth.get(node_id, last)
        placed[node_id] = (column, rows[column])
        rows[column] += 1
    return placed


# --- a contact's history ---------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """A sentence marked N_ with its %(name)s values (which may be Reasons too)."""

    text: str
    params: dict = field(default_factory=dict)

    def render(self, translate: Callable[..., str] | None = None) -> str:
        """The sentence, through `translate(text, **values)` (e.g. flask_babel's gettext)."""
        values = {
            key: value.render(translate) if isinstance(value, Reason) else value
            for key, value in self.params.items()
        }
        if translate is None:
            return self.text % values if values else self.text
        return translate(self.text, **values)

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class HistoryStep:
    at: datetime
    node_id: str
    outcome: str
    reason: Reason


@dataclass(frozen=True)
class JourneyHistory:
    """One enrolment of a contact (or of its account, for account journeys)."""

    enrolment: Enrolment
    journey_name: str
    for_account: bool
    entered: Reason
    steps: list[HistoryStep]
    ended: Reason | None


def plain_event(event: dict) -> str:
    """An event filter as "kind (name=value, ...)"."""
    where = event.get("where") or {}
    kind = str(event.get("kind", "?"))
    if not isinstance(where, dict) or not where:
        return kind
    return f"{kind} ({', '.join(f'{k}={v}' for k, v in where.items())})"


def plain_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def contact_history(
    session: Session,
    contact_id: int,
    event_label: Callable[[dict], str] = plain_event,
    stage_label: Callable[[str], str] = str,
    time_label: Callable[[datetime], str] = plain_time,
    limit: int = 20,
) -> list[JourneyHistory]:
    """The contact's latest enrolments (and its account's, in account journeys), newest
    first, each with its steps in order and why it entered, did or skipped each one, and
    ended. The labels name events, stages and moments in the reader's words. A few queries
    whatever the number of enrolments."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return []
    # Each part on an index of its own: the contact's enrolments, and its account's in the
    # workspace's journeys.
    wheres = [[Enrolment.contact_id == contact.id]]
    if contact.account_id is not None:
        journeys = select(Journey.id).where(Journey.workspace_id == contact.workspace_id)
        wheres.append(
            [
                Enrolment.journey_id.in_(journeys),
                Enrolment.account_id == contact.account_id,
                Enrolment.contact_id.is_(None),
            ]
        )
    rows = []
    for where in wheres:
        rows += session.execute(
            select(Enrolment, Journey.name, Journey.status)
            .join(Journey, Journey.id == Enrolment.journey_id)
            .where(*where, Journey.workspace_id == contact.workspace_id)
            .order_by(Enrolment.entered_at.desc(), Enrolment.id.desc())
            .limit(limit)
        ).all()
    rows.sort(key=lambda row: (row[0].entered_at, row[0].id), reverse=True)
    rows = rows[:limit]
    if not rows:
        return []
    steps: dict[int, list[Step]] = defaultdict(list)
    for step in session.scalars(
        select(Step)
        .where(Step.enrolment_id.in_([enrolment.id for enrolment, _n, _s in rows]))
        .order_by(Step.visit, Step.id)
    ):
        steps[step.enrolment_id].append(step)
    nodes = {
        (journey_id, version, node["id"]): node
        for journey_id, version, document in session.execute(
            select(
                JourneyVersion.journey_id, JourneyVersion.version, JourneyVersion.document
            ).where(JourneyVersion.journey_id.in_({e.journey_id for e, _n, _s in rows}))
        )
        for node in document.get("nodes", ())
    }
    describe = _Describer(session, contact.workspace_id, event_label, stage_label, time_label)
    history = []
    for enrolment, name, journey_status in rows:
        entered = describe.because(enrolment.entered_because or {})
        history.append(
            JourneyHistory(
                enrolment=enrolment,
                journey_name=name,
                for_account=enrolment.contact_id is None,
                entered=Reason(
                    N_("Entered at %(node)s because: %(why)s"),
                    {"node": enrolment.entered_node, "why": entered},
                ),
                steps=[
                    HistoryStep(
                        step.at,
                        step.node_id,
                        step.outcome,
                        describe.step(
                            step,
                            nodes.get((step.journey_id, step.version, step.node_id), {}),
                            entered,
                        ),
                    )
                    for step in steps[enrolment.id]
                ],
                ended=_ending(enrolment, journey_status),
            )
        )
    return history


def _ending(enrolment: Enrolment, journey_status: str) -> Reason:
    node = enrolment.node_id
    match enrolment.status:
        case EnrolmentStatus.COMPLETED:
            return Reason(N_("Completed at %(node)s."), {"node": node})
        case EnrolmentStatus.GOAL:
            return Reason(N_("Left at %(node)s: a goal was reached."), {"node": node})
        case EnrolmentStatus.EXITED if journey_status == JourneyStatus.ARCHIVED:
            return Reason(N_("Exited at %(node)s: the journey was archived."), {"node": node})
        case EnrolmentStatus.EXITED:
            return Reason(N_("Exited at %(node)s: removed from the journey."), {"node": node})
        case EnrolmentStatus.WAITING:
            return Reason(N_("Waiting at %(node)s."), {"node": node})
    return Reason(N_("At %(node)s now."), {"node": node})


class _Describer:
    """Builds the reasons from the step log's details (journeys.steps) and the node in
    its version, looking up the names of the tags and segments they mention."""

    def __init__(self, session, workspace_id, event_label, stage_label, time_label):
        self.session, self.workspace_id = session, workspace_id
        self.event_label, self.stage_label, self.time_label = event_label, stage_label, time_label
        self._tags: dict[int, str] | None = None
        self._segments: dict[int, str] | None = None

    def tag(self, tag_id) -> str:
        if self._tags is None:
            self._tags = dict(
                self.session.execute(
                    select(Tag.id, Tag.name).where(Tag.workspace_id == self.workspace_id)
                ).all()
            )
        return self._tags.get(tag_id, f"#{tag_id}")

    def segment(self, segment_id) -> str:
        if self._segments is None:
            self._segments = dict(
                self.session.execute(
                    select(SavedSegment.id, SavedSegment.name).where(
                        SavedSegment.workspace_id == self.workspace_id
                    )
                ).all()
            )
        return self._segments.get(segment_id, f"#{segment_id}")

    def event(self, event) -> str:
        return self.event_label(event) if isinstance(event, dict) else str(event)

    def moment(self, iso) -> str:
        try:
            return self.time_label(datetime.fromisoformat(iso))
        except (TypeError, ValueError):
            return "?"

    def because(self, because: dict) -> Reason:
        """Why an enrolment entered: {"trigger": {...}, ...} (journeys.reactions, triggers)."""
        trigger = because.get("trigger")
        if not isinstance(trigger, dict):
            return Reason(N_("no reason recorded"))
        match trigger.get("kind"):
            case "interaction":
                return Reason("%(event)s", {"event": self.event(trigger.get("event"))})
            case "tag_added":
                return Reason(N_("tagged %(tag)s"), {"tag": self.tag(trigger.get("tag_id"))})
            case "stage_reached":
                return Reason(
                    N_("reached the stage %(stage)s"),
                    {"stage": self.stage_label(str(trigger.get("stage")))},
                )
            case "segment_entered":
                return Reason(
                    N_("entered the segment %(segment)s"),
                    {"segment": self.segment(trigger.get("segment_id"))},
                )
            case "score_crossed" if trigger.get("of") == "account":
                return Reason(
                    N_("the account score reached %(score)s"), {"score": trigger.get("at_least")}
                )
            case "score_crossed":
                return Reason(
                    N_("the lead score reached %(score)s"), {"score": trigger.get("at_least")}
                )
            case "mqa_entered":
                return Reason(N_("the account became MQA"))
            case "manual":
                return Reason(N_("enrolled by hand"))
            case "date":
                return Reason(
                    N_("in the segment %(segment)s on %(at)s"),
                    {"segment": self.segment(trigger.get("segment_id")), "at": trigger.get("at")},
                )
        return Reason(N_("no reason recorded"))

    def step(self, step: Step, node: dict, entered: Reason) -> Reason:
        """What happened at a node, from the step's outcome and detail."""
        detail = step.detail or {}
        match step.outcome:
            case "entered":
                return Reason(N_("Entered here because: %(why)s"), {"why": entered})
            case "jumped" if "migrated_from" in detail:
                return Reason(
                    N_("Moved here from %(node)s of version %(version)s."),
                    {"node": detail.get("from_node", "?"), "version": detail["migrated_from"]},
                )
            case "jumped":
                return Reason(N_("Jumped here because: %(why)s"), {"why": self.jump(detail, node)})
            case "skipped":
                return Reason(N_("Skipped because: %(why)s"), {"why": self.skip(detail, node)})
            case "failed":
                return Reason(
                    N_("Failed (%(action)s): %(error)s"),
                    {"action": self.action(detail, node), "error": detail.get("error", "?")},
                )
            case "sending":
                return Reason(
                    N_("Sending %(action)s: a crash may have cut it off."),
                    {"action": self.action(detail, node)},
                )
            case "waiting":
                return self.waiting(detail, node)
            case "timed_out":
                return Reason(
                    N_("Waited in vain: on to %(next)s."),
                    {"next": node.get("timeout_next") or "?"},
                )
            case "goal" if detail.get("kind"):
                return Reason(
                    N_("Goal reached: %(event)s"), {"event": self.event({"kind": detail["kind"]})}
                )
            case "goal":
                return Reason(N_("Goal reached."))
            case "done":
                return self.done(detail, node)
        return Reason("%(outcome)s", {"outcome": step.outcome})

    def action(self, detail: dict, node: dict) -> Reason | str:
        kind = detail.get("action") or (node.get("action") or {}).get("kind")
        return Reason(ACTION_LABELS[kind]) if kind in ACTION_LABELS else str(kind)

    def jump(self, detail: dict, node: dict) -> Reason:
        trigger = node.get("trigger") or {}
        if trigger.get("kind") == "interaction":
            return self.because({"trigger": trigger})
        if detail.get("kind"):
            return Reason("%(event)s", {"event": self.event({"kind": detail["kind"]})})
        return Reason(N_("no reason recorded"))

    def skip(self, detail: dict, node: dict) -> Reason:
        """Skipped by the runner: the node's skip-if event happened ({"because": text})."""
        skip_if = node.get("skip_if") or {}
        if skip_if.get("event"):
            since = (
                N_("since enrolment")
                if skip_if.get("since", "enrolment") == "enrolment"
                else N_("at some time")
            )
            return Reason(
                N_("%(event)s %(since)s"),
                {"event": self.event(skip_if["event"]), "since": Reason(since)},
            )
        if detail.get("because"):
            return Reason("%(because)s", {"because": detail["because"]})
        return Reason(N_("no reason recorded"))

    def waiting(self, detail: dict, node: dict) -> Reason:
        wait = node.get("wait") or {}
        until = self.moment(detail.get("until"))
        if wait.get("event"):
            return Reason(
                N_("Waiting for %(event)s until %(until)s."),
                {"event": self.event(wait["event"]), "until": until},
            )
        return Reason(N_("Waiting until %(until)s."), {"until": until})

    def done(self, detail: dict, node: dict) -> Reason:
        match node.get("type"):
            case "branch" if isinstance(detail.get("branch"), int):
                n = detail["branch"]
                branches = node.get("branches") or []
                target = branches[n].get("next") if n < len(branches) else None
                return Reason(
                    N_("Condition %(n)s held: on to %(next)s."), {"n": n + 1, "next": target or "?"}
                )
            case "branch":
                return Reason(
                    N_("No condition held: on to %(next)s."), {"next": node.get("otherwise") or "?"}
                )
            case "wait" if (node.get("wait") or {}).get("event") or detail.get("kind"):
                # the awaited event came (journeys.reactions)
                awaited = (node.get("wait") or {}).get("event") or {"kind": detail["kind"]}
                return Reason(
                    N_("%(event)s came: on to %(next)s."),
                    {"event": self.event(awaited), "next": node.get("next") or "?"},
                )
            case "wait" if detail.get("until"):
                return Reason(
                    N_("Waited until %(until)s: on to %(next)s."),
                    {"until": self.moment(detail["until"]), "next": node.get("next") or "?"},
                )
            case "wait":
                return Reason(N_("Waited: on to %(next)s."), {"next": node.get("next") or "?"})
            case "action":
                return Reason(N_("Done: %(action)s"), {"action": self.action(detail, node)})
            case "exit":
                return Reason(N_("Reached the exit."))
            case "entry":
                return Reason(N_("On to %(next)s."), {"next": node.get("next") or "?"})
        return Reason(N_("Done."))
