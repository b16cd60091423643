"""Channel QR codes against the sandbox: creating them (every kind, every refusal), a follow
or scan through one tagging the follower and answering with its welcome inside the
callback, and their scans per day in the workspace's time zone."""

from datetime import UTC, date, datetime, timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import event, func, select
from wechatpy.crypto import PrpCrypto

from crm.channels import workspace_named
from crm.tags import TagBook
from demo.seed import seed_qr_codes
from models import (
    Channel,
    ContactTag,
    Identity,
    InboundEvent,
    Interaction,
    QrCode,
    Tag,
    TagGroup,
    utcnow,
)
from outreach import qr_codes as qrcodes
from outreach.qr_codes import (
    QrStatus,
    daily_scans,
    local_days,
    next_free_scene,
    renew_qr_code,
    scan_totals,
    set_archived,
    status_of,
    update_qr_code,
)
from tests.factories import make_channel, make_qr_code, tag_ids, touches
from tests.helpers import OA_CREDS, OA_SECRET, WECOM_CREDS, harpoon_of, run_jobs, session_of
from tests.oa_platform import connect_oa, sandbox_codes, settle, tenant
from wechat.callbacks import aes_key_bytes, parse_xml
from wechat.clients import WeChatApiError
from wechat.sandbox import oa
from wechat.sandbox.core import Fault

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    """An OA the sandbox knows; API calls only (callbacks go nowhere)."""
    return connect_oa(app, platform)


@pytest.fixture
def live_channel_id(app, platform, live_server):
    """An OA whose callbacks the sandbox delivers to the live app."""
    return connect_oa(app, platform, live_server)


def oa_client(app):
    return harpoon_of(app).wechat.oa(OA_CREDS.app_id, OA_SECRET)


def rows(app) -> list[QrCode]:
    with session_of(app) as session:
        return list(session.scalars(select(QrCode).order_by(QrCode.id)))


# --- creating ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permanent", "scene", "expire_seconds", "action", "scene_field"),
    [
        (False, 42, 3600, "QR_SCENE", ("scene_id", 42)),
        (False, "webinar-cio", 86_400, "QR_STR_SCENE", ("scene_str", "webinar-cio")),
        (True, 100_000, None, "QR_LIMIT_SCENE", ("scene_id", 100_000)),
        (True, "expo2026", None, "QR_LIMIT_STR_SCENE", ("scene_str", "expo2026")),
    ],
)
def test_creates_each_kind_of_code(
    app, platform, channel_id, permanent, scene, expire_seconds, action, scene_field
):
    before = utcnow()
    code = make_qr_code(
        app,
        channel_id,
        permanent=permanent,
        scene=scene,
        expire_seconds=expire_seconds,
        tag_ids=tag_ids(app, "source:展会", "interest:AI", "source:展会"),
        welcome_reply="  欢迎来到展台！  ",
        user_id=None,
    )
    remote = sandbox_codes(platform)[code.ticket]
    assert remote.action_name == action
    assert (scene_field[0], getattr(remote, scene_field[0])) == scene_field
    assert code.url == remote.url and code.url.startswith("http://weixin.qq.com/q/")
    assert (code.scene, code.scene_is_int, code.permanent) == (
        str(scene),
        isinstance(scene, int),
        permanent,
    )
    assert len(code.tag_ids) == 2  # each tag once
    assert code.welcome_reply == "欢迎来到展台！"
    if permanent:
        assert code.expires_at is None
    else:
        assert before + timedelta(seconds=expire_seconds) <= code.expires_at
        assert code.expires_at <= utcnow() + timedelta(seconds=expire_seconds)
    assert status_of(code) == QrStatus.ACTIVE
    assert qrcodes.ticket_url(code).startswith(
        "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="
    )


def test_no_scene_takes_the_next_free_number(app, platform, channel_id):
    make_qr_code(app, channel_id, scene=1)
    make_qr_code(app, channel_id, scene="3")  # a text of digits takes that number too
    second = make_qr_code(app, channel_id)
    assert (second.scene, second.scene_is_int) == ("2", True)
    with session_of(app) as session:
        assert next_free_scene(session, channel_id, permanent=True) == 4


ERRORS = [
    ({"name": "  "}, "name", qrcodes.REQUIRED),
    ({"name": "码" * 101}, "name", qrcodes.NAME_TOO_LONG),
    ({"scene": ""}, "scene", qrcodes.SCENE_TEXT_LENGTH),
    ({"scene": "x" * 65}, "scene", qrcodes.SCENE_TEXT_LENGTH),
    ({"scene": 0}, "scene", qrcodes.PERMANENT_SCENE_RANGE),
    ({"scene": 100_001}, "scene", qrcodes.PERMANENT_SCENE_RANGE),
    (
        {"permanent": False, "scene": 2**32, "expire_seconds": 60},
        "scene",
        qrcodes.TEMPORARY_SCENE_RANGE,
    ),
    ({"scene": 1.5}, "scene", qrcodes.SCENE_NOT_SCENE),
    ({"scene": True}, "scene", qrcodes.SCENE_NOT_SCENE),
    ({"permanent": False}, "expire_seconds", qrcodes.EXPIRY_REQUIRED),
    ({"permanent": False, "expire_seconds": 59}, "expire_seconds", qrcodes.EXPIRY_RANGE),
    (
        {"permanent": False, "expire_seconds": 2_592_001},
        "expire_seconds",
        qrcodes.EXPIRY_RANGE,
    ),
    ({"expire_seconds": 3600}, "expire_seconds", qrcodes.PERMANENT_NO_EXPIRY),
    ({"welcome_reply": "欢" * 601}, "welcome_reply", qrcodes.REPLY_TOO_LONG),
]


@pytest.mark.parametrize(("changes", "field", "message"), ERRORS)
def test_refuses_bad_input_before_asking_wechat(app, platform, channel_id, changes, field, message):
    with pytest.raises(ValidationError) as refused:
        make_qr_code(app, channel_id, **changes)
    assert refused.value.messages[field] == [message]
    assert sandbox_codes(platform) == {} and rows(app) == []


def test_refuses_a_scene_in_use_even_by_an_archived_code(app, platform, channel_id):
    first = make_qr_code(app, channel_id, scene="expo2026")
    with session_of(app) as session:
        set_archived(session, session.get(QrCode, first.id), True)
        session.commit()
    with pytest.raises(ValidationError) as refused:
        make_qr_code(app, channel_id, scene="expo2026", name="again")
    assert refused.value.messages == {"scene": [qrcodes.SCENE_TAKEN]}
    assert len(sandbox_codes(platform)) == 1 and len(rows(app)) == 1


def test_refuses_tags_of_another_workspace(app, platform, channel_id):
    with session_of(app) as session:
        other = workspace_named(session, "other").id
        foreign = TagBook(session, other).get(session, TagGroup.SOURCE, "别家").id
        session.commit()
    with pytest.raises(ValidationError) as refused:
        make_qr_code(app, channel_id, tag_ids=[*tag_ids(app, "source:展会"), foreign])
    assert refused.value.messages == {"tag_ids": [qrcodes.NOT_WORKSPACE_TAGS]}
    assert sandbox_codes(platform) == {}


def test_only_an_official_account_has_codes(app, platform):
    wecom_id = make_channel(app, "wecom", WECOM_CREDS)
    with pytest.raises(ValueError, match="not an Official Account"):
        make_qr_code(app, wecom_id)


@pytest.mark.parametrize("errcode", [48001, 40053])
def test_a_wechat_refusal_surfaces_and_stores_nothing(app, platform, channel_id, errcode):
    platform.state.add_fault(Fault("/oa/cgi-bin/qrcode/create", errcode=errcode))
    with pytest.raises(WeChatApiError) as refused:
        make_qr_code(app, channel_id, scene="expo2026")
    assert refused.value.errcode == errcode
    assert rows(app) == []
    assert (
        make_qr_code(app, channel_id, scene="expo2026").scene == "expo2026"
    )  # nothing left behind


def test_edit_changes_only_what_harpoon_keeps(app, platform, channel_id):
    code = make_qr_code(app, channel_id, scene="expo2026", welcome_reply="旧的欢迎语")
    new_tags = tag_ids(app, "interest:白皮书")
    with session_of(app) as session:
        row = session.get(QrCode, code.id)
        with pytest.raises(ValidationError) as refused:
            update_qr_code(session, row, name="", tag_ids=[999_999], welcome_reply="欢" * 601)
        assert refused.value.messages == {
            "name": [qrcodes.REQUIRED],
            "welcome_reply": [qrcodes.REPLY_TOO_LONG],
        }
        session.rollback()
        row = session.get(QrCode, code.id)
        with pytest.raises(ValidationError) as refused:
            update_qr_code(session, row, name="展台", tag_ids=[999_999])
        assert refused.value.messages == {"tag_ids": [qrcodes.NOT_WORKSPACE_TAGS]}
        session.rollback()
        row = session.get(QrCode, code.id)
        update_qr_code(session, row, name="展台 A", tag_ids=new_tags, welcome_reply=" ")
        session.commit()
        assert (row.name, row.tag_ids, row.welcome_reply) == ("展台 A", new_tags, None)
        assert (row.scene, row.ticket) == ("expo2026", code.ticket)


def test_status_and_renewal_of_a_temporary_code(app, platform, channel_id):
    code = make_qr_code(app, channel_id, permanent=False, scene=7, expire_seconds=60)
    assert status_of(code, code.expires_at + timedelta(seconds=1)) == QrStatus.EXPIRED
    with session_of(app) as session:
        row = session.get(QrCode, code.id)
        with pytest.raises(ValidationError) as refused:
            renew_qr_code(session, row, oa_client(app))
        assert refused.value.messages == {"expire_seconds": [qrcodes.EXPIRY_REQUIRED]}
        renew_qr_code(session, row, oa_client(app), expire_seconds=7 * 86_400)
        session.commit()
        assert row.ticket != code.ticket and row.scene == "7"
        assert row.expires_at > utcnow() + timedelta(days=6)
        set_archived(session, row, True)
        assert status_of(row) == QrStatus.ARCHIVED
    remote = sandbox_codes(platform)[row.ticket]
    assert (remote.action_name, remote.scene_id) == ("QR_SCENE", 7)


def test_renewing_a_permanent_code_gets_its_ticket_back(app, platform, channel_id):
    code = make_qr_code(app, channel_id, scene="expo2026")
    with session_of(app) as session:
        row = session.get(QrCode, code.id)
        renew_qr_code(session, row, oa_client(app))
        assert (row.ticket, row.expires_at) == (code.ticket, None)


# --- follows and scans through a code ------------------------------------------------


def passive_reply(delivery) -> dict | None:
    """The callback's answer, decrypted (None when it answered `success`)."""
    if delivery.answer.strip() in ("", "success"):
        return None
    encrypted = parse_xml(delivery.answer)["Encrypt"]
    return parse_xml(PrpCrypto(aes_key_bytes(OA_CREDS.aes_key)).decrypt(encrypted, OA_CREDS.app_id))


def tags_of_contact(session, contact_id) -> set[str]:
    names = session.execute(
        select(Tag.group, Tag.name)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact_id)
    )
    return {f"{group}:{name}" for group, name in names}


def contact_of(session, openid: str) -> int:
    return session.scalar(select(Identity.contact_id).where(Identity.value == openid))


def test_a_follow_and_a_scan_through_a_code_tag_and_get_its_welcome(app, platform, live_channel_id):
    code = make_qr_code(
        app,
        live_channel_id,
        scene="expo2026",
        tag_ids=tag_ids(app, "source:展会", "interest:AI"),
        welcome_reply="欢迎关注！展会资料稍后发您。",
    )
    oa.follow(platform.state, tenant(platform), "o_li", ticket=code.ticket)
    oa.scan(platform.state, tenant(platform), "o_li", code.ticket)
    oa.follow(platform.state, tenant(platform), "o_wang")  # from search: no code, no reply
    settle(app, platform)

    follow, scan, plain = platform.state.deliveries
    assert all(d.accepted for d in (follow, scan, plain))
    for delivery in (follow, scan):
        reply = passive_reply(delivery)
        assert (reply["ToUserName"], reply["MsgType"]) == ("o_li", "text")
        assert reply["Content"] == "欢迎关注！展会资料稍后发您。"
    assert passive_reply(plain) is None
    with session_of(app) as session:
        li = contact_of(session, "o_li")
        # The code's tags, plus the scene's own source tag (as for a scene without a code).
        assert tags_of_contact(session, li) == {"source:展会", "interest:AI", "source:expo2026"}
        assert tags_of_contact(session, contact_of(session, "o_wang")) == set()
        kinds = session.execute(
            select(Interaction.kind, Interaction.properties).where(Interaction.contact_id == li)
        ).all()
        assert sorted((kind, props.get("scene")) for kind, props in kinds) == [
            ("wechat.follow", "expo2026"),
            ("wechat.scan", "expo2026"),
        ]
        totals = scan_totals(
            session, code.workspace_id, [code], recent_since=utcnow() - timedelta(days=1)
        )
    assert totals[code.id] == qrcodes.ScanTotals(scans=1, follows=1, people=1, recent=2)


def test_a_code_without_a_welcome_answers_success(app, platform, live_channel_id):
    code = make_qr_code(app, live_channel_id, scene=12, tag_ids=tag_ids(app, "source:海报"))
    oa.follow(platform.state, tenant(platform), "o_li", ticket=code.ticket)
    settle(app, platform)
    (delivery,) = platform.state.deliveries
    assert delivery.accepted and passive_reply(delivery) is None
    with session_of(app) as session:
        assert tags_of_contact(session, contact_of(session, "o_li")) == {
            "source:海报",
            "source:12",
        }


def test_a_batch_reads_the_codes_once(app, platform, live_channel_id):
    code = make_qr_code(app, live_channel_id, scene="expo2026", tag_ids=tag_ids(app, "source:展会"))
    for n in range(5):
        oa.follow(platform.state, tenant(platform), f"o_{n}", ticket=code.ticket)
    platform.state.wait_for_deliveries()
    statements = []

    def remember(conn, cursor, statement, *args):
        statements.append(statement)

    engine = harpoon_of(app).db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        run_jobs(app)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    with session_of(app) as session:  # one batch per lane the follows fell in
        lanes = session.scalar(select(func.count(func.distinct(InboundEvent.lane))))
    assert 1 <= lanes < 5
    assert sum("FROM qr_codes" in s for s in statements) == lanes
    with session_of(app) as session:
        tagged = session.scalars(
            select(ContactTag.contact_id).join(Tag).where(Tag.name == "展会")
        ).all()
    assert len(tagged) == 5


# --- statistics ----------------------------------------------------------------------


def code_row(ws, channel_id, scene) -> QrCode:
    return QrCode(id=1, workspace_id=ws, channel_id=channel_id, scene=scene, name="x", ticket="t")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_stats_follow_the_workspace_time_zone(app, channel_id):
    # Midnight in Shanghai is 16:00 UTC: 15:59 is still the 1st there, 16:01 the 2nd.
    ws = touches(
        app,
        channel_id,
        [
            ("wechat.follow", "expo", "li", at("2026-05-01T15:59:00")),
            ("wechat.scan", "expo", "li", at("2026-05-01T16:01:00")),
            ("wechat.scan", "expo", "wang", at("2026-05-01T23:00:00")),
            ("wechat.scan", "expo", "wang", at("2026-05-02T03:00:00")),
            ("wechat.follow", "expo", "zhao", at("2026-05-03T16:00:00")),  # the 4th: outside
            ("wechat.follow", "other", "li", at("2026-05-01T17:00:00")),  # another scene
            ("wechat.menu_click", "expo", "li", at("2026-05-01T17:00:00")),  # not a scan
        ],
    )
    days = [date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)]
    code = code_row(ws, channel_id, "expo")
    with session_of(app) as session:
        shanghai = daily_scans(session, code, "Asia/Shanghai", days)
        utc = daily_scans(session, code, "UTC", days)
        totals = scan_totals(session, ws, [code], recent_since=at("2026-05-02T00:00:00"))
    assert [(d.day, d.scans, d.follows, d.people) for d in shanghai] == [
        (date(2026, 5, 1), 0, 1, 1),
        (date(2026, 5, 2), 3, 0, 2),
        (date(2026, 5, 3), 0, 0, 0),
    ]
    assert [(d.scans, d.follows, d.people) for d in utc] == [(2, 1, 2), (1, 0, 1), (0, 1, 1)]
    assert totals[code.id] == qrcodes.ScanTotals(scans=3, follows=2, people=3, recent=2)


def test_daily_stats_are_exact_across_a_daylight_saving_change(app, channel_id):
    # New York springs forward on 2026-03-08: midnight is 05:00 UTC before, 04:00 after.
    ws = touches(
        app,
        channel_id,
        [
            ("wechat.scan", "expo", "li", at("2026-03-08T04:30:00")),  # 23:30 on the 7th
            ("wechat.scan", "expo", "li", at("2026-03-09T04:30:00")),  # 00:30 on the 9th
        ],
    )
    days = [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    with session_of(app) as session:
        stats = daily_scans(session, code_row(ws, channel_id, "expo"), "America/New_York", days)
    assert [d.scans for d in stats] == [1, 0, 1]


def test_local_days_end_today_in_the_zone():
    now = at("2026-05-01T16:30:00")
    assert local_days("Asia/Shanghai", 3, now) == [
        date(2026, 4, 30),
        date(2026, 5, 1),
        date(2026, 5, 2),
    ]
    assert local_days("UTC", 1, now) == [date(2026, 5, 1)]


def test_the_demo_codes_are_made_once_and_reissued_by_a_fresh_sandbox(app, platform, channel_id):
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
    first = seed_qr_codes(harpoon_of(app).db, channel, oa_client(app))
    assert set(first) == {"expo2026", "webinar-cio", "whitepaper-ai"}
    codes = rows(app)
    assert all(code.permanent and code.tag_ids and code.welcome_reply for code in codes)
    with session_of(app) as session:
        expo = next(code for code in codes if code.scene == "expo2026")
        assert {session.get(Tag, tag_id).name for tag_id in expo.tag_ids} == {"展会"}

    with platform.state.lock:  # the demo restarted: a new sandbox knows no code
        oa.state_of(tenant(platform)).qrcodes.clear()
    again = seed_qr_codes(harpoon_of(app).db, channel, oa_client(app))
    assert set(again) == set(first) and len(rows(app)) == 3
    assert set(again.values()) == set(sandbox_codes(platform)) != set(first.values())
