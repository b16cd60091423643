"""A rotating 联系我 code's form and page in a real browser (zh-CN): the rotation, cap,
backup, working hours and auto-accept fields, and the page's adds per member with who is
on the list now and why."""

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from models import Contact, ContactWay, FollowRelation, Staff, Workspace, utcnow
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_channel, make_user
from tests.helpers import WECOM_CREDS, harpoon_of

MEMBERS = (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"), ("zhaoliu", "赵六"))


def seed_rotating_code(app) -> int:
    make_user(app, "owner")
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret="s", agent_id="1000002")
    now = utcnow()
    with harpoon_of(app).db.session() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.name == "acme"))
        for userid, name in MEMBERS:
            session.add(Staff(workspace_id=ws, channel_id=channel_id, userid=userid, name=name))
        way = ContactWay(
            workspace_id=ws,
            channel_id=channel_id,
            name="2026 工博会展台",
            state="expo-2026",
            config_id="cfg-expo",
            staff_userids=["zhangsan", "lisi", "wangwu"],
            rotation="round_robin",
            daily_cap=2,
            backup_userids=["zhaoliu"],
            schedule={"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"},
            auto_accept=[{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "18:00"}],
            skip_verify=False,
            applied_userids=["lisi"],
            applied_skip_verify=True,
            applied_at=now - timedelta(minutes=3),
            sync_error="84074: user has no external contact permission",
            sync_failures=1,
            sync_retry_at=now + timedelta(minutes=1),
        )
        session.add(way)
        session.flush()
        adds = [("zhangsan", 0), ("zhangsan", 0), ("lisi", 0), ("lisi", 2), ("wangwu", 5)]
        for n, (userid, days_ago) in enumerate(adds):
            contact = Contact(workspace_id=ws, name=f"客户{n}")
            session.add(contact)
            session.flush()
            session.add(
                FollowRelation(
                    workspace_id=ws,
                    channel_id=channel_id,
                    contact_id=contact.id,
                    external_userid=f"wm{n}",
                    staff_userid=userid,
                    state=way.state,
                    contact_way_id=way.id,
                    added_at=now - timedelta(days=days_ago, minutes=n),
                )
            )
        session.commit()
        return way.id


def test_a_rotating_codes_form_and_page(app, live_server, page):
    way_id = seed_rotating_code(app)
    sign_in(page, live_server, "owner@acme.example")

    page.goto(f"{live_server}/admin/contact-ways/{way_id}")
    main = page.locator("main")
    expect(main).to_contain_text("各员工添加数")
    expect(page.locator("#member-zhangsan")).to_contain_text("已达今日上限")
    expect(page.locator("#member-wangwu")).to_contain_text("接待下一位客户")
    expect(page.locator("#member-lisi")).to_contain_text("等待轮到")
    expect(page.locator("#member-zhaoliu")).to_contain_text("备用员工")
    expect(main).to_contain_text("84074")
    screenshot(page, "ways-code-page")
    page.screenshot(path="/work/notes/shots/ways-code-page.png", full_page=True)

    page.goto(f"{live_server}/admin/contact-ways/{way_id}/edit")
    expect(page.locator("select[name=rotation]")).to_have_value("round_robin")
    expect(page.locator("input[name=auto_accept]")).to_have_value("09:00-12:00, 14:00-18:00")
    expect(main).to_contain_text("备用员工")
    screenshot(page, "ways-code-form")
    page.screenshot(path="/work/notes/shots/ways-code-form.png", full_page=True)
