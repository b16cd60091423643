"""The CRM webhook: an account reaching MQA (in the drain) or routed to a salesperson is
queued in the outbox in that transaction and delivered after the commit by the journeys'
sender, signed with the workspace's secret; a batch run again and a retried delivery send
nothing twice."""

import hashlib
import hmac
import json

from sqlalchemy import select

from core.outbound import Outbound
from crm import crm_webhook
from crm.crm_webhook import ACCOUNT_MQA, ACCOUNT_ROUTED, tell_crm
from journeys import delivery
from journeys.delivery import Platform
from models import Account, InboundEvent, OutboxItem, OutboxStatus, Workspace
from pipeline.drain import drain
from tests.factories import (
    make_account,
    make_routing_rule,
    make_salesperson,
    new_key,
    with_secret,
    workspace_id,
)
from tests.helpers import post_touchpoints, run_jobs, session_of

LOOPBACK = ("127.0.0.1/32",)


def person(kind, email, name, title, **extra) -> dict:
    return {
        "kind": kind,
        "external_id": f"{kind}-{email}",
        "email": email,
        "person": {"name": name, "company": "华信制造", "title": title},
        **extra,
    }


COMMITTEE = [
    person("live.watch", "wang@huaxin.example", "王总", "CIO", minutes=90),
    person("form.submit", "li@huaxin.example", "李工", "工程师"),
    person("form.submit", "zhao@huaxin.example", "赵经理", "采购经理"),
]


def tell_crm_at(app, url: str, workspace="acme") -> None:
    with session_of(app) as session:
        session.get(Workspace, workspace_id(app, workspace)).crm_webhook_url = url
        session.commit()


def signature_holds(secret: str, header: str, body: bytes) -> bool:
    parts = [part.split("=", 1) for part in header.split(",")]
    timestamp = dict(parts)["t"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return any(value == expected for name, value in parts if name == "v1")


def test_an_mqa_and_its_routing_reach_the_crm_signed_once_each(make_app, receiver):
    app = make_app(outbound_allow=LOOPBACK)
    client = app.test_client()
    ws = workspace_id(app)
    secret = with_secret(app, ws)
    tell_crm_at(app, receiver.url("/crm"))
    zhang = make_salesperson(app, "张三", "zhangsan")
    make_routing_rule(app, "华东制造", [zhang], regions=["华东"], industries=["制造"])
    account = make_account(
        app, "华信制造", region="华东", industry="制造", is_target=True, domain="huaxin.example"
    )
    key = new_key(app)

    assert post_touchpoints(client, key.key, {"items": COMMITTEE}).status_code == 200
    run_jobs(app)  # the drain queues, the deliver_outbox follow-up sends

    crm = [r for r in receiver.received if r.path == "/crm"]
    bodies = [json.loads(r.body) for r in crm]
    assert sorted(b["event"] for b in bodies) == [ACCOUNT_MQA, ACCOUNT_ROUTED]
    for received, body in zip(crm, bodies, strict=True):
        assert signature_holds(secret, received.headers["X-Harpoon-Signature"], received.body)
        assert received.headers["X-Harpoon-Delivery"] == body["delivery_id"]
        assert body["workspace_id"] == ws
        assert body["account"]["id"] == account
        assert body["account"]["name"] == "华信制造"
        assert body["account"]["domain"] == "huaxin.example"
        assert set(body) == {"delivery_id", "workspace_id", "event", "account", "occurred_at"}
    mqa = next(b for b in bodies if b["event"] == ACCOUNT_MQA)
    assert mqa["delivery_id"].startswith(f"crm:mqa:{account}:")
    assert 0 < mqa["account"]["score"] <= 100 and mqa["account"]["score_points"] > 0
    assert mqa["account"]["stage"] == "mqa"
    routed = next(b for b in bodies if b["event"] == ACCOUNT_ROUTED)
    assert routed["account"]["owner_email"] is not None
    assert routed["delivery_id"].startswith("crm:routed:")

    # The batch again, as a retry would run it: nothing new is queued or sent.
    with session_of(app) as session:
        session.query(InboundEvent).update({"status": "pending"})
        session.commit()
        drain(session, ws)
    run_jobs(app)
    assert len([r for r in receiver.received if r.path == "/crm"]) == 2
    with session_of(app) as session:
        rows = session.scalars(select(OutboxItem)).all()
        assert len(rows) == 2 and {row.status for row in rows} == {OutboxStatus.SENT}


def test_a_failed_delivery_is_retried_with_the_same_delivery_id(app, receiver):
    ws = workspace_id(app)
    secret = with_secret(app, ws)
    account = make_account(app, "华信制造", stage="mqa")
    tell_crm_at(app, receiver.url("/status/503"))
    with session_of(app) as session:
        assert tell_crm(session, ws, ACCOUNT_MQA, account, f"crm:mqa:{account}:2026-12-07")
        # Queued once per key: the same decision again adds nothing.
        assert not tell_crm(session, ws, ACCOUNT_MQA, account, f"crm:mqa:{account}:2026-12-07")
        session.commit()
    platform = Platform(oa_client=None, outbound=Outbound(LOOPBACK))
    with session_of(app) as session:
        first = delivery.deliver_due(session, ws, platform)
        (row,) = session.scalars(select(OutboxItem)).all()
        assert (first.retrying, row.status) == (1, OutboxStatus.PENDING)
        # The receiver recovers; the retry goes to its new address, same delivery id.
        row.payload = {**row.payload, "url": receiver.url("/ok")}
        row.next_attempt_at = row.created_at
        session.commit()
        second = delivery.deliver_due(session, ws, platform)
        assert second.sent == 1
        assert delivery.deliver_due(session, ws, platform).sent == 0
    failed, ok = receiver.received
    assert (failed.path, ok.path) == ("/status/503", "/ok")
    assert failed.headers["X-Harpoon-Delivery"] == ok.headers["X-Harpoon-Delivery"]
    assert json.loads(ok.body)["delivery_id"] == f"crm:mqa:{account}:2026-12-07"
    assert signature_holds(secret, ok.headers["X-Harpoon-Signature"], ok.body)


def test_no_address_or_no_secret_tells_nobody(app, receiver):
    ws = workspace_id(app)
    account = make_account(app, "华信制造")
    with session_of(app) as session:
        assert not tell_crm(session, ws, ACCOUNT_ROUTED, account, "crm:routed:1")
    tell_crm_at(app, receiver.url("/crm"))
    with session_of(app) as session:
        assert not tell_crm(session, ws, ACCOUNT_ROUTED, account, "crm:routed:1")
    with_secret(app, ws)
    other = workspace_id(app, "globex")
    with_secret(app, other)
    tell_crm_at(app, receiver.url("/crm"), "globex")
    with session_of(app) as session:
        # An account of another workspace is not told of, whatever the id.
        assert not tell_crm(session, other, ACCOUNT_ROUTED, account, "crm:routed:1")
        assert tell_crm(session, ws, ACCOUNT_ROUTED, account, "crm:routed:1")
        session.commit()


def test_a_failure_to_queue_is_logged_and_costs_the_caller_nothing(app, receiver, monkeypatch):
    ws = workspace_id(app)
    with_secret(app, ws)
    tell_crm_at(app, receiver.url("/crm"))
    account = make_account(app, "华信制造")

    def broken(*_args):
        raise ValueError("a defect")

    monkeypatch.setattr(crm_webhook, "account_document", broken)
    with session_of(app) as session:
        session.get(Account, account).stage = "mqa"  # the caller's own write
        assert not tell_crm(session, ws, ACCOUNT_MQA, account, "crm:mqa:1:2026-12-07")
        session.commit()
    with session_of(app) as session:
        assert session.get(Account, account).stage == "mqa"
        assert session.scalars(select(OutboxItem)).all() == []
