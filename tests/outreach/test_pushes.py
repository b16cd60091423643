"""Pushes against the sandbox: the delivery plan (mass send by tag or openids, the monthly
four, customer-service windows, template fallback), idempotent resubmission with
clientmsgid, a crash mid-push resumed without duplicates, results from
MASSSENDJOBFINISH / TEMPLATESENDJOBFINISH, approval and preview."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.jobs import Job
from models import (
    BatchStatus,
    Channel,
    Interaction,
    Mechanism,
    Push,
    PushBatch,
    PushRecipient,
    PushStatus,
    RecipientStatus,
    utcnow,
)
from outreach import pushes
from outreach.pushes import PushLimits, Reason
from tests.factories import make_push, tag_segment
from tests.helpers import harpoon_of, session_of
from tests.oa_platform import client_of, follow, received, settle, tenant
from wechat.sandbox import oa as sandbox_oa
from wechat.sandbox.oa import PREVIEW, TEMPLATE, state_of

pytestmark = pytest.mark.sandbox
LIMITS = PushLimits()
FALLBACK = {"template_id": "", "data": {"first": "闭门会邀请"}, "url": "https://example.com/e"}


@pytest.fixture
def oa(app, oa):
    """The sandbox's service OA, with a template for fallbacks."""
    FALLBACK["template_id"] = client_of(app).post(
        "template/api_add_template", data={"template_id_short": "TM00015"}
    )["template_id"]
    return oa


def run(app, push_id, *, at=None, client=None, threshold=10**6) -> str:
    at = at or utcnow()
    with session_of(app) as session:
        return pushes.run_push(
            session,
            push_id,
            client or client_of(app),
            LIMITS,
            threshold,
            now=lambda: at,
            pace=lambda seconds: None,
        )


def recipients(app, push_id) -> dict[str, tuple]:
    with session_of(app) as session:
        rows = session.execute(
            select(
                PushRecipient.openid,
                PushRecipient.mechanism,
                PushRecipient.status,
                PushRecipient.reason,
            ).where(PushRecipient.push_id == push_id)
        ).all()
    return {openid: (mechanism, status, reason) for openid, mechanism, status, reason in rows}


def push_of(app, push_id) -> Push:
    with session_of(app) as session:
        return session.get(Push, push_id)


def test_openid_batches_reach_the_segment_and_the_platform_reports_delivery(
    app,
    platform,
    oa,
    monkeypatch,
):
    monkeypatch.setattr(pushes, "MASS_BATCH", 2)
    ids = follow(app, platform, "o_a", "o_b", "o_c", "o_out")
    segment_id = tag_segment(app, [ids["o_a"], ids["o_b"], ids["o_c"]])
    push_id = make_push(app, oa, segment_id)

    assert run(app, push_id) == PushStatus.SENT
    settle(app, platform)  # MASSSENDJOBFINISH for each batch

    assert {o: len(received(platform, o)) for o in ids} == {
        "o_a": 1,
        "o_b": 1,
        "o_c": 1,
        "o_out": 0,
    }
    with session_of(app) as session:
        batches = session.scalars(select(PushBatch).where(PushBatch.push_id == push_id)).all()
    # three openids in two even batches (a lone openid would be refused)
    assert sorted(b.size for b in batches) == [1, 2]
    assert all(b.mechanism == Mechanism.MASS_OPENID for b in batches)
    assert all(b.status == BatchStatus.FINISHED and b.sent_count >= 1 for b in batches)
    report = push_of(app, push_id).report
    assert report["targeted"] == 3
    assert report["sent"] == {Mechanism.MASS_OPENID: 3}
    assert report["delivered"] == 3
    assert report["mass_jobs_finished"] == 2


def test_one_synced_tag_is_one_mass_send_by_tag(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b", "o_c")
    segment_id = tag_segment(app, [ids["o_a"], ids["o_b"]], name="cio-club", synced=True)
    harpoon_of(app).queue.enqueue(Job.SYNC_TAGS, oa)
    settle(app, platform)

    push_id = make_push(app, oa, segment_id)
    run(app, push_id)

    with session_of(app) as session:
        (batch,) = session.scalars(select(PushBatch).where(PushBatch.push_id == push_id))
    assert batch.mechanism == Mechanism.MASS_TAG and batch.tag_remote_id
    job = state_of(tenant(platform)).mass_jobs[-1]
    assert job.audience == {"tag_id": batch.tag_remote_id}
    assert [len(received(platform, o)) for o in ("o_a", "o_b", "o_c")] == [1, 1, 0]


def test_the_fifth_mass_message_of_a_month_is_routed_not_dropped(app, platform, oa):
    ids = follow(app, platform, "o_window", "o_template", "o_none", "o_fresh")
    # o_window writes in: their customer-service window is open for 48 hours.
    sandbox_oa.send_text(platform.state, tenant(platform), "o_window", "请发资料")
    settle(app, platform)
    everyone = [ids[o] for o in ("o_window", "o_template", "o_none")]
    segment_id = tag_segment(app, everyone)
    for _ in range(4):
        run(app, make_push(app, oa, segment_id))
    assert [len(received(platform, o)) for o in ("o_window", "o_template", "o_none")] == [4] * 3

    tag_segment_ids = [*everyone, ids["o_fresh"]]
    segment_id = tag_segment(app, tag_segment_ids, name="all-four")
    fifth = make_push(app, oa, segment_id, fallback_template=FALLBACK)
    run(app, fifth)

    plan = recipients(app, fifth)
    assert plan["o_window"][:2] == (Mechanism.CS, RecipientStatus.SENT)
    assert plan["o_template"][:2] == (Mechanism.TEMPLATE, RecipientStatus.SENT)
    assert plan["o_fresh"][:2] == (Mechanism.MASS_OPENID, RecipientStatus.SENT)
    assert len(received(platform, "o_window", sandbox_oa.CUSTOM)) == 1
    assert len(received(platform, "o_template", TEMPLATE)) == 1
    assert len(received(platform, "o_template")) == 4  # still four mass messages

    without_fallback = make_push(app, oa, segment_id)
    run(app, without_fallback)
    assert recipients(app, without_fallback)["o_none"] == (
        None,
        RecipientStatus.SKIPPED,
        Reason.MONTHLY_QUOTA,
    )
    report = push_of(app, without_fallback).report
    assert report["skipped"][Reason.MONTHLY_QUOTA] == 2  # o_none and o_template


def test_the_quota_starts_again_in_the_next_month_beijing_time(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    segment_id = tag_segment(app, list(ids.values()))
    for _ in range(4):
        run(app, make_push(app, oa, segment_id))
    over = make_push(app, oa, segment_id)
    run(app, over)
    assert {r[2] for r in recipients(app, over).values()} == {Reason.MONTHLY_QUOTA}

    now = utcnow()
    beijing = now.astimezone(pushes.PLATFORM_ZONE)
    next_month = (beijing.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=30, second=0, microsecond=0
    )
    platform.state.advance((next_month - beijing).total_seconds())
    december = make_push(app, oa, segment_id)
    run(app, december, at=next_month.astimezone(UTC))

    assert {r[:2] for r in recipients(app, december).values()} == {
        (Mechanism.MASS_OPENID, RecipientStatus.SENT)
    }
    assert [len(received(platform, o)) for o in ids] == [5, 5]
    # the first minute of a month in Beijing is still the last month in UTC
    assert pushes.platform_month(datetime(2026, 11, 30, 16, 30, tzinfo=UTC)) == "2026-12"


def test_a_resubmitted_batch_repeats_its_clientmsgid_and_sends_nothing_twice(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())))
    run(app, push_id)
    with session_of(app) as session:
        (batch,) = session.scalars(select(PushBatch).where(PushBatch.push_id == push_id))
        first_msg_id = batch.msg_id
        # As if the worker died after the platform took the batch, before recording it.
        batch.status, batch.msg_id = BatchStatus.SUBMITTING, None
        push = session.get(Push, push_id)
        push.status, push.heartbeat_at = PushStatus.SENDING, utcnow() - timedelta(minutes=10)
        session.commit()

    assert run(app, push_id) == PushStatus.SENT
    with session_of(app) as session:
        batch = session.get(PushBatch, batch.id)
    assert batch.msg_id == first_msg_id and batch.status == BatchStatus.SUBMITTED
    assert len(state_of(tenant(platform)).mass_jobs) == 1  # answered 45065 with its msg_id
    assert [len(received(platform, o)) for o in ids] == [1, 1]


class WorkerDied(Exception):
    pass


class DiesAfter:
    """The real client, and a worker that dies right after the n-th call to `path` went
    through (the platform acted; Harpoon never heard)."""

    def __init__(self, client, path, n):
        self.client, self.path, self.n = client, path, n

    def post(self, path, data):
        answer = self.client.post(path, data=data)
        if path == self.path:
            self.n -= 1
            if self.n == 0:
                raise WorkerDied(path)
        return answer


def test_a_crash_mid_push_resumes_without_duplicates(app, platform, oa, monkeypatch):
    monkeypatch.setattr(pushes, "MASS_BATCH", 2)
    openids = [f"o_{n}" for n in range(6)]
    ids = follow(app, platform, *openids)
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())))

    with pytest.raises(WorkerDied):
        run(app, push_id, client=DiesAfter(client_of(app), "message/mass/send", 2))
    assert push_of(app, push_id).status == PushStatus.SENDING
    with session_of(app) as session:
        assert pushes.due_pushes(session) == []  # its heartbeat is fresh: not taken over
        assert pushes.due_pushes(session, utcnow() + timedelta(minutes=6)) == [push_id]

    assert run(app, push_id, at=utcnow() + timedelta(minutes=6)) == PushStatus.SENT
    assert [len(received(platform, o)) for o in openids] == [1] * 6
    assert push_of(app, push_id).report["sent"] == {Mechanism.MASS_OPENID: 6}


def test_a_crash_among_single_sends_never_repeats_one(app, platform, oa):
    openids = ["o_a", "o_b", "o_c"]
    ids = follow(app, platform, *openids)
    push_id = make_push(
        app,
        oa,
        tag_segment(app, list(ids.values())),
        content={"type": "template", **FALLBACK},
    )
    with pytest.raises(WorkerDied):
        run(app, push_id, client=DiesAfter(client_of(app), "message/template/send", 2))
    run(app, push_id, at=utcnow() + timedelta(minutes=6))

    got = [len(received(platform, o, TEMPLATE)) for o in openids]
    assert got == [1, 1, 1]
    plan = recipients(app, push_id)
    with session_of(app) as session:  # the order they were sent in (which lanes decide)
        first, second, third = session.scalars(
            select(PushRecipient.openid)
            .where(PushRecipient.push_id == push_id)
            .order_by(PushRecipient.position)
        ).all()
    # the second was in flight when the worker died: delivered, but Harpoon cannot know
    assert plan[second] == (Mechanism.TEMPLATE, RecipientStatus.FAILED, Reason.INTERRUPTED)
    assert plan[first][1] == plan[third][1] == RecipientStatus.SENT


def test_a_customer_service_window_that_closes_before_dispatch(app, platform, oa):
    ids = follow(app, platform, "o_open", "o_stale")
    for openid in ids:
        sandbox_oa.send_text(platform.state, tenant(platform), openid, "你好")
    settle(app, platform)
    with session_of(app) as session:  # o_stale wrote two hours earlier
        for row in session.scalars(
            select(Interaction).where(Interaction.contact_id == ids["o_stale"])
        ):
            row.occurred_at -= timedelta(hours=2)
        session.commit()
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())), prefer_service_window=True)
    with session_of(app) as session:
        push = session.get(Push, push_id)
        pushes.plan_push(session, push, LIMITS, utcnow() + timedelta(hours=47))
        push.status = PushStatus.SENDING
        session.commit()
    plan = recipients(app, push_id)
    # o_stale's window has less than the 30-minute margin left: a mass send
    assert plan["o_stale"][0] == Mechanism.MASS_OPENID
    assert plan["o_open"][0] == Mechanism.CS

    platform.state.advance(48 * 3600 + 60)  # o_open's window closes before the send
    with session_of(app) as session:
        pushes.dispatch_push(session, session.get(Push, push_id), client_of(app))
    assert recipients(app, push_id)["o_open"] == (
        Mechanism.CS,
        RecipientStatus.FAILED,
        Reason.WINDOW_EXPIRED,
    )
    assert received(platform, "o_open", sandbox_oa.CUSTOM) == []


def test_template_results_arrive_as_templatesendjobfinish(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    push_id = make_push(
        app, oa, tag_segment(app, list(ids.values())), content={"type": "template", **FALLBACK}
    )
    run(app, push_id)
    settle(app, platform)
    assert {r[1] for r in recipients(app, push_id).values()} == {RecipientStatus.DELIVERED}
    assert push_of(app, push_id).report["delivered"] == 2


def test_a_large_push_waits_for_approval(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b", "o_c")
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())), status=PushStatus.DRAFT)
    with session_of(app) as session:
        push = session.get(Push, push_id)
        assert pushes.submit_push(session, push, threshold=2) == PushStatus.AWAITING_APPROVAL
        session.commit()
        assert pushes.due_pushes(session) == []
    assert run(app, push_id) == "not_due"
    with session_of(app) as session:
        push = session.get(Push, push_id)
        pushes.approve_push(push, user_id=None)
        session.commit()
    assert run(app, push_id, threshold=2) == PushStatus.SENT
    assert [len(received(platform, o)) for o in ids] == [1, 1, 1]


def test_the_audience_growing_past_the_threshold_asks_for_approval_again(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b", "o_c")
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())))
    assert run(app, push_id, threshold=2) == PushStatus.AWAITING_APPROVAL
    assert recipients(app, push_id) == {}
    assert all(not received(platform, o) for o in ids)


def test_preview_goes_to_test_followers_outside_their_monthly_four(app, platform, oa):
    ids = follow(app, platform, "o_tester", "o_other")
    push_id = make_push(app, oa, None, status=PushStatus.DRAFT)
    with session_of(app) as session:
        results = pushes.preview_push(
            session, session.get(Push, push_id), client_of(app), [ids["o_tester"]]
        )
    assert results == {"o_tester": "ok"}
    assert len(received(platform, "o_tester", PREVIEW)) == 1
    assert received(platform, "o_tester") == [] and received(platform, "o_other", PREVIEW) == []


def test_every_follower_is_one_sendall_and_unfollowers_are_skipped(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b", "o_gone")
    sandbox_oa.unfollow(platform.state, tenant(platform), "o_gone")
    settle(app, platform)
    push_id = make_push(app, oa, None)
    run(app, push_id)
    assert state_of(tenant(platform)).mass_jobs[-1].audience == {"is_to_all": True}
    assert [len(received(platform, o)) for o in ("o_a", "o_b")] == [1, 1]
    assert ids["o_gone"] not in {contact_id for contact_id in _recipient_contacts(app, push_id)}


def _recipient_contacts(app, push_id):
    with session_of(app) as session:
        return session.scalars(
            select(PushRecipient.contact_id).where(PushRecipient.push_id == push_id)
        ).all()


def test_a_subscription_account_cannot_send_to_a_segment(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    with session_of(app) as session:
        session.get(Channel, oa).account_type = "subscription"
        session.commit()
    push_id = make_push(app, oa, tag_segment(app, list(ids.values())))
    assert run(app, push_id) == PushStatus.FAILED
    assert "subscription" in push_of(app, push_id).error


def test_content_validation_names_the_fields():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as caught:
        pushes.clean_content({"type": "news", "title": "x" * 65, "url": "ftp://x"})
    assert set(caught.value.messages) >= {"title", "url", "media_id"}
    assert pushes.clean_content({"type": "text", "text": "hi", "url": ""}) == {
        "type": "text",
        "text": "hi",
    }
