"""Callback -> inbox -> real RQ worker -> contacts, identities, interactions."""

import time

import pytest
from sqlalchemy import select

from handlers.registry import HANDLERS
from models import ContactTag, Enrolment, EnrolmentStatus, InboundEvent, Step, Tag
from pipeline.drain import drain
from tests.factories import make_journey, workspace_id
from tests.helpers import (
    WECOM_CREDS,
    contacts,
    harpoon_of,
    identities,
    inbox,
    interactions,
    post_oa,
    post_wecom,
    run_jobs,
    session_of,
)
from wechat import simulate


def test_oa_events_become_contacts_and_interactions(app, client, oa_channel):
    now = int(time.time())
    post_oa(
        client,
        oa_channel,
        simulate.oa_event("o_li", "subscribe", at=now, EventKey="qrscene_expo", Ticket="TK"),
    )
    post_oa(
        client, oa_channel, simulate.oa_event("o_li", "CLICK", at=now + 1, EventKey="MENU_PRICING")
    )
    post_oa(
        client,
        oa_channel,
        simulate.oa_event("o_li", "VIEW", at=now + 2, EventKey="https://example.com/a"),
    )
    post_oa(client, oa_channel, simulate.oa_text("o_li", "报价多少", 880001, at=now + 3))
    post_oa(
        client,
        oa_channel,
        simulate.oa_event(
            "o_li", "LOCATION", at=now + 4, Latitude=31.23, Longitude=121.47, Precision=30.0
        ),
    )
    post_oa(
        client,
        oa_channel,
        simulate.oa_event("o_wang", "SCAN", at=now, EventKey="booth7", Ticket="TK2"),
    )
    post_oa(client, oa_channel, simulate.oa_event("o_wang", "unsubscribe", at=now + 5))

    assert run_jobs(app)

    assert {row.status for row in inbox(app)} == {"done"}
    assert len(contacts(app)) == 2
    ids = {i.value: i for i in identities(app)}
    assert ids["o_li"].kind == "openid" and ids["o_li"].channel_id == oa_channel
    assert ids["o_li"].following is True
    assert ids["o_wang"].following is False
    kinds = [
        (i.kind, i.properties) for i in interactions(app) if i.contact_id == ids["o_li"].contact_id
    ]
    assert kinds == [
        ("wechat.follow", {"scene": "expo", "ticket": "TK"}),
        ("wechat.menu_click", {"key": "MENU_PRICING"}),
        ("wechat.menu_view", {"url": "https://example.com/a"}),
        ("wechat.message", {"msg_type": "text", "msg_id": "880001", "content": "报价多少"}),
        ("wechat.location", {"latitude": 31.23, "longitude": 121.47, "precision": 30.0}),
    ]
    li = next(c for c in contacts(app) if c.id == ids["o_li"].contact_id)
    assert li.last_seen_at.timestamp() == now + 4
    assert li.first_seen_at.timestamp() == now


def test_wecom_contact_changes(app, client, wecom_channel):
    now = int(time.time())
    for change, extra in [
        ("add_external_contact", {"State": "expo", "WelcomeCode": "WELCOME1"}),
        ("edit_external_contact", {}),
        ("del_follow_user", {}),
    ]:
        post_wecom(
            client,
            wecom_channel,
            simulate.wecom_contact_event(
                WECOM_CREDS.app_id,
                change,
                user_id="zhangsan",
                external_user_id="wmCUST",
                at=now,
                **extra,
            ),
        )
    run_jobs(app)
    [identity] = identities(app)
    assert (identity.kind, identity.value, identity.channel_id) == (
        "external_userid",
        "wmCUST",
        wecom_channel,
    )
    assert [(i.kind, i.properties) for i in interactions(app)] == [
        (
            "wecom.contact_added",
            {"change_type": "add_external_contact", "state": "expo", "staff_userid": "zhangsan"},
        ),
        (
            "wecom.contact_edited",
            {"change_type": "edit_external_contact", "staff_userid": "zhangsan"},
        ),
        (
            "wecom.contact_removed",
            {
                "change_type": "del_follow_user",
                "removed_by": "customer",
                "staff_userid": "zhangsan",
            },
        ),
    ]


def test_same_second_wecom_adds_make_two_contacts(app, client, wecom_channel):
    now = int(time.time())
    for external in ("wmA", "wmB", "wmC"):
        post_wecom(
            client,
            wecom_channel,
            simulate.wecom_contact_event(
                WECOM_CREDS.app_id,
                "add_external_contact",
                user_id="zhangsan",
                external_user_id=external,
                at=now,
            ),
        )
    run_jobs(app)
    assert len(contacts(app)) == 3
    assert len(interactions(app)) == 3


def test_unknown_event_types_are_stored_and_ignored(app, client, oa_channel, wecom_channel):
    post_oa(client, oa_channel, simulate.oa_event("o_x", "some_future_event", EventKey="k"))
    post_oa(
        client,
        oa_channel,
        simulate.oa_event("o_x", "kf_create_session", KfAccount="test1@test"),
    )
    post_wecom(
        client,
        wecom_channel,
        simulate.xml_document(
            {
                "ToUserName": WECOM_CREDS.app_id,
                "FromUserName": "sys",
                "CreateTime": int(time.time()),
                "MsgType": "event",
                "Event": "change_contact",
                "ChangeType": "update_user",
                "UserID": "zhangsan",
            }
        ),
    )
    run_jobs(app)
    rows = inbox(app)
    assert [row.status for row in rows] == ["ignored"] * 3
    assert [row.kind for row in rows] == [
        "some_future_event",
        "kf_create_session",
        "change_contact",
    ]
    assert contacts(app) == [] and interactions(app) == []


def test_a_failing_event_is_marked_and_the_batch_goes_on(app, client, oa_channel, failing_clicks):
    now = int(time.time())
    post_oa(client, oa_channel, simulate.oa_event("o_1", "subscribe", at=now))
    post_oa(client, oa_channel, simulate.oa_event("o_click", "CLICK", at=now, EventKey="K"))
    post_oa(client, oa_channel, simulate.oa_event("o_2", "subscribe", at=now))
    run_jobs(app)
    statuses = [(row.status, row.attempts) for row in inbox(app)]
    assert statuses == [("done", 0), ("failed", 1), ("done", 0)]
    failed = inbox(app)[1]
    assert "click of o_click failed in its handler" in failed.last_error
    assert failed.next_attempt_at > failed.received_at
    assert len(contacts(app)) == 2


def test_failed_event_is_retried_with_backoff_then_succeeds(app, client, oa_channel, monkeypatch):
    calls = []
    original = HANDLERS["wechat.menu_click"]

    def flaky(session, ctx):
        calls.append(ctx.inbound_event_id)
        if len(calls) <= 2:  # the batch's optimistic pass, then the event on its own
            raise ConnectionError("CRM webhook timed out")
        original(session, ctx)

    monkeypatch.setitem(HANDLERS, "wechat.menu_click", flaky)
    post_oa(client, oa_channel, simulate.oa_event("o_r", "CLICK", EventKey="K"))
    run_jobs(app)
    [row] = inbox(app)
    assert len(calls) == 2
    assert (row.status, row.attempts) == ("failed", 1)
    assert "ConnectionError: CRM webhook timed out" in row.last_error

    # Not due yet: the sweeper leaves it alone.
    with app.app_context():
        from app.jobs import sweep_inbox

        assert sweep_inbox() == []
        _make_due(app, row.id)
        assert sweep_inbox() == [(row.workspace_id, row.lane)]
    run_jobs(app)
    [row] = inbox(app)
    assert (row.status, row.last_error) == ("done", None)
    assert len(interactions(app)) == 1


def test_event_goes_dead_after_max_attempts(make_app, client, oa_channel, failing_clicks):
    app = make_app(inbox_max_attempts=2)
    client = app.test_client()
    post_oa(client, oa_channel, simulate.oa_event("o_click", "CLICK", EventKey="K"))
    run_jobs(app)
    _make_due(app, inbox(app)[0].id)
    with app.app_context():
        from app.jobs import sweep_inbox

        sweep_inbox()
    run_jobs(app)
    [row] = inbox(app)
    assert (row.status, row.attempts) == ("dead", 2)


def test_reprocessing_adds_nothing(app, client, oa_channel):
    post_oa(client, oa_channel, simulate.oa_event("o_again", "CLICK", EventKey="K"))
    run_jobs(app)
    with harpoon_of(app).db.session() as session:
        session.query(InboundEvent).update({"status": "pending"})
        session.commit()
        drain(session, inbox(app)[0].workspace_id)
    assert len(interactions(app)) == 1
    assert len(contacts(app)) == 1


def _make_due(app, event_id):
    from datetime import timedelta

    from models import utcnow

    with harpoon_of(app).db.session() as session:
        session.get(InboundEvent, event_id).next_attempt_at = utcnow() - timedelta(seconds=1)
        session.commit()


def test_two_drains_share_a_workspace_without_taking_the_same_rows(app, client, oa_channel):
    if harpoon_of(app).db.is_sqlite:
        pytest.skip("SQLite serializes writers; SKIP LOCKED is a PostgreSQL feature")
    from models import utcnow
    from pipeline.drain import _claim

    for n in range(6):
        post_oa(client, oa_channel, simulate.oa_text(f"o_{n}", "hi", 70000 + n))
    db = harpoon_of(app).db
    workspace_id = inbox(app)[0].workspace_id
    with db.session() as first:
        claimed = _claim(first, workspace_id, None, 4, utcnow())  # holds row locks until commit
        assert len(claimed) == 4
        with db.session() as second:
            result = drain(second, workspace_id)
        assert result.done == 2
        assert {row.id for row in claimed}.isdisjoint(
            {row.id for row in inbox(app) if row.status == "done"}
        )


def test_an_overlong_event_name_is_ignored_without_stopping_the_inbox(app, client, oa_channel):
    post_oa(client, oa_channel, simulate.oa_event("o_1", "x" * 80))
    post_oa(client, oa_channel, simulate.oa_event("o_2", "subscribe"))
    run_jobs(app)
    rows = inbox(app)
    assert [row.status for row in rows] == ["ignored", "done"]
    assert rows[0].kind == "x" * 64


def test_follow_state_follows_the_newest_event_whatever_the_order(app, client, oa_channel):
    now = int(time.time())
    post_oa(client, oa_channel, simulate.oa_event("o_late", "unsubscribe", at=now + 5))
    run_jobs(app)
    post_oa(client, oa_channel, simulate.oa_event("o_late", "subscribe", at=now))  # a retry, late
    run_jobs(app)
    [identity] = identities(app)
    assert identity.following is False
    assert [i.kind for i in interactions(app)] == ["wechat.unfollow", "wechat.follow"]


def test_a_long_backlog_is_drained_in_several_jobs(make_app, oa_channel):
    app = make_app(inbox_batch_size=2)
    client = app.test_client()
    for n in range(5):
        post_oa(client, oa_channel, simulate.oa_text(f"o_{n}", "hi", 91000 + n))
    with app.app_context(), harpoon_of(app).db.session() as session:
        result = drain(session, inbox(app)[0].workspace_id, batch_size=2, max_seconds=0)
    assert (result.done, result.more) == (2, True)
    run_jobs(app)
    assert {row.status for row in inbox(app)} == {"done"}


def test_an_identity_created_meanwhile_sends_the_batch_down_the_careful_path(
    make_app, oa_channel, monkeypatch
):
    from crm.identity import IdentityCache

    app = make_app(inbox_lanes=1)  # both people in one batch
    client = app.test_client()

    post_oa(client, oa_channel, simulate.oa_event("o_known", "subscribe"))
    run_jobs(app)
    post_oa(client, oa_channel, simulate.oa_event("o_known", "CLICK", EventKey="K"))
    post_oa(client, oa_channel, simulate.oa_event("o_new", "subscribe"))
    original, reads = IdentityCache.preload, []

    def blind_once(self, session, keys):
        reads.append(keys)
        if len(reads) > 1:
            original(self, session, keys)
        # The first read misses o_known, as if another worker inserted it just after:
        # the optimistic pass's insert collides, and the batch runs event by event.

    monkeypatch.setattr(IdentityCache, "preload", blind_once)
    run_jobs(app)
    assert len(reads) == 2
    assert [row.status for row in inbox(app)] == ["done", "done", "done"]
    assert len(contacts(app)) == 2
    assert [i.kind for i in interactions(app)] == [
        "wechat.follow",
        "wechat.menu_click",
        "wechat.follow",
    ]


TAG_THE_WRITER = {
    "reentry": "always",
    "nodes": [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "wechat.message"}},
            "next": "follow_up",
        },
        {"id": "follow_up", "type": "action", "action": {"kind": "add_tag", "tag_id": 7}},
    ],
}


def test_the_drain_walks_the_journey_steps_its_batch_made_due(app, client, oa_channel):
    """Decided in the drain's own transaction: no run_journeys job is needed for a step
    that is due at once (what reaches the outside would be in the outbox)."""
    journey_id = make_journey(app, "写信就打标签", document=TAG_THE_WRITER)
    post_oa(client, oa_channel, simulate.oa_text("o_li", "你好", 880_001))
    with session_of(app) as session:
        drain(session, workspace_id(app))
        steps = session.execute(
            select(Step.node_id, Step.outcome).where(Step.journey_id == journey_id)
        ).all()
        tagged = session.scalars(
            select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
        ).all()
        enrolment = session.scalar(select(Enrolment).where(Enrolment.journey_id == journey_id))
    assert sorted(steps) == [("follow_up", "done"), ("start", "done"), ("start", "entered")]
    assert "看过直播" in tagged
    assert enrolment.status == EnrolmentStatus.COMPLETED
