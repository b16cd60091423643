"""Customer groups moving with a transfer, against the sandbox: the groups that go with the
chosen customers, groupchat/onjob_transfer in service with WeCom's two-in-90-days limit,
groupchat/transfer for a departed owner with 300 a day, each chat's outcome recorded, and
the transfer's page listing them."""

import pytest
import requests
from sqlalchemy import select, update

from crm.channels import workspace_named
from models import (
    CustomerGroup,
    GroupTransferItem,
    GroupTransferStatus,
    Staff,
    Transfer,
    TransferKind,
)
from sales import transfers
from sales.transfers import create_transfer, send_transfer
from tests.app.admin.helpers import sign_in
from tests.factories import make_user
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, session_of
from wechat.sandbox import wecom, wecom_groups

pytestmark = pytest.mark.sandbox


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def client_of(app):
    return harpoon_of(app).wechat.wecom(WECOM_CREDS.app_id, "contact-secret")


@pytest.fixture
def chats(app, platform, corp):
    """张三's customers wm_a and wm_b; his groups 华信群 (wm_a) and 远景群 (wm_b), and 李四's
    own group with wm_a."""
    for external_userid in ("wm_a", "wm_b"):
        wecom.add_external_contact(
            platform.state,
            tenant(platform),
            userid="zhangsan",
            external_userid=external_userid,
            name=external_userid,
        )
    made = {}
    for name, owner, members in (
        ("华信群", "zhangsan", ["wm_a"]),
        ("远景群", "zhangsan", ["wm_b"]),
        ("李四的群", "lisi", ["wm_a"]),
    ):
        group = wecom_groups.create_group(platform.state, tenant(platform), owner=owner, name=name)
        for userid in members:
            wecom_groups.join_group(platform.state, tenant(platform), group.chat_id, userid)
        made[name] = group.chat_id
    settle(app, platform)
    return made


def start(app, corp, externals, *, kind=TransferKind.IN_SERVICE) -> int:
    with session_of(app) as session:
        new = create_transfer(
            session,
            workspace_named(session, "acme").id,
            channel_id=corp,
            handover_userid="zhangsan",
            takeover_userid="lisi",
            kind=kind,
            external_userids=externals,
        )
        session.commit()
        return new.transfer.id


def send(app, transfer_id):
    with session_of(app) as session:
        send_transfer(session, session.get(Transfer, transfer_id), client_of(app))


def group_items(app, transfer_id) -> dict[str, GroupTransferItem]:
    with session_of(app) as session:
        rows = session.execute(
            select(GroupTransferItem, CustomerGroup.name)
            .join(CustomerGroup, CustomerGroup.id == GroupTransferItem.group_id)
            .where(GroupTransferItem.transfer_id == transfer_id)
        ).all()
        return {name: item for item, name in rows}


def owner_in_harpoon(app, chat_id):
    with session_of(app) as session:
        return session.scalar(
            select(CustomerGroup.owner_userid).where(CustomerGroup.chat_id == chat_id)
        )


def test_the_groups_of_the_chosen_customers_move_with_them(app, platform, corp, chats):
    transfer_id = start(app, corp, ["wm_a"])  # 远景群's customer wm_b stays with 张三
    assert set(group_items(app, transfer_id)) == {"华信群"}
    send(app, transfer_id)
    (item,) = group_items(app, transfer_id).values()
    assert item.status == GroupTransferStatus.DONE and item.call_key
    sandbox_groups = wecom_groups.groups_of(tenant(platform))
    assert sandbox_groups[chats["华信群"]].owner == "lisi"
    assert sandbox_groups[chats["远景群"]].owner == "zhangsan"
    assert owner_in_harpoon(app, chats["华信群"]) == "lisi"
    assert owner_in_harpoon(app, chats["远景群"]) == "zhangsan"

    every = start(app, corp, ["wm_b"])  # the rest of 张三's customers: every group of his
    assert set(group_items(app, every)) == {"远景群"}  # 华信群 is 李四's now


def test_a_group_transferred_twice_in_90_days_is_refused(app, platform, corp, chats):
    now = platform.state.now()
    wecom_groups.groups_of(tenant(platform))[chats["华信群"]].transferred_at = [now - 86400] * 2
    transfer_id = start(app, corp, ["wm_a", "wm_b"])
    send(app, transfer_id)
    items = group_items(app, transfer_id)
    assert items["华信群"].status == GroupTransferStatus.FAILED
    assert items["华信群"].errcode == wecom_groups.GROUP_TOO_OFTEN
    assert items["远景群"].status == GroupTransferStatus.DONE
    assert owner_in_harpoon(app, chats["华信群"]) == "zhangsan"

    make_user(app, "marketer")  # the transfer pages are the marketers'
    marketer = app.test_client()
    sign_in(marketer, "marketer@acme.example")
    page = marketer.get(f"/admin/transfers/{transfer_id}").text
    section = page.split('id="transfer-groups"')[1]
    assert "华信群" in section and "90 天内最多转移两次" in section and "90506" in section


def test_a_departed_owners_groups_go_through_groupchat_transfer_300_a_day(
    app, platform, corp, chats
):
    requests.post(
        f"{platform.url}/sandbox/wecom/staff/depart",
        json={"corp_id": WECOM_CREDS.app_id, "userid": "zhangsan"},
        timeout=5,
    ).raise_for_status()
    with session_of(app) as session:
        session.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False))
        session.commit()
    day = int(platform.state.now() // 86400)
    handed = tenant(platform).data.setdefault("wecom_departed_groups_handed", {})
    handed[("zhangsan", day)] = wecom_groups.DEPARTED_GROUPS_PER_DAY - 1  # one more today
    unassigned = [r["external_userid"] for r in transfers.unassigned_customers(client_of(app))]
    transfer_id = start(app, corp, unassigned, kind=TransferKind.DEPARTED)
    send(app, transfer_id)
    items = group_items(app, transfer_id)
    assert sorted(item.status for item in items.values()) == [
        GroupTransferStatus.DONE,
        GroupTransferStatus.FAILED,
    ]
    (refused,) = [item for item in items.values() if item.status == GroupTransferStatus.FAILED]
    assert refused.errcode == wecom_groups.DEPARTED_DAILY_LIMIT
    owners = {g.name: g.owner for g in wecom_groups.groups_of(tenant(platform)).values()}
    assert sorted(owners.values()) == ["lisi", "lisi", "zhangsan"]


def test_an_in_service_group_transfer_of_a_departed_owner_is_refused_per_chat(
    app, platform, corp, chats
):
    transfer_id = start(app, corp, ["wm_a", "wm_b"])
    requests.post(  # 张三 leaves between the transfer's making and its sending
        f"{platform.url}/sandbox/wecom/staff/depart",
        json={"corp_id": WECOM_CREDS.app_id, "userid": "zhangsan"},
        timeout=5,
    ).raise_for_status()
    with session_of(app) as session:
        send_transfer(session, session.get(Transfer, transfer_id), client_of(app))
    items = group_items(app, transfer_id)
    assert {item.errcode for item in items.values()} == {wecom_groups.OWNER_DEPARTED}
