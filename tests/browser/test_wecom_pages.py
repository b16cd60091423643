"""The WeCom selling pages in a real browser: 联系我 codes with their adds chart, staff and their
customers, a contact's WeCom relations, sales alerts and the inbox's missed welcomes."""

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from models import (
    Contact,
    ContactWay,
    FollowRelation,
    Staff,
    StaffNotification,
    WelcomeMessage,
    WelcomeStatus,
    Workspace,
    utcnow,
)
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_channel, make_user
from tests.helpers import WECOM_CREDS, harpoon_of


def seed_sales(app) -> int:
    make_user(app, "owner")
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret="s", agent_id="1000002")
    now = utcnow()
    with harpoon_of(app).db.session() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.name == "acme"))
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
            session.add(Staff(workspace_id=ws, channel_id=channel_id, userid=userid, name=name))
        way = ContactWay(
            workspace_id=ws,
            channel_id=channel_id,
            name="展会展台",
            state="expo-booth",
            staff_userids=["zhangsan", "lisi"],
            welcome_text="{name}您好，我是{staff}。",
        )
        session.add(way)
        session.flush()
        for n in range(6):
            contact = Contact(workspace_id=ws, name=f"客户{n}")
            session.add(contact)
            session.flush()
            session.add(
                FollowRelation(
                    workspace_id=ws,
                    channel_id=channel_id,
                    contact_id=contact.id,
                    external_userid=f"wm{n}",
                    staff_userid="zhangsan" if n % 2 else "lisi",
                    state="expo-booth",
                    contact_way_id=way.id,
                    added_at=now - timedelta(days=n),
                    removed_at=now if n == 5 else None,
                    removed_by="customer" if n == 5 else None,
                )
            )
        session.add(
            WelcomeMessage(
                workspace_id=ws,
                channel_id=channel_id,
                contact_id=contact.id,
                contact_way_id=way.id,
                external_userid="wm5",
                staff_userid="zhangsan",
                welcome_code="code-late",
                status=WelcomeStatus.MISSED,
                error="the 20-second window had passed",
                added_at=now - timedelta(seconds=40),
                received_at=now - timedelta(seconds=38),
            )
        )
        session.add(
            StaffNotification(
                workspace_id=ws,
                channel_id=channel_id,
                staff_userid="lisi",
                kind="customer_lost",
                text="客户 客户5 已将你删除（流失）。",
                status="sent",
                msgid="msg1",
                sent_at=now,
            )
        )
        session.commit()
        return contact.id


def test_contact_me_codes_staff_and_alerts(app, live_server, page):
    lost_contact = seed_sales(app)
    sign_in(page, live_server, "owner@acme.example")

    page.goto(f"{live_server}/admin/contact-ways")
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#adds-chart canvas")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("展会展台")
    screenshot(page, "contact-ways")

    page.goto(f"{live_server}/admin/staff")
    expect(page.locator("main")).to_contain_text("张三")
    screenshot(page, "staff")

    page.goto(f"{live_server}/admin/contacts/{lost_contact}")
    expect(page.locator("main")).to_contain_text("展会展台")
    screenshot(page, "contact-wecom-relations")

    page.goto(f"{live_server}/admin/notifications")
    expect(page.locator("main")).to_contain_text("流失")
    page.goto(f"{live_server}/admin/inbox")
    expect(page.locator("main")).to_contain_text("wm5")
    screenshot(page, "inbox-missed-welcome")
    assert re.search(r"/admin/inbox", page.url)
