"""Journeys at work: the live-stream / WeCom scenario both ways, waits with timeouts, a
branch on which event came first, goal exit, re-entry policies, versions, a sender that
dies mid-send, the daily message cap, and a follow through the real pipeline answered
by a customer-service message in the sandbox."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.tags import TagBook
from journeys import delivery, reactions, runner, triggers
from journeys.delivery import Platform
from journeys.reactions import Touch
from models import (
    Contact,
    ContactTag,
    Enrolment,
    EnrolmentStatus,
    Interaction,
    Journey,
    JourneyStatus,
    JourneyVersion,
    Step,
    TagGroup,
    Workspace,
    utcnow,
)
from tests.helpers import session_of
from tests.oa_platform import client_of, follow, received
from wechat.sandbox.oa import CUSTOM

pytestmark = pytest.mark.sandbox


def tag_id(app, name: str) -> int:
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        tag = TagBook(session, workspace_id).get(session, TagGroup.BEHAVIOR, name)
        session.commit()
        return tag.id


def live(app, document: dict, name="live stream") -> int:
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        journey = Journey(
            workspace_id=workspace_id, name=name, status=JourneyStatus.LIVE, live_version=1
        )
        session.add(journey)
        session.flush()
        session.add(JourneyVersion(journey_id=journey.id, version=1, document=document))
        session.commit()
        return journey.id


def new_version(app, journey_id: int, document: dict) -> None:
    with session_of(app) as session:
        journey = session.get(Journey, journey_id)
        version = journey.live_version + 1
        session.add(JourneyVersion(journey_id=journey_id, version=version, document=document))
        journey.live_version = version
        session.commit()


def person(app, name="王芳") -> int:
    with session_of(app) as session:
        contact = Contact(workspace_id=session.scalar(select(Workspace.id)), name=name)
        session.add(contact)
        session.commit()
        return contact.id


def act(app, contact_id: int, kind: str, at=None, **properties) -> None:
    """An interaction, recorded and handed to the journeys as the drain does."""
    at = at or utcnow()
    with session_of(app) as session:
        row = Interaction(
            workspace_id=session.scalar(select(Workspace.id)),
            contact_id=contact_id,
            kind=kind,
            properties=properties,
            occurred_at=at,
        )
        session.add(row)
        session.flush()
        touch = Touch(row.id, contact_id, None, kind, properties, at)
        reactions.on_interactions(session, row.workspace_id, [touch], now=at)
        session.commit()


def run(app, at=None, platform=None) -> runner.RunResult:
    """The runner walks what is due, then the sender delivers what it queued."""
    at = at or utcnow()
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        result = runner.run_due(session, workspace_id, now=lambda: at)
        delivery.deliver_due(
            session,
            workspace_id,
            platform or Platform(oa_client=lambda channel: client_of(app)),
            now=lambda: at,
        )
        return result


def steps(app, contact_id: int) -> list[tuple[str, str]]:
    with session_of(app) as session:
        rows = session.execute(
            select(Step.node_id, Step.outcome)
            .join(Enrolment, Enrolment.id == Step.enrolment_id)
            .where(Enrolment.contact_id == contact_id)
            .order_by(Step.id)
        ).all()
    return [tuple(row) for row in rows]


def enrolments(app, contact_id: int) -> list[Enrolment]:
    with session_of(app) as session:
        return session.scalars(
            select(Enrolment).where(Enrolment.contact_id == contact_id).order_by(Enrolment.id)
        ).all()


def tagged(app, contact_id: int) -> set[int]:
    with session_of(app) as session:
        return set(
            session.scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == contact_id))
        )


def live_stream_journey(link_tag: int, watched_tag: int, nudge_tag: int) -> dict:
    """Add our WeCom -> send the live link (skipped if they watched, ever) -> wait up to
    2 days for them to watch -> follow up; or, not watched, nudge. Watching is also an
    entry: whoever watches first enters at the follow-up."""
    return {
        "scope": "contact",
        "reentry": "once",
        "goals": [{"kind": "sales.meeting"}],
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "wecom.contact_added"}},
                "next": "send_link",
            },
            {
                "id": "send_link",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": link_tag},
                "skip_if": {"event": {"kind": "live.watch"}, "since": "ever"},
                "next": "wait_watch",
            },
            {
                "id": "wait_watch",
                "type": "wait",
                "wait": {"event": {"kind": "live.watch"}, "timeout_minutes": 2880},
                "next": "follow_up",
                "timeout_next": "nudge",
            },
            {
                "id": "nudge",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": nudge_tag},
                "next": "done",
            },
            {
                "id": "follow_up",
                "type": "action",
                "trigger": {"kind": "interaction", "event": {"kind": "live.watch"}},
                "action": {"kind": "add_tag", "tag_id": watched_tag},
                "next": "done",
            },
            {"id": "done", "type": "exit"},
        ],
    }


@pytest.fixture
def tags(app, ws):
    return {name: tag_id(app, name) for name in ("link_sent", "watched", "nudged", "vip")}


@pytest.fixture
def journey(app, tags):
    return live(app, live_stream_journey(tags["link_sent"], tags["watched"], tags["nudged"]))


def test_wecom_first_gets_the_link_then_the_follow_up_when_they_watch(app, tags, journey):
    fang = person(app)
    act(app, fang, "wecom.contact_added")
    run(app)
    assert tagged(app, fang) == {tags["link_sent"]}
    assert enrolments(app, fang)[0].status == EnrolmentStatus.WAITING
    act(app, fang, "live.watch", minutes="40")  # the awaited event moves it on at once
    run(app)
    assert tagged(app, fang) == {tags["link_sent"], tags["watched"]}
    assert steps(app, fang) == [
        ("start", "entered"),
        ("start", "done"),
        ("send_link", "done"),
        ("wait_watch", "done"),
        ("follow_up", "done"),
        ("done", "done"),
    ]
    assert enrolments(app, fang)[0].status == EnrolmentStatus.COMPLETED


def test_who_watches_first_enters_at_the_follow_up_and_never_gets_the_link(
    app,
    tags,
    journey,
):
    fang = person(app)
    act(app, fang, "live.watch")
    run(app)
    act(app, fang, "wecom.contact_added")  # already enrolled once: no second entry
    run(app)
    assert tagged(app, fang) == {tags["watched"]}
    (only,) = enrolments(app, fang)
    assert only.entered_node == "follow_up" and only.entered_because["kind"] == "live.watch"


def test_a_watch_before_the_journey_existed_skips_the_link(app, tags):
    fang = person(app)
    act(app, fang, "live.watch")  # no journey yet
    live(app, live_stream_journey(tags["link_sent"], tags["watched"], tags["nudged"]))
    act(app, fang, "wecom.contact_added")
    run(app)
    assert tags["link_sent"] not in tagged(app, fang)
    with session_of(app) as session:
        skipped = session.scalar(select(Step).where(Step.outcome == "skipped"))
    assert skipped.node_id == "send_link" and skipped.detail == {"because": "live.watch ever"}


def test_nobody_watching_times_out_into_the_nudge(app, tags, journey):
    fang = person(app)
    act(app, fang, "wecom.contact_added")
    run(app)
    run(app, utcnow() + timedelta(hours=47))  # still waiting
    assert enrolments(app, fang)[0].status == EnrolmentStatus.WAITING
    run(app, utcnow() + timedelta(hours=49))
    assert tagged(app, fang) == {tags["link_sent"], tags["nudged"]}
    assert ("wait_watch", "timed_out") in steps(app, fang)


def test_a_goal_ends_the_journey(app, tags, journey):
    fang = person(app)
    act(app, fang, "wecom.contact_added")
    run(app)
    act(app, fang, "sales.meeting")
    (enrolment,) = enrolments(app, fang)
    assert enrolment.status == EnrolmentStatus.GOAL and enrolment.next_run_at is None
    act(app, fang, "live.watch")
    run(app)
    assert tags["watched"] not in tagged(app, fang)


def test_a_branch_on_which_event_came_first(app, tags):
    doc = {
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "form.submit"}},
                "next": "pause",
            },
            {"id": "pause", "type": "wait", "wait": {"minutes": 60}, "next": "which"},
            {
                "id": "which",
                "type": "branch",
                "branches": [
                    {
                        "condition": {
                            "kind": "first_event",
                            "a": {"kind": "live.watch"},
                            "b": {"kind": "wecom.contact_added"},
                        },
                        "next": "watched_first",
                    }
                ],
                "otherwise": "added_first",
            },
            {
                "id": "watched_first",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": tags["watched"]},
            },
            {
                "id": "added_first",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": tags["link_sent"]},
            },
        ]
    }
    live(app, doc, name="which first")
    watcher, adder = person(app, "甲"), person(app, "乙")
    now = utcnow()
    for contact, first, second in (
        (watcher, "live.watch", "wecom.contact_added"),
        (adder, "wecom.contact_added", "live.watch"),
    ):
        act(app, contact, "form.submit", at=now)
        act(app, contact, first, at=now + timedelta(minutes=5))
        act(app, contact, second, at=now + timedelta(minutes=10))
    run(app, now)
    run(app, now + timedelta(minutes=61))
    assert tagged(app, watcher) == {tags["watched"]}
    assert tagged(app, adder) == {tags["link_sent"]}


@pytest.mark.parametrize(
    ("policy", "days", "entries"),
    [("once", None, 1), ("period", 30, 2), ("always", None, 3)],
)
def test_re_entry_policies(app, tags, policy, days, entries):
    doc = {
        "reentry": policy,
        "reentry_days": days,
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "wechat.menu_click"}},
                "next": "tag",
            },
            {"id": "tag", "type": "action", "action": {"kind": "add_tag", "tag_id": tags["vip"]}},
        ],
    }
    live(app, doc)
    fang = person(app)
    now = utcnow()
    for at in (now, now + timedelta(days=1), now + timedelta(days=40)):
        act(app, fang, "wechat.menu_click", at=at, key="K")
        run(app, at)
    assert len(enrolments(app, fang)) == entries


def test_enrolments_finish_on_their_version(app, tags, journey):
    fang, li = person(app, "王芳"), person(app, "李娜")
    act(app, fang, "wecom.contact_added")
    run(app)
    changed = live_stream_journey(tags["vip"], tags["watched"], tags["nudged"])
    new_version(app, journey, changed)
    act(app, li, "wecom.contact_added")
    run(app)
    assert [e.version for e in enrolments(app, fang)] == [1]
    assert [e.version for e in enrolments(app, li)] == [2]
    assert tagged(app, fang) == {tags["link_sent"]} and tagged(app, li) == {tags["vip"]}


def cs_journey(text="欢迎关注！回复「直播」获取链接。") -> dict:
    return {
        "reentry": "always",
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
                "next": "hello",
            },
            {"id": "hello", "type": "action", "action": {"kind": "cs_message", "text": text}},
        ],
    }


class WorkerDied(BaseException):
    """The sender's death (as SystemExit): not an error a sender may catch and record."""


def test_a_follow_is_answered_through_the_real_pipeline(app, platform, oa):
    live(app, cs_journey())
    follow(app, platform, "o_fang")  # the drain enrols, the run_journeys job sends
    (message,) = received(platform, "o_fang", CUSTOM)
    assert message.content == {"content": "欢迎关注！回复「直播」获取链接。"}


def test_a_sender_dying_after_its_call_never_sends_twice(app, platform, oa):
    class DiesAfterSending:
        def __init__(self, client):
            self.client = client

        def post(self, path, data):
            self.client.post(path, data=data)
            raise WorkerDied(path)

    ids = follow(app, platform, "o_fang")  # no journey yet: nothing sent
    live(app, cs_journey())
    act(app, ids["o_fang"], "wechat.follow")
    with pytest.raises(WorkerDied):
        run(app, platform=Platform(oa_client=lambda channel: DiesAfterSending(client_of(app))))
    run(app, utcnow() + delivery.SEND_LEASE + timedelta(minutes=1))  # the lease ran out
    assert len(received(platform, "o_fang", CUSTOM)) == 1
    (enrolment,) = enrolments(app, ids["o_fang"])
    assert enrolment.status == EnrolmentStatus.COMPLETED
    with session_of(app) as session:
        step = session.scalar(select(Step).where(Step.node_id == "hello"))
    assert (step.outcome, step.detail["error"]) == ("failed", delivery.INTERRUPTED)


def test_the_daily_cap_defers_the_third_message_to_tomorrow(app, platform, oa):
    ids = follow(app, platform, "o_fang")
    for n in range(3):
        live(app, cs_journey(f"第{n + 1}条"), name=f"j{n}")
    act(app, ids["o_fang"], "wechat.follow")
    result = run(app)
    assert result.queued == 2 and result.deferred == 1
    assert [m.content["content"] for m in received(platform, "o_fang", CUSTOM)] == [
        "第1条",
        "第2条",
    ]
    deferred = [e for e in enrolments(app, ids["o_fang"]) if e.status == EnrolmentStatus.ACTIVE]
    assert len(deferred) == 1 and deferred[0].next_run_at > utcnow() + timedelta(minutes=1)


def tag_journey(trigger: dict, tag: int, **settings) -> dict:
    return {
        **settings,
        "nodes": [
            {"id": "start", "type": "entry", "trigger": trigger, "next": "tag"},
            {"id": "tag", "type": "action", "action": {"kind": "add_tag", "tag_id": tag}},
        ],
    }


def scan(app, at=None) -> int:
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        enrolled = triggers.scan_triggers(session, workspace_id, at)
        session.commit()
        return enrolled


def test_condition_triggers_enrol_what_happened_since_the_last_check(app, tags):
    from crm.tags import apply_tags
    from models import Account, TagSource
    from scoring.stages import set_stage

    fang, li, wang = person(app, "王芳"), person(app, "李娜"), person(app, "王伟")
    live(app, tag_journey({"kind": "tag_added", "tag_id": tags["vip"]}, tags["watched"]), "t")
    live(app, tag_journey({"kind": "stage_reached", "stage": "engaged"}, tags["nudged"]), "s")
    assert scan(app) == 0
    with session_of(app) as session:
        book = TagBook(session, session.scalar(select(Workspace.id)))
        apply_tags(session, book, [fang], [book.by_id(tags["vip"])], source=TagSource.MANUAL)
        set_stage(session, session.get(Contact, li), "engaged", "sales call")
        session.commit()
    assert scan(app) == 2  # 王芳 tagged vip, 李娜 reached engaged
    assert scan(app) == 0  # nothing new since
    run(app)
    assert tags["watched"] in tagged(app, fang) and tags["nudged"] in tagged(app, li)

    mqa = tag_journey({"kind": "mqa_entered"}, tags["link_sent"], scope="account")
    live(app, mqa, "mqa")
    scan(app)
    with session_of(app) as session:
        account = Account(
            workspace_id=session.scalar(select(Workspace.id)),
            name="华信",
            normalized_name="华信",
            mqa=True,
            mqa_since=utcnow(),
        )
        session.add(account)
        session.flush()
        session.get(Contact, wang).account_id = account.id
        session.commit()
    assert scan(app) == 1  # the account enters, once
    run(app)
    assert tags["link_sent"] in tagged(app, wang)


def test_a_date_enrols_a_segment_once_and_people_enrol_by_hand(app, tags):
    from models import SavedSegment
    from outreach.segments import Segment

    fang, li = person(app, "王芳"), person(app, "李娜")
    with session_of(app) as session:
        segment = SavedSegment(
            workspace_id=session.scalar(select(Workspace.id)),
            name="everyone",
            document=Segment().to_document(),
        )
        session.add(segment)
        session.commit()
        segment_id = segment.id
    at = utcnow() + timedelta(hours=1)
    trigger = {"kind": "date", "at": at.isoformat(), "segment_id": segment_id}
    live(app, tag_journey(trigger, tags["vip"]), "webinar day")
    assert scan(app) == 0  # not yet
    assert scan(app, at + timedelta(seconds=5)) == 2
    assert scan(app, at + timedelta(minutes=1)) == 0

    manual = live(app, tag_journey({"kind": "manual"}, tags["watched"]), "by hand")
    with session_of(app) as session:
        assert triggers.enrol_manually(session, manual, [fang, li, fang], user_id=None) == 2
        assert triggers.enrol_manually(session, manual, [fang], user_id=None) == 0  # once
        session.commit()
    run(app, at + timedelta(minutes=2))
    assert tagged(app, fang) == {tags["vip"], tags["watched"]}


def test_a_paused_journey_holds_everyone_and_a_goal_is_logged(app, tags, journey):
    fang, li = person(app, "王芳"), person(app, "李娜")
    with session_of(app) as session:
        session.get(Journey, journey).status = JourneyStatus.PAUSED
        session.commit()
    act(app, fang, "wecom.contact_added")  # paused: nobody new enters
    with session_of(app) as session:
        session.get(Journey, journey).status = JourneyStatus.LIVE
        session.commit()
    act(app, li, "wecom.contact_added")
    with session_of(app) as session:
        session.get(Journey, journey).status = JourneyStatus.PAUSED
        session.commit()
    assert run(app).enrolments == 0  # 李娜 is due but held
    assert tagged(app, li) == set() and enrolments(app, fang) == []
    act(app, li, "sales.meeting")  # a paused journey's goal is not watched either
    with session_of(app) as session:
        session.get(Journey, journey).status = JourneyStatus.LIVE
        session.commit()
    run(app)
    act(app, li, "sales.meeting")
    assert ("start", "goal") in steps(app, li) or ("wait_watch", "goal") in steps(app, li)
    assert enrolments(app, li)[0].status == EnrolmentStatus.GOAL
