"""Callbacks through the real worker to scores: a drained batch updates lead and account
scores in its own transaction, and a reprocessed batch changes nothing."""

import time

import pytest
from sqlalchemy import select

from models import Account, Contact, InboundEvent, ScoreEntry, StageChange
from pipeline.drain import drain
from tests.helpers import harpoon_of, inbox, post_oa, run_jobs
from wechat import simulate


def scores(app):
    with harpoon_of(app).db.session() as session:
        entries = session.execute(
            select(ScoreEntry.rule_key, ScoreEntry.points).order_by(ScoreEntry.id)
        ).all()
        contact = session.scalars(select(Contact)).one()
        return entries, contact.lead_score, contact.stage


def test_callbacks_move_the_lead_score_and_a_replay_adds_nothing(app, client, oa_channel):
    now = int(time.time())
    post_oa(client, oa_channel, simulate.oa_event("o_sc", "subscribe", at=now))
    post_oa(client, oa_channel, simulate.oa_event("o_sc", "CLICK", at=now + 1, EventKey="PRICING"))
    post_oa(client, oa_channel, simulate.oa_text("o_sc", "你好", 990001, at=now + 2))
    assert run_jobs(app)
    entries, lead, stage = scores(app)
    assert entries == [("follow", 5), ("menu_pricing", 8), ("message", 4)]
    assert round(lead, 1) == 17.0
    assert stage == "aware"
    with harpoon_of(app).db.session() as session:
        session.query(InboundEvent).update({"status": "pending"})
        session.commit()
        drain(session, inbox(app)[0].workspace_id)
    again, lead_again, stage_again = scores(app)
    assert (again, stage_again) == (entries, stage)
    assert lead_again == pytest.approx(lead, rel=1e-4)  # only seconds of decay apart
    with harpoon_of(app).db.session() as session:
        assert session.scalar(select(StageChange.reason)) == "first interaction"


def test_an_account_is_scored_in_the_batch_its_contacts_act_in(app, client, oa_channel):
    now = int(time.time())
    post_oa(client, oa_channel, simulate.oa_event("o_acc", "subscribe", at=now))
    run_jobs(app)
    with harpoon_of(app).db.session() as session:
        workspace_id = session.scalars(select(InboundEvent.workspace_id)).first()
        account = Account(
            workspace_id=workspace_id, name="华信科技", normalized_name="华信科技", is_target=True
        )
        session.add(account)
        session.flush()
        contact = session.scalars(select(Contact)).one()
        contact.account_id, contact.role, contact.seniority = account.id, "cio", "c_level"
        session.commit()
        account_id = account.id
    post_oa(client, oa_channel, simulate.oa_text("o_acc", "想了解报价", 990002, at=now + 5))
    run_jobs(app)
    with harpoon_of(app).db.session() as session:
        account = session.get(Account, account_id)
        # The CIO's 9 points x 2.0 (CIO) x 2.0 (C-level) + 10 for one engaged role.
        assert round(account.score) == 46
        assert account.stage == "aware"
        assert account.scored_at is not None
