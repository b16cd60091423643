"""The routing SLA's jobs: the periodic check asks for each workspace's check with routed
accounts waiting, and the worker runs it."""

from datetime import timedelta

from sqlalchemy import select

from app.jobs import check_routing_slas, score_workspace
from core.jobs import Followups
from models import Account, RoutingAssignment, StaffNotification, utcnow
from sales import routing
from scoring.engine import OwnerAlert
from tests.factories import (
    committee_accounts,
    make_account,
    make_routing_rule,
    make_salesperson,
    workspace_id,
)
from tests.helpers import queued_jobs, run_jobs, session_of


def test_the_periodic_check_asks_for_the_workspaces_check_and_the_worker_escalates(app):
    make_routing_rule(app, "全国", [make_salesperson(app, "张三", "zhangsan")])
    account = make_account(app, "华信")
    ws = workspace_id(app)
    with session_of(app) as session:
        alert = OwnerAlert(account, "account_mqa", "MQA", "mqa:1")
        routing.route(session, ws, [alert], [], Followups(), now=utcnow() - timedelta(days=5))
        session.commit()
    run_jobs(app)  # the routing note's sender
    with app.app_context():
        assert check_routing_slas() == [ws]
    assert ("check_routing_sla", (ws,)) in queued_jobs(app)
    run_jobs(app)
    with session_of(app) as session:
        assert session.scalars(select(RoutingAssignment.outcome)).one() == "escalated"
        kinds = session.scalars(select(StaffNotification.kind).order_by(StaffNotification.id))
        assert list(kinds) == ["account_routed", "sla_escalated"]
    with app.app_context():
        assert check_routing_slas() == []  # nothing waits any more


def test_an_mqa_found_by_the_daily_refresh_is_routed_too(app):
    zhang = make_salesperson(app, "张三", "zhangsan")
    make_routing_rule(app, "全国", [zhang])
    ids = committee_accounts(app)  # 甲公司 is an MQA, judged before any rule existed
    with session_of(app) as session:
        session.get(Account, ids["甲公司"]).mqa = False
        session.commit()
    with app.app_context():
        score_workspace(workspace_id(app), "refresh_workspace")
    with session_of(app) as session:
        assert session.get(Account, ids["甲公司"]).owner_id == zhang
        assert session.get(Account, ids["丙公司"]).owner_id is None  # not an MQA
        assert session.scalars(select(RoutingAssignment.trigger)).all() == ["mqa"]


def test_a_routing_that_fails_costs_the_refresh_none_of_its_scores(app, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ValueError("a routing bug")

    monkeypatch.setattr(routing, "route", broken)
    make_routing_rule(app, "全国", [make_salesperson(app, "张三", "zhangsan")])
    ids = committee_accounts(app)
    with session_of(app) as session:
        session.get(Account, ids["甲公司"]).mqa = False
        session.commit()
    with app.app_context():
        summary = score_workspace(workspace_id(app), "refresh_workspace")
    assert summary["alerts"] >= 1
    with session_of(app) as session:
        assert session.get(Account, ids["甲公司"]).mqa is True
        assert session.scalars(select(RoutingAssignment)).all() == []
