"""Staff sync against the sandbox: who has the customer-contact permission, their names
and emails, inactive members, and the mapping to admin users."""

import pytest
from sqlalchemy import select

from core.jobs import Job
from crm.accounts import account_named
from crm.channels import workspace_named
from models import Staff
from sales.staff import staff_accounts
from tests.factories import add_staff, make_user
from tests.helpers import harpoon_of, run_jobs
from tests.wecom_platform import (
    connect_corp,
    fail_next,
    set_customer_contact,
    staff_of,
    sync_staff_now,
)

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    return connect_corp(app, platform)


def test_sync_mirrors_the_members_with_the_customer_contact_permission(app, platform, channel_id):
    add_staff(platform, "zhangsan", "张三", email="zhangsan@acme.example")
    add_staff(platform, "lisi", "李四")
    add_staff(platform, "hr", "人事", customer_contact=False)

    result = sync_staff_now(app, channel_id)

    assert (result.added, result.updated, result.deactivated) == (2, 0, 0)
    staff = staff_of(app, channel_id)
    assert set(staff) == {"zhangsan", "lisi"}
    assert (staff["zhangsan"].name, staff["zhangsan"].email) == ("张三", "zhangsan@acme.example")
    assert (staff["lisi"].name, staff["lisi"].email) == ("李四", None)
    assert all(s.active and s.synced_at for s in staff.values())

    again = sync_staff_now(app, channel_id)
    assert (again.added, again.updated) == (0, 2)
    assert len(staff_of(app, channel_id)) == 2


def test_a_member_who_lost_the_permission_turns_inactive_and_comes_back(app, platform, channel_id):
    add_staff(platform, "zhangsan", "张三")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)

    set_customer_contact(platform, "lisi", False)
    assert sync_staff_now(app, channel_id).deactivated == 1
    staff = staff_of(app, channel_id)
    assert staff["zhangsan"].active and not staff["lisi"].active

    set_customer_contact(platform, "lisi", True)
    sync_staff_now(app, channel_id)
    assert staff_of(app, channel_id)["lisi"].active


def test_staff_map_to_the_workspace_user_with_the_same_email(app, platform, channel_id):
    sales = make_user(app, "sales", email="zhangsan@acme.example")
    make_user(app, "sales", email="lisi@acme.example", active=False)
    make_user(app, "sales", email="wangwu@acme.example", workspace="other")
    add_staff(platform, "zhangsan", "张三", email="ZhangSan@ACME.example")
    add_staff(platform, "lisi", "李四", email="lisi@acme.example")
    add_staff(platform, "wangwu", "王五", email="wangwu@acme.example")

    assert sync_staff_now(app, channel_id).mapped == 1

    staff = staff_of(app, channel_id)
    assert staff["zhangsan"].user_id == sales
    assert staff["lisi"].user_id is None  # a deactivated user is nobody's mapping
    assert staff["wangwu"].user_id is None  # another workspace's user


def test_owners_and_admins_are_never_linked_by_email(app, platform, channel_id):
    """A WeCom profile's email is the corp's to set: matching the owner's would hand the
    member the owner's role."""
    make_user(app, "owner", email="boss@acme.example")
    make_user(app, "admin", email="it@acme.example")
    marketer = make_user(app, "marketer", email="mkt@acme.example")
    add_staff(platform, "boss", "老板", email="boss@acme.example")
    add_staff(platform, "it", "网管", email="it@acme.example")
    add_staff(platform, "mkt", "市场", email="mkt@acme.example")

    assert sync_staff_now(app, channel_id).mapped == 1

    staff = staff_of(app, channel_id)
    assert (staff["boss"].user_id, staff["it"].user_id) == (None, None)
    assert staff["mkt"].user_id == marketer


def test_a_manual_mapping_survives_the_sync(app, platform, channel_id):
    by_email = make_user(app, "sales", email="zhangsan@acme.example")
    chosen = make_user(app, "sales", email="manager@acme.example")
    add_staff(platform, "zhangsan", "张三")
    sync_staff_now(app, channel_id)
    with harpoon_of(app).db.session() as session:
        session.scalars(select(Staff)).one().user_id = chosen
        session.commit()
    add_staff(platform, "zhangsan", "张三", email="zhangsan@acme.example")

    assert sync_staff_now(app, channel_id).mapped == 0
    assert staff_of(app, channel_id)["zhangsan"].user_id == chosen != by_email


def test_a_member_wecom_will_not_describe_is_kept_under_their_userid(app, platform, channel_id):
    add_staff(platform, "zhangsan", "张三")
    fail_next(platform, "user/get", 60011)  # outside the app's visibility

    result = sync_staff_now(app, channel_id)

    assert (result.added, result.undescribed) == (1, 1)
    assert staff_of(app, channel_id)["zhangsan"].name == "zhangsan"
    sync_staff_now(app, channel_id)
    assert staff_of(app, channel_id)["zhangsan"].name == "张三"


def test_the_job_syncs_the_channel(app, platform, channel_id):
    add_staff(platform, "zhangsan", "张三")
    harpoon_of(app).queue.enqueue(Job.SYNC_STAFF, channel_id, job_id=f"sync_staff-{channel_id}")
    run_jobs(app)
    assert set(staff_of(app, channel_id)) == {"zhangsan"}


def test_staff_accounts_are_the_accounts_their_user_owns(app, platform, channel_id):
    owner = make_user(app, "sales", email="zhangsan@acme.example")
    add_staff(platform, "zhangsan", "张三", email="zhangsan@acme.example")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        for name in ("华信科技", "东方电气"):
            account_named(session, workspace.id, name).owner_id = owner
        account_named(session, workspace.id, "无主公司")
        session.commit()
        staff = {s.userid: s for s in session.scalars(select(Staff))}

        assert [a.name for a in staff_accounts(session, staff["zhangsan"])] == [
            "东方电气",
            "华信科技",
        ]
        assert staff_accounts(session, staff["lisi"]) == []
