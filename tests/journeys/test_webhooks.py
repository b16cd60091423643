"""Journey webhooks: signed with the workspace's own secret (never the app's), with the
workspace and a delivery id; to public addresses only, so loopback, private and metadata
addresses are refused and logged, and the step log tells nothing about what answered."""

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import outbound
from core.outbound import Outbound
from journeys import actions, delivery, runner
from journeys.delivery import Platform
from journeys.model import validate
from models import (
    OutboxItem,
    OutboxStatus,
    Step,
    Workspace,
    utcnow,
)
from tests.factories import webhook_journey, with_secret
from tests.helpers import harpoon_of, session_of, submit_form_for_journeys

LOOPBACK = ("127.0.0.1/32",)


def submit_and_run(app, workspace_id: int, platform: Platform, now=None) -> Step:
    """A contact submits a form, the journey runs and the sender delivers; the webhook
    step as logged."""
    now = now or utcnow()
    submit_form_for_journeys(app, workspace_id, now)
    with session_of(app) as session:
        runner.run_due(session, workspace_id, now=lambda: now)
        delivery.deliver_due(session, workspace_id, platform, now=lambda: now)
        return session.scalars(
            select(Step).where(Step.node_id == "call").order_by(Step.id.desc())
        ).first()


def v1s(header: str) -> tuple[int, list[str]]:
    parts = [part.split("=", 1) for part in header.split(",")]
    return int(dict(parts)["t"]), [value for name, value in parts if name == "v1"]


def digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_a_delivery_is_signed_with_the_workspace_secret_not_the_app_secret(app, ws, receiver):
    secret = with_secret(app, ws)
    journey_id = webhook_journey(app, ws, receiver.url("/ok"))

    step = submit_and_run(app, ws, Platform(oa_client=None, outbound=Outbound(LOOPBACK)))

    assert step.outcome == "done"
    (received,) = receiver.received
    body = json.loads(received.body)
    assert (body["workspace_id"], body["journey_id"]) == (ws, journey_id)
    assert received.headers["X-Harpoon-Workspace"] == str(ws)
    assert body["delivery_id"] == f"{body['enrolment_id']}-{step.visit}"  # signed
    assert received.headers["X-Harpoon-Delivery"] == body["delivery_id"]
    assert step.detail["delivery"] == received.headers["X-Harpoon-Delivery"]
    timestamp, (signature,) = v1s(received.headers["X-Harpoon-Signature"])
    assert abs(timestamp - utcnow().timestamp()) < 60
    assert signature == digest(secret, timestamp, received.body)
    app_secret = harpoon_of(app).settings.secret_key
    assert signature != digest(app_secret, timestamp, received.body)
    assert app_secret.encode() not in received.body


def test_each_workspace_signs_with_its_own_secret(app, ws, receiver):
    with session_of(app) as session:
        other = Workspace(name="globex")
        session.add(other)
        session.commit()
        other_id = other.id
    secrets = {ws: with_secret(app, ws), other_id: with_secret(app, other_id)}
    platform = Platform(oa_client=None, outbound=Outbound(LOOPBACK))
    for workspace_id in secrets:
        webhook_journey(app, workspace_id, receiver.url("/ok"))
        submit_and_run(app, workspace_id, platform)

    assert len(receiver.received) == 2
    for received in receiver.received:
        workspace_id = int(received.headers["X-Harpoon-Workspace"])
        timestamp, (signature,) = v1s(received.headers["X-Harpoon-Signature"])
        assert signature == digest(secrets[workspace_id], timestamp, received.body)
        assert json.loads(received.body)["workspace_id"] == workspace_id


def test_without_a_workspace_secret_nothing_is_sent(app, ws, receiver):
    webhook_journey(app, ws, receiver.url("/ok"))
    step = submit_and_run(app, ws, Platform(oa_client=None, outbound=Outbound(LOOPBACK)))
    assert (step.outcome, step.detail["error"]) == ("failed", actions.WEBHOOK_NO_SECRET)
    assert receiver.received == []


def test_after_a_rotation_both_secrets_sign_until_the_grace_ends(app, ws, receiver):
    old = with_secret(app, ws)
    new = with_secret(app, ws)
    webhook_journey(app, ws, receiver.url("/ok"))
    platform = Platform(oa_client=None, outbound=Outbound(LOOPBACK))

    submit_and_run(app, ws, platform)
    submit_and_run(app, ws, platform, now=utcnow() + timedelta(hours=25))

    during, after = receiver.received
    timestamp, signatures = v1s(during.headers["X-Harpoon-Signature"])
    assert signatures == [digest(new, timestamp, during.body), digest(old, timestamp, during.body)]
    timestamp, signatures = v1s(after.headers["X-Harpoon-Signature"])
    assert signatures == [digest(new, timestamp, after.body)]


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}/ok",
        "http://localhost:{port}/ok",
        "http://[::1]:{port}/ok",
        "http://10.20.30.40:{port}/ok",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_internal_addresses_are_refused_logged_and_not_described(
    app, ws, receiver, caplog, address
):
    with_secret(app, ws)
    journey_id = webhook_journey(app, ws, address.format(port=receiver.port))

    with caplog.at_level(logging.WARNING, logger="journeys.delivery"):
        step = submit_and_run(app, ws, Platform(oa_client=None))

    assert receiver.received == []
    assert step.outcome == "failed"
    assert step.detail["error"] == actions.WEBHOOK_REFUSED  # no status, no connection detail
    assert "status" not in step.detail
    (line,) = [r.getMessage() for r in caplog.records if "webhook refused" in r.getMessage()]
    assert f"workspace {ws} journey {journey_id} " in line


def test_a_redirect_is_not_followed(app, ws, receiver):
    with_secret(app, ws)
    webhook_journey(app, ws, receiver.url("/redirect"))
    step = submit_and_run(app, ws, Platform(oa_client=None, outbound=Outbound(LOOPBACK)))
    assert (step.outcome, step.detail["error"]) == ("failed", "webhook answered 302")
    assert receiver.paths() == ["/redirect"]


def test_a_slow_receiver_is_retried_with_backoff_then_fails_the_step(app, ws, receiver):
    with_secret(app, ws)
    webhook_journey(app, ws, receiver.url("/slow"))
    platform = Platform(oa_client=None, outbound=Outbound(LOOPBACK, timeout=0.5))
    now = utcnow()
    step = submit_and_run(app, ws, platform, now=now)
    assert step.outcome == "queued"  # no answer in time: worth another try
    with session_of(app) as session:
        (row,) = session.scalars(select(OutboxItem)).all()
    assert (row.status, row.attempts, row.last_error) == (
        OutboxStatus.PENDING,
        1,
        actions.WEBHOOK_UNREACHABLE,
    )
    assert row.next_attempt_at > now
    with session_of(app) as session:
        assert delivery.deliver_due(session, ws, platform, now=lambda: now).sent == 0  # not due
    for _ in range(delivery.MAX_ATTEMPTS - 1):
        now += delivery.RETRY_MAX
        with session_of(app) as session:
            delivery.deliver_due(session, ws, platform, now=lambda at=now: at)
    with session_of(app) as session:
        step = session.scalar(select(Step).where(Step.node_id == "call"))
        row = session.scalar(select(OutboxItem))
    assert (step.outcome, step.detail["error"]) == ("failed", actions.WEBHOOK_UNREACHABLE)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, delivery.MAX_ATTEMPTS)
    assert len(receiver.received) == delivery.MAX_ATTEMPTS
    assert len({r.headers["X-Harpoon-Delivery"] for r in receiver.received}) == 1


def test_a_receiver_answering_a_huge_body_is_cut_off(app, ws, receiver):
    with_secret(app, ws)
    webhook_journey(app, ws, receiver.url("/huge"))
    step = submit_and_run(app, ws, Platform(oa_client=None, outbound=Outbound(LOOPBACK)))
    assert step.outcome == "done"
    assert receiver.server.sent_bytes < 8 * 1024 * 1024  # Harpoon hung up after the cap


def test_a_literal_internal_address_is_a_field_error_when_saved(make_app):
    document = {
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "form.submit"}},
                "next": "call",
            },
            {
                "id": "call",
                "type": "action",
                "action": {"kind": "webhook", "url": "http://169.254.169.254/latest/"},
            },
        ]
    }
    make_app()
    assert validate(document) == {
        "nodes.1.action.url": ["A private or local address: only public addresses can be reached."]
    }
    make_app(outbound_allow=("169.254.0.0/16",))  # an operator's on-premise receiver
    try:
        assert validate(document) == {}
    finally:
        outbound.configure(())
