"""Opportunity pages: the list's filters and totals, the form's field messages and checks
(workspace, ownership, lost reason), the detail's history, the account's section, and the
pipeline's validation."""

import re
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models import (
    Account,
    AuditLog,
    Opportunity,
    OpportunityChange,
    PipelineStage,
    User,
)
from tests.app.admin.helpers import csrf_token, field_errors
from tests.factories import make_account, make_opportunity, make_user, workspace_id
from tests.helpers import harpoon_of, session_of


def user_id(app, email):
    with session_of(app) as session:
        return session.scalar(select(User.id).where(User.email == email))


def post(client, path, data):
    token = csrf_token(client.get("/admin/opportunities").text)
    return client.post(path, data={**data, "csrf_token": token})


def listed(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-opportunity="(\d+)"', page)]


def total(page: str, name: str) -> str:
    match = re.search(rf'data-total="{name}">([^<]*)<', page)
    assert match, name
    return match.group(1)


def opportunities_section(page: str) -> str:
    match = re.search(
        r'<section class="card" id="account-opportunities">(.*?)</section>', page, re.S
    )
    assert match, "no opportunities section"
    return match.group(1)


def form(account_id, **values):
    return {
        "name": "年度订阅",
        "account_id": str(account_id),
        "amount": "120000",
        "type": "new",
        "stage": "qualify",
        "probability": "",
        "opened_at": "2026-03-01",
        "closed_at": "",
        "lost_reason": "",
        "owner_id": "",
        **values,
    }


def test_list_filters_and_totals(app, signed_in):
    client = signed_in("marketer")
    huaxin = make_account(app, "上海华信科技")
    boya = make_account(app, "北京博雅")
    open_one = make_opportunity(app, huaxin, name="华信订阅", amount="1234567.50", stage="solution")
    won = make_opportunity(app, boya, name="博雅续约", amount="50000", stage="won", type="renewal")
    lost = make_opportunity(
        app,
        boya,
        name="博雅增购",
        amount="8000",
        stage="lost",
        lost_reason="预算",
        type="expansion",
    )
    page = client.get("/admin/opportunities").text
    assert set(listed(page)) == {open_one, won, lost}
    assert total(page, "count") == "3"
    assert total(page, "pipeline") == "¥1,234,567.50"
    assert total(page, "weighted") == "¥370,370.25"  # 30% of the open one
    assert total(page, "won") == "¥50,000.00"
    assert "¥1,234,567.50" in page and f'href="/admin/accounts/{huaxin}"' in page

    def shown(**args):
        return set(listed(client.get("/admin/opportunities", query_string=args).text))

    assert shown(status="open") == {open_one}
    assert shown(status="won") == {won}
    assert shown(stage="lost") == {lost}
    assert shown(type="renewal") == {won}
    assert shown(q="博雅") == {won, lost}
    assert shown(q="华信") == {open_one}
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the workspace's day
    assert shown(closed_from=today.isoformat()) == {won, lost}
    assert shown(opened_to=(today - timedelta(days=2)).isoformat()) == set()
    assert shown(owner="none") == {open_one, won, lost}
    assert shown(status="bogus") == {open_one, won, lost}  # not an option: dropped


def test_sales_see_and_edit_only_their_accounts_opportunities(app, signed_in):
    client = signed_in("sales")
    me = user_id(app, "sales@acme.example")
    other = make_user(app, "sales", email="other@acme.example")
    mine = make_account(app, "我的客户", owner_id=me)
    theirs = make_account(app, "别人的客户", owner_id=other)
    my_opp = make_opportunity(app, mine, name="我的商机")
    their_opp = make_opportunity(app, theirs, name="别人的商机")
    page = client.get("/admin/opportunities").text
    assert listed(page) == [my_opp]
    assert listed(client.get("/admin/opportunities?scope=all").text) == [my_opp]
    assert client.get(f"/admin/opportunities/{their_opp}").status_code == 404
    assert client.get(f"/admin/opportunities/{their_opp}/edit").status_code == 404
    assert client.get(f"/admin/opportunities/{my_opp}/edit").status_code == 200
    # Their account is not offered, and naming it anyway is refused.
    new_page = client.get("/admin/opportunities/new").text
    assert "我的客户" in new_page and "别人的客户" not in new_page
    response = post(client, "/admin/opportunities/new", form(theirs))
    assert response.status_code == 422
    assert field_errors(response.text, "account_id") == ["不是您的客户。"]
    assert "别人的商机" not in opportunities_section(client.get(f"/admin/accounts/{theirs}").text)
    with session_of(app) as session:
        assert session.scalar(select(Opportunity.id).where(Opportunity.account_id == theirs)) == (
            their_opp
        )
        count = len(session.scalars(select(Opportunity)).all())
    assert count == 2
    # Their own account: saved, they are the one in the history.
    response = post(client, "/admin/opportunities/new", form(mine, name="第二单"))
    assert response.status_code == 302
    assert listed(client.get("/admin/opportunities").text).__len__() == 2


def test_viewer_may_not_add(app, signed_in):
    client = signed_in("viewer")
    assert client.get("/admin/opportunities").status_code == 200
    assert client.get("/admin/opportunities/new").status_code == 403
    assert client.get("/admin/opportunities/pipeline").status_code == 403


def test_form_field_messages_in_chinese_and_nothing_saved(app, signed_in):
    client = signed_in("marketer")
    account = make_account(app, "上海华信科技")
    response = post(
        client,
        "/admin/opportunities/new",
        form(account, name="", amount="很多", probability="150", opened_at="2026-13-01"),
    )
    assert response.status_code == 422
    page = response.text
    assert field_errors(page, "name") == ["必填。"]
    assert field_errors(page, "amount") == ["不是金额，例如 120000、12万 或 ¥120,000.00。"]
    assert field_errors(page, "opened_at") == ["日期格式如 2026-03-01。"]
    response = post(client, "/admin/opportunities/new", form(account, probability="150"))
    assert field_errors(response.text, "probability") == ["超出范围。"]
    response = post(client, "/admin/opportunities/new", form(account, stage="lost"))
    assert field_errors(response.text, "lost_reason") == ["请填写输单原因。"]
    with session_of(app) as session:
        assert session.scalars(select(Opportunity)).all() == []


def test_another_workspaces_account_is_refused(app, signed_in):
    client = signed_in("marketer")
    foreign = make_account(app, "别家客户", workspace="globex")
    response = post(client, "/admin/opportunities/new", form(foreign))
    assert response.status_code == 422
    assert field_errors(response.text, "account_id") == ["不是本工作区的客户公司。"]
    with session_of(app) as session:
        assert session.scalars(select(Opportunity)).all() == []


def test_create_and_edit_keep_history_audit_and_move_the_account(app, signed_in):
    client = signed_in("marketer")
    me = user_id(app, "marketer@acme.example")
    account = make_account(app, "上海华信科技")
    response = post(
        client,
        "/admin/opportunities/new",
        form(account, amount="¥120,000.50", stage="solution", owner_id=str(me)),
    )
    assert response.status_code == 302, response.text
    opportunity_id = int(response.location.rsplit("/", 1)[-1])
    with session_of(app) as session:
        opportunity = session.get(Opportunity, opportunity_id)
        assert opportunity.amount == Decimal("120000.50")
        assert opportunity.source == "admin" and opportunity.owner_id == me
        assert opportunity.probability == 30
        assert session.get(Account, account).stage == "opportunity"
    edit = post(
        client,
        f"/admin/opportunities/{opportunity_id}/edit",
        # The probability as the form shows it: the new stage's own replaces it.
        form(account, amount="150000", stage="lost", lost_reason="预算取消", probability="30"),
    )
    assert edit.status_code == 302, edit.text
    with session_of(app) as session:
        opportunity = session.get(Opportunity, opportunity_id)
        assert (opportunity.status, opportunity.owner_id) == ("lost", None)
        assert opportunity.probability == 0
        assert opportunity.closed_at is not None
        changes = session.scalars(
            select(OpportunityChange).where(OpportunityChange.opportunity_id == opportunity_id)
        ).all()
        assert [(c.to_stage, c.user_id) for c in changes] == [("solution", me), ("lost", me)]
        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.target_type == "opportunity")
        ).all()
        assert sorted(actions) == ["opportunity.create", "opportunity.update"]
    detail = client.get(f"/admin/opportunities/{opportunity_id}").text
    assert "¥150,000.00" in detail and "预算取消" in detail
    assert 'id="account-stage-moves"' in detail and "Marketer User" in detail
    section = opportunities_section(client.get(f"/admin/accounts/{account}").text)
    assert "年度订阅" in section and "¥150,000.00" in section
    assert f"/admin/opportunities/new?account_id={account}" in section
    new_page = client.get(f"/admin/opportunities/new?account_id={account}").text
    assert re.search(rf'<option value="{account}" selected>', new_page)


def pipeline_form(stages) -> dict:
    data = {}
    for index, stage in enumerate(stages):
        for name, value in stage.items():
            data[f"stages.{index}.{name}"] = value
    return data


DEFAULT = [
    {"key": "qualify", "name": "需求确认", "probability": "10", "account_stage": "meeting"},
    {"key": "solution", "name": "方案报价", "probability": "30", "account_stage": "opportunity"},
    {"key": "negotiation", "name": "商务谈判", "probability": "60", "account_stage": "opportunity"},
    {
        "key": "won",
        "name": "赢单",
        "probability": "100",
        "account_stage": "customer",
        "outcome": "won",
    },
    {"key": "lost", "name": "输单", "probability": "0", "outcome": "lost"},
]


def test_pipeline_validation(app, signed_in):
    client = signed_in("marketer")
    assert client.get("/admin/opportunities/pipeline").status_code == 200
    account = make_account(app, "上海华信科技")
    make_opportunity(app, account, stage="negotiation")

    def save(stages):
        return post(client, "/admin/opportunities/pipeline", pipeline_form(stages))

    duplicate = save([*DEFAULT, {"key": "qualify", "name": "重复", "probability": "5"}])
    assert duplicate.status_code == 422
    assert field_errors(duplicate.text, "stages.5.key") == ["已有其他阶段使用此标识。"]
    no_won = save([row for row in DEFAULT if row["key"] != "won"])
    assert "必须恰好有一个阶段表示赢单。" in no_won.text
    # Both at once: the list's problem and the stage in use that the form removes.
    both = save([*DEFAULT[:2], {**DEFAULT[2], "remove": "1"}, {**DEFAULT[3], "outcome": ""}])
    assert "必须恰好有一个阶段表示赢单。" in both.text
    assert field_errors(both.text, "stages.2.remove") == ["已有商机处于此阶段，不能删除。"]
    no_open = save([row for row in DEFAULT if "outcome" in row])
    assert "至少要有一个进行中的阶段。" in no_open.text
    bad_account_stage = save([{**DEFAULT[0], "account_stage": "nowhere"}, *DEFAULT[1:]])
    assert field_errors(bad_account_stage.text, "stages.0.account_stage") == [
        "不是评分模型的阶段。"
    ]
    in_use = save([*DEFAULT[:2], {**DEFAULT[2], "remove": "1"}, *DEFAULT[3:]])
    assert in_use.status_code == 422
    assert "已有商机处于此阶段，不能删除。" in in_use.text
    with session_of(app) as session:
        assert len(session.scalars(select(PipelineStage)).all()) == 5
    # A valid change: a new stage, a removed unused one, a new order by the order inputs.
    saved = save(
        [
            {**DEFAULT[0], "remove": "1", "order": "1"},
            {**DEFAULT[1], "order": "2"},
            {**DEFAULT[2], "order": "4"},
            {**DEFAULT[3], "order": "5"},
            {**DEFAULT[4], "order": "6"},
            {
                "key": "trial",
                "name": "试用",
                "probability": "20",
                "account_stage": "meeting",
                "order": "3",
            },
        ]
    )
    assert saved.status_code == 302, saved.text
    with session_of(app) as session:
        keys = session.scalars(
            select(PipelineStage.key)
            .where(PipelineStage.workspace_id == workspace_id(app))
            .order_by(PipelineStage.position)
        ).all()
        assert keys == ["solution", "trial", "negotiation", "won", "lost"]
        assert session.scalars(
            select(AuditLog.action).where(AuditLog.action == "pipeline.update")
        ).all() == ["pipeline.update"]


def test_the_new_form_posted_twice_makes_one_opportunity(app, signed_in):
    """A double click on save: the form's nonce finds the first's opportunity, and the
    second POST lands on it too; a new form (a new nonce) makes another."""
    client = signed_in("marketer")
    account = make_account(app, "上海华信科技")

    def new_form_key() -> str:
        match = re.search(
            r'name="request_key" value="([^"]+)"', client.get("/admin/opportunities/new").text
        )
        assert match, "no nonce in the new form"
        return match.group(1)

    key = new_form_key()
    first = post(client, "/admin/opportunities/new", {**form(account), "request_key": key})
    again = post(client, "/admin/opportunities/new", {**form(account), "request_key": key})
    assert first.status_code == again.status_code == 302
    assert again.location == first.location
    assert "已保存" in client.get(again.location).text
    with session_of(app) as session:
        assert len(session.scalars(select(Opportunity)).all()) == 1
        audits = session.scalars(
            select(AuditLog.action).where(AuditLog.target_type == "opportunity")
        )
        assert audits.all() == ["opportunity.create"]
    assert new_form_key() != key
    post(client, "/admin/opportunities/new", {**form(account), "request_key": new_form_key()})
    with session_of(app) as session:
        assert len(session.scalars(select(Opportunity)).all()) == 2


def test_two_posts_of_the_new_form_at_the_same_moment_make_one_opportunity(app, signed_in):
    """The second POST passes the nonce lookup while the first's row is uncommitted; the
    unique request key makes it wait, lose, and land on the first's opportunity (no 500)."""
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")
    client = signed_in("marketer")
    account = make_account(app, "上海华信科技")
    page = client.get("/admin/opportunities/new").text
    key = re.search(r'name="request_key" value="([^"]+)"', page).group(1)
    data = {**form(account), "request_key": key, "csrf_token": csrf_token(page)}
    responses = []
    with session_of(app) as first:
        won = first.get(Opportunity, make_opportunity(app, account, name="年度订阅"))
        won.request_key = key
        first.flush()  # the first POST's row, not yet committed
        thread = threading.Thread(
            target=lambda: responses.append(client.post("/admin/opportunities/new", data=data))
        )
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the first's request key
        first.commit()
        won_id = won.id
    thread.join(10)
    [response] = responses
    assert response.status_code == 302
    assert response.location.endswith(f"/admin/opportunities/{won_id}")
    with session_of(app) as session:
        assert session.scalars(select(Opportunity.id)).all() == [won_id]


def test_odd_digits_and_far_dates_are_field_messages_never_an_error_page(app, signed_in):
    client = signed_in("marketer")
    account = make_account(app, "上海华信科技")
    response = post(
        client,
        "/admin/opportunities/new",
        form(account, probability="²", owner_id="²", opened_at="0001-01-01"),
    )
    assert response.status_code == 422
    page = response.text
    assert field_errors(page, "probability") == ["0 到 100 的整数，例如 30 或 30%。"]
    assert field_errors(page, "owner_id") != []
    assert field_errors(page, "opened_at") == ["请填写 2000 年至 2100 年之间的日期。"]
    far = post(client, "/admin/opportunities/new", form("²", closed_at="9999-12-31"))
    assert far.status_code == 422
    assert field_errors(far.text, "account_id") != []
    assert field_errors(far.text, "closed_at") == ["请填写 2000 年至 2100 年之间的日期。"]
    with session_of(app) as session:
        assert session.scalars(select(Opportunity)).all() == []


def test_list_filters_with_far_dates_or_odd_digits_are_dropped(app, signed_in):
    client = signed_in("marketer")
    huaxin = make_account(app, "上海华信科技")
    deal = make_opportunity(app, huaxin, name="华信订阅", amount="1000", stage="won")
    for args in (
        {"opened_to": "9999-12-31"},
        {"closed_to": "9999-12-31"},
        {"opened_from": "0001-01-01"},
        {"closed_from": "0001-01-01"},
        {"owner": "²"},
    ):
        response = client.get("/admin/opportunities", query_string=args)
        assert response.status_code == 200, args
        assert listed(response.text) == [deal], args
