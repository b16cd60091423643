"""The runner decides, the sender acts: two runners on the same due enrolments walk each
once; the sender backs a failing or slow destination off without holding another, retries
a transient WeChat error and fails a final one on the step; a sender killed mid-send
(kill -9, a real process) never sends a WeChat message twice and redelivers a webhook
with its delivery id."""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from config import ENVIRONMENT_VARIABLES, ROOT
from core.outbound import Outbound
from journeys import delivery, reactions, runner
from journeys.delivery import Platform
from journeys.reactions import Touch
from models import (
    Contact,
    Enrolment,
    EnrolmentStatus,
    Identity,
    Interaction,
    Journey,
    JourneyStatus,
    JourneyVersion,
    OutboxItem,
    OutboxStatus,
    Step,
    Workspace,
    utcnow,
)
from tests.factories import make_channel, with_secret
from tests.helpers import ENCRYPTION_KEY, OA_CREDS, TEST_DATABASE_URL, TEST_REDIS_URL, session_of
from tests.oa_platform import client_of, follow, received
from wechat.sandbox.core import Fault
from wechat.sandbox.oa import CUSTOM

pytestmark = pytest.mark.sandbox

LOOPBACK = ("127.0.0.1/32",)
HELLO = "欢迎关注！回复「直播」获取链接。"


def journey(app, name: str, *actions: dict) -> int:
    """A live journey: a follow enters it, then each action in turn."""
    nodes = [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
            "next": "a0",
        }
    ]
    for n, action in enumerate(actions):
        node = {"id": f"a{n}", "type": "action", "action": action}
        if n + 1 < len(actions):
            node["next"] = f"a{n + 1}"
        nodes.append(node)
    with session_of(app) as session:
        row = Journey(
            workspace_id=session.scalar(select(Workspace.id)),
            name=name,
            status=JourneyStatus.LIVE,
            live_version=1,
        )
        session.add(row)
        session.flush()
        document = {"reentry": "always", "nodes": nodes}
        session.add(JourneyVersion(journey_id=row.id, version=1, document=document))
        session.commit()
        return row.id


def followed(app, contact_ids, at=None) -> None:
    """Their follow, handed to the journeys as the drain does."""
    at = at or utcnow()
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        touches = []
        for contact_id in contact_ids:
            row = Interaction(
                workspace_id=workspace_id,
                contact_id=contact_id,
                kind="wechat.follow",
                occurred_at=at,
            )
            session.add(row)
            session.flush()
            touches.append(Touch(row.id, contact_id, None, "wechat.follow", {}, at))
        reactions.on_interactions(session, workspace_id, touches, now=at)
        session.commit()


def workspace(app) -> int:
    with session_of(app) as session:
        return session.scalar(select(Workspace.id))


def walk(app, at=None) -> runner.RunResult:
    at = at or utcnow()
    with session_of(app) as session:
        return runner.run_due(session, workspace(app), now=lambda: at)


def deliver(app, at=None, **kwargs) -> delivery.DeliveryResult:
    at = at or utcnow()
    platform = Platform(oa_client=lambda channel: client_of(app), outbound=Outbound(LOOPBACK))
    with session_of(app) as session:
        return delivery.deliver_due(session, workspace(app), platform, now=lambda: at, **kwargs)


def outbox(app) -> list[OutboxItem]:
    with session_of(app) as session:
        return session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()


def step_of(app, row: OutboxItem) -> Step:
    with session_of(app) as session:
        return session.get(Step, row.step_id)


def wait_for(condition, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="concurrent runners need PostgreSQL")
def test_two_runners_on_the_same_due_enrolments_walk_each_once(app, platform, oa):
    journey(app, "hello", {"kind": "cs_message", "text": HELLO})
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        people = [Contact(workspace_id=workspace_id) for _ in range(120)]
        session.add_all(people)
        session.flush()
        for n, person in enumerate(people):
            session.add(
                Identity(
                    workspace_id=workspace_id,
                    contact_id=person.id,
                    kind="openid",
                    channel_id=oa,
                    value=f"o_{n}",
                    following=True,
                )
            )
        session.commit()
        ids = [person.id for person in people]
    followed(app, ids)
    start, errors, results = threading.Barrier(2), [], []

    def run_one():
        try:
            with session_of(app) as session:
                start.wait()
                results.append(runner.run_due(session, workspace_id, batch_size=7))
        except Exception as exc:  # reported below, with the other runner's outcome
            errors.append(exc)

    threads = [threading.Thread(target=run_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r.enrolments for r in results) == len(ids)  # each walked by one runner
    assert sum(r.queued for r in results) == len(ids)
    with session_of(app) as session:
        statuses = set(session.scalars(select(Enrolment.status)))
        keys = session.scalars(select(OutboxItem.idempotency_key)).all()
        contacts = session.scalars(select(OutboxItem.contact_id)).all()
    assert statuses == {EnrolmentStatus.COMPLETED}
    assert len(keys) == len(set(keys)) == len(ids)
    assert sorted(contacts) == sorted(ids)


def test_a_failing_webhook_host_backs_off_and_a_held_one_delays_no_message(
    app, platform, oa, receiver
):
    with_secret(app, workspace(app))
    ids = follow(app, platform, "o_fang", "o_li")
    first = [
        journey(app, "crm", {"kind": "webhook", "url": receiver.url("/status/503")}),
        journey(app, "hello", {"kind": "cs_message", "text": HELLO}),
    ]
    followed(app, ids.values())
    walk(app)

    result = deliver(app)

    assert [r.path for r in receiver.received] == ["/status/503"]  # once, then backed off
    assert result.sent == 2 and result.retrying == 1 and result.deferred == 1
    assert len(received(platform, "o_fang", CUSTOM)) == len(received(platform, "o_li", CUSTOM)) == 1
    webhooks = [row for row in outbox(app) if row.kind == "webhook"]
    assert {row.status for row in webhooks} == {OutboxStatus.PENDING}
    assert sorted(row.attempts for row in webhooks) == [0, 1]
    assert {step_of(app, row).outcome for row in webhooks} == {"queued"}

    # A host that holds the request: the OA's message goes out while it waits.
    with session_of(app) as session:
        for journey_id in first:
            session.get(Journey, journey_id).status = JourneyStatus.PAUSED
        session.commit()
    journey(app, "held", {"kind": "webhook", "url": receiver.url("/hold")})
    journey(app, "again", {"kind": "cs_message", "text": "第二条"})
    followed(app, [ids["o_fang"]])
    walk(app)
    sending = threading.Thread(target=deliver, args=(app,))
    sending.start()
    try:
        wait_for(lambda: "/hold" in receiver.paths(), "the held webhook")
        wait_for(lambda: len(received(platform, "o_fang", CUSTOM)) == 2, "the second message")
        assert sending.is_alive()  # the webhook is still held, the message is out
    finally:
        receiver.release()
        sending.join()
    held = [row for row in outbox(app) if row.payload.get("url", "").endswith("/hold")]
    assert [row.status for row in held] == [OutboxStatus.SENT]


def test_a_slow_webhook_host_gets_the_rest_in_the_next_run(app, platform, oa, receiver):
    """A slow answer (here: every answer counts as slow) ends the host's share of the run
    without a backoff: its other rows are due at once and the run asks for another."""
    with_secret(app, workspace(app))
    ids = follow(app, platform, "o_fang", "o_li")
    journey(app, "crm", {"kind": "webhook", "url": receiver.url("/ok")})
    followed(app, ids.values())
    walk(app)

    first = deliver(app, slow_seconds=0)
    assert (first.sent, first.deferred, first.more) == (1, 1, True)
    [waiting] = [row for row in outbox(app) if row.status == OutboxStatus.PENDING]
    assert waiting.attempts == 0 and waiting.next_attempt_at <= utcnow()

    second = deliver(app, slow_seconds=0)
    assert second.sent == 1
    assert {row.status for row in outbox(app)} == {OutboxStatus.SENT}
    assert receiver.paths() == ["/ok", "/ok"]


def test_a_transient_wechat_error_is_retried_once_and_delivered_once(app, platform, oa):
    ids = follow(app, platform, "o_fang")
    journey(app, "hello", {"kind": "cs_message", "text": HELLO})
    followed(app, ids.values())
    walk(app)
    busy = client_of(app).retry.busy_retries + 1  # past the client's own retries
    platform.state.add_fault(Fault("/oa/cgi-bin/message/custom/send", errcode=45009, times=busy))
    now = utcnow()

    assert deliver(app, now).retrying == 1
    (row,) = outbox(app)
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
    assert row.last_error.startswith("45009") and row.next_attempt_at > now
    assert step_of(app, row).outcome == "queued"
    assert received(platform, "o_fang", CUSTOM) == []
    assert deliver(app, now).sent == 0  # not due yet

    later = now + delivery.RETRY_BASE + timedelta(seconds=1)
    assert deliver(app, later).sent == 1
    assert deliver(app, later + delivery.RETRY_MAX).sent == 0
    assert [m.content["content"] for m in received(platform, "o_fang", CUSTOM)] == [HELLO]
    (row,) = outbox(app)
    step = step_of(app, row)
    assert (row.status, row.attempts, step.outcome) == (OutboxStatus.SENT, 2, "done")
    assert step.detail["openid"] == "o_fang" and step.detail["message"] is True


def test_a_final_wechat_error_fails_the_step_with_its_reason(app, platform, oa):
    ids = follow(app, platform, "o_fang")
    journey(app, "hello", {"kind": "cs_message", "text": HELLO})
    followed(app, ids.values())
    walk(app)
    platform.state.add_fault(Fault("/oa/cgi-bin/message/custom/send", errcode=45015))

    assert deliver(app).failed == 1

    (row,) = outbox(app)
    step = step_of(app, row)
    assert row.status == OutboxStatus.FAILED and row.last_error.startswith("45015")
    assert step.outcome == "failed" and step.detail["error"].startswith("45015")
    assert deliver(app, utcnow() + delivery.RETRY_MAX).failed == 0  # never again
    assert received(platform, "o_fang", CUSTOM) == []


def test_a_row_whose_preparation_raises_fails_alone_and_the_others_go_out(app, platform, oa):
    ids = follow(app, platform, "o_fang", "o_li", "o_wang")
    journey(app, "hello", {"kind": "cs_message", "text": HELLO})
    followed(app, ids.values())
    walk(app)
    # A second OA, whose secret cannot be decrypted, say.
    broken_channel = make_channel(app, "oa", replace(OA_CREDS, app_id="wx00000000brokenoa"))
    first, *others = outbox(app)
    with session_of(app) as session:
        row = session.get(OutboxItem, first.id)
        row.payload = {**row.payload, "channel_id": broken_channel}
        session.commit()

    def oa_client(channel):
        if channel.id == broken_channel:
            raise ValueError("the channel's secret cannot be decrypted")
        return client_of(app)

    platform_ = Platform(oa_client=oa_client, outbound=Outbound(LOOPBACK))
    with session_of(app) as session:
        result = delivery.deliver_due(session, workspace(app), platform_)

    assert (result.sent, result.failed) == (2, 1)
    rows = {row.id: row for row in outbox(app)}
    assert rows[first.id].status == OutboxStatus.FAILED
    assert rows[first.id].last_error.startswith(delivery.UNPREPARED)
    assert step_of(app, rows[first.id]).outcome == "failed"
    assert {rows[row.id].status for row in others} == {OutboxStatus.SENT}
    assert [len(received(platform, row.payload["openid"], CUSTOM)) for row in others] == [1, 1]


def test_a_call_that_raises_fails_its_row_alone_and_the_rest_are_recorded(app, platform, oa):
    ids = follow(app, platform, "o_fang", "o_li", "o_wang")
    journey(app, "hello", {"kind": "cs_message", "text": HELLO})
    followed(app, ids.values())
    walk(app)
    rows = outbox(app)
    unlucky = rows[1].payload["openid"]  # sent after one row and before another
    real = client_of(app)

    class Flaky:
        def post(self, path, data):
            if data["touser"] == unlucky:
                raise RuntimeError("a defect in the client")
            return real.post(path, data=data)

    platform_ = Platform(oa_client=lambda channel: Flaky(), outbound=Outbound(LOOPBACK))
    with session_of(app) as session:
        result = delivery.deliver_due(session, workspace(app), platform_)

    assert (result.sent, result.failed) == (2, 1)
    statuses = {row.payload["openid"]: row.status for row in outbox(app)}
    assert statuses.pop(unlucky) == OutboxStatus.FAILED
    assert set(statuses.values()) == {OutboxStatus.SENT}
    assert [len(received(platform, openid, CUSTOM)) for openid in statuses] == [1, 1]
    assert deliver(app, utcnow() + delivery.SEND_LEASE * 2).interrupted == 0


SENDER = """
import sys
from app import create_app
from app.jobs import deliver_outbox
with create_app().app_context():
    deliver_outbox(int(sys.argv[1]))
"""


@pytest.mark.skipif(
    not (TEST_DATABASE_URL and TEST_REDIS_URL), reason="a sender process needs PostgreSQL"
)
def test_a_sender_killed_mid_send_never_sends_twice(
    app, platform, oa, receiver, database_url, tmp_path
):
    ws = workspace(app)
    with_secret(app, ws)
    ids = follow(app, platform, "o_fang")
    journey(
        app,
        "both",
        {"kind": "cs_message", "text": HELLO},
        {"kind": "webhook", "url": receiver.url("/hold")},
    )
    journey(app, "webhook", {"kind": "webhook", "url": receiver.url("/hold")})
    followed(app, ids.values())
    walk(app)
    assert {row.kind for row in outbox(app)} == {"cs_message", "webhook"}
    # WeChat takes its time over the message: the sender dies while both calls are out.
    platform.state.add_fault(Fault("/oa/cgi-bin/message/custom/send", latency_ms=1500))
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        HARPOON_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        HARPOON_SECRET_KEY="test-secret-key",
        HARPOON_INSTANCE_DIR=str(tmp_path / "sender"),
        HARPOON_WECHAT_API_URL=platform.url,
        HARPOON_OUTBOUND_ALLOW="127.0.0.1/32",
    )
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(ws)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "/hold" in receiver.paths(), "the held webhook")
        wait_for(lambda: not platform.state.faults, "the message to reach WeChat")
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait()
    receiver.release()
    wait_for(lambda: len(received(platform, "o_fang", CUSTOM)) == 1, "WeChat to deliver it")
    (first_delivery,) = [r.headers["X-Harpoon-Delivery"] for r in receiver.received]
    assert {row.status for row in outbox(app)} == {OutboxStatus.SENDING}

    result = deliver(app, utcnow() + delivery.SEND_LEASE + timedelta(seconds=1))

    assert result.interrupted == 1
    message = [row for row in outbox(app) if row.kind == "cs_message"]
    assert [(row.status, row.last_error) for row in message] == [
        (OutboxStatus.FAILED, delivery.INTERRUPTED)
    ]
    assert step_of(app, message[0]).detail["error"] == delivery.INTERRUPTED
    assert {row.status for row in outbox(app) if row.kind == "webhook"} == {OutboxStatus.SENT}
    assert len(received(platform, "o_fang", CUSTOM)) == 1  # never twice
    deliveries = [r.headers["X-Harpoon-Delivery"] for r in receiver.received]
    assert deliveries.count(first_delivery) == 2  # the same delivery id, again
    assert len(set(deliveries)) == 2
