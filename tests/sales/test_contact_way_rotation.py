"""Rotating 联系我 codes against the sandbox, over HTTP, jobs run by real workers: customers
scan the code and WeCom hands them to whoever the code points at; Harpoon re-points it
after each add and every minute (round robin, caps, working hours, backups, auto-accept
windows), calls WeCom only when that changes, and retries a refused update with backoff.

The clock: the sandbox's is moved (the adds' times), and Harpoon's rotation reads the same
one (its `utcnow` patched), so a test lives on a chosen Beijing day and hour, a week
or so ago."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import jobs
from core.jobs import Job
from demo.seed import register_tenant
from models import Channel, ContactWay, FollowRelation, Staff
from sales import contact_way_rotation, contact_ways
from tests.factories import add_contact_way_in_wecom, make_channel
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs
from tests.wecom_platform import api_calls, contact_ways_in_wecom, fail_next
from wechat.sandbox import wecom

pytestmark = pytest.mark.sandbox

BEIJING = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 30, tzinfo=BEIJING)  # a Monday
MEMBERS = (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"), ("zhaoliu", "赵六"))


@pytest.fixture
def app(make_app, platform):
    """The app talking to the sandbox; it takes callbacks stamped on the chosen days (the
    sandbox's clock moved back by a week), not only those of the last 5 minutes."""
    platform.reset()
    return make_app(wechat_api_url=platform.url, callback_max_age_seconds=30 * 86400)


@pytest.fixture
def corp(app, platform, live_server):
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret="contact-secret")
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), live_server)
        workspace_id = session.get(Channel, channel_id).workspace_id
        for userid, name in MEMBERS:
            wecom.add_staff(platform.state, tenant(platform), userid, name)
            session.add(
                Staff(workspace_id=workspace_id, channel_id=channel_id, userid=userid, name=name)
            )
        session.commit()
    return channel_id


@pytest.fixture
def clock(platform, monkeypatch):
    """Set both clocks to a Beijing time: clock(MONDAY.replace(hour=10))."""

    def now():
        return datetime.fromtimestamp(platform.state.now(), UTC)

    monkeypatch.setattr(contact_way_rotation, "utcnow", now)
    monkeypatch.setattr(contact_ways, "utcnow", now)

    def set_to(local: datetime) -> None:
        platform.state.advance(local.timestamp() - platform.state.now())

    return set_to


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def in_wecom(platform):
    (way,) = contact_ways_in_wecom(platform).values()
    return way


def scan(app, platform, external_userid, **options) -> str:
    """A customer scans the code; returns who WeCom handed them to."""
    userid = wecom.scan_contact_way(
        platform.state,
        tenant(platform),
        state="expo",
        external_userid=external_userid,
        name=external_userid,
        **options,
    )
    settle(app, platform)
    return userid


def every_minute(app, platform):
    """The cron's pass, as RQ's scheduler queues it, and the jobs it asks for."""
    harpoon_of(app).queue.enqueue(Job.ROTATE_CONTACT_WAYS)
    settle(app, platform)


def the_way(app, way_id) -> ContactWay:
    with harpoon_of(app).db.session() as session:
        return session.get(ContactWay, way_id)


def test_round_robin_respects_the_daily_cap_and_the_next_day_starts_over(
    app, platform, corp, clock
):
    clock(MONDAY.replace(hour=10))
    way_id = add_contact_way_in_wecom(
        app, corp, rotation="round_robin", daily_cap=2, backup_userids=["zhaoliu"]
    )
    assert in_wecom(platform).user == ["zhangsan"]

    landed = [scan(app, platform, f"wm_{n}", pick="first") for n in range(6)]
    assert landed == ["zhangsan", "lisi", "wangwu"] * 2
    # Everyone at the cap: only the backup receives adds.
    assert in_wecom(platform).user == ["zhaoliu"]
    assert scan(app, platform, "wm_6", pick="first") == "zhaoliu"
    with harpoon_of(app).db.session() as session:
        relations = session.scalars(select(FollowRelation).order_by(FollowRelation.id)).all()
        assert [r.contact_way_id for r in relations] == [way_id] * 7

    # The next morning the members are back, starting with the one waiting longest.
    clock(MONDAY.replace(hour=10) + timedelta(days=1))
    every_minute(app, platform)
    assert in_wecom(platform).user == ["zhangsan"]
    assert scan(app, platform, "wm_7", pick="first") == "zhangsan"
    assert in_wecom(platform).user == ["lisi"]


def test_outside_working_hours_only_the_backup_receives_adds(app, platform, corp, clock):
    clock(MONDAY.replace(hour=8, minute=59))
    schedule = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}
    add_contact_way_in_wecom(app, corp, schedule=schedule, backup_userids=["zhaoliu"])
    assert in_wecom(platform).user == ["zhaoliu"]
    assert scan(app, platform, "wm_early", pick=7) == "zhaoliu"

    clock(MONDAY.replace(hour=9, minute=0, second=30))
    every_minute(app, platform)
    assert in_wecom(platform).user == ["zhangsan", "lisi", "wangwu"]
    assert scan(app, platform, "wm_a", pick=3) in ("zhangsan", "lisi", "wangwu")

    clock(MONDAY.replace(hour=18, minute=0, second=10))
    every_minute(app, platform)
    assert in_wecom(platform).user == ["zhaoliu"]

    clock(MONDAY.replace(hour=11) + timedelta(days=5))  # Saturday
    every_minute(app, platform)
    assert in_wecom(platform).user == ["zhaoliu"]
    assert scan(app, platform, "wm_weekend", pick="first") == "zhaoliu"


def test_the_auto_accept_window_turns_verification_off_and_on(app, platform, corp, clock):
    clock(MONDAY.replace(hour=11, minute=59))
    add_contact_way_in_wecom(
        app,
        corp,
        staff_userids=["zhangsan"],
        skip_verify=False,
        auto_accept=[{"start": "09:00", "end": "12:00"}],
    )
    assert in_wecom(platform).skip_verify is True
    scan(app, platform, "wm_in_window")
    with harpoon_of(app).db.session() as session:
        assert session.scalars(select(FollowRelation.external_userid)).all() == ["wm_in_window"]

    clock(MONDAY.replace(hour=12, minute=0, second=5))
    every_minute(app, platform)
    assert in_wecom(platform).skip_verify is False
    # Outside the window the customer's request waits for 张三 to accept it.
    scan(app, platform, "wm_after")
    assert wecom.contact_requests(platform.state, tenant(platform)) == [("zhangsan", "wm_after")]
    with harpoon_of(app).db.session() as session:
        assert "wm_after" not in session.scalars(select(FollowRelation.external_userid)).all()
    wecom.accept_contact_request(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_after"
    )
    settle(app, platform)
    with harpoon_of(app).db.session() as session:
        assert "wm_after" in session.scalars(select(FollowRelation.external_userid)).all()


def test_nothing_changed_means_no_call_to_wecom(app, platform, corp, clock):
    clock(MONDAY.replace(hour=10))
    way_id = add_contact_way_in_wecom(app, corp, daily_cap=5, backup_userids=["zhaoliu"])
    applied_at = the_way(app, way_id).applied_at
    scan(app, platform, "wm_a", pick="first")  # the add asks for a rotation: nothing changes
    assert the_way(app, way_id).applied_at == applied_at
    before = api_calls(platform)
    with app.app_context():
        assert jobs.rotate_contact_way(way_id) == "unchanged"
    assert api_calls(platform) == before
    assert in_wecom(platform).user == ["zhangsan", "lisi", "wangwu"]


def test_a_refused_update_is_recorded_and_retried_with_backoff(app, platform, corp, clock):
    clock(MONDAY.replace(hour=10))
    way_id = add_contact_way_in_wecom(app, corp, rotation="round_robin", backup_userids=["zhaoliu"])
    fail_next(platform, "externalcontact/update_contact_way", 84074)
    assert scan(app, platform, "wm_a", pick="first") == "zhangsan"
    way = the_way(app, way_id)
    assert "84074" in way.sync_error and way.sync_failures == 1
    assert way.applied_userids == ["zhangsan"]
    assert in_wecom(platform).user == ["zhangsan"]  # WeCom still points at the last member

    every_minute(app, platform)  # the retry is not due yet
    assert in_wecom(platform).user == ["zhangsan"]
    clock(MONDAY.replace(hour=10, minute=1, second=30))
    every_minute(app, platform)
    assert in_wecom(platform).user == ["lisi"]
    way = the_way(app, way_id)
    assert (way.sync_error, way.sync_failures, way.applied_userids) == (None, 0, ["lisi"])


def test_by_load_points_at_the_least_busy_members_today(app, platform, corp, clock):
    clock(MONDAY.replace(hour=10))
    add_contact_way_in_wecom(app, corp, rotation="by_load", backup_userids=["zhaoliu"])
    assert in_wecom(platform).user == ["zhangsan", "lisi", "wangwu"]
    # 张三 got a customer elsewhere today (not through this code): he is busier.
    wecom.add_external_contact(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_x", name="x"
    )
    settle(app, platform)
    every_minute(app, platform)
    assert in_wecom(platform).user == ["lisi", "wangwu"]
    landed = scan(app, platform, "wm_a", pick="first")
    assert landed == "lisi"
    assert in_wecom(platform).user == ["wangwu"]


def test_with_nobody_left_the_code_keeps_its_list_and_says_why(app, platform, corp, clock):
    clock(MONDAY.replace(hour=10))
    way_id = add_contact_way_in_wecom(app, corp, daily_cap=3, backup_userids=["zhaoliu"])
    with harpoon_of(app).db.session() as session:  # the staff sync found them all gone
        for member in session.scalars(select(Staff)):
            member.active = False
        session.commit()
    before = api_calls(platform)
    with app.app_context():
        assert jobs.rotate_contact_way(way_id) == "nobody"
    assert api_calls(platform) == before
    assert in_wecom(platform).user == ["zhangsan", "lisi", "wangwu"]
    way = the_way(app, way_id)
    assert way.sync_error == contact_way_rotation.NOBODY and way.sync_retry_at is not None


def test_the_cron_looks_at_a_code_only_when_its_next_boundary_has_come(
    app, platform, corp, clock, monkeypatch
):
    clock(MONDAY.replace(hour=8, minute=0))
    schedule = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}
    way_id = add_contact_way_in_wecom(app, corp, schedule=schedule, backup_userids=["zhaoliu"])
    evaluated = []
    real = contact_way_rotation.wanted_config

    def counting(session, way, now, timezone):
        evaluated.append(now)
        return real(session, way, now, timezone)

    monkeypatch.setattr(contact_way_rotation, "wanted_config", counting)
    every_minute(app, platform)  # the first look after the save sets the next moment
    assert len(evaluated) == 1
    assert _near(the_way(app, way_id).next_check_at, MONDAY.replace(hour=8, minute=10))

    for minute in range(1, 10):  # nothing can change before 08:10: the cron reads no code
        clock(MONDAY.replace(hour=8, minute=0) + timedelta(minutes=minute, seconds=1))
        every_minute(app, platform)
    assert len(evaluated) == 1

    clock(MONDAY.replace(hour=8, minute=50))
    every_minute(app, platform)  # 08:10, 08:20, ... the safety net: at most every 10 minutes
    assert len(evaluated) == 2
    assert the_way(app, way_id).next_check_at == MONDAY.replace(hour=9)  # the schedule opens
    clock(MONDAY.replace(hour=8, minute=59, second=59))
    every_minute(app, platform)
    assert len(evaluated) == 2 and in_wecom(platform).user == ["zhaoliu"]

    clock(MONDAY.replace(hour=9, minute=0, second=5))
    every_minute(app, platform)
    assert len(evaluated) == 3
    assert in_wecom(platform).user == ["zhangsan", "lisi", "wangwu"]
    assert _near(the_way(app, way_id).next_check_at, MONDAY.replace(hour=9, minute=10, second=5))


def _near(moment: datetime, expected: datetime) -> bool:
    """The same moment give or take the second the sandbox's clock runs on by itself."""
    return abs(moment - expected) < timedelta(seconds=2)
