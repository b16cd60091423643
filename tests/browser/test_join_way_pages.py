"""The 群活码 pages in a real browser (zh-CN): the list, a code's page with its QR code
picture, joins per day and per group, the form, the group welcome messages, a group send
to customer groups with its results, and the attribution page's 群活码 tab."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from crm.tags import TagBook
from models import Channel, GroupSend, TagGroup, utcnow
from revenue.attribution import attribute_opportunities
from sales.group_send import create_group_chat_send, fetch_group_send_results, send_group_send
from sales.group_welcome import create_group_welcome
from sales.join_ways import create_join_way
from tests.browser.helpers import screenshot, sign_in
from tests.factories import (
    add_staff,
    make_account,
    make_contact,
    make_group_member,
    make_interaction,
    make_opportunity,
    make_synced_group,
    make_user,
    workspace_id,
)
from tests.helpers import harpoon_of
from tests.wecom_platform import connect_corp, corp, sync_staff_now, wecom_client
from wechat.sandbox import wecom, wecom_groups

pytestmark = pytest.mark.sandbox


def seed(app, platform) -> int:
    make_user(app, "owner")
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)
    chats = {}
    for name in ("2026 数字化峰会交流群", "2026 数字化峰会交流群 2"):
        with platform.state.lock:
            made = wecom_groups.create_group(
                platform.state, corp(platform), owner="zhangsan", name=name
            )
        group_id = make_synced_group(app, channel_id, made.chat_id, name, member_count=180)
        chats[made.chat_id] = group_id
    client = wecom_client(app, channel_id)
    db = harpoon_of(app).db
    with db.session() as session:
        channel = session.get(Channel, channel_id)
        book = TagBook(session, channel.workspace_id)
        summit = book.get(session, TagGroup.SOURCE, "2026 数字化峰会").id
        interest = book.get(session, TagGroup.INTEREST, "数字化转型").id
        way = create_join_way(
            session,
            channel,
            client,
            {
                "name": "2026 数字化峰会 · 会场",
                "state": "summit2026-venue",
                "chat_ids": list(chats),
                "room_base_name": "2026 数字化峰会交流群",
                "room_base_id": 3,
                "tag_ids": [summit, interest],
            },
        )
        create_join_way(
            session,
            channel,
            client,
            {"name": "CIO 闭门会", "state": "cio-roundtable", "chat_ids": list(chats)[:1]},
        )
        create_group_welcome(
            session,
            channel,
            client,
            {
                "name": "峰会交流群欢迎语",
                "text": "欢迎 %NICKNAME% 加入 2026 数字化峰会交流群！议程和讲义在群公告。",
                "link_title": "2026 数字化峰会议程",
                "link_url": "https://example.com/summit2026/agenda",
                "link_desc": "主论坛、制造与金融分论坛、闭门会",
            },
            None,
        )
        session.commit()
        way_id = way.id
    now = utcnow()
    for n in range(40):
        group_id = list(chats.values())[0 if n < 28 else 1]
        make_group_member(
            app,
            group_id,
            f"wmGuest{n:03d}",
            state="summit2026-venue",
            joined_at=now - timedelta(days=n % 9, hours=n),
            left_at=now if n % 11 == 0 else None,
        )

    with db.session() as session:
        ws = session.get(Channel, channel_id).workspace_id
        sent = create_group_chat_send(
            session,
            ws,
            channel_id,
            "zhangsan",
            "峰会明天上午 9 点开始，签到处在一楼大厅。",
            list(chats),
            None,
        ).group_send
        session.commit()
        send_group_send(session, sent, client)
        msgid, send_id = sent.msgid, sent.id
    with platform.state.lock:  # the second group changed hands before 张三 confirmed
        wecom_groups.groups_of(corp(platform))[list(chats)[1]].owner = "lisi"
    wecom.confirm_msg_template(platform.state, corp(platform), msgid)
    with db.session() as session:
        fetch_group_send_results(session, session.get(GroupSend, send_id), client)

    account = make_account(app, "华信科技")
    cio = make_contact(app, "王总", account_id=account)
    make_interaction(
        app,
        cio,
        "wecom.group_join",
        at=now - timedelta(days=5),
        channel_id=channel_id,
        state="summit2026-venue",
    )
    make_opportunity(app, account, amount="260000", opened_at=now - timedelta(days=2))
    with db.session() as session:
        attribute_opportunities(session, workspace_id(app))
    return way_id, send_id


def test_join_way_pages(wecom_harpoon, platform, page):
    app, base = wecom_harpoon
    way_id, send_id = seed(app, platform)
    sign_in(page, base, "owner@acme.example")

    page.goto(f"{base}/admin/join-ways")
    expect(page.locator("main")).to_contain_text("2026 数字化峰会 · 会场")
    expect(page.locator("nav")).to_contain_text("群活码")
    screenshot(page, "joinway-list")

    page.goto(f"{base}/admin/join-ways/{way_id}")
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#joins-chart canvas")).to_have_count(1)
    picture = page.locator(".qr-image img")
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.naturalWidth") > 0, "the QR code picture did not load"
    expect(page.locator("main")).to_contain_text("仍在群内")
    screenshot(page, "joinway-detail")

    page.goto(f"{base}/admin/join-ways/{way_id}/edit")
    expect(page.locator("main")).to_contain_text("群满后自动新建群")
    screenshot(page, "joinway-form")

    page.goto(f"{base}/admin/group-welcomes")
    expect(page.locator("main")).to_contain_text("群主")
    screenshot(page, "joinway-group-welcomes")

    page.goto(f"{base}/admin/group-sends/{send_id}")
    expect(page.locator("main")).to_contain_text("2026 数字化峰会交流群")
    screenshot(page, "joinway-group-send")

    page.goto(f"{base}/admin/revenue/attribution?dimension=join_way")
    expect(page.locator("main")).to_contain_text("2026 数字化峰会 · 会场")
    screenshot(page, "joinway-attribution")
