"""WeCom customer groups against the sandbox over HTTP, through real workers: events mark a
group, the refresh reads it with groupchat/get, and each customer's join or leave becomes an
interaction of their contact (by external_userid, else unionid, else a new contact) and so
of their account; a replayed event or a re-run refresh adds nothing; the sync pages
groupchat/list by cursor."""

import pytest
import requests
from sqlalchemy import func, select

from app.jobs import refresh_customer_groups
from models import (
    Channel,
    Contact,
    CustomerGroup,
    CustomerGroupMember,
    Identity,
    IdentityKind,
    Interaction,
)
from sales import groups
from tests.factories import add_contact, add_identity, make_account
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, session_of
from wechat.sandbox import wecom, wecom_groups

pytestmark = pytest.mark.sandbox


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def sandbox_post(platform, path, payload=None):
    response = requests.post(
        f"{platform.url}/sandbox/wecom/{WECOM_CREDS.app_id}/groups{path}",
        json=payload or {},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert "errcode" not in response.json(), response.text
    return response.json()


def interactions(app, kind=None):
    with session_of(app) as session:
        stmt = select(Interaction).order_by(Interaction.id)
        if kind:
            stmt = stmt.where(Interaction.kind == kind)
        return session.scalars(stmt).all()


def members(app, chat_id):
    with session_of(app) as session:
        return {
            m.userid: m
            for m in session.scalars(
                select(CustomerGroupMember)
                .join(CustomerGroup, CustomerGroup.id == CustomerGroupMember.group_id)
                .where(CustomerGroup.chat_id == chat_id)
            )
        }


def group_row(app, chat_id):
    with session_of(app) as session:
        return session.scalars(select(CustomerGroup).where(CustomerGroup.chat_id == chat_id)).one()


@pytest.fixture
def people(app, platform, corp):
    """华信科技's 王芳 (zhangsan's customer), 李娜 known only by her unionid (from the OA),
    and a stranger nobody has added."""
    account_id = make_account(app, "华信科技")
    wecom.add_external_contact(
        platform.state,
        tenant(platform),
        userid="zhangsan",
        external_userid="wm_wang",
        name="王芳",
    )
    wecom.state_of(tenant(platform)).external_contacts["wm_li"] = wecom.ExternalContact(
        "wm_li", "李娜", unionid="union_li"
    )
    settle(app, platform)
    with session_of(app) as session:
        wang = session.scalars(select(Identity).where(Identity.value == "wm_wang")).one().contact_id
        session.get(Contact, wang).account_id = account_id
        session.commit()
    li = add_contact(app, name="李娜", account_id=account_id)
    add_identity(app, li, IdentityKind.UNIONID, "union_li")
    return {"account": account_id, "wang": wang, "li": li}


def test_group_events_become_interactions_of_contacts_and_accounts(app, platform, corp, people):
    made = sandbox_post(
        platform, "", {"owner": "zhangsan", "name": "华信项目群", "members": ["wm_wang"]}
    )
    chat_id = made["chat_id"]
    sandbox_post(platform, f"/{chat_id}/members", {"userids": ["wm_li", "wm_new"], "join_scene": 3})
    sandbox_post(platform, f"/{chat_id}/members", {"userids": ["lisi"]})
    settle(app, platform)

    joins = interactions(app, "wecom.group_join")
    by_contact = {i.contact_id: i for i in joins}
    assert set(by_contact) >= {people["wang"], people["li"]}
    assert len(joins) == 3  # customers only: the staff member 李四 is a member, not a contact
    li_join = by_contact[people["li"]]
    assert li_join.account_id == people["account"]
    assert li_join.properties["chat_id"] == chat_id
    assert li_join.properties["group_name"] == "华信项目群"
    assert li_join.properties["join_scene"] == 3
    assert li_join.properties["invitor"] == "zhangsan"
    rows = members(app, chat_id)
    assert rows["wm_li"].contact_id == people["li"]
    assert rows["lisi"].member_type == 1 and rows["lisi"].contact_id is None
    with session_of(app) as session:  # 李娜 found by her unionid: her external_userid joins her
        li_ids = session.scalars(
            select(Identity.value).where(Identity.contact_id == people["li"])
        ).all()
        assert set(li_ids) == {"union_li", "wm_li"}
        stranger = session.get(Contact, rows["wm_new"].contact_id)
        assert stranger is not None and stranger.account_id is None
    group = group_row(app, chat_id)
    assert (group.name, group.owner_userid, group.member_count, group.external_count) == (
        "华信项目群",
        "zhangsan",
        5,
        3,
    )

    sandbox_post(platform, f"/{chat_id}/members/leave", {"userids": ["wm_wang"], "removed": True})
    sandbox_post(platform, f"/{chat_id}/owner", {"owner": "lisi"})
    sandbox_post(platform, f"/{chat_id}", {"name": "华信二期项目群"})
    settle(app, platform)
    (leave,) = interactions(app, "wecom.group_leave")
    assert leave.contact_id == people["wang"]
    assert leave.account_id == people["account"]
    assert leave.properties["quit_scene"] == 1
    assert members(app, chat_id)["wm_wang"].left_at is not None
    group = group_row(app, chat_id)
    assert (group.owner_userid, group.name, group.member_count) == ("lisi", "华信二期项目群", 4)

    sandbox_post(platform, f"/{chat_id}/dismiss")
    settle(app, platform)
    assert group_row(app, chat_id).dismissed_at is not None


def test_a_replayed_event_or_a_rerun_refresh_adds_nothing(app, platform, corp, people):
    chat_id = sandbox_post(platform, "", {"owner": "zhangsan", "name": "复购群"})["chat_id"]
    sandbox_post(platform, f"/{chat_id}/members", {"userids": ["wm_wang", "wm_li"]})
    settle(app, platform)
    before = [(i.kind, i.contact_id) for i in interactions(app)]
    # WeCom retries every delivery, and an operator refreshes the group again.
    for delivery in list(platform.state.deliveries):
        platform.state.deliver(tenant(platform), delivery.xml)
    settle(app, platform)
    with session_of(app) as session:
        session.execute(CustomerGroup.__table__.update().values(refresh_requested_at=func.now()))
        session.commit()
    with app.app_context():
        assert refresh_customer_groups(corp)["joins"] == 0
    settle(app, platform)
    assert [(i.kind, i.contact_id) for i in interactions(app)] == before


def test_the_sync_pages_through_the_cursor_and_dismisses_what_is_gone(
    app, platform, corp, monkeypatch
):
    chat_ids = [
        wecom_groups.create_group(
            platform.state, tenant(platform), owner="zhangsan", name=f"展会群{n}"
        ).chat_id
        for n in range(5)
    ]
    platform.state.wait_for_deliveries()
    monkeypatch.setattr(groups, "LIST_LIMIT", 2)  # three pages
    calls = []
    with session_of(app) as session:
        channel = session.get(Channel, corp)
        client = harpoon_of(app).wechat.wecom(channel.app_id, channel.secret)
        real_post = client.post

        def counting_post(path, **kwargs):
            calls.append((path, kwargs["data"].get("cursor")))
            return real_post(path, **kwargs)

        monkeypatch.setattr(client, "post", counting_post)
        result = groups.sync_groups(session, channel, client)
        assert result.listed == 5
        assert [c for p, c in calls if p.endswith("groupchat/list")] == ["", "2", "4"]
        refreshed = groups.refresh_groups(session, channel, client, 4)
        assert refreshed.refreshed == 5
    assert {group_row(app, c).name for c in chat_ids} == {f"展会群{n}" for n in range(5)}

    del wecom_groups.groups_of(tenant(platform))[chat_ids[0]]  # gone without a callback
    with session_of(app) as session:
        channel = session.get(Channel, corp)
        client = harpoon_of(app).wechat.wecom(channel.app_id, channel.secret)
        assert groups.sync_groups(session, channel, client).dismissed == 1
    assert group_row(app, chat_ids[0]).dismissed_at is not None
    assert group_row(app, chat_ids[1]).dismissed_at is None
