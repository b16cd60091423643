"""Journey definitions: creation with every mistake by path, versions (a draft overwrites
its version 1, a journey that was live gets a new one per change), the life cycle,
archive exiting enrolments, explicit migration between versions, counts per node, and a
contact's history told in sentences."""

import copy
from datetime import timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from crm.channels import workspace_named
from journeys.definitions import (
    JourneyError,
    archive,
    contact_history,
    create_journey,
    edges,
    go_live,
    journey_counts,
    layout,
    migrate_enrolments,
    node_counts,
    open_by_version,
    pause,
    resume,
    save_version,
    versions,
)
from models import Account, Contact, Enrolment, JourneyVersion, Step, Tag, utcnow
from tests.factories import LIVE_THEN_WECOM
from tests.helpers import harpoon_of

NOW = utcnow()


@pytest.fixture
def session(app):
    with harpoon_of(app).db.session() as session:
        yield session


@pytest.fixture
def ws(session, monkeypatch):
    workspace = workspace_named(session, "acme")
    session.commit()
    # The document's tag must be one of the workspace's.
    monkeypatch.setitem(follow_up_action(LIVE_THEN_WECOM), "tag_id", tag_of(session, workspace.id))
    return workspace.id


def tag_of(session, workspace_id: int) -> int:
    tag = Tag(workspace_id=workspace_id, group="behavior", name="看过直播")
    session.add(tag)
    session.commit()
    return tag.id


def follow_up_action(document: dict) -> dict:
    return next(node for node in document["nodes"] if node["id"] == "follow_up")["action"]


def doc(**changes) -> dict:
    document = copy.deepcopy(LIVE_THEN_WECOM)
    document.update(changes)
    return document


def with_node_text(text: str) -> dict:
    document = doc()
    document["nodes"][3]["action"]["text"] = text
    return document


def enrol(session, journey, node, status="active", version=1, contact=None, **fields):
    enrolment = Enrolment(
        workspace_id=journey.workspace_id,
        journey_id=journey.id,
        version=version,
        contact_id=contact,
        node_id=node,
        status=status,
        entered_node=fields.pop("entered_node", "start"),
        **fields,
    )
    session.add(enrolment)
    session.flush()
    return enrolment


def step(session, enrolment, node, outcome, version=None, visit=1, detail=None, at=None):
    session.add(
        Step(
            enrolment_id=enrolment.id,
            journey_id=enrolment.journey_id,
            version=version or enrolment.version,
            node_id=node,
            visit=visit,
            outcome=outcome,
            detail=detail or {},
            at=at or NOW,
        )
    )
    session.flush()


def test_create_names_every_mistake_by_its_path(session, ws):
    broken = doc()
    broken["nodes"][1]["action"] = {"kind": "cs_message"}
    with pytest.raises(ValidationError) as caught:
        create_journey(session, ws, "  ", "", broken, None)
    assert caught.value.messages == {
        "name": ["Required."],
        "nodes.1.action.text": ["1 to 600 characters."],
    }
    journey = create_journey(session, ws, " 直播跟进 ", "WeCom then live", doc(), None)
    session.commit()
    assert (journey.name, journey.status, journey.live_version) == ("直播跟进", "draft", None)
    assert [v.version for v in versions(session, journey.id)] == [1]
    with pytest.raises(ValidationError) as caught:
        create_journey(session, ws, "直播跟进", "", doc(), None)
    assert caught.value.messages == {"name": ["Another journey has this name."]}
    other = workspace_named(session, "other").id
    with pytest.raises(ValidationError) as caught:
        create_journey(session, other, "直播跟进", "", doc(), None)
    assert caught.value.messages == {"nodes.4.action.tag_id": ["Not a tag of this workspace."]}
    theirs = doc()
    follow_up_action(theirs)["tag_id"] = tag_of(session, other)
    assert create_journey(session, other, "直播跟进", "", theirs, None).id != journey.id


def test_a_draft_overwrites_its_version_a_live_journey_gets_new_ones(session, ws):
    journey = create_journey(session, ws, "j", "", doc(), None)
    # Never live: version 1 is rewritten in place.
    first = save_version(session, journey, with_node_text("草稿二"), None, "typo")
    assert (first.version, first.note) == (1, "typo")
    assert len(versions(session, journey.id)) == 1

    assert go_live(session, journey).version == 1
    assert (journey.status, journey.live_version) == ("live", 1)

    # Live: a change is a new version, and the live one stays until go_live.
    second = save_version(session, journey, with_node_text("第二版"), None, "new wording")
    assert second.version == 2 and journey.live_version == 1
    assert session.scalar(
        select(JourneyVersion.document).where(JourneyVersion.version == 1)
    ) == with_node_text("草稿二")
    # The same document again: nothing new.
    assert save_version(session, journey, with_node_text("第二版"), None, "").version == 2
    # Saved from version 1 while 2 exists: refused, nothing lost but the save.
    with pytest.raises(ValidationError) as caught:
        save_version(session, journey, with_node_text("旧页面"), None, based_on=1)
    assert list(caught.value.messages) == [""]
    assert save_version(session, journey, with_node_text("三"), None, based_on=2).version == 3
    # Mistakes by path; nothing saved.
    broken = with_node_text("")
    with pytest.raises(ValidationError) as caught:
        save_version(session, journey, broken, None, "x" * 201)
    assert set(caught.value.messages) == {"nodes.3.action.text", "note"}
    assert [v.version for v in versions(session, journey.id)] == [3, 2, 1]

    assert go_live(session, journey, 2).version == 2 and journey.live_version == 2
    assert go_live(session, journey).version == 3
    with pytest.raises(JourneyError):
        go_live(session, journey, 9)


def test_pause_resume_and_archive(session, ws):
    journey = create_journey(session, ws, "j", "", doc(), None)
    with pytest.raises(JourneyError):
        pause(session, journey)  # a draft
    go_live(session, journey)
    pause(session, journey)
    assert journey.status == "paused"
    with pytest.raises(JourneyError):
        pause(session, journey)
    resume(session, journey)
    assert journey.status == "live"

    waiting = enrol(session, journey, "wait_watch", "waiting", next_run_at=NOW + timedelta(days=1))
    active = enrol(session, journey, "send_link")
    done = enrol(session, journey, "done", "completed", finished_at=NOW - timedelta(days=1))
    assert archive(session, journey, now=NOW) == 2
    session.commit()
    session.expire_all()
    assert [(e.status, e.finished_at, e.next_run_at) for e in (waiting, active)] == [
        ("exited", NOW, None)
    ] * 2
    assert (done.status, done.finished_at) == ("completed", NOW - timedelta(days=1))
    assert journey.status == "archived"
    for change in (
        lambda: archive(session, journey),
        lambda: go_live(session, journey),
        lambda: save_version(session, journey, with_node_text("x"), None),
    ):
        with pytest.raises(JourneyError):
            change()


def test_migration_moves_mapped_nodes_and_logs_a_jump(session, ws):
    journey = create_journey(session, ws, "j", "", doc(), None)
    go_live(session, journey)
    renamed = doc()
    renamed["nodes"][1]["id"] = "send_link_v2"
    renamed["nodes"][0]["next"] = "send_link_v2"
    save_version(session, journey, renamed, None, "renamed the link step")
    due = NOW + timedelta(hours=5)
    waiting = enrol(session, journey, "wait_watch", "waiting", next_run_at=due, visit=4)
    step(session, waiting, "wait_watch", "waiting", visit=4)
    arrived = enrol(session, journey, "wait_watch", next_run_at=NOW, visit=4)  # not run yet
    sending = enrol(session, journey, "send_link", next_run_at=NOW + timedelta(minutes=3))
    nudging = enrol(session, journey, "nudge")
    finished = enrol(session, journey, "send_link", "completed")

    with pytest.raises(ValidationError) as caught:
        migrate_enrolments(session, journey, 1, 2, {"send_link": "send_link", "ghost": "x"})
    assert caught.value.messages == {
        "node_map.send_link": ["No node of the new version has this id."],
        "node_map.ghost": ["No node of the old version has this id."],
    }
    later = NOW + timedelta(minutes=1)
    moved = migrate_enrolments(
        session,
        journey,
        1,
        2,
        {"send_link": "send_link_v2", "wait_watch": "wait_watch", "nudge": ""},
        now=later,
    )
    assert moved == 3
    session.commit()
    session.expire_all()

    def where(e):
        return (e.version, e.node_id, e.status, e.next_run_at, e.visit)

    # A wait that had started goes on waiting for its event until the same moment; the
    # others run their new node at once. Each arrival is a move of its own (visit + 1).
    assert where(waiting) == (2, "wait_watch", "waiting", due, 5)
    assert where(arrived) == (2, "wait_watch", "active", later, 5)
    assert where(sending) == (2, "send_link_v2", "active", later, 2)
    assert (nudging.version, nudging.node_id) == (1, "nudge")  # unmapped: stays
    assert (finished.version, finished.node_id) == (1, "send_link")  # not open
    logged = session.scalars(select(Step).where(Step.version == 2).order_by(Step.id)).all()
    moved_from = {"migrated_from": 1, "from_node": "wait_watch"}
    assert sorted((s.enrolment_id, s.node_id, s.visit, s.outcome, s.detail) for s in logged) == [
        (waiting.id, "wait_watch", 4, "jumped", moved_from),
        (waiting.id, "wait_watch", 5, "waiting", {"until": due.isoformat(), "migrated": True}),
        (arrived.id, "wait_watch", 4, "jumped", moved_from),
        (sending.id, "send_link_v2", 1, "jumped", {"migrated_from": 1, "from_node": "send_link"}),
    ]
    assert open_by_version(session, journey.id) == {1: 1, 2: 3}

    # Back and forth: every arrival is a new move, so the step log never collides.
    migrate_enrolments(session, journey, 2, 1, {"send_link_v2": "send_link"})
    migrate_enrolments(session, journey, 1, 2, {"send_link": "send_link_v2"})
    session.expire_all()
    assert (sending.version, sending.node_id, sending.visit) == (2, "send_link_v2", 4)
    with pytest.raises(JourneyError):
        migrate_enrolments(session, journey, 2, 2, {})


def test_counts_per_node_and_per_journey(session, ws):
    journey = create_journey(session, ws, "j", "", doc(), None)
    go_live(session, journey)
    # As the engine logs them: an arrival by a trigger, then each node's run.
    a = enrol(session, journey, "wait_watch", "waiting", visit=4)
    b = enrol(session, journey, "send_link", visit=3)
    c = enrol(session, journey, "done", "completed", visit=6)
    d = enrol(session, journey, "follow_up", "goal", entered_node="follow_up", visit=2)
    for enrolment in (a, b, c):
        step(session, enrolment, "start", "entered", visit=1)
        step(session, enrolment, "start", "done", visit=2)
    step(session, a, "send_link", "done", visit=3)
    step(session, c, "send_link", "skipped", visit=3)
    step(session, a, "wait_watch", "waiting", visit=4)
    step(session, c, "wait_watch", "done", visit=4)
    step(session, c, "follow_up", "failed", visit=5)
    step(session, c, "done", "done", visit=6)
    step(session, d, "follow_up", "entered", visit=1)
    step(session, d, "follow_up", "goal", visit=2)
    save_version(session, journey, with_node_text("v2"), None)
    e = enrol(session, journey, "send_link", version=2, visit=3)
    step(session, e, "start", "entered", visit=1)
    step(session, e, "start", "done", visit=2)

    counts = node_counts(session, journey.id, 1)
    assert counts["start"] == {
        "current": 0,
        "entered": 3,
        "entries": 3,
        "done": 3,
        "skipped": 0,
        "failed": 0,
    }
    assert counts["send_link"] == {
        "current": 1,
        "entered": 2,
        "done": 1,
        "skipped": 1,
        "failed": 0,
    }
    assert counts["wait_watch"] == {
        "current": 1,
        "entered": 2,
        "done": 1,
        "skipped": 0,
        "failed": 0,
        "waiting": 1,
    }
    assert counts["follow_up"] == {
        "current": 0,
        "entered": 1,
        "entries": 1,
        "done": 0,
        "skipped": 0,
        "failed": 1,
        "goal": 1,
    }
    assert "nudge" not in counts
    every = node_counts(session, journey.id)
    assert every["start"]["entered"] == 4 and every["send_link"]["current"] == 2
    assert journey_counts(session, [journey.id]) == {
        journey.id: {"open": 3, "completed": 1, "goal": 1, "exited": 0, "total": 5}
    }
    assert journey_counts(session, []) == {}


def test_the_graph_lays_nodes_out_by_depth_from_the_entries():
    assert layout(LIVE_THEN_WECOM) == {
        "start": (0, 0),
        "send_link": (1, 0),
        "wait_watch": (2, 0),
        "nudge": (3, 0),
        "follow_up": (3, 1),
        "done": (4, 0),
    }
    assert ("wait_watch", "nudge", "timeout") in edges(LIVE_THEN_WECOM)
    # A node nobody leads to starts from its own trigger.
    document = doc()
    document["nodes"][0]["next"] = "done"
    document["nodes"].append({"id": "orphan", "type": "exit"})
    placed = layout(document)
    assert placed["follow_up"] == (0, 1)
    # The nodes nobody reaches and the exits share the last column.
    assert [placed[n] for n in ("send_link", "wait_watch", "nudge", "done", "orphan")] == [
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
    ]


def test_a_contacts_history_says_why(session, ws):
    account = Account(workspace_id=ws, name="华信", normalized_name="华信")
    session.add(account)
    session.flush()
    contact = Contact(workspace_id=ws, name="王总", account_id=account.id)
    tag = Tag(workspace_id=ws, group="interest", name="直播")
    session.add_all([contact, tag])
    session.flush()
    document = doc()
    document["nodes"][1]["skip_if"]["since"] = "enrolment"
    journey = create_journey(session, ws, "直播跟进", "", document, None)
    go_live(session, journey)
    watch = {"kind": "interaction", "event": {"kind": "live.watch"}}
    # As the reactions enrol: entered at follow_up (its trigger), which adds a tag, then the exit.
    first = enrol(
        session,
        journey,
        "done",
        "completed",
        contact=contact.id,
        entered_node="follow_up",
        entered_because={"trigger": watch, "interaction_id": 5, "kind": "live.watch"},
        entered_at=NOW - timedelta(days=3),
        visit=3,
    )
    step(session, first, "follow_up", "entered", visit=1, detail={"kind": "live.watch"})
    step(session, first, "follow_up", "done", visit=2, detail={"action": "add_tag", "tag_id": 7})
    step(session, first, "done", "done", visit=3)
    # Tagged, the link skipped (watched since), now waiting for the live stream.
    second = enrol(
        session,
        journey,
        "wait_watch",
        "waiting",
        contact=contact.id,
        entered_because={"trigger": {"kind": "tag_added", "tag_id": tag.id}},
        visit=4,
    )
    step(session, second, "start", "entered", visit=1, detail={"kind": "tag_added"})
    step(session, second, "start", "done", visit=2)
    because = {"because": "live.watch since enrolment"}
    step(session, second, "send_link", "skipped", visit=3, detail=because)
    until = {"until": "2026-11-25T02:00:00+00:00"}
    step(session, second, "wait_watch", "waiting", visit=4, detail=until)
    account_journey = create_journey(session, ws, "华信推进", "", doc(scope="account"), None)
    go_live(session, account_journey)
    third = enrol(
        session,
        account_journey,
        "follow_up",
        entered_because={"trigger": {"kind": "mqa_entered"}},
        account_id=account.id,
        entered_at=NOW - timedelta(days=9),
        visit=3,
    )
    step(session, third, "start", "entered", visit=1)
    step(session, third, "follow_up", "jumped", visit=2, detail={"kind": "live.watch"})
    step(
        session,
        third,
        "follow_up",
        "failed",
        visit=3,
        detail={"action": "add_tag", "error": "no such tag"},
    )
    session.add(Contact(workspace_id=ws, name="someone else"))
    session.commit()

    history = contact_history(session, contact.id)
    assert [(h.journey_name, h.for_account) for h in history] == [
        ("直播跟进", False),
        ("直播跟进", False),
        ("华信推进", True),
    ]
    latest, earlier, committee = history
    assert str(latest.entered) == "Entered at start because: tagged 直播"
    assert [(s.node_id, s.outcome, str(s.reason)) for s in latest.steps] == [
        ("start", "entered", "Entered here because: tagged 直播"),
        ("start", "done", "On to send_link."),
        ("send_link", "skipped", "Skipped because: live.watch since enrolment"),
        ("wait_watch", "waiting", "Waiting for live.watch until 2026-11-25 02:00 UTC."),
    ]
    assert str(latest.ended) == "Waiting at wait_watch."
    assert str(earlier.entered) == "Entered at follow_up because: live.watch"
    assert [str(s.reason) for s in earlier.steps] == [
        "Entered here because: live.watch",
        "Done: Add a tag",
        "Reached the exit.",
    ]
    assert str(earlier.ended) == "Completed at done."
    assert str(committee.entered) == "Entered at start because: the account became MQA"
    assert [str(s.reason) for s in committee.steps[1:]] == [
        "Jumped here because: live.watch",
        "Failed (Add a tag): no such tag",
    ]

    labelled = contact_history(
        session, contact.id, event_label=lambda event: "看了直播", time_label=lambda t: "明天"
    )
    assert str(labelled[1].entered) == "Entered at follow_up because: 看了直播"
    assert str(labelled[0].steps[3].reason) == "Waiting for 看了直播 until 明天."
    translated = (
        labelled[0].steps[2].reason.render(lambda text, **values: "«" + text % values + "»")
    )
    assert translated == "«Skipped because: «看了直播 «since enrolment»»»"
    assert contact_history(session, 10_000) == []
