"""Opportunities: one item resolved in its workspace, saved once however often a CRM
re-sends it, with history, the account's timeline and its stage moved forward."""

from datetime import timedelta
from decimal import Decimal

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from models import (
    Account,
    AccountEvent,
    Opportunity,
    OpportunityChange,
    StageChange,
    utcnow,
)
from revenue.opportunities import (
    CLOSED_BEFORE_OPENED,
    CLOSED_IN_FUTURE,
    NOT_USABLE_DATE,
    OPENED_IN_FUTURE,
    OpportunitySchema,
    resolve,
    save_opportunity,
)
from revenue.pipeline import pipeline_of, save_pipeline, stage_rows
from scoring.engine import load_model
from tests.factories import make_account, make_opportunity, make_user, workspace_id
from tests.helpers import session_of


def put(app, external_id, item, workspace="acme"):
    """What the API does with one item: load, resolve, save (or the errors)."""
    values = OpportunitySchema().load(item)
    with session_of(app) as session:
        ws = workspace_id(app, workspace)
        existing = session.scalar(
            select(Opportunity).where(
                Opportunity.workspace_id == ws, Opportunity.external_id == external_id
            )
        )
        resolved = resolve(session, ws, values, existing)
        if resolved.errors:
            return resolved.errors
        saved = save_opportunity(
            session, ws, values, resolved, source="crm", external_id=external_id, existing=existing
        )
        session.commit()
        return saved.status


def test_the_default_pipeline_is_written_once_in_order(app):
    ws = workspace_id(app)
    with session_of(app) as session:
        first = [stage.key for stage in pipeline_of(session, ws)]
        again = [stage.key for stage in pipeline_of(session, ws)]
    assert first == again == ["qualify", "solution", "negotiation", "won", "lost"]


def test_a_resent_item_changes_nothing_and_a_stage_move_is_history(app):
    account = make_account(app, "华信科技", is_target=True, stage="mqa")
    item = {"name": "云平台", "amount": "250000.50", "stage": "qualify", "account_id": account}
    assert put(app, "crm-1", item) == "created"
    assert put(app, "crm-1", item) == "unchanged"
    assert put(app, "crm-1", {**item, "stage": "solution"}) == "updated"
    assert put(app, "crm-1", {"stage": "won"}) == "updated"
    with session_of(app) as session:
        opportunity = session.scalar(select(Opportunity))
        assert opportunity.amount == Decimal("250000.50")
        assert opportunity.status == "won" and opportunity.closed_at is not None
        assert opportunity.probability == 100
        history = session.scalars(
            select(OpportunityChange.to_stage).order_by(OpportunityChange.id)
        ).all()
        assert history == ["qualify", "solution", "won"]
        moves = session.execute(
            select(StageChange.from_stage, StageChange.to_stage).order_by(StageChange.id)
        ).all()
        assert [tuple(m) for m in moves] == [
            ("mqa", "meeting"),
            ("meeting", "opportunity"),
            ("opportunity", "customer"),
        ]
        assert session.get(Account, account).stage == "customer"
        assert len(session.scalars(select(AccountEvent)).all()) == 3


def test_an_opportunity_never_moves_its_account_back(app):
    account = make_account(app, "远东银行", stage="customer")
    make_opportunity(app, account, stage="qualify", type="expansion")
    with session_of(app) as session:
        assert session.get(Account, account).stage == "customer"
        assert session.scalars(select(StageChange)).all() == []


def test_a_won_expansion_moves_a_customer_to_expansion(app):
    account = make_account(app, "远东银行", stage="customer")
    make_opportunity(app, account, stage="won", type="expansion")
    with session_of(app) as session:
        assert session.get(Account, account).stage == "expansion"


def test_unknown_references_are_field_errors_and_another_workspaces_account_is_unknown(app):
    theirs = make_account(app, "华信科技", workspace="other")
    errors = put(app, "x", {"name": "a", "amount": 1, "stage": "qualify", "account_id": theirs})
    assert set(errors) == {"account_id"}
    errors = put(app, "x", {"name": "a", "amount": 1, "stage": "nope", "account_name": "无名"})
    assert set(errors) == {"stage", "account"}
    assert set(put(app, "x", {"stage": "qualify", "account_name": "华信"})) >= {"name", "amount"}
    with session_of(app) as session:
        assert session.scalars(select(Opportunity)).all() == []


def test_create_account_makes_the_named_account(app):
    item = {
        "name": "私有云",
        "amount": 80000,
        "stage": "qualify",
        "account_name": "星河制造有限公司",
        "account_domain": "xinghe.com",
        "create_account": True,
    }
    assert put(app, "crm-2", item) == "created"
    assert put(app, "crm-3", {**item, "create_account": False, "name": "二期"}) == "created"
    with session_of(app) as session:
        accounts = session.scalars(select(Account)).all()
        assert [(a.name, a.domain) for a in accounts] == [("星河制造有限公司", "xinghe.com")]


def test_an_unknown_owner_is_a_warning_and_a_known_one_is_set(app):
    account = make_account(app, "华信科技")
    owner = make_user(app, role="sales", email="li@acme.example")
    with session_of(app) as session:
        ws = workspace_id(app)
        known = resolve(session, ws, {"owner_email": "LI@acme.example", "account_id": account})
        unknown = resolve(session, ws, {"owner_email": "zz@acme.example", "account_id": account})
    assert known.owner_id == owner and not known.warnings
    assert unknown.owner_id is None and set(unknown.warnings) == {"owner_email"}


def test_amounts_are_decimals_and_closing_before_opening_is_refused():
    values = OpportunitySchema().load({"amount": 0.1})
    assert values["amount"] == Decimal("0.10")
    now = utcnow()
    with pytest.raises(ValidationError) as refused:
        OpportunitySchema().load(
            {"opened_at": now.isoformat(), "closed_at": (now - timedelta(days=1)).isoformat()}
        )
    assert set(refused.value.messages) == {"closed_at"}


# ---- fixa ----


def outcomes_edited(app, changes: dict[str, str]):
    """The pipeline saved with these stages' outcomes changed ("" open)."""
    ws = workspace_id(app)
    with session_of(app) as session:
        rows = stage_rows(pipeline_of(session, ws))
        for row in rows:
            row["outcome"] = changes.get(row["key"], row["outcome"])
        account_stages = frozenset(stage.key for stage in load_model(session, ws).stages)
        save_pipeline(session, ws, {"stages": rows}, account_stages)
        session.commit()


def test_a_stage_whose_outcome_changes_takes_its_opportunities_status_along(app):
    """负债 at lost reopens, 谈判 at negotiation (now meaning lost) closes, each with a
    history row; the CRM re-sending either then changes nothing."""
    account = make_account(app, "华信科技")
    lost = {"name": "负债", "amount": "1000", "stage": "lost", "account_id": account}
    talks = {"name": "谈判", "amount": "2000", "stage": "negotiation", "account_id": account}
    assert put(app, "crm-lost", lost) == put(app, "crm-talks", talks) == "created"
    before = utcnow()
    outcomes_edited(app, {"lost": "", "negotiation": "lost"})
    with session_of(app) as session:
        by_name = {o.name: o for o in session.scalars(select(Opportunity))}
        assert (by_name["负债"].status, by_name["负债"].closed_at) == ("open", None)
        assert by_name["谈判"].status == "lost" and by_name["谈判"].closed_at >= before
        history = session.execute(
            select(
                OpportunityChange.opportunity_id, OpportunityChange.status, OpportunityChange.source
            )
            .where(OpportunityChange.changed_at >= before)
            .order_by(OpportunityChange.opportunity_id)
        ).all()
        assert sorted(tuple(h) for h in history) == sorted(
            [(by_name["负债"].id, "open", "admin"), (by_name["谈判"].id, "lost", "admin")]
        )
    assert put(app, "crm-lost", lost) == put(app, "crm-talks", talks) == "unchanged"
    outcomes_edited(app, {})  # nothing changed: no history
    with session_of(app) as session:
        assert len(session.scalars(select(OpportunityChange)).all()) == 4


def test_a_closing_date_before_the_saved_or_default_opening_date_is_refused(app):
    account = make_account(app, "华信科技")
    now = utcnow()
    item = {"name": "云平台", "amount": "1000", "stage": "won", "account_id": account}
    item["opened_at"] = (now - timedelta(days=10)).isoformat()
    item["closed_at"] = (now - timedelta(days=5)).isoformat()
    assert put(app, "crm-1", item) == "created"
    # Only one of the dates: the other is the saved one.
    assert put(app, "crm-1", {"closed_at": (now - timedelta(days=20)).isoformat()}) == {
        "closed_at": [CLOSED_BEFORE_OPENED]
    }
    assert put(app, "crm-1", {"opened_at": (now - timedelta(days=2)).isoformat()}) == {
        "closed_at": [CLOSED_BEFORE_OPENED]
    }
    # A new one closed yesterday that does not say when it opened: opened then, not now.
    fresh = {"name": "新单", "amount": "1", "stage": "lost", "account_id": account}
    yesterday = now - timedelta(days=1)
    assert put(app, "crm-2", {**fresh, "closed_at": yesterday.isoformat()}) == "created"
    # Opened next month and closed now (by default): closed before opened.
    next_month = (now + timedelta(days=30)).isoformat()
    assert put(app, "crm-3", {**fresh, "opened_at": next_month}) == {
        "closed_at": [CLOSED_BEFORE_OPENED]
    }
    assert put(app, "crm-3", {**fresh, "stage": "qualify", "opened_at": next_month}) == "created"
    with session_of(app) as session:
        saved = session.scalar(select(Opportunity).where(Opportunity.external_id == "crm-1"))
        assert saved.closed_at == now - timedelta(days=5)
        closed = session.scalar(select(Opportunity).where(Opportunity.external_id == "crm-2"))
        assert closed.opened_at == closed.closed_at == yesterday
        assert len(session.scalars(select(Opportunity)).all()) == 3


@pytest.mark.parametrize(
    ("name", "when", "message"),
    [
        ("closed_at", timedelta(days=2), CLOSED_IN_FUTURE),
        ("opened_at", timedelta(days=400), OPENED_IN_FUTURE),
    ],
)
def test_dates_far_in_the_future_are_refused(name, when, message):
    now = utcnow()
    with pytest.raises(ValidationError) as refused:
        OpportunitySchema().load({name: (now + when).isoformat()})
    assert refused.value.messages == {name: [message]}
    near = {"closed_at": timedelta(hours=20), "opened_at": timedelta(days=300)}[name]
    assert OpportunitySchema().load({name: (now + near).isoformat()})[name] == now + near


@pytest.mark.parametrize("name", ["opened_at", "closed_at"])
def test_dates_before_2000_are_refused(name):
    with pytest.raises(ValidationError) as refused:
        OpportunitySchema().load({name: "1999-12-31T23:59:59+00:00"})
    assert refused.value.messages == {name: [NOT_USABLE_DATE]}
    assert OpportunitySchema().load({name: "2000-01-01T00:00:00+00:00"})[name].year == 2000


def test_minus_zero_is_stored_as_zero(app):
    values = OpportunitySchema().load({"amount": "-0"})
    assert str(values["amount"]) == "0.00"
    account = make_account(app, "华信科技")
    item = {"name": "赠送", "amount": "-0", "stage": "qualify", "account_id": account}
    assert put(app, "crm-0", item) == "created"
    with session_of(app) as session:
        assert str(session.scalar(select(Opportunity.amount))) == "0.00"
        assert str(session.scalar(select(OpportunityChange.amount))) == "0.00"


def test_a_won_renewal_keeps_a_customer_a_customer(app):
    account = make_account(app, "远东银行", stage="customer")
    make_opportunity(app, account, stage="won", type="renewal")
    with session_of(app) as session:
        assert session.get(Account, account).stage == "customer"
