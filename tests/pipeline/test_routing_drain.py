"""Routing in the drain, end to end: touchpoints through the API and the real worker make
an unowned target account surge and reach MQA; the drain routes it, the new owner gets the task,
the routing note and the MQA alert, and a reprocessed batch routes nothing again."""

from sqlalchemy import select

from models import (
    Account,
    AccountEvent,
    Contact,
    InboundEvent,
    RoutingAssignment,
    StaffNotification,
    Task,
)
from pipeline.drain import drain
from sales import routing
from tests.factories import (
    make_account,
    make_routing_rule,
    make_salesperson,
    new_key,
    workspace_id,
)
from tests.helpers import post_touchpoints, run_jobs, session_of


def person(kind, email, name, title, **extra) -> dict:
    return {
        "kind": kind,
        "external_id": f"{kind}-{email}",
        "email": email,
        "person": {"name": name, "company": "华信制造", "title": title},
        **extra,
    }


def test_an_mqa_reached_through_touchpoints_routes_the_account_once(app, client):
    zhang = make_salesperson(app, "张三", "zhangsan")
    make_routing_rule(app, "华南", [make_salesperson(app, "李四", "lisi")], regions=["华南"])
    make_routing_rule(app, "华东制造", [zhang], regions=["华东"], industries=["制造"])
    account = make_account(app, "华信制造", region="华东", industry="制造", is_target=True)
    key = new_key(app)
    items = [
        person("live.watch", "wang@huaxin.example", "王总", "CIO", minutes=90),
        person("form.submit", "li@huaxin.example", "李工", "工程师"),
        person("form.submit", "zhao@huaxin.example", "赵经理", "采购经理"),
    ]
    assert post_touchpoints(client, key.key, {"items": items}).status_code == 200
    run_jobs(app)
    with session_of(app) as session:
        row = session.get(Account, account)
        assert (row.mqa, row.owner_id) == (True, zhang)
        (assignment,) = session.scalars(select(RoutingAssignment)).all()
        # The people land in lanes of their own: the CIO's batch may find the surge first.
        trigger = {"mqa": "达到 MQA", "surge": "互动激增"}[assignment.trigger]
        assert assignment.outcome == "pending"
        assert assignment.reason == f"{trigger}，按规则「华东制造」轮询分配给 张三"
        (task,) = session.scalars(select(Task).where(Task.source == "routing")).all()
        assert (task.assignee_id, task.due_at) == (zhang, assignment.sla_due_at)
        kinds = session.scalars(
            select(AccountEvent.kind).where(AccountEvent.account_id == account)
        ).all()
        assert kinds.count("routed") == 1
        # Routed before the owners' alerts are recorded: the new owner hears of both.
        told = session.scalars(
            select(StaffNotification.kind).where(StaffNotification.staff_userid == "zhangsan")
        ).all()
        assert sorted(told) == ["account_mqa", "account_routed", "account_surge"]
        # The batch again, as a retry would run it: nothing is routed twice.
        session.query(InboundEvent).update({"status": "pending"})
        session.commit()
        drain(session, workspace_id(app))
    with session_of(app) as session:
        assert len(session.scalars(select(RoutingAssignment)).all()) == 1
        assert len(session.scalars(select(Task).where(Task.source == "routing")).all()) == 1


def test_a_routing_that_fails_costs_the_batch_none_of_its_scores(app, client, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ValueError("a routing bug")

    monkeypatch.setattr(routing, "route", broken)
    make_routing_rule(app, "全国", [make_salesperson(app, "张三", "zhangsan")])
    make_account(app, "华信制造", is_target=True)
    key = new_key(app)
    items = [person("live.watch", "wang@huaxin.example", "王总", "CIO", minutes=90)]
    assert post_touchpoints(client, key.key, {"items": items}).status_code == 200
    run_jobs(app)
    with session_of(app) as session:
        (contact,) = session.scalars(select(Contact)).all()
        assert contact.lead_score > 0
        assert session.scalars(select(InboundEvent.status)).all() == ["done"]
        assert session.scalars(select(RoutingAssignment)).all() == []
