"""The journey document: the live-stream / WeCom scenario validates, every kind of
mistake is named by its path, loops need a wait, and entry points match interactions."""

import copy

from journeys.model import Journey, validate
from tests.factories import LIVE_THEN_WECOM


def broken(**changes) -> dict:
    doc = copy.deepcopy(LIVE_THEN_WECOM)
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return doc


def test_the_live_stream_journey_is_valid_and_enters_at_two_nodes():
    assert validate(LIVE_THEN_WECOM) == {}
    journey = Journey.from_document(LIVE_THEN_WECOM)
    assert [n.id for n in journey.entry_points("wecom.contact_added", {})] == ["start"]
    assert [n.id for n in journey.entry_points("live.watch", {"minutes": "30"})] == ["follow_up"]
    assert journey.entry_points("wechat.follow", {}) == []
    assert journey.goal_met("sales.meeting", {}) and not journey.goal_met("live.watch", {})
    assert set(journey.node("wait_watch").successors()) == {"follow_up", "nudge"}


def test_every_mistake_is_named_by_its_path():
    assert validate(broken(nodes__1__next="nowhere")) == {"nodes.1.next": ["No node has this id."]}
    assert "nodes.1.action.text" in validate(broken(nodes__1__action={"kind": "cs_message"}))
    assert "nodes.1.action.kind" in validate(broken(nodes__1__action={"kind": "fax"}))
    assert "nodes.2.wait.timeout_minutes" in validate(
        broken(nodes__2__wait={"event": {"kind": "live.watch"}})
    )
    assert "nodes.2.wait" in validate(broken(nodes__2__wait={"minutes": 5, "until_time": "09:00"}))
    assert "nodes.2.wait.until_time" in validate(broken(nodes__2__wait={"until_time": "25:00"}))
    assert "nodes.0.trigger" in validate(broken(nodes__0__trigger=None))
    assert "nodes.4.id" in validate(broken(nodes__4__id="send_link"))
    assert "nodes.5.next" in validate(broken(nodes__5__next="start"))
    assert "reentry_days" in validate(broken(reentry="period"))
    assert validate(broken(reentry="period", reentry_days=30)) == {}
    assert "nodes.3.action.url" in validate(
        broken(nodes__3__action={"kind": "webhook", "url": "ftp://x"})
    )
    assert "goals.0.kind" in validate(broken(goals=[{"where": {}}]))


def test_nobody_could_enter_a_journey_without_a_trigger():
    doc = broken(nodes__0__type="action", nodes__0__action={"kind": "add_tag", "tag_id": 1})
    doc["nodes"][0].pop("trigger")
    doc["nodes"][4].pop("trigger")
    assert validate(doc) == {"nodes": ["No node has an entry trigger: nobody could enter."]}


def test_a_loop_needs_a_wait():
    # nudge -> send_link -> wait_watch -> nudge loops through a wait: fine.
    assert validate(broken(nodes__3__next="send_link")) == {}
    # follow_up <-> nudge with no wait between them: refused.
    doc = broken(nodes__3__next="follow_up", nodes__4__next="nudge")
    assert validate(doc) == {"nodes": ["A loop without a wait: add a wait node to it."]}


def test_branches_name_their_conditions():
    branch = {
        "id": "which_first",
        "type": "branch",
        "branches": [
            {
                "condition": {
                    "kind": "first_event",
                    "a": {"kind": "live.watch"},
                    "b": {"kind": "wecom.contact_added"},
                },
                "next": "follow_up",
            },
            {"condition": {"kind": "score_at_least", "of": "lead"}, "next": "nudge"},
        ],
    }
    doc = copy.deepcopy(LIVE_THEN_WECOM)
    doc["nodes"].insert(3, branch)
    assert validate(doc) == {
        "nodes.3.branches.1.condition.at_least": ["A score of 0 or more."],
        "nodes.3.otherwise": ["Where the others go."],
    }
    branch["branches"][1]["condition"]["at_least"] = 50
    branch["otherwise"] = "done"
    assert validate(doc) == {}
