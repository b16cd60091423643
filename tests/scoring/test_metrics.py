"""The ABM metrics and the stage funnel on a small workspace: which target accounts count
as reached, aware, engaged and at impact, committee coverage per role, the daily trend
from the snapshots, and nothing from other workspaces or non-target accounts."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from crm.accounts import BUYING_COMMITTEE
from crm.channels import workspace_named
from models import Account, AccountSnapshot, Contact, Interaction, ScoreEntry
from scoring.metrics import abm_metrics, abm_trend, stage_funnel, stages_from
from scoring.model import Model, Stage, StageRules

NOW = datetime(2026, 11, 22, 4, tzinfo=UTC)


def account(db, workspace_id, name, **fields) -> Account:
    row = Account(workspace_id=workspace_id, name=name, normalized_name=name, **fields)
    db.add(row)
    db.flush()
    return row


def contact(db, company, role=None, **fields) -> Contact:
    row = Contact(workspace_id=company.workspace_id, account_id=company.id, role=role, **fields)
    db.add(row)
    db.flush()
    return row


def points(db, person, value=5.0):
    """A ledger entry, as the engine writes one."""
    touch = Interaction(
        workspace_id=person.workspace_id,
        contact_id=person.id,
        account_id=person.account_id,
        kind="wechat.follow",
        occurred_at=NOW,
    )
    db.add(touch)
    db.flush()
    db.add(
        ScoreEntry(
            workspace_id=person.workspace_id,
            contact_id=person.id,
            interaction_id=touch.id,
            rule_key="follow",
            points=value,
            weight=value,
            occurred_at=NOW,
        )
    )
    db.flush()


@pytest.fixture
def targets(db, workspace_id):
    """Four target accounts, one non-target and another workspace's target."""
    mqa = account(
        db, workspace_id, "甲", is_target=True, stage="mqa", acv=500_000, engagement_points=20
    )
    contact(db, mqa, "cio")
    contact(db, mqa, "engineer")
    contact(db, mqa, "marketing")  # not on the committee
    heard = account(db, workspace_id, "乙", is_target=True, stage="target")
    points(db, contact(db, heard, "cfo"))  # aware through the ledger, not the stage
    account(db, workspace_id, "丙", is_target=True)  # nobody known
    engaged = account(db, workspace_id, "丁", is_target=True, stage="engaged", acv=900_000)
    kept = contact(db, engaged, "cio")
    contact(db, engaged, "ciso", merged_into_id=kept.id)  # merged: not a person of its own
    stranger = account(db, workspace_id, "戊", stage="customer", acv=1_000_000)
    contact(db, stranger, "ceo")
    other = workspace_named(db, "globex")
    theirs = account(db, other.id, "己", is_target=True, stage="mqa", engagement_points=5)
    contact(db, theirs, "ceo")
    db.commit()
    return {"mqa": mqa, "heard": heard, "engaged": engaged, "stranger": stranger}


def test_the_five_metrics_count_target_accounts_only(db, workspace_id, targets):
    metrics = abm_metrics(db, workspace_id, Model(), BUYING_COMMITTEE)
    assert metrics.targets == 4
    assert metrics.reached == 3  # all but 丙
    assert metrics.aware == 3  # 甲 and 丁 by their stage, 乙 by its ledger entry
    assert metrics.engaged == 2  # 甲 by its points (and stage), 丁 by its stage
    assert metrics.impact == 1 and metrics.impact_acv == 500_000  # 甲 only: 戊 is no target
    assert metrics.share(metrics.reached) == pytest.approx(0.75)
    assert metrics.roles_known == {
        **dict.fromkeys(BUYING_COMMITTEE, 0),
        "cio": 2,
        "engineer": 1,
        "cfo": 1,
    }
    # 4 roles known of 4 accounts x 9 roles.
    assert metrics.coverage == pytest.approx(4 / 36)


def test_metrics_follow_the_models_stages_and_rules(db, workspace_id, targets):
    """A model whose MQA rule moves to "meeting": impact starts there."""
    model = Model(stage_rules=StageRules(mqa="meeting"))
    assert abm_metrics(db, workspace_id, model, BUYING_COMMITTEE).impact == 0
    assert stages_from(Model(), "opportunity") == ["opportunity", "customer", "expansion"]
    assert stages_from(Model(), "nonsense") == []


def test_an_empty_workspace_has_no_shares_to_divide(db, workspace_id):
    metrics = abm_metrics(db, workspace_id, Model(), BUYING_COMMITTEE)
    assert (metrics.targets, metrics.share(0), metrics.coverage) == (0, 0.0, 0.0)
    assert [stage.reached for stage in stage_funnel(db, workspace_id, Model())] == [0] * 8


def test_the_funnel_counts_every_account_per_stage_in_the_models_order(db, workspace_id, targets):
    account(db, workspace_id, "庚", stage="retired")  # a stage the model no longer has
    db.commit()
    funnel = stage_funnel(db, workspace_id, Model())
    assert [(s.key, s.accounts, s.reached) for s in funnel] == [
        ("target", 1, 4),
        ("aware", 0, 3),
        ("engaged", 1, 3),
        ("mqa", 1, 2),
        ("meeting", 0, 1),
        ("opportunity", 0, 1),
        ("customer", 1, 1),
        ("expansion", 0, 0),
    ]
    custom = Model(stages=(Stage("customer", "Kunde"), Stage("mqa", "MQA")))
    assert [(s.key, s.reached) for s in stage_funnel(db, workspace_id, custom)] == [
        ("customer", 2),
        ("mqa", 1),
    ]


def test_the_trend_counts_each_days_snapshots_of_target_accounts(db, workspace_id, targets):
    today = date(2026, 11, 22)

    def snapshot(company, day, stage, **fields):
        db.add(
            AccountSnapshot(
                workspace_id=workspace_id,
                account_id=company.id,
                day=day,
                score=0,
                stage=stage,
                **fields,
            )
        )

    yesterday = today - timedelta(days=1)
    snapshot(targets["mqa"], yesterday, "engaged", engaged_contacts=2)
    snapshot(targets["heard"], yesterday, "target")
    snapshot(targets["mqa"], today, "mqa", engaged_contacts=2, mqa=True, surging=True)
    snapshot(targets["heard"], today, "target", engaged_contacts=1)
    snapshot(targets["engaged"], today, "engaged", engaged_contacts=1)
    snapshot(targets["stranger"], today, "customer")  # not a target: not counted
    snapshot(targets["mqa"], today - timedelta(days=40), "aware")  # before the window
    db.commit()
    trend = abm_trend(db, workspace_id, Model(), today - timedelta(days=29))
    assert [(d.day, d.accounts, d.aware, d.engaged, d.impact, d.surging) for d in trend] == [
        (yesterday, 2, 1, 1, 0, 0),
        (today, 3, 3, 2, 1, 1),
    ]
    assert db.scalar(select(AccountSnapshot.id).where(AccountSnapshot.day < yesterday))
