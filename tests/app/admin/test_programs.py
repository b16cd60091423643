"""The tier programs pages: the menu per tier with budgets, the order queue (approve,
reject, execute with the cost), the account page's menu a salesperson ticks for their own
accounts only; field messages in Chinese."""

from decimal import Decimal

from sqlalchemy import select

from models import AccountEvent, AuditLog, Program, ProgramOrder, Task, User
from tests.app.admin.helpers import field_errors, post_form, post_with_token
from tests.factories import make_account, make_program, make_program_order
from tests.helpers import all_of, session_of


def user_id(app, role: str) -> int:
    with session_of(app) as session:
        return session.scalar(select(User.id).where(User.email == f"{role}@acme.example"))


def orders(app) -> list[tuple[int, int, str]]:
    return [(o.program_id, o.account_id, o.status) for o in all_of(app, ProgramOrder)]


def test_marketers_see_the_menu_and_queue_and_sales_may_not(app, signed_in):
    marketer = signed_in("marketer")
    program = make_program(app, "闭门会邀请", tier=1, budget="10000", unit_cost="2500")
    account = make_account(app, "华信科技", tier=1)
    make_program_order(app, program, account, status="executed")
    page = marketer.get("/admin/programs?tier=1")
    assert page.status_code == 200
    assert "分层营销计划" in page.text and "闭门会邀请" in page.text
    assert 'href="/admin/programs"' in page.text  # the navigation
    assert "¥2,500.00" in page.text and "¥7,500.00" in page.text and "25%" in page.text
    assert marketer.get("/admin/programs?tier=2").text.count('data-program="') == 0
    seller = signed_in("sales")
    assert seller.get("/admin/programs").status_code == 403
    assert seller.get("/admin/programs/orders").status_code == 403
    assert 'href="/admin/programs"' not in seller.get("/admin/").text


def test_a_menu_item_is_saved_audited_and_its_field_messages_are_chinese(app, signed_in):
    client = signed_in("marketer")
    bad = post_form(
        client,
        "/admin/programs/new",
        {"name": "", "tier": "1", "kind": "gift", "budget": "一万", "unit_cost": "-5"},
    )
    assert bad.status_code == 400
    assert field_errors(bad.text, "name") == ["必填。"]
    assert field_errors(bad.text, "budget") == ["请填写以元为单位的金额，例如 12000 或 12000.50。"]
    assert field_errors(bad.text, "unit_cost") == ["不小于 0。"]
    good = {"name": "礼品寄送", "tier": "2", "kind": "gift", "budget": "¥20,000", "active": "y"}
    assert post_form(client, "/admin/programs/new", good).status_code == 302
    again = post_form(client, "/admin/programs/new", good)
    assert again.status_code == 400
    assert field_errors(again.text, "name") == ["该分级已有同名计划。"]
    [program] = all_of(app, Program)
    assert (program.tier, program.budget, program.unit_cost) == (2, Decimal("20000"), None)
    assert [e.action for e in all_of(app, AuditLog)] == ["program.create"]
    edit = post_form(
        client,
        f"/admin/programs/{program.id}/edit",
        {**good, "budget": "25000.5", "unit_cost": "1200"},
    )
    assert edit.status_code == 302
    [program] = all_of(app, Program)
    assert (program.budget, program.unit_cost) == (Decimal("25000.50"), Decimal("1200"))


def test_a_salesperson_ticks_programs_on_their_own_account_only(app, signed_in):
    seller = signed_in("sales")
    mine = make_account(app, "华信科技", tier=1, owner_id=user_id(app, "sales"))
    theirs = make_account(app, "远景能源", tier=1)
    untiered = make_account(app, "新公司", owner_id=user_id(app, "sales"))
    event = make_program(app, "闭门会邀请", tier=1)
    visit = make_program(app, "高管拜访", tier=1)
    other_tier = make_program(app, "精准广告", tier=2)
    page = seller.get(f"/admin/accounts/{mine}").text
    assert "闭门会邀请" in page and "高管拜访" in page and "精准广告" not in page
    answer = post_with_token(
        seller,
        f"/admin/accounts/{mine}/programs",
        {"program_ids": [str(event), str(visit), str(other_tier)], "note": "CIO 想见高管"},
    )
    assert answer.status_code == 302
    assert orders(app) == [(event, mine, "requested"), (visit, mine, "requested")]
    page = seller.get(f"/admin/accounts/{mine}").text
    assert "精准广告：该计划属于其他分级的菜单。" in page
    assert "已申请：闭门会邀请、高管拜访。" in page and "CIO 想见高管" in page
    # A second tick of an open program is refused; the account's timeline has both.
    post_with_token(seller, f"/admin/accounts/{mine}/programs", {"program_ids": str(event)})
    assert (
        "闭门会邀请：该计划已为此客户申请，尚未完成。" in seller.get(f"/admin/accounts/{mine}").text
    )
    assert len(orders(app)) == 2
    assert [e.data["status"] for e in all_of(app, AccountEvent)] == ["requested"] * 2
    assert [e.action for e in all_of(app, AuditLog)] == ["program_order.request"] * 2
    # Someone else's account: the menu is shown but not tickable, and a post is refused.
    other_page = seller.get(f"/admin/accounts/{theirs}").text
    assert "只有客户负责人或市场人员可以为其申请计划。" in other_page
    refused = post_with_token(
        seller, f"/admin/accounts/{theirs}/programs", {"program_ids": str(event)}
    )
    assert refused.status_code == 403 and len(orders(app)) == 2
    assert "此客户还没有分级" in seller.get(f"/admin/accounts/{untiered}").text


def test_a_marketer_approves_and_executes_and_the_owner_gets_a_task(app, signed_in):
    client = signed_in("marketer")
    seller = signed_in("sales")
    account = make_account(app, "华信科技", tier=1, owner_id=user_id(app, "sales"))
    program = make_program(app, "闭门会邀请", tier=1, budget="2000", unit_cost="1500")
    order = make_program_order(app, program, account, user_id=user_id(app, "sales"))
    queue = client.get("/admin/programs/orders").text
    assert f'id="order-{order}"' in queue and "待审批" in queue
    assert (
        post_with_token(
            client, f"/admin/programs/orders/{order}/approve", {f"approve-{order}-note": "本月"}
        ).status_code
        == 302
    )
    # The date may not be in the future; the cost is required and a decimal.
    bad = post_with_token(
        client,
        f"/admin/programs/orders/{order}/execute",
        {f"execute-{order}-cost": "", f"execute-{order}-executed_on": "2999-01-01"},
    )
    assert bad.status_code == 400
    assert field_errors(bad.text, f"execute-{order}-cost") == ["请记录费用。"]
    future = post_with_token(
        client,
        f"/admin/programs/orders/{order}/execute",
        {f"execute-{order}-cost": "1,850.50", f"execute-{order}-executed_on": "2999-01-01"},
    )
    assert field_errors(future.text, f"execute-{order}-executed_on") == ["不能是将来的日期。"]
    done = post_with_token(
        client,
        f"/admin/programs/orders/{order}/execute",
        {f"execute-{order}-cost": "1,850.50", f"execute-{order}-executed_on": "2026-01-05"},
    )
    assert done.status_code == 302
    [row] = all_of(app, ProgramOrder)
    assert (row.status, row.cost, row.decided_by) == (
        "executed",
        Decimal("1850.50"),
        user_id(app, "marketer"),
    )
    assert row.executed_at.date().isoformat() == "2026-01-05"
    [task] = all_of(app, Task)
    assert task.assignee_id == user_id(app, "sales") and "闭门会邀请" in task.title
    assert [e.action for e in all_of(app, AuditLog)] == [
        "program_order.approve",
        "program_order.execute",
    ]
    account_page = seller.get(f"/admin/accounts/{account}").text
    assert "已执行" in account_page and "¥1,850.50" in account_page


def test_over_budget_needs_a_reason_and_a_rejection_a_note(app, signed_in):
    client = signed_in("marketer")
    program = make_program(app, "高管拜访", tier=1, budget="1000", unit_cost="1500")
    first = make_program_order(app, program, make_account(app, "华信科技", tier=1))
    second = make_program_order(app, program, make_account(app, "远景能源", tier=1))
    refused = post_with_token(client, f"/admin/programs/orders/{first}/approve", {})
    assert refused.status_code == 400
    assert field_errors(refused.text, f"approve-{first}-over_budget_reason") == [
        "批准将超出该计划的预算：如仍要批准，请填写理由。"
    ]
    approved = post_with_token(
        client,
        f"/admin/programs/orders/{first}/approve",
        {f"approve-{first}-over_budget_reason": "战略客户"},
    )
    assert approved.status_code == 302
    no_note = post_with_token(client, f"/admin/programs/orders/{second}/reject", {})
    assert field_errors(no_note.text, f"reject-{second}-note") == ["请填写理由。"]
    post_with_token(
        client, f"/admin/programs/orders/{second}/reject", {f"reject-{second}-note": "名额已满"}
    )
    assert [o[2] for o in orders(app)] == ["approved", "rejected"]
    assert "超预算批准：战略客户" in all_of(app, ProgramOrder)[0].note
    assert client.get("/admin/programs/orders?status=rejected").text.count('id="order-') == 1


def test_another_workspaces_order_is_not_found(app, signed_in):
    client = signed_in("marketer")
    theirs = make_program_order(
        app,
        make_program(app, "闭门会邀请", tier=1, workspace="globex"),
        make_account(app, "华信科技", tier=1, workspace="globex"),
        workspace="globex",
    )
    answer = post_with_token(
        client, f"/admin/programs/orders/{theirs}/reject", {f"reject-{theirs}-note": "x"}
    )
    assert answer.status_code == 404
    assert orders(app)[0][2] == "requested"


def test_a_blank_name_is_required_and_a_far_date_a_field_message(app, signed_in):
    client = signed_in("marketer")
    blank = post_form(
        client,
        "/admin/programs/new",
        {"name": "   ", "tier": "1", "kind": "gift", "budget": "1000"},
    )
    assert blank.status_code == 400
    assert field_errors(blank.text, "name") == ["必填。"]
    assert all_of(app, Program) == []
    account = make_account(app, "华信科技", tier=1, owner_id=user_id(app, "sales"))
    program = make_program(app, "闭门会邀请", tier=1, budget="2000", unit_cost="1500")
    order = make_program_order(app, program, account, user_id=user_id(app, "sales"))
    approve = f"/admin/programs/orders/{order}/approve"
    assert post_with_token(client, approve, {}).status_code == 302
    for day, message in (
        ("0001-01-01", "请填写 2000 年至 2100 年之间的日期。"),
        ("9999-12-31", "不能是将来的日期。"),
    ):
        far = post_with_token(
            client,
            f"/admin/programs/orders/{order}/execute",
            {f"execute-{order}-cost": "100", f"execute-{order}-executed_on": day},
        )
        assert far.status_code == 400, day
        assert field_errors(far.text, f"execute-{order}-executed_on") == [message], day
    [row] = all_of(app, ProgramOrder)
    assert row.status == "approved"
