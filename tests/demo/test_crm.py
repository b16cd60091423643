"""The demo's CRM, against the app on a real port: its history of closed deals through the
batch endpoint (a re-run changes nothing), deals opened for the accounts Harpoon reports at
MQA through a signed webhook (a forged one is refused), moved on, won and lost."""

import json

import pytest
import requests
from sqlalchemy import select

from demo import crm as demo_crm
from demo.crm import HISTORY, DemoCrm
from journeys.webhooks import delivery_headers, signing_secrets
from models import ApiKey, InboundEvent, Opportunity, utcnow
from tests.factories import add_contact, make_account, make_channel, make_user
from tests.helpers import OA_CREDS, harpoon_of, session_of


@pytest.fixture
def crm(app, live_server):
    for company in {row[1] for row in HISTORY}:
        make_account(app, company, workspace="Demo")
    made = DemoCrm(harpoon_of(app).db, live_server, seed=3)
    yield made
    made.close()


def deals(app) -> dict[str, tuple[str, str]]:
    with session_of(app) as session:
        return {
            o.external_id: (o.status, o.stage)
            for o in session.scalars(select(Opportunity).order_by(Opportunity.id))
        }


def test_the_history_is_synced_through_the_api_once(app, crm):
    assert "created 6" in crm.seed_history()
    statuses = [status for status, _ in deals(app).values()]
    assert sorted(statuses) == ["lost", "lost", "won", "won", "won", "won"]
    assert "unchanged 6" in crm.seed_history()
    with session_of(app) as session:
        key = session.scalar(select(ApiKey).where(ApiKey.name == demo_crm.CRM_KEY_NAME))
        assert key.require_signature and key.last_used_at is not None


def test_an_account_heard_at_mqa_gets_a_deal_that_moves_to_a_close(app, crm, monkeypatch):
    monkeypatch.setattr(demo_crm, "OPEN_SHARE", 1.0)
    monkeypatch.setattr(demo_crm, "MOVE_CHANCE", 1.0)
    make_user(app, "sales", workspace="Demo", email="zhangsan@harpoon.local")
    account = make_account(app, "华信科技", workspace="Demo")
    event = {
        "delivery_id": f"crm:mqa:{account}:2026-12-07",
        "workspace_id": crm.workspace_id,
        "event": "account.mqa",
        "account": {"id": account, "name": "华信科技", "owner_email": "zhangsan@harpoon.local"},
        "occurred_at": utcnow().isoformat(),
    }
    body = json.dumps(event).encode()
    forged = delivery_headers(("whsec_forged",), crm.workspace_id, event["delivery_id"], body)
    assert requests.post(crm.url, data=body, headers=forged, timeout=5).status_code == 401
    assert crm.tick() == []
    with session_of(app) as session:
        secrets = signing_secrets(session, crm.workspace_id, utcnow())
    signed = delivery_headers(secrets, crm.workspace_id, event["delivery_id"], body)
    assert requests.post(crm.url, data=body, headers=signed, timeout=5).status_code == 200

    (opened,) = crm.tick()
    assert opened.startswith(f"CRM opened CRM-{account:05d} for 华信科技")
    with session_of(app) as session:
        deal = session.scalar(select(Opportunity))
        assert (deal.stage, deal.source, deal.owner_id is not None) == ("qualify", "crm", True)
    for stage in ("solution", "negotiation"):
        (moved,) = crm.tick()
        assert moved.endswith(f"to {stage}")
    crm.tick()
    status, stage = deals(app)[f"CRM-{account:05d}"]
    assert status == stage and status in ("won", "lost")
    assert crm.tick() == []  # closed deals stay closed


def test_the_hottest_engaged_target_accounts_get_deals_before_any_mqa(app, crm, monkeypatch):
    monkeypatch.setattr(demo_crm, "OPEN_SHARE", 1.0)
    monkeypatch.setattr(demo_crm, "HOT_DEALS", 2)
    monkeypatch.setattr(demo_crm, "MOVE_CHANCE", 0.0)
    hot = [
        make_account(app, name, workspace="Demo", is_target=True, stage="engaged", scaled_score=s)
        for name, s in (("华信科技", 45.0), ("紫金银行", 30.0), ("天府教育", 25.0))
    ]
    make_account(app, "冷门公司", workspace="Demo", is_target=True, stage="engaged", scaled_score=5)
    make_account(app, "路人公司", workspace="Demo", stage="engaged", scaled_score=60.0)
    opened = crm.tick()
    assert sorted(line.split(" for ")[0] for line in opened) == [
        f"CRM opened CRM-{hot[0]:05d}",
        f"CRM opened CRM-{hot[1]:05d}",
    ]
    assert crm.tick() == []  # the third hot account waits: two per run
    assert set(deals(app)) == {f"CRM-{hot[0]:05d}", f"CRM-{hot[1]:05d}"}


def test_a_won_deals_people_answer_the_nps_survey_through_the_api(app, crm, monkeypatch):
    monkeypatch.setattr(demo_crm, "OPEN_SHARE", 1.0)
    monkeypatch.setattr(demo_crm, "MOVE_CHANCE", 1.0)
    monkeypatch.setattr(demo_crm, "LOSE_CHANCE", 0.0)
    oa = make_channel(app, "oa", OA_CREDS, workspace="Demo")
    account = make_account(
        app, "华信科技", workspace="Demo", is_target=True, stage="engaged", scaled_score=50.0
    )
    for n in range(2):
        add_contact(app, workspace="Demo", openid=f"o-nps-{n}", channel_id=oa, account_id=account)
    add_contact(app, workspace="Demo", account_id=account)  # no OA identity: not asked
    lines = [line for _ in range(5) for line in crm.tick()]
    assert lines[-1].endswith("to won; 2 NPS answers"), lines
    with session_of(app) as session:
        answers = session.scalars(
            select(InboundEvent).where(InboundEvent.workspace_id == crm.workspace_id)
        ).all()
    nps = [json.loads(e.payload) for e in answers if "survey.nps" in e.payload]
    assert sorted(item["identity"]["openid"] for item in nps) == ["o-nps-0", "o-nps-1"]
    assert all(0 <= item["properties"]["score"] <= 10 for item in nps)
