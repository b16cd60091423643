"""The sidebar's tier programs: what the account has ordered, and one tap to request a
program of its tier's menu, ordered once however often the tap is retried; only the
account's owner (or a marketer) may tap."""

import re

import pytest
from sqlalchemy import select

from models import AccountEvent, ProgramOrder, User
from tests.app.admin.helpers import csrf_token
from tests.factories import (
    make_account,
    make_customer,
    make_program,
    make_program_order,
    make_staff,
)
from tests.helpers import all_of, session_of

CUSTOMER = "wmCustomer001"


def user_id(app, role: str) -> int:
    with session_of(app) as session:
        return session.scalar(select(User.id).where(User.email == f"{role}@acme.example"))


@pytest.fixture
def seller(app, wecom_channel, signed_in):
    client = signed_in("sales")
    make_staff(app, "张三", "zhangsan", user_id=user_id(app, "sales"))
    return client


def customer_of(app, channel, account_id, external_userid=CUSTOMER):
    return make_customer(
        app, channel, external_userid, "李雷", staff_userid="zhangsan", account_id=account_id
    )


def panel(client, channel, external_userid=CUSTOMER) -> str:
    answer = client.get(f"/wecom/panel/{channel}/contact/{external_userid}")
    assert answer.status_code == 200
    return answer.text


def tap(client, page: str, program_id: int):
    """Post the menu item's one-tap form as the panel's shell does."""
    form = re.search(
        r'<form class="wp-program"[^>]*action="([^"]+)">(?:(?!</form>).)*?'
        rf'name="program_id" value="{program_id}">\s*<input type="hidden" name="nonce" '
        r'value="([^"]+)"',
        page,
        re.S,
    )
    assert form, f"no tap for program {program_id}"
    token = csrf_token(client.get("/admin/").text)
    return client.post(
        form.group(1),
        data={"program_id": program_id, "nonce": form.group(2), "csrf_token": token},
    )


def test_the_owner_taps_a_program_once_however_often_the_tap_is_sent(app, wecom_channel, seller):
    account = make_account(app, "华信科技", tier=1, owner_id=user_id(app, "sales"))
    customer_of(app, wecom_channel, account)
    event = make_program(app, "闭门会邀请", tier=1, unit_cost="3000")
    gift = make_program(app, "礼品寄送", tier=1)
    make_program(app, "精准广告", tier=2)
    make_program_order(app, gift, account, status="executed")
    page = panel(seller, wecom_channel)
    assert "分层营销计划" in page and "闭门会邀请" in page and "≈ ¥3,000" in page
    assert "精准广告" not in page  # another tier's menu
    assert re.search(r"礼品寄送</span><span[^>]*>已执行", page)
    first = tap(seller, page, event)
    again = tap(seller, page, event)  # the shell retried the same tap
    assert first.status_code == again.status_code == 200
    assert "已申请：闭门会邀请。" in again.text
    assert re.search(r"闭门会邀请</span><span[^>]*>待审批", again.text)
    assert f'data-program="{event}"' not in again.text  # no second tap offered
    asked = [o for o in all_of(app, ProgramOrder) if o.program_id == event]
    assert [(o.account_id, o.requested_by, o.status) for o in asked] == [
        (account, user_id(app, "sales"), "requested")
    ]
    events = [e for e in all_of(app, AccountEvent) if e.data.get("program_id") == event]
    assert len(events) == 1


def test_a_customer_whose_account_is_someone_elses_shows_the_menu_without_taps(
    app, wecom_channel, seller
):
    account = make_account(app, "远景能源", tier=1)  # no owner: not the salesperson's
    customer_of(app, wecom_channel, account)
    program = make_program(app, "高管拜访", tier=1)
    page = panel(seller, wecom_channel)
    assert "高管拜访" in page and f'data-program="{program}"' not in page
    assert "只有客户负责人或市场人员可以为其申请计划。" in page
    refused = tap(seller, page, program)
    assert refused.status_code == 403 and all_of(app, ProgramOrder) == []


def test_an_account_without_a_tier_says_why_it_has_no_menu(app, wecom_channel, seller):
    account = make_account(app, "新公司", owner_id=user_id(app, "sales"))
    customer_of(app, wecom_channel, account)
    make_program(app, "高管拜访", tier=1)
    assert "此客户还没有分级" in panel(seller, wecom_channel)
