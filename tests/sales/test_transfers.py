"""Customer transfers against the sandbox: the takeover after 24 hours, WeCom's 90-day limit
per customer, refusals by callback, account-aware transfers, departed members, 100 a call,
and a crash between marking and calling."""

from datetime import timedelta

import pytest
import requests
from marshmallow import ValidationError
from sqlalchemy import select, update

from app.jobs import refresh_transfers
from core.jobs import Job
from crm.channels import workspace_named
from demo.seed import register_tenant
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    Channel,
    FollowRelation,
    Staff,
    Task,
    Transfer,
    TransferItem,
    TransferItemStatus,
    TransferKind,
    utcnow,
)
from sales import transfers
from sales.tasks import create_task
from sales.transfers import (
    TOO_OFTEN,
    account_customers,
    check_transfer,
    create_transfer,
    send_transfer,
)
from tests.factories import make_account, make_channel, make_user, put_customers_in_account
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, session_of
from wechat.sandbox import wecom, wecom_transfers
from wechat.simulate import Credentials

CONTACT_SECRET = "contact-secret"
DAY = 86400

pytestmark = pytest.mark.sandbox


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def customer(platform, external_userid, *, userid="zhangsan"):
    wecom.add_external_contact(
        platform.state,
        tenant(platform),
        userid=userid,
        external_userid=external_userid,
        name=external_userid,
    )


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


@pytest.fixture
def corp(app, platform, live_server):
    """张三 (user A) and 李四 (user B) in a corp; 张三's customers wm_a and wm_b are 华信科技's
    (owned by A), wm_c has no account; 李四 has wm_li."""
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret=CONTACT_SECRET)
    users = {
        "zhangsan": make_user(app, "sales", email="zhangsan@acme.example"),
        "lisi": make_user(app, "marketer", email="lisi@acme.example"),
    }
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        register_tenant(platform.state, channel, live_server)
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")):
            wecom.add_staff(platform.state, tenant(platform), userid, name)
            session.add(
                Staff(
                    workspace_id=channel.workspace_id,
                    channel_id=channel_id,
                    userid=userid,
                    name=name,
                    user_id=users.get(userid),
                )
            )
        session.commit()
    for external_userid in ("wm_a", "wm_b", "wm_c"):
        customer(platform, external_userid)
    customer(platform, "wm_li", userid="lisi")
    settle(app, platform)
    account_id = make_account(app, "华信科技", owner_id=users["zhangsan"])
    put_customers_in_account(app, channel_id, account_id, ["wm_a", "wm_b"])
    return {"channel_id": channel_id, "account_id": account_id, "users": users}


def client_of(app):
    return harpoon_of(app).wechat.wecom(WECOM_CREDS.app_id, CONTACT_SECRET)


def start(app, corp, externals, *, handover="zhangsan", takeover="lisi", **kwargs):
    """A committed transfer in acme; its id."""
    kwargs.setdefault("kind", TransferKind.IN_SERVICE)
    with session_of(app) as session:
        workspace_id = workspace_named(session, "acme").id
        new = create_transfer(
            session,
            workspace_id,
            channel_id=corp["channel_id"],
            handover_userid=handover,
            takeover_userid=takeover,
            external_userids=externals,
            **kwargs,
        )
        session.commit()
        return new.transfer.id


def send(app, transfer_id):
    with session_of(app) as session:
        send_transfer(session, session.get(Transfer, transfer_id), client_of(app))


def check(app, transfer_id):
    with session_of(app) as session:
        check_transfer(session, session.get(Transfer, transfer_id), client_of(app))


def items(app, transfer_id) -> dict[str, TransferItem]:
    with session_of(app) as session:
        rows = session.scalars(select(TransferItem).where(TransferItem.transfer_id == transfer_id))
        return {item.external_userid: item for item in rows}


def statuses(app, transfer_id) -> dict[str, str]:
    return {ext: item.status for ext, item in items(app, transfer_id).items()}


def current_staff(app, corp, external_userid) -> set[str]:
    with session_of(app) as session:
        return set(
            session.scalars(
                select(FollowRelation.staff_userid).where(
                    FollowRelation.channel_id == corp["channel_id"],
                    FollowRelation.external_userid == external_userid,
                    FollowRelation.removed_at.is_(None),
                )
            )
        )


def in_wecom(platform, external_userid) -> set[str]:
    with platform.state.lock:
        follows = wecom.state_of(tenant(platform)).follows
        return {userid for userid, ext in follows if ext == external_userid}


def advance(platform, seconds):
    """The platform's clock moves on, as anyone can move it over HTTP."""
    answer = requests.post(f"{platform.url}/sandbox/clock", json={"advance": seconds}, timeout=5)
    answer.raise_for_status()


def owner_of(app, account_id):
    with session_of(app) as session:
        return session.get(Account, account_id).owner_id


def timeline(app, account_id) -> list[str]:
    with session_of(app) as session:
        return list(
            session.scalars(
                select(AccountEvent.kind)
                .where(AccountEvent.account_id == account_id)
                .order_by(AccountEvent.id)
            )
        )


def test_an_in_service_transfer_completes_after_24_hours(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a", "wm_b"], account_id=corp["account_id"])
    send(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.WAITING}
    advance(platform, DAY - 60)
    check(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.WAITING}
    assert current_staff(app, corp, "wm_a") == {"zhangsan"}

    advance(platform, 120)
    check(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.DONE}
    assert in_wecom(platform, "wm_a") == {"lisi"}
    assert current_staff(app, corp, "wm_a") == current_staff(app, corp, "wm_b") == {"lisi"}
    assert owner_of(app, corp["account_id"]) == corp["users"]["lisi"]
    assert timeline(app, corp["account_id"])[-2:] == [
        AccountEventKind.TRANSFER,
        AccountEventKind.OWNER_CHANGED,
    ]
    with session_of(app) as session:
        assert session.get(Transfer, transfer_id).finished_at is not None
    # WeCom's callbacks (del_external_contact by transfer, the takeover's add) agree.
    settle(app, platform)
    assert current_staff(app, corp, "wm_a") == {"lisi"}
    with session_of(app) as session:
        old = session.scalar(
            select(FollowRelation).where(
                FollowRelation.external_userid == "wm_a", FollowRelation.staff_userid == "zhangsan"
            )
        )
        assert old.removed_by == "transfer"


def test_the_contacts_open_tasks_move_to_the_new_owner(app, platform, corp):
    contact_ids = put_customers_in_account(app, corp["channel_id"], corp["account_id"], ["wm_a"])
    with session_of(app) as session:
        task = create_task(
            session,
            workspace_id=session.get(Channel, corp["channel_id"]).workspace_id,
            title="回访",
            due_at=utcnow(),
            contact_id=contact_ids[0],
            assignee_id=corp["users"]["zhangsan"],
        )
        session.commit()
        task_id = task.id
    transfer_id = start(app, corp, ["wm_a"])
    send(app, transfer_id)
    advance(platform, DAY + 1)
    check(app, transfer_id)
    with session_of(app) as session:
        assert session.get(Task, task_id).assignee_id == corp["users"]["lisi"]
    # Only wm_a of 华信科技 moved: 张三 keeps wm_b, and the account.
    assert owner_of(app, corp["account_id"]) == corp["users"]["zhangsan"]


def test_a_third_transfer_within_90_days_is_refused_for_that_customer(app, platform, corp):
    for handover, takeover in (("zhangsan", "lisi"), ("lisi", "zhangsan")):
        transfer_id = start(app, corp, ["wm_a"], handover=handover, takeover=takeover)
        send(app, transfer_id)
        advance(platform, DAY + 1)
        check(app, transfer_id)
        assert statuses(app, transfer_id) == {"wm_a": TransferItemStatus.DONE}
    third = start(app, corp, ["wm_a", "wm_b"], takeover="wangwu")
    send(app, third)
    refused = items(app, third)["wm_a"]
    assert (refused.status, refused.errcode) == (TransferItemStatus.FAILED, TOO_OFTEN)
    assert statuses(app, third)["wm_b"] == TransferItemStatus.WAITING
    advance(platform, DAY + 1)
    check(app, third)
    assert statuses(app, third) == {
        "wm_a": TransferItemStatus.FAILED,
        "wm_b": TransferItemStatus.DONE,
    }
    assert in_wecom(platform, "wm_a") == {"zhangsan"}


def test_a_refusal_callback_marks_the_customer_refused(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a", "wm_c"])
    send(app, transfer_id)
    answer = requests.post(
        f"{platform.url}/sandbox/wecom/transfers/refuse",
        json={"corp_id": WECOM_CREDS.app_id, "external_userid": "wm_c"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    settle(app, platform)  # the transfer_fail callback, through the inbox and the drain
    refused = items(app, transfer_id)["wm_c"]
    assert refused.status == TransferItemStatus.REFUSED
    assert "customer_refused" in refused.error
    advance(platform, DAY + 1)
    check(app, transfer_id)
    assert statuses(app, transfer_id) == {
        "wm_a": TransferItemStatus.DONE,
        "wm_c": TransferItemStatus.REFUSED,
    }
    assert in_wecom(platform, "wm_c") == {"zhangsan"}
    assert current_staff(app, corp, "wm_c") == {"zhangsan"}


def test_an_account_aware_transfer_moves_all_of_the_accounts_customers(app, platform, corp):
    with session_of(app) as session:
        ws = session.get(Channel, corp["channel_id"]).workspace_id
        chosen = account_customers(session, ws, corp["channel_id"], "zhangsan", corp["account_id"])
    assert sorted(chosen) == ["wm_a", "wm_b"]
    transfer_id = start(app, corp, chosen, account_id=corp["account_id"])
    harpoon_of(app).queue.enqueue(Job.SEND_TRANSFER, transfer_id)
    run_jobs(app)
    advance(platform, DAY + 1)
    harpoon_of(app).queue.enqueue(Job.REFRESH_TRANSFERS)
    settle(app, platform)
    assert statuses(app, transfer_id) == {
        "wm_a": TransferItemStatus.DONE,
        "wm_b": TransferItemStatus.DONE,
    }
    assert current_staff(app, corp, "wm_c") == {"zhangsan"}
    assert owner_of(app, corp["account_id"]) == corp["users"]["lisi"]


def test_a_departed_members_customers_from_get_unassigned_list(app, platform, corp):
    answer = requests.post(
        f"{platform.url}/sandbox/wecom/staff/depart",
        json={"corp_id": WECOM_CREDS.app_id, "userid": "zhangsan"},
        timeout=5,
    )
    assert answer.status_code == 200
    with session_of(app) as session:  # the staff sync marks them inactive
        session.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False))
        session.commit()
    unassigned = transfers.unassigned_customers(client_of(app), "zhangsan")
    assert sorted(row["external_userid"] for row in unassigned) == ["wm_a", "wm_b", "wm_c"]
    with pytest.raises(ValidationError) as raised:
        start(app, corp, ["wm_a"])  # in service: refused, they left
    assert "handover_userid" in raised.value.messages
    transfer_id = start(
        app, corp, [row["external_userid"] for row in unassigned], kind=TransferKind.DEPARTED
    )
    send(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.WAITING}
    advance(platform, DAY + 1)
    check(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.DONE}
    assert transfers.unassigned_customers(client_of(app), "zhangsan") == []
    assert current_staff(app, corp, "wm_c") == {"lisi"}
    assert owner_of(app, corp["account_id"]) == corp["users"]["lisi"]


def test_100_customers_a_call(app, platform, corp):
    externals = [f"wm_bulk{n:03d}" for n in range(230)]
    for ext in externals:
        customer(platform, ext)
    settle(app, platform)
    calls = []
    with platform.state.lock:
        before = len(wecom.state_of(tenant(platform)).calls.minute.times)
    transfer_id = start(app, corp, externals)
    send(app, transfer_id)
    with platform.state.lock:
        records = wecom_transfers.transfers_of(tenant(platform)).records
        calls = len(wecom.state_of(tenant(platform)).calls.minute.times) - before
    assert len(records) == 230
    assert calls == 3  # 100 + 100 + 30
    assert {item.call_key for item in items(app, transfer_id).values()} == {
        f"{transfer_id}:{items(app, transfer_id)[externals[n]].id}" for n in (0, 100, 200)
    }


def mark_sending(app, transfer_id, *, minutes_ago):
    """The job marked the items and committed, then died (before or after its call)."""
    with session_of(app) as session:
        session.execute(
            update(TransferItem)
            .where(TransferItem.transfer_id == transfer_id)
            .values(
                status=TransferItemStatus.SENDING,
                call_key=f"{transfer_id}:crashed",
                sent_at=utcnow() - timedelta(minutes=minutes_ago),
            )
        )
        session.commit()


def records(platform) -> list:
    with platform.state.lock:
        return list(wecom_transfers.transfers_of(tenant(platform)).records)


def test_a_crash_between_marking_and_calling_never_transfers_twice(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a", "wm_b"])
    mark_sending(app, transfer_id, minutes_ago=0)
    # The dead job's call had reached WeCom; its answer was never recorded.
    client_of(app).post(
        "externalcontact/transfer_customer",
        data={
            "handover_userid": "zhangsan",
            "takeover_userid": "lisi",
            "external_userid": ["wm_a", "wm_b"],
        },
    )
    # Right away, the call may still be in flight in another job: left alone.
    send(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.SENDING}
    # Past the grace, transfer_result decides: WeCom has them, nothing is sent again.
    mark_sending(app, transfer_id, minutes_ago=5)
    send(app, transfer_id)
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.WAITING}
    assert len(records(platform)) == 2


def test_a_crash_before_the_call_went_out_sends_it_once(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a"])
    mark_sending(app, transfer_id, minutes_ago=5)  # WeCom never got the call
    send(app, transfer_id)
    assert statuses(app, transfer_id) == {"wm_a": TransferItemStatus.WAITING}
    assert len(records(platform)) == 1


def test_another_workspaces_staff_is_refused(app, platform, corp):
    other_channel = make_channel(
        app, "wecom", Credentials("wwother", "othertoken", WECOM_CREDS.aes_key), workspace="rival"
    )
    with session_of(app) as session:
        rival = session.get(Channel, other_channel)
        session.add(
            Staff(workspace_id=rival.workspace_id, channel_id=rival.id, userid="spy", name="间谍")
        )
        session.commit()
    with pytest.raises(ValidationError) as raised:
        start(app, corp, ["wm_a"], takeover="spy")
    assert "takeover_userid" in raised.value.messages
    with pytest.raises(ValidationError) as raised:
        start(app, {**corp, "channel_id": other_channel}, ["wm_a"])
    assert "channel_id" in raised.value.messages


def test_customers_not_the_handovers_or_in_transfer_are_left_out(app, platform, corp):
    first = start(app, corp, ["wm_a"])
    with session_of(app) as session:
        ws = session.get(Channel, corp["channel_id"]).workspace_id
        new = create_transfer(
            session,
            ws,
            channel_id=corp["channel_id"],
            handover_userid="zhangsan",
            takeover_userid="wangwu",
            kind=TransferKind.IN_SERVICE,
            external_userids=["wm_a", "wm_b", "wm_li"],
        )
        assert (new.not_customers, new.in_transfer) == (["wm_li"], ["wm_a"])
        session.rollback()
    assert first


class _Racing:
    """A client whose transfer_result call lets another worker check the transfer first
    (the periodic refresh and the admin's refresh, both queued)."""

    def __init__(self, app, transfer_id):
        self.app, self.transfer_id, self.raced = app, transfer_id, False
        self.client = client_of(app)

    def post(self, endpoint, **kwargs):
        if endpoint.endswith("transfer_result") and not self.raced:
            self.raced = True
            check(self.app, self.transfer_id)
        return self.client.post(endpoint, **kwargs)


def test_two_checks_at_once_apply_the_takeover_once(app, platform, corp):
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")
    transfer_id = start(app, corp, ["wm_a", "wm_b"], account_id=corp["account_id"])
    send(app, transfer_id)
    advance(platform, DAY + 1)
    with session_of(app) as session:
        check_transfer(session, session.get(Transfer, transfer_id), _Racing(app, transfer_id))
    assert set(statuses(app, transfer_id).values()) == {TransferItemStatus.DONE}
    assert timeline(app, corp["account_id"]).count(AccountEventKind.TRANSFER) == 1
    with session_of(app) as session:
        taken = session.scalars(
            select(FollowRelation).where(
                FollowRelation.external_userid == "wm_a", FollowRelation.staff_userid == "lisi"
            )
        ).all()
    assert len(taken) == 1


def test_a_refresh_asks_for_one_check_per_transfer(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a"])
    send(app, transfer_id)
    with app.app_context():
        refresh_transfers()
        refresh_transfers()
    checks = harpoon_of(app).queue.queue_of(Job.CHECK_TRANSFER)
    assert [job.args for job in checks.jobs] == [(transfer_id,)]


def test_a_crashed_send_is_not_taken_for_an_earlier_refusal(app, platform, corp):
    first = start(app, corp, ["wm_a"])
    send(app, first)
    answer = requests.post(
        f"{platform.url}/sandbox/wecom/transfers/refuse",
        json={"corp_id": WECOM_CREDS.app_id, "external_userid": "wm_a"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    settle(app, platform)
    assert statuses(app, first) == {"wm_a": TransferItemStatus.REFUSED}
    # The same customer again, to the same member: the job died before its call went out.
    second = start(app, corp, ["wm_a"])
    mark_sending(app, second, minutes_ago=5)
    send(app, second)
    assert statuses(app, second) == {"wm_a": TransferItemStatus.WAITING}
    assert len(records(platform)) == 2


def test_the_pages_lookups_keep_to_their_workspace(app, platform, corp):
    transfer_id = start(app, corp, ["wm_a"])
    other_channel = make_channel(
        app, "wecom", Credentials("wwother", "othertoken", WECOM_CREDS.aes_key), workspace="rival"
    )
    with session_of(app) as session:
        rival = session.get(Channel, other_channel)
        session.add(
            Staff(workspace_id=rival.workspace_id, channel_id=rival.id, userid="spy", name="间谍")
        )
        session.commit()
        ws, rival_ws = workspace_named(session, "acme").id, rival.workspace_id
        assert [t.id for t, _name in session.execute(transfers.transfers_query(ws))] == [
            transfer_id
        ]
        assert session.execute(transfers.transfers_query(rival_ws)).all() == []
        assert len(session.execute(transfers.transfer_items_query(ws, transfer_id)).all()) == 1
        assert session.execute(transfers.transfer_items_query(rival_ws, transfer_id)).all() == []
        assert [m.userid for m in transfers.staff_members(session, rival_ws)] == ["spy"]
        assert "spy" not in {m.userid for m in transfers.staff_members(session, ws)}
        assert transfers.takeover_choices(session, ws, other_channel) == []
        assert {m.userid for m in transfers.takeover_choices(session, ws, corp["channel_id"])} == {
            "zhangsan",
            "lisi",
            "wangwu",
        }
