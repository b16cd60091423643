"""The transfers area: starting a transfer from a staff member (all, by account, chosen),
the confirmation before anything is queued, the send job, the transfer's page with each
customer's status and its error in Chinese, the account page's link, and tenancy."""

import pytest
from sqlalchemy import select

from core.jobs import Job
from models import Channel, Staff, Transfer, TransferItem, TransferItemStatus
from sales.transfers import TOO_OFTEN
from tests.app.admin.helpers import csrf_token
from tests.factories import add_relation, make_account, make_channel, make_staff
from tests.helpers import WECOM_CREDS, all_of, harpoon_of, queued_jobs, session_of
from wechat.simulate import Credentials


@pytest.fixture
def corp(app, wecom_channel):
    """张三 has 王芳 and 李娜 of 华信科技 and 赵敏 of none; 李四 takes over."""
    account_id = make_account(app, "华信科技")
    contacts = {
        ext: add_relation(
            app, wecom_channel, staff_userid="zhangsan", external_userid=ext, name=name, account=acc
        )
        for ext, name, acc in (
            ("wm_a", "王芳", True),
            ("wm_b", "李娜", True),
            ("wm_c", "赵敏", False),
        )
    }
    return {
        "channel_id": wecom_channel,
        "account_id": account_id,
        "contacts": contacts,
        "zhangsan": make_staff(app, "张三", "zhangsan"),
        "lisi": make_staff(app, "李四", "lisi"),
    }


def new_page(corp):
    return f"/admin/transfers/new/{corp['zhangsan']}"


def post(client, path, data):
    token = csrf_token(client.get(path).text)
    return client.post(path, data={**data, "csrf_token": token})


def test_a_transfer_is_confirmed_then_queued(app, signed_in, corp):
    client = signed_in("marketer")
    page = client.get(new_page(corp))
    assert page.status_code == 200
    assert "王芳 · 华信科技" in page.text
    data = {"takeover": corp["lisi"], "scope": "account", "account": corp["account_id"]}
    review = post(client, new_page(corp), data)
    assert review.status_code == 200
    assert "确认" in review.text and 'id="transfer-confirm"' in review.text
    assert all_of(app, Transfer) == []
    done = post(client, new_page(corp), {**data, "confirmed": "yes"})
    assert done.status_code == 302
    (transfer,) = all_of(app, Transfer)
    assert transfer.account_id == corp["account_id"]
    with session_of(app) as session:
        chosen = session.scalars(
            select(TransferItem.external_userid).where(TransferItem.transfer_id == transfer.id)
        ).all()
    assert sorted(chosen) == ["wm_a", "wm_b"]
    assert queued_jobs(app) == [(Job.SEND_TRANSFER, (transfer.id,))]


def test_the_transfer_page_shows_each_customers_status_in_chinese(app, signed_in, corp):
    client = signed_in("admin")
    post(
        client,
        new_page(corp),
        {
            "takeover": corp["lisi"],
            "scope": "chosen",
            "customers": ["wm_a", "wm_c"],
            "confirmed": "yes",
        },
    )
    (transfer,) = all_of(app, Transfer)
    with session_of(app) as session:
        for item in session.scalars(select(TransferItem)):
            if item.external_userid == "wm_a":
                item.status, item.errcode = TransferItemStatus.FAILED, TOO_OFTEN
            else:
                item.status = TransferItemStatus.WAITING
        session.commit()
    page = client.get(f"/admin/transfers/{transfer.id}")
    assert page.status_code == 200
    assert "90 天" in page.text and "40128" in page.text
    assert "等待接替" in page.text
    assert client.get("/admin/transfers").status_code == 200


def test_the_account_page_links_to_its_transfer(app, signed_in, corp):
    page = signed_in("marketer").get(f"/admin/accounts/{corp['account_id']}")
    assert f"/admin/transfers/new/{corp['zhangsan']}?account_id={corp['account_id']}" in page.text
    assert (
        'id="account-transfers"'
        not in signed_in("sales").get(f"/admin/accounts/{corp['account_id']}").text
    )


def test_sales_may_not_transfer(signed_in, corp):
    assert signed_in("sales").get(new_page(corp)).status_code == 403


def test_another_workspaces_staff_is_refused(app, signed_in, corp):
    rival = make_channel(
        app, "wecom", Credentials("wwrival", "rivaltoken", WECOM_CREDS.aes_key), workspace="rival"
    )
    with session_of(app) as session:
        spy = Staff(
            workspace_id=session.get(Channel, rival).workspace_id,
            channel_id=rival,
            userid="spy",
            name="间谍",
        )
        session.add(spy)
        session.commit()
        spy_id = spy.id
    client = signed_in("marketer")
    answer = post(client, new_page(corp), {"takeover": spy_id, "scope": "all", "confirmed": "yes"})
    assert answer.status_code == 400
    assert all_of(app, Transfer) == []
    assert client.get(f"/admin/transfers/new/{spy_id}").status_code == 404
    assert harpoon_of(app)
