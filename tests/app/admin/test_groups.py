"""Customer group pages: the list with its owner and account filters, a group's members by
account and role with who left, an account's groups, "sync now", and tenancy (another
workspace's group is a 404)."""

import re

import pytest
from sqlalchemy import update

from core.jobs import Job
from models import CustomerGroupMember, utcnow
from tests.factories import (
    add_contact,
    make_account,
    make_customer_group,
    make_staff,
)
from tests.helpers import queued_jobs, session_of


@pytest.fixture
def groups(app, wecom_channel):
    """华信项目群 (张三's): 王芳 (CIO) and 李娜 of 华信科技, 陈晨 of 远景, a stranger, and 张三;
    远景交流群 (李四's): 陈晨 only."""
    make_staff(app, "张三", "zhangsan")
    make_staff(app, "李四", "lisi")
    huaxin, yuanjing = make_account(app, "华信科技"), make_account(app, "远景能源")
    wang = add_contact(
        app,
        name="王芳",
        title="信息中心主任",
        role="cio",
        account_id=huaxin,
        external_userid="wm_wang",
        channel_id=wecom_channel,
    )
    li = add_contact(app, name="李娜", account_id=huaxin)
    chen = add_contact(app, name="陈晨", account_id=yuanjing)
    stranger = add_contact(app, name="")
    project = make_customer_group(
        app,
        wecom_channel,
        "华信项目群",
        [
            ("zhangsan", None, 1),
            ("wm_wang", wang, 2),
            ("wm_li", li, 2),
            ("wm_chen", chen, 2),
            ("wm_x", stranger, 2),
        ],
    )
    other = make_customer_group(
        app, wecom_channel, "远景交流群", [("lisi", None, 1), ("wm_chen", chen, 2)], owner="lisi"
    )
    with session_of(app) as session:  # 李娜 left the project group
        session.execute(
            update(CustomerGroupMember)
            .where(CustomerGroupMember.userid == "wm_li", CustomerGroupMember.group_id == project)
            .values(left_at=utcnow(), quit_scene=0)
        )
        session.commit()
    return {"project": project, "other": other, "huaxin": huaxin, "yuanjing": yuanjing}


def group_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="group-(\d+)"', page)]


def test_the_list_filters_by_owner_and_account(signed_in, groups):
    client = signed_in("viewer")
    page = client.get("/admin/groups")
    assert page.status_code == 200
    assert "客户群" in page.text
    assert set(group_ids(page.text)) == {groups["project"], groups["other"]}
    row = page.text.split(f'id="group-{groups["project"]}"')[1].split("</tr>")[0]
    assert "张三" in row
    assert re.search(r'data-count="accounts">2<', row)  # 华信 (王芳) and 远景 (陈晨); 李娜 left
    assert group_ids(client.get("/admin/groups?owner=lisi").text) == [groups["other"]]
    by_account = client.get(f"/admin/groups?account_id={groups['huaxin']}").text
    assert group_ids(by_account) == [groups["project"]]
    assert "华信科技" in by_account
    # Nonsense filters are no error: an unknown account is a 404, a huge id too.
    assert client.get("/admin/groups?account_id=999999").status_code == 404
    assert client.get("/admin/groups?account_id=99999999999999999999").status_code == 200
    assert client.get("/admin/groups?owner=" + "x" * 500).status_code == 200


def test_a_group_page_shows_members_by_account_and_role(signed_in, groups):
    page = signed_in("sales").get(f"/admin/groups/{groups['project']}")
    assert page.status_code == 200
    huaxin = page.text.split(f'id="group-account-{groups["huaxin"]}"')[1].split("</section>")[0]
    assert "王芳" in huaxin and "信息中心主任" in huaxin and "扫描群二维码" in huaxin
    assert "李娜" not in huaxin
    departed = page.text.split('id="group-departed"')[1]
    assert "李娜" in departed and "主动退群" in departed
    assert f'id="group-account-{groups["yuanjing"]}"' in page.text
    assert "群主" in page.text


def test_the_account_page_lists_its_groups(signed_in, groups):
    page = signed_in("viewer").get(f"/admin/accounts/{groups['yuanjing']}")
    section = page.text.split('id="account-groups"')[1].split("</section>")[0]
    assert "华信项目群" in section and "远景交流群" in section
    assert section.count('data-count="people">1<') == 2


def test_another_workspaces_group_is_a_404(app, signed_in, groups):
    client = signed_in("owner", "globex")
    assert client.get(f"/admin/groups/{groups['project']}").status_code == 404
    assert group_ids(client.get("/admin/groups").text) == []
    assert client.get(f"/admin/groups?account_id={groups['huaxin']}").status_code == 404


def test_sync_now_queues_the_corps_sync(app, signed_in, groups, wecom_channel):
    client = signed_in("marketer")
    page = client.get("/admin/groups")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = client.post(f"/admin/groups/sync/{wecom_channel}", data={"csrf_token": token})
    assert response.status_code == 302
    assert (Job.SYNC_CUSTOMER_GROUPS, (wecom_channel,)) in queued_jobs(app, "low")
    assert signed_in("viewer").post(
        f"/admin/groups/sync/{wecom_channel}", data={"csrf_token": token}
    ).status_code in (400, 403)
