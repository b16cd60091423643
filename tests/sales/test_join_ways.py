"""群活码 against the sandbox: created, edited and deleted in WeCom and in Harpoon, bad input
refused before any call, scans filling groups and opening rooms, the tags of a join, and
the joins per group and per day."""

from datetime import timedelta

import pytest
import requests
from marshmallow import ValidationError
from sqlalchemy import select

from core.days import last_days
from crm.tags import TagBook
from models import Channel, ContactTag, GroupJoinWay, TagGroup, utcnow
from sales.join_ways import (
    NOT_THE_CORPS_GROUPS,
    STATE_TAKEN,
    create_join_way,
    delete_join_way,
    join_way_for_state,
    joins_per_way,
    qr_picture,
    tag_group_join,
    update_join_way,
    way_joins,
)
from tests.factories import (
    add_staff,
    make_contact,
    make_group_member,
    make_join_way,
    make_synced_group,
)
from tests.helpers import WECOM_CREDS, harpoon_of
from tests.wecom_platform import api_calls, connect_corp, corp, fail_next, wecom_client
from wechat.clients import WeChatApiError
from wechat.sandbox import wecom_group_marketing, wecom_groups
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox
OTHER_CORP = Credentials(
    app_id="ww9f8e7d6c5b4a3f2e",
    token="othertoken",
    aes_key="0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
)


@pytest.fixture
def channel_id(app, platform):
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    return channel_id


@pytest.fixture
def client(app, channel_id):
    return wecom_client(app, channel_id)


def group(app, platform, channel_id, name="2026 数字化峰会交流群", owner="zhangsan") -> str:
    """A customer group in WeCom and its row in Harpoon (as the sync would write it)."""
    with platform.state.lock:
        made = wecom_groups.create_group(platform.state, corp(platform), owner=owner, name=name)
    make_synced_group(app, channel_id, made.chat_id, name, owner_userid=owner)
    return made.chat_id


def in_wecom(platform) -> dict[str, wecom_group_marketing.JoinWay]:
    with platform.state.lock:
        return dict(wecom_group_marketing.join_ways_of(corp(platform)))


def code(chat_ids, **changes):
    return {
        "name": "2026 数字化峰会",
        "state": "summit2026",
        "chat_ids": chat_ids,
        "auto_create_room": True,
        "room_base_name": "峰会交流群",
        "room_base_id": 2,
        "tag_ids": [],
        **changes,
    }


def create(app, channel_id, client, data):
    with harpoon_of(app).db.session() as session:
        way = create_join_way(session, session.get(Channel, channel_id), client, data)
        session.commit()
        return way.id


def errors_of(call) -> dict:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.messages


def test_a_join_way_is_created_updated_and_deleted_in_wecom(app, platform, channel_id, client):
    first = group(app, platform, channel_id)
    second = group(app, platform, channel_id, "2026 数字化峰会交流群 B")
    way_id = create(app, channel_id, client, code([first]))

    with harpoon_of(app).db.session() as session:
        way = session.get(GroupJoinWay, way_id)
        config_id = way.config_id
        assert way.qr_code.endswith(f"/join-ways/{config_id}/qr.svg")
        assert (way.state, way.chat_ids, way.room_base_name) == (
            "summit2026",
            [first],
            "峰会交流群",
        )
    remote = in_wecom(platform)[config_id]
    assert (remote.scene, remote.state, remote.chat_id_list) == (2, "summit2026", [first])
    assert (remote.auto_create_room, remote.room_base_name, remote.room_base_id) == (
        1,
        "峰会交流群",
        2,
    )
    assert remote.remark == "2026 数字化峰会"
    picture = requests.get(way.qr_code)
    assert picture.status_code == 200 and "<svg" in picture.text

    with harpoon_of(app).db.session() as session:
        way = session.get(GroupJoinWay, way_id)
        update_join_way(
            session, way, client, code([second, first], auto_create_room=False, state="summit-b")
        )
        session.commit()
    remote = in_wecom(platform)[config_id]
    assert (remote.chat_id_list, remote.auto_create_room, remote.state) == (
        [second, first],
        0,
        "summit-b",
    )

    calls = api_calls(platform)
    with harpoon_of(app).db.session() as session:
        way = session.get(GroupJoinWay, way_id)
        update_join_way(
            session,
            way,
            client,
            code([second, first], auto_create_room=False, state="summit-b", tag_ids=[]),
        )
        session.commit()
    assert api_calls(platform) == calls  # nothing WeCom keeps changed: no call

    with harpoon_of(app).db.session() as session:
        delete_join_way(session, session.get(GroupJoinWay, way_id), client)
        session.commit()
    assert in_wecom(platform) == {}
    with harpoon_of(app).db.session() as session:
        way = session.get(GroupJoinWay, way_id)
        assert way.deleted_at is not None
        # the joins it brought still name it
        assert join_way_for_state(session, channel_id, "summit-b").id == way_id


def test_bad_input_is_refused_before_wecom_is_asked(app, platform, channel_id, client):
    mine = group(app, platform, channel_id)
    create(app, channel_id, client, code([mine]))
    with platform.state.lock:  # a group WeCom has that Harpoon has not synced
        unsynced = wecom_groups.create_group(
            platform.state, corp(platform), owner="zhangsan", name="x"
        ).chat_id
    calls = api_calls(platform)
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        taken = errors_of(lambda: create_join_way(session, channel, client, code([mine])))
        assert taken == {"state": [STATE_TAKEN]}
        unknown = errors_of(
            lambda: create_join_way(session, channel, client, code([unsynced], state="other"))
        )
        assert unknown == {"chat_ids": ["Not customer groups of this workspace."]}
        six = errors_of(
            lambda: create_join_way(session, channel, client, code([mine] * 3 + list("abc")))
        )
        assert "chat_ids" in six
        long_state = errors_of(
            lambda: create_join_way(session, channel, client, code([mine], state="s" * 31))
        )
        assert long_state == {"state": ["At most 30 characters."]}
    assert api_calls(platform) == calls


def test_a_dismissed_or_another_corps_group_is_refused(app, platform, channel_id, client):
    dismissed = group(app, platform, channel_id, "解散了的群")
    with harpoon_of(app).db.session() as session:
        from models import CustomerGroup

        row = session.scalars(select(CustomerGroup).where(CustomerGroup.chat_id == dismissed)).one()
        row.dismissed_at = utcnow()
        session.commit()
        errors = errors_of(
            lambda: create_join_way(
                session, session.get(Channel, channel_id), client, code([dismissed])
            )
        )
    assert errors == {"chat_ids": [NOT_THE_CORPS_GROUPS % {"chat_ids": dismissed}]}


def test_wecom_refusing_leaves_nothing_behind(app, platform, channel_id, client):
    chat_id = group(app, platform, channel_id)
    fail_next(platform, "externalcontact/groupchat/add_join_way", 40058)
    with pytest.raises(WeChatApiError) as refused:
        create(app, channel_id, client, code([chat_id]))
    assert refused.value.errcode == 40058
    fail_next(platform, "externalcontact/groupchat/get_join_way", 40058)
    with pytest.raises(WeChatApiError):
        create(app, channel_id, client, code([chat_id]))
    assert in_wecom(platform) == {}  # the way WeCom made was deleted again
    with harpoon_of(app).db.session() as session:
        assert session.scalars(select(GroupJoinWay)).all() == []


def test_scans_fill_the_groups_then_open_rooms(app, platform, channel_id, client):
    """Customers scanning the code: 200 per group by QR code, then WeCom opens rooms."""
    chat_id = group(app, platform, channel_id)
    way_id = create(app, channel_id, client, code([chat_id]))
    with harpoon_of(app).db.session() as session:
        config_id = session.get(GroupJoinWay, way_id).config_id
    scan_url = f"{platform.url}/sandbox/wecom/{WECOM_CREDS.app_id}/join-ways/{config_id}/scan"
    with platform.state.lock:
        for n in range(198):  # the owner and 198 customers: one place left
            wecom_groups.join_group(platform.state, corp(platform), chat_id, f"wmFill{n:03d}")

    last = requests.post(scan_url, json={"external_userid": "wmLast"}).json()
    assert (last["chat_id"], last["state"], last["join_scene"]) == (chat_id, "summit2026", 3)
    overflow = requests.post(scan_url, json={"external_userid": "wmOverflow"}).json()
    room = overflow["chat_id"]
    assert room != chat_id
    with platform.state.lock:
        opened = wecom_groups.groups_of(corp(platform))[room]
        assert (opened.name, opened.owner) == ("峰会交流群2", "zhangsan")
    assert in_wecom(platform)[config_id].chat_id_list == [chat_id, room]

    with harpoon_of(app).db.session() as session:
        update_join_way(
            session,
            session.get(GroupJoinWay, way_id),
            client,
            code([chat_id], auto_create_room=False),
        )
        session.commit()
    with platform.state.lock:
        for n in range(199):
            wecom_groups.join_group(platform.state, corp(platform), room, f"wmRoom{n:03d}")
    refused = requests.post(scan_url, json={"external_userid": "wmTooLate"}).json()
    assert refused["errcode"] == 90500


def test_a_join_through_the_code_is_tagged(app, platform, channel_id):
    chat_id = "wrSummit"
    make_synced_group(app, channel_id, chat_id)
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        book = TagBook(session, workspace_id)
        tag_id = book.get(session, TagGroup.SOURCE, "2026 峰会").id
        session.commit()
    way_id = make_join_way(app, channel_id, [chat_id], tag_ids=[tag_id])
    contact_id = make_contact(app, "王总")
    with harpoon_of(app).db.session() as session:
        book = TagBook(session, workspace_id)
        assert tag_group_join(session, book, channel_id, "summit2026", contact_id).id == way_id
        assert tag_group_join(session, book, channel_id, "other", contact_id) is None
        assert tag_group_join(session, book, channel_id, None, contact_id) is None
        session.commit()
        tags = session.scalars(
            select(ContactTag.tag_id).where(ContactTag.contact_id == contact_id)
        ).all()
    assert tags == [tag_id]


def test_another_workspaces_state_names_no_way(app, platform, channel_id):
    other = connect_corp(app, platform, OTHER_CORP, workspace="globex")
    make_join_way(app, other, ["wrX"])
    with harpoon_of(app).db.session() as session:
        assert join_way_for_state(session, channel_id, "summit2026") is None
        assert join_way_for_state(session, other, "summit2026") is not None


def test_joins_per_group_and_per_day(app, platform, channel_id):
    a = make_synced_group(app, channel_id, "wrA", "峰会一群", member_count=4)
    b = make_synced_group(app, channel_id, "wrB", "峰会二群", member_count=2)
    way_id = make_join_way(app, channel_id, ["wrA", "wrB"])
    make_join_way(app, channel_id, ["wrA"], state="other")
    now = utcnow()
    make_group_member(app, a, "wm1", state="summit2026", joined_at=now)
    make_group_member(app, a, "wm2", state="summit2026", joined_at=now - timedelta(days=1))
    make_group_member(app, a, "wm3", state="summit2026", joined_at=now, left_at=now)
    make_group_member(app, a, "wm4", state="other", joined_at=now)
    make_group_member(app, b, "wm5", state="summit2026", joined_at=now - timedelta(days=40))
    make_group_member(app, b, "wm6", joined_at=now)  # invited, not through a code

    with harpoon_of(app).db.session() as session:
        way = session.get(GroupJoinWay, way_id)
        per_group, days, daily = way_joins(session, way, "Asia/Shanghai", 30)
        assert [(g.name, joined, staying) for g, joined, staying in per_group] == [
            ("峰会一群", 3, 2),
            ("峰会二群", 1, 1),
        ]
        assert days == last_days(30, "Asia/Shanghai")
        assert sum(daily.values()) == 3  # the one 40 days ago is outside the window
        assert daily[days[-1]] >= 1
        totals = joins_per_way(session, way.workspace_id)
    assert totals[way_id] == 4


def test_a_qr_picture_is_fetched_only_from_wecoms_image_hosts(platform):
    assert qr_picture(None) is None
    assert qr_picture("http://169.254.169.254/latest/meta-data") is None
    assert qr_picture("https://example.com/qr.png") is None
    assert qr_picture("http://wework.qpic.cn/wwpic/x/0") is None  # WeCom's are https
    assert qr_picture(f"{platform.url}/sandbox/state") is None  # not the sandbox's API URL
    unknown = f"{platform.url}/sandbox/wecom/{WECOM_CREDS.app_id}/join-ways/nope/qr.svg"
    assert qr_picture(unknown, platform.url) is None  # the sandbox answers an error, no image
