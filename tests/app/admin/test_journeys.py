"""Journeys pages: who may read and change them, the editor (every mistake beside its input,
nodes added, moved, renamed and removed without losing what was typed), saving (a new
version once live, refused when someone saved meanwhile), going live, pausing, archiving,
the graph's data and counts, moving enrolments between versions, and the contact page's
journey history."""

import copy
import html
import json
import re
from html.parser import HTMLParser

from sqlalchemy import select

from crm.channels import workspace_named
from journeys.definitions import create_journey, save_version
from models import (
    AuditLog,
    Contact,
    Enrolment,
    Journey,
    JourneyVersion,
    SavedSegment,
    Tag,
    utcnow,
)
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import (
    LIVE_THEN_WECOM,
    enrol,
    log_step,
    make_journey,
    with_own_tag,
    workspace_id,
)
from tests.helpers import all_of, harpoon_of

LIST = "/admin/journeys"
NEW = "/admin/journeys/new"


class FormReader(HTMLParser):
    """What a browser submits from form#journey-form, its buttons aside."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.select: str | None = None
        self.first_option: str | None = None
        self.textarea: str | None = None
        self.values: dict = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == "journey-form"
        elif not self.inside:
            return
        elif tag == "input" and attrs.get("type") == "checkbox":
            if "checked" in attrs:
                self.values.setdefault(attrs["name"], []).append(attrs["value"])
        elif tag == "input":
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "textarea":
            self.textarea = attrs["name"]
            self.values[self.textarea] = ""
        elif tag == "select":
            self.select, self.first_option = attrs["name"], None
        elif tag == "option" and self.select:
            if self.first_option is None:
                self.first_option = attrs["value"]
                self.values.setdefault(self.select, attrs["value"])
            if "selected" in attrs:
                self.values[self.select] = attrs["value"]

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def form_of(page: str) -> dict:
    reader = FormReader()
    reader.feed(page)
    assert reader.values, "no form#journey-form on the page"
    return {
        name: html.unescape(value) if isinstance(value, str) else value
        for name, value in reader.values.items()
    }


def errors_at(page: str, path: str) -> list[str]:
    return [
        html.unescape(message)
        for message in re.findall(
            rf'<small class="error" role="alert" data-error-for="{re.escape(path)}">(.*?)</small>',
            page,
        )
    ]


def post(client, path: str, page: str, changes: dict, op: str = "save"):
    """Post the form of `page` as typed, with some inputs changed, pressing `op`."""
    values = {**form_of(page), **changes, "op": op, "csrf_token": csrf_token(page)}
    return client.post(path, data=values)


def marketer(signed_in):
    return in_english(signed_in("marketer"))


def journey_of(app, journey_id) -> Journey:
    with harpoon_of(app).db.session() as session:
        return session.get(Journey, journey_id)


def version_numbers(app, journey_id) -> list[int]:
    return [v.version for v in all_of(app, JourneyVersion) if v.journey_id == journey_id]


def graph_of(page: str) -> dict:
    found = re.search(r'<script id="graph-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "no graph data on the page"
    return json.loads(found[1])


# ---- who may do what -----------------------------------------------------------------------


def test_anyone_signed_in_reads_journeys_only_marketers_and_admins_change_them(app, signed_in):
    journey_id = make_journey(app)
    assert app.test_client().get(LIST).status_code == 302  # to the sign-in page
    for role in ("viewer", "sales"):
        client = in_english(signed_in(role))
        page = client.get(LIST).text
        assert "直播跟进" in page and "New journey" not in page
        assert 'href="/admin/journeys"' in page  # in the navigation
        detail = client.get(f"{LIST}/{journey_id}").text
        assert "graph-data" in detail and "Edit</a>" not in detail and "Archive" not in detail
        assert client.get(NEW).status_code == 403
        assert client.get(f"{LIST}/{journey_id}/edit").status_code == 403
        assert client.get(f"{LIST}/{journey_id}/migrate").status_code == 403
        token = csrf_token(page)
        for path in (
            NEW,
            f"{LIST}/{journey_id}/edit",
            f"{LIST}/{journey_id}/live",
            f"{LIST}/{journey_id}/pause",
            f"{LIST}/{journey_id}/archive",
            f"{LIST}/{journey_id}/migrate",
        ):
            assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert journey_of(app, journey_id).status == "live"
    for role in ("marketer", "admin", "owner"):
        client = in_english(signed_in(role))
        assert "New journey" in client.get(LIST).text
        assert client.get(f"{LIST}/{journey_id}/edit").status_code == 200


def test_another_workspaces_journey_is_out_of_reach(app, signed_in):
    client = marketer(signed_in)
    with harpoon_of(app).db.session() as session:
        other = workspace_named(session, "other").id
        document = with_own_tag(session, other, LIVE_THEN_WECOM)
        theirs = create_journey(session, other, "Theirs", "", document, None)
        session.commit()
        theirs_id = theirs.id
    token = csrf_token(client.get(LIST).text)
    for path in ("", "/edit", "/migrate"):
        assert client.get(f"{LIST}/{theirs_id}{path}").status_code == 404
    for path in ("/edit", "/live", "/pause", "/archive", "/migrate"):
        assert (
            client.post(f"{LIST}/{theirs_id}{path}", data={"csrf_token": token}).status_code == 404
        )
    assert "Theirs" not in client.get(LIST).text


# ---- the editor ----------------------------------------------------------------------------


def test_a_new_journey_shows_each_mistake_beside_its_input_and_keeps_what_was_typed(app, signed_in):
    client = marketer(signed_in)
    page = client.get(NEW).text
    values = form_of(page)
    # The starter: a follow, a welcome, the end.
    assert (values["nodes.0.id"], values["nodes.0.trigger.event.kind"]) == (
        "start",
        "wechat.follow",
    )
    assert (values["nodes.1.action.kind"], values["nodes.2.type"]) == ("cs_message", "exit")

    response = post(
        client,
        NEW,
        page,
        {"name": "", "nodes.0.next": "", "reentry": "period", "reentry_days": "0"},
    )
    assert response.status_code == 400
    page = response.text
    assert errors_at(page, "name") == ["Required."]
    assert errors_at(page, "nodes.1.action.text") == ["1 to 600 characters."]
    assert errors_at(page, "reentry_days") == ["A whole number of days from 1 to 3650."]
    assert "3 mistakes" in page and 'id="other-problems"' not in page
    assert all_of(app, Journey) == []
    # What was typed is still there.
    assert form_of(page)["reentry"] == "period" and form_of(page)["nodes.0.next"] == ""

    response = post(
        client,
        NEW,
        page,
        {
            "name": "关注欢迎",
            "reentry": "once",
            "nodes.0.next": "welcome",
            "nodes.1.action.text": "欢迎关注！回复“演示”预约产品演示。",
        },
    )
    assert response.status_code == 302
    (journey,) = all_of(app, Journey)
    assert (journey.name, journey.status, journey.live_version) == ("关注欢迎", "draft", None)
    (version,) = all_of(app, JourneyVersion)
    assert version.document["nodes"][1]["action"] == {
        "kind": "cs_message",
        "text": "欢迎关注！回复“演示”预约产品演示。",
    }
    assert version.document["nodes"][0] == {
        "id": "start",
        "type": "entry",
        "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
        "next": "welcome",
    }
    assert [a.action for a in all_of(app, AuditLog)] == ["journey.create"]


def test_every_node_type_posts_its_own_fields(app, signed_in):
    """A journey using every kind of field, posted from the form, comes back whole."""
    client = marketer(signed_in)
    make_journey(app, "tags", live=False)  # the tag the branch uses
    ws = workspace_id(app)
    with harpoon_of(app).db.session() as session:
        tag_id = session.scalar(select(Tag.id))
        segment = SavedSegment(workspace_id=ws, name="华东 IT", document={})
        session.add(segment)
        session.commit()
        segment_id = segment.id
    page = client.get(NEW).text
    for kind in ("wait", "branch", "wait", "action", "entry"):
        page = post(client, NEW, page, {}, op=f"add_node:{kind}").text
    values = form_of(page)
    assert [values[f"nodes.{n}.id"] for n in range(7)] == [
        "start",
        "welcome",
        "done",
        "wait_1",
        "branch_1",
        "wait_2",
        "action_1",
    ]
    response = post(
        client,
        NEW,
        page,
        {
            "name": "全字段",
            "scope": "account",
            "reentry": "period",
            "reentry_days": "30",
            "nodes.0.trigger.kind": "tag_added",
            "nodes.0.trigger.tag_id": str(tag_id),
            "nodes.1.action.kind": "template_message",
            "nodes.1.action.template_id": "TPL-1",
            "nodes.1.action.data": "first: 直播提醒\nkeyword1: 11月28日",
            "nodes.1.action.url": "https://live.example/1",
            "nodes.1.skip_if.event.kind": "live.watch",
            "nodes.1.skip_if.since": "ever",
            "nodes.1.next": "wait_1",
            "nodes.3.wait.minutes": "2",
            "nodes.3.wait.minutes_unit": "days",
            "nodes.3.next": "branch_1",
            "nodes.4.branches.0.condition.kind": "interacted",
            "nodes.4.branches.0.condition.event.kind": "wechat.menu_click",
            "nodes.4.branches.0.condition.event.where": "key: BOOK_DEMO",
            "nodes.4.branches.0.condition.window": "days",
            "nodes.4.branches.0.condition.within_days": "7",
            "nodes.4.branches.0.next": "action_1",
            "nodes.4.otherwise": "wait_2",
            "nodes.5.wait_mode": "event",
            "nodes.5.wait.event.kind": "live.watch",
            "nodes.5.wait.timeout_minutes": "1.5",
            "nodes.5.wait.timeout_minutes_unit": "hours",
            "nodes.5.timeout_next": "done",
            "nodes.5.next": "action_1",
            "nodes.6.action.kind": "webhook",
            "nodes.6.action.url": "https://crm.example/hook",
            "nodes.6.next": "done",
            "nodes.7.trigger.kind": "date",
            "nodes.7.trigger.at": "2026-12-01T09:30",
            "nodes.7.trigger.segment_id": str(segment_id),
            "nodes.7.next": "welcome",
        },
    )
    assert response.status_code == 302, errors_of(response.text)
    document = all_of(app, JourneyVersion)[-1].document
    assert (document["scope"], document["reentry"], document["reentry_days"]) == (
        "account",
        "period",
        30,
    )
    nodes = {node["id"]: node for node in document["nodes"]}
    assert nodes["start"]["trigger"] == {"kind": "tag_added", "tag_id": tag_id}
    assert nodes["welcome"]["action"] == {
        "kind": "template_message",
        "template_id": "TPL-1",
        "data": {"first": "直播提醒", "keyword1": "11月28日"},
        "url": "https://live.example/1",
    }
    assert nodes["welcome"]["skip_if"] == {"event": {"kind": "live.watch"}, "since": "ever"}
    assert nodes["wait_1"]["wait"] == {"minutes": 2880}
    assert nodes["branch_1"]["branches"] == [
        {
            "condition": {
                "kind": "interacted",
                "event": {"kind": "wechat.menu_click", "where": {"key": "BOOK_DEMO"}},
                "within_days": 7,
            },
            "next": "action_1",
        }
    ]
    assert nodes["branch_1"]["otherwise"] == "wait_2"
    assert nodes["wait_2"]["wait"] == {"event": {"kind": "live.watch"}, "timeout_minutes": 90}
    assert nodes["wait_2"]["timeout_next"] == "done"
    assert nodes["action_1"]["action"] == {"kind": "webhook", "url": "https://crm.example/hook"}
    # A moment typed in the workspace's zone (Asia/Shanghai) is stored with its offset.
    assert nodes["entry_1"]["trigger"] == {
        "kind": "date",
        "at": "2026-12-01T09:30:00+08:00",
        "segment_id": segment_id,
    }
    # And the editor shows it back as it was typed.
    (journey,) = [j for j in all_of(app, Journey) if j.name == "全字段"]
    values = form_of(client.get(f"{LIST}/{journey.id}/edit").text)
    assert (values["nodes.3.wait.minutes"], values["nodes.3.wait.minutes_unit"]) == ("2", "days")
    assert (
        values["nodes.5.wait.timeout_minutes"],
        values["nodes.5.wait.timeout_minutes_unit"],
    ) == (
        "90",
        "minutes",
    )
    assert values["nodes.4.branches.0.condition.window"] == "days"
    assert values["nodes.1.action.data"] == "first: 直播提醒\nkeyword1: 11月28日"
    assert values["nodes.7.trigger.at"] == "2026-12-01T09:30"


def errors_of(page: str) -> list[str]:
    return re.findall(r'data-error-for="([^"]+)">([^<]*)<', page)


def test_nodes_are_added_moved_renamed_and_removed_without_losing_what_was_typed(app, signed_in):
    client = marketer(signed_in)
    page = client.get(NEW).text
    # A typed name and text survive each button.
    page = post(
        client, NEW, page, {"name": "草稿", "nodes.1.action.text": "你好"}, op="add_node:wait"
    ).text
    values = form_of(page)
    assert values["name"] == "草稿" and values["nodes.1.action.text"] == "你好"
    assert values["nodes.3.id"] == "wait_1"
    assert values["nodes.3.wait.minutes"] == "1" and values["nodes.3.wait.minutes_unit"] == "days"
    assert all_of(app, Journey) == []  # nothing saved by a button but Save
    # Moved up: the wait goes before the exit.
    page = post(client, NEW, page, {}, op="up:3").text
    assert [form_of(page)[f"nodes.{n}.id"] for n in range(4)] == [
        "start",
        "welcome",
        "wait_1",
        "done",
    ]
    # Renaming a node keeps the links to it.
    page = post(client, NEW, page, {"nodes.1.id": "hello"}, op="add_branch:2").text
    values = form_of(page)
    assert values["nodes.0.next"] == "hello" and values["nodes.1.id"] == "hello"
    # Removing one unlinks it; the mistakes show on save.
    page = post(client, NEW, page, {}, op="remove:1").text
    values = form_of(page)
    assert values["nodes.0.id"] == "start" and values["nodes.1.id"] == "wait_1"
    assert values["nodes.0.next"] == ""
    assert post(client, NEW, page, {}, op="remove:9").status_code == 400
    assert post(client, NEW, page, {}, op="explode").status_code == 400


def test_mistakes_deep_in_a_node_show_beside_their_input(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    path = f"{LIST}/{journey_id}/edit"
    page = client.get(path).text
    response = post(
        client,
        path,
        page,
        {
            "nodes.2.wait.timeout_minutes": "",
            "nodes.3.action.kind": "webhook",
            "nodes.3.action.url": "ftp://nope",
            "nodes.4.id": "send_link",
            "nodes.1.skip_if.event.where": "no colon here",
        },
    )
    assert response.status_code == 400
    page = response.text
    assert errors_at(page, "nodes.2.wait.timeout_minutes") == ["How long to wait for it at most."]
    assert errors_at(page, "nodes.3.action.url") == [
        "An http(s) address of at most 1024 characters."
    ]
    assert errors_at(page, "nodes.4.id") == ["Another node has this id."]
    assert errors_at(page, "nodes.1.skip_if.event.where") == ["Property names and values as text."]
    assert form_of(page)["nodes.1.skip_if.event.where"] == "no colon here"
    assert version_numbers(app, journey_id) == [1]


def test_a_tag_of_another_workspace_is_refused_beside_its_input(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    with harpoon_of(app).db.session() as session:
        theirs = with_own_tag(session, workspace_named(session, "other").id, LIVE_THEN_WECOM)
        session.commit()
    their_tag = str(theirs["nodes"][4]["action"]["tag_id"])  # the next id after ours
    path = f"{LIST}/{journey_id}/edit"
    response = post(client, path, client.get(path).text, {"nodes.4.action.tag_id": their_tag})
    assert response.status_code == 400
    assert errors_at(response.text, "nodes.4.action.tag_id") == ["Not a tag of this workspace."]
    assert version_numbers(app, journey_id) == [1]


# ---- saving, versions and the life cycle -----------------------------------------------------


def test_saving_a_live_journey_makes_a_new_version_and_put_live_switches(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    path = f"{LIST}/{journey_id}/edit"
    page = client.get(path).text
    assert "Save as a new version" in page
    response = post(
        client, path, page, {"nodes.3.action.text": "请尽快跟进", "note": "更紧迫的提醒"}
    )
    assert response.status_code == 302
    assert version_numbers(app, journey_id) == [1, 2]
    assert journey_of(app, journey_id).live_version == 1  # until put live
    detail = client.get(response.location).text
    assert "Saved as version 2" in html.unescape(detail) and "更紧迫的提醒" in detail
    # Saving the same thing again makes nothing new.
    page = client.get(path).text
    assert post(client, path, page, {}).status_code == 302
    assert version_numbers(app, journey_id) == [1, 2]
    # A page opened on version 2 while someone saved version 3: refused, nothing lost.
    stale = client.get(path).text
    with harpoon_of(app).db.session() as session:
        journey = session.get(Journey, journey_id)
        document = copy.deepcopy(
            session.scalar(select(JourneyVersion.document).where(JourneyVersion.version == 2))
        )
        document["nodes"][3]["action"]["text"] = "别人的改动"
        save_version(session, journey, document, None, "someone else")
        session.commit()
    response = post(client, path, stale, {"nodes.3.action.text": "我的改动"})
    assert response.status_code == 400
    assert "Someone saved a newer version" in html.unescape(response.text)
    assert form_of(response.text)["nodes.3.action.text"] == "我的改动"
    # Saving again replaces theirs with mine, and goes live.
    response = post(client, path, response.text, {}, op="save_live")
    assert response.status_code == 302
    assert version_numbers(app, journey_id) == [1, 2, 3, 4]
    assert journey_of(app, journey_id).live_version == 4
    actions = [a.action for a in all_of(app, AuditLog)]
    assert actions == ["journey.save", "journey.save", "journey.live"]


def test_go_live_pause_resume_and_archive(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app, live=False)
    detail = f"{LIST}/{journey_id}"
    token = csrf_token(client.get(detail).text)
    assert client.post(f"{detail}/pause", data={"csrf_token": token}).status_code == 302
    assert "Only a live journey can be paused." in html.unescape(client.get(detail).text)
    client.post(f"{detail}/live", data={"csrf_token": token})
    assert (journey_of(app, journey_id).status, journey_of(app, journey_id).live_version) == (
        "live",
        1,
    )
    client.post(f"{detail}/pause", data={"csrf_token": token})
    assert journey_of(app, journey_id).status == "paused"
    assert "Resume" in client.get(detail).text
    client.post(f"{detail}/resume", data={"csrf_token": token})
    assert journey_of(app, journey_id).status == "live"
    waiting = enrol(app, journey_id, "wait_watch", "waiting")
    client.post(f"{detail}/archive", data={"csrf_token": token})
    assert journey_of(app, journey_id).status == "archived"
    assert all_of(app, Enrolment)[0].status == "exited" and waiting
    page = html.unescape(client.get(detail).text)
    assert "Archived: 1 enrolments exited." in page and "Edit</a>" not in page
    assert client.get(f"{detail}/edit").status_code == 302
    assert [a.action for a in all_of(app, AuditLog)] == [
        "journey.live",
        "journey.pause",
        "journey.resume",
        "journey.archive",
    ]


# ---- the journey page ------------------------------------------------------------------------


def test_the_journey_page_draws_the_graph_with_counts_per_node(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    a = enrol(app, journey_id, "wait_watch", "waiting", visit=4)
    for node, outcome, visit in (
        ("start", "entered", 1),
        ("start", "done", 2),
        ("send_link", "done", 3),
        ("wait_watch", "waiting", 4),
    ):
        log_step(app, a, node, outcome, visit)
    b = enrol(app, journey_id, "done", "completed", visit=4)
    for node, outcome, visit in (
        ("start", "entered", 1),
        ("start", "done", 2),
        ("send_link", "skipped", 3),
        ("done", "done", 4),
    ):
        log_step(app, b, node, outcome, visit)
    page = client.get(f"{LIST}/{journey_id}").text
    graph = graph_of(page)
    placed = {node["id"]: (node["x"], node["y"]) for node in graph["nodes"]}
    assert placed == {
        "start": (0, 0),
        "send_link": (230, 0),
        "wait_watch": (460, 0),
        "nudge": (690, 0),
        "follow_up": (690, 100),
        "done": (920, 0),
    }
    counts = {node["id"]: node["counts"] for node in graph["nodes"]}
    assert counts["send_link"] == {"current": 0, "entered": 2, "done": 1, "skipped": 1, "failed": 0}
    assert counts["wait_watch"]["current"] == 1 and counts["start"]["entered"] == 2
    links = {(link["source"], link["target"]): link for link in graph["links"]}
    assert set(links) == {
        ("start", "send_link"),
        ("send_link", "wait_watch"),
        ("wait_watch", "follow_up"),
        ("wait_watch", "nudge"),
        ("nudge", "done"),
        ("follow_up", "done"),
    }
    assert links[("wait_watch", "nudge")]["label"] == "timed out"
    follow_up = next(node for node in graph["nodes"] if node["id"] == "follow_up")
    assert follow_up["entry"] and "Watched a live stream" in follow_up["summary"]
    # The same counts in the table.
    row = re.search(r'<tr data-node="send_link">(.*?)</tr>', page, re.S)[1]
    assert re.findall(r'data-count="(\w+)">(\d+)<', row) == [
        ("current", "0"),
        ("entered", "2"),
        ("done", "1"),
        ("skipped", "1"),
        ("failed", "0"),
    ]
    assert re.search(r'data-total="open">1<', page) and re.search(
        r'data-total="completed">1<', page
    )
    listing = client.get(LIST).text
    row = re.search(rf'<tr id="journey-{journey_id}"(.*?)</tr>', listing, re.S)[1]
    assert re.findall(r'data-count="(\w+)">(\d+)<', row) == [
        ("open", "1"),
        ("completed", "1"),
        ("goal", "0"),
    ]
    assert client.get(f"{LIST}/{journey_id}?version=9").status_code == 404


def test_enrolments_move_to_another_version_node_by_node(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    waiting = enrol(app, journey_id, "wait_watch", "waiting", visit=4)
    log_step(app, waiting, "wait_watch", "waiting", 4)
    sending = enrol(app, journey_id, "nudge")
    path = f"{LIST}/{journey_id}/edit"
    page = client.get(path).text
    post(client, path, page, {"nodes.3.id": "nudge_owner", "note": "renamed"}, op="save_live")
    assert journey_of(app, journey_id).live_version == 2

    detail = client.get(f"{LIST}/{journey_id}").text
    assert "Move enrolments to another version" in detail
    page = client.get(f"{LIST}/{journey_id}/migrate").text
    selects = re.findall(r'<select name="node_map\.(\w+)"(.*?)</select>', page, re.S)
    mapping = {
        node: (re.search(r'<option value="(\w*)" selected', options) or [None, ""])[1]
        for node, options in selects
    }
    # Each node to its namesake; nudge has none in version 2, so it stays.
    assert mapping == {"nudge": "", "wait_watch": "wait_watch"}
    token = csrf_token(page)
    bad = client.post(
        f"{LIST}/{journey_id}/migrate",
        data={"csrf_token": token, "from": "1", "to": "2", "node_map.nudge": "ghost"},
    )
    assert bad.status_code == 400
    assert "No node of the new version has this id." in bad.text
    response = client.post(
        f"{LIST}/{journey_id}/migrate",
        data={
            "csrf_token": token,
            "from": "1",
            "to": "2",
            "node_map.nudge": "nudge_owner",
            "node_map.wait_watch": "",
        },
    )
    assert response.status_code == 302
    assert "1 enrolments moved from version 1 to version 2." in html.unescape(
        client.get(response.location).text
    )
    moved = {e.id: (e.version, e.node_id) for e in all_of(app, Enrolment)}
    assert moved == {waiting: (1, "wait_watch"), sending: (2, "nudge_owner")}
    assert all_of(app, AuditLog)[-1].action == "journey.migrate"


# ---- the contact page ------------------------------------------------------------------------


def test_the_contact_page_tells_the_contacts_journeys(app, signed_in):
    client = marketer(signed_in)
    journey_id = make_journey(app)
    ws = workspace_id(app)
    with harpoon_of(app).db.session() as session:
        contact = Contact(workspace_id=ws, name="王总")
        session.add(contact)
        session.commit()
        contact_id = contact.id
    watched = {"kind": "interaction", "event": {"kind": "live.watch"}}
    enrolment = enrol(
        app,
        journey_id,
        "done",
        "completed",
        contact_id=contact_id,
        entered_node="follow_up",
        entered_because={"trigger": watched, "interaction_id": 5, "kind": "live.watch"},
        visit=3,
        finished_at=utcnow(),
    )
    log_step(app, enrolment, "follow_up", "entered", 1, {"kind": "live.watch"})
    log_step(app, enrolment, "follow_up", "done", 2, {"action": "add_tag"})
    log_step(app, enrolment, "done", "done", 3)
    page = html.unescape(client.get(f"/admin/contacts/{contact_id}").text)
    card = re.search(r'<section class="card" id="contact-journeys">(.*?)</section>', page, re.S)[1]
    assert "直播跟进" in card
    assert "Entered at follow_up because: Watched a live stream" in card
    assert "Done: Add a tag" in card and "Completed at done." in card
    with harpoon_of(app).db.session() as session:
        other = Contact(workspace_id=ws, name="新人")
        session.add(other)
        session.commit()
        other_id = other.id
    assert "Not on any journey yet." in client.get(f"/admin/contacts/{other_id}").text
