"""联系我 codes against the sandbox: created, edited and deleted in WeCom and in Harpoon,
bad input refused before any call, WeCom's refusals leaving nothing behind."""

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from crm.tags import TagBook
from models import Channel, ContactWay, TagGroup
from sales.contact_ways import (
    STATE_TAKEN,
    ContactWayInput,
    contact_way_for_state,
    create_contact_way,
    delete_contact_way,
    unknown_placeholders,
    update_contact_way,
)
from tests.factories import add_staff
from tests.helpers import harpoon_of
from tests.wecom_platform import (
    api_calls,
    connect_corp,
    contact_ways_in_wecom,
    fail_next,
    set_customer_contact,
    sync_staff_now,
    wecom_client,
)
from wechat.clients import WeChatApiError

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)
    return channel_id


@pytest.fixture
def client(app, channel_id):
    return wecom_client(app, channel_id)


def code(**changes):
    return {
        "name": "2026 展会展台",
        "state": "expo2026",
        "staff_userids": ["zhangsan"],
        "skip_verify": True,
        "tag_ids": [],
        "welcome_text": "{name}您好，我是{staff}，欢迎来到展台！",
        **changes,
    }


def create(app, channel_id, client, data):
    with harpoon_of(app).db.session() as session:
        way = create_contact_way(session, session.get(Channel, channel_id), client, data)
        session.commit()
        return way.id


def errors_of(call) -> dict:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.messages


def test_a_single_staff_code_is_created_in_wecom_and_stored(app, platform, channel_id, client):
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        tag_id = TagBook(session, workspace_id).get(session, TagGroup.SOURCE, "expo").id
        session.commit()

    way_id = create(app, channel_id, client, code(tag_ids=[tag_id], skip_verify=False))

    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        remote = contact_ways_in_wecom(platform)[way.config_id]
        assert (remote.type, remote.scene, remote.user) == (1, 2, ["zhangsan"])
        assert (remote.state, remote.skip_verify, remote.remark) == (
            "expo2026",
            False,
            "2026 展会展台",
        )
        assert way.qr_code == remote.qr_code and way.qr_code.endswith("/qr.png")
        assert (way.state, way.staff_userids, way.tag_ids) == ("expo2026", ["zhangsan"], [tag_id])
        assert way.welcome_text == "{name}您好，我是{staff}，欢迎来到展台！"
        assert contact_way_for_state(session, channel_id, "expo2026").id == way_id
        assert contact_way_for_state(session, channel_id, "other") is None
        assert contact_way_for_state(session, channel_id, None) is None


def test_a_code_for_several_staff_is_a_multi_person_code(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code(staff_userids=["zhangsan", "lisi", "zhangsan"]))
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        assert way.staff_userids == ["zhangsan", "lisi"]
        remote = contact_ways_in_wecom(platform)[way.config_id]
        assert (remote.type, remote.user) == (2, ["zhangsan", "lisi"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"state": "s" * 31}, "state"),
        ({"state": "展会 A"}, "state"),
        ({"state": "  "}, "state"),
        ({"name": ""}, "name"),
        ({"staff_userids": []}, "staff_userids"),
        ({"welcome_text": "x" * 1001}, "welcome_text"),
        ({"welcome_text": "您好 {nickname}"}, "welcome_text"),
    ],
)
def test_bad_input_is_refused_before_any_call(app, platform, channel_id, client, changes, field):
    before = api_calls(platform)
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        messages = errors_of(lambda: create_contact_way(session, channel, client, code(**changes)))
    assert field in messages
    assert api_calls(platform) == before
    assert contact_ways_in_wecom(platform) == {}


def test_the_placeholder_message_names_the_unknown_one():
    messages = errors_of(
        lambda: ContactWayInput().load(code(welcome_text="{nickname}{name}{公司}"))
    )
    (message,) = messages["welcome_text"]
    assert "{nickname}, {公司}" in message and "{last_read}" in message
    assert unknown_placeholders("{name}{account}{staff}{last_read} {} { name }") == []


def test_a_state_in_use_is_refused_before_any_call(app, platform, channel_id, client):
    create(app, channel_id, client, code())
    before = api_calls(platform)
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        messages = errors_of(lambda: create_contact_way(session, channel, client, code(name="b")))
    assert messages == {"state": [STATE_TAKEN]}
    assert api_calls(platform) == before
    assert len(contact_ways_in_wecom(platform)) == 1


def test_staff_without_the_permission_or_foreign_tags_are_refused(
    app, platform, channel_id, client
):
    set_customer_contact(platform, "lisi", False)
    sync_staff_now(app, channel_id)
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        messages = errors_of(
            lambda: create_contact_way(
                session, channel, client, code(staff_userids=["lisi", "ghost"], tag_ids=[999])
            )
        )
    assert "lisi, ghost" in messages["staff_userids"][0]
    assert "tag_ids" in messages
    assert contact_ways_in_wecom(platform) == {}


def test_wecom_refusing_stores_nothing(app, platform, channel_id, client):
    fail_next(platform, "externalcontact/add_contact_way", 41041)
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        with pytest.raises(WeChatApiError) as caught:
            create_contact_way(session, channel, client, code())
        session.rollback()
        assert caught.value.errcode == 41041
        assert session.scalars(select(ContactWay)).all() == []


def test_an_edit_updates_the_code_in_wecom(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code(staff_userids=["zhangsan", "lisi"]))
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        config_id = way.config_id
        replaced = update_contact_way(
            session,
            way,
            client,
            code(state="webinar", staff_userids=["lisi", "zhangsan"], skip_verify=False),
        )
        session.commit()
        assert not replaced and way.config_id == config_id
        assert (way.state, way.staff_userids, way.skip_verify) == (
            "webinar",
            ["lisi", "zhangsan"],
            False,
        )
    remote = contact_ways_in_wecom(platform)[config_id]
    assert (remote.state, remote.user, remote.skip_verify) == (
        "webinar",
        ["lisi", "zhangsan"],
        False,
    )


def test_an_edit_of_harpoons_own_fields_makes_no_call(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code())
    before = api_calls(platform)
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        update_contact_way(session, way, client, code(welcome_text="欢迎 {name}"))
        session.commit()
        assert way.welcome_text == "欢迎 {name}"
    assert api_calls(platform) == before


def test_one_to_several_staff_replaces_the_code_keeping_its_state(
    app, platform, channel_id, client
):
    way_id = create(app, channel_id, client, code())
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        old_config_id = way.config_id
        assert update_contact_way(session, way, client, code(staff_userids=["zhangsan", "lisi"]))
        session.commit()
        new_config_id, qr_code = way.config_id, way.qr_code
    remote = contact_ways_in_wecom(platform)
    assert set(remote) == {new_config_id} != {old_config_id}
    assert (remote[new_config_id].type, remote[new_config_id].state) == (2, "expo2026")
    assert remote[new_config_id].qr_code == qr_code


def test_an_edit_wecom_refuses_changes_nothing(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code(staff_userids=["zhangsan", "lisi"]))
    fail_next(platform, "externalcontact/update_contact_way", 84074)
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        with pytest.raises(WeChatApiError):
            update_contact_way(
                session, way, client, code(state="webinar", staff_userids=["zhangsan", "lisi"])
            )
        session.rollback()
        assert session.get(ContactWay, way_id).state == "expo2026"


def test_delete_removes_the_code_in_wecom_and_keeps_the_row(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code())
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        delete_contact_way(session, way, client)
        session.commit()
        assert way.deleted_at is not None
        assert contact_way_for_state(session, channel_id, "expo2026") is None
    assert contact_ways_in_wecom(platform) == {}
    # The state stays with the deleted code: the adds it brought still name it.
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        messages = errors_of(lambda: create_contact_way(session, channel, client, code()))
    assert messages == {"state": [STATE_TAKEN]}


def test_delete_of_a_code_wecom_lost_still_marks_it_deleted(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code())
    client.external_contact.del_contact_way(contact_ways_in_wecom(platform).popitem()[0])
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        delete_contact_way(session, way, client)
        session.commit()
        assert way.deleted_at is not None


def test_a_refused_delete_keeps_the_code(app, platform, channel_id, client):
    way_id = create(app, channel_id, client, code())
    fail_next(platform, "externalcontact/del_contact_way", 48002)
    with harpoon_of(app).db.session() as session:
        way = session.get(ContactWay, way_id)
        with pytest.raises(WeChatApiError):
            delete_contact_way(session, way, client)
        session.rollback()
        assert session.get(ContactWay, way_id).deleted_at is None
    assert len(contact_ways_in_wecom(platform)) == 1
