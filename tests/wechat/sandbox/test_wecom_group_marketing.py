"""The sandbox's 群活码, group welcome templates and group sends to customer groups: WeCom's
fields, limits and errcodes, a scan joining the first group with room (200 by QR code),
rooms opened when every group is full, and the change_external_chat callback of a join."""

import pytest
from wechatpy.work import parse_message

from tests.wechat.sandbox.helpers import CORP_ID
from wechat.sandbox import wecom, wecom_group_marketing, wecom_groups


@pytest.fixture
def corp(sandbox_state):
    tenant = sandbox_state.tenant(CORP_ID)
    wecom.add_staff(sandbox_state, tenant, "alice", "Alice")
    wecom.add_staff(sandbox_state, tenant, "bob", "Bob")
    yield tenant
    sandbox_state.wait_for_deliveries()


def call(api, path, token, payload):
    answer = api.post(
        f"/wecom/cgi-bin/externalcontact/{path}",
        query_string={"access_token": token},
        json=payload,
    )
    assert answer.status_code == 200
    return answer.json


def new_group(api, owner="alice", name="峰会交流群", members=()):
    made = api.post(
        f"/sandbox/wecom/{CORP_ID}/groups",
        json={"owner": owner, "name": name, "members": list(members)},
    )
    assert made.status_code == 200, made.text
    return made.json["chat_id"]


def fill(sandbox_state, corp, chat_id, count, prefix):
    with sandbox_state.lock:
        for n in range(count):
            wecom_groups.join_group(sandbox_state, corp, chat_id, f"wm{prefix}{n:04d}")


def scan(api, config_id, external_userid):
    return api.post(
        f"/sandbox/wecom/{CORP_ID}/join-ways/{config_id}/scan",
        json={"external_userid": external_userid},
    )


def join_way(**changes):
    return {"scene": 2, "remark": "2026 峰会", "state": "summit2026", **changes}


def test_a_join_way_is_added_read_updated_and_deleted(api, corp, contact_token):
    first, second = new_group(api), new_group(api, name="峰会交流群2")
    added = call(
        api,
        "groupchat/add_join_way",
        contact_token,
        join_way(
            chat_id_list=[first],
            remark="r" * 40,
            auto_create_room=1,
            room_base_name="峰会群",
            room_base_id=3,
        ),
    )
    assert added["errcode"] == 0
    config_id = added["config_id"]
    got = call(api, "groupchat/get_join_way", contact_token, {"config_id": config_id})
    way = got["join_way"]
    assert way["remark"] == "r" * 30  # WeCom cuts the remark
    assert way["chat_id_list"] == [first]
    assert (way["auto_create_room"], way["room_base_name"], way["room_base_id"]) == (1, "峰会群", 3)
    assert way["state"] == "summit2026"
    assert way["qr_code"].endswith(f"/join-ways/{config_id}/qr.svg")
    picture = api.get(way["qr_code"].split("localhost", 1)[-1])
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"

    updated = call(
        api,
        "groupchat/update_join_way",
        contact_token,
        join_way(config_id=config_id, chat_id_list=[second, first], auto_create_room=0),
    )
    assert updated["errcode"] == 0
    way = call(api, "groupchat/get_join_way", contact_token, {"config_id": config_id})["join_way"]
    assert (way["chat_id_list"], way["auto_create_room"]) == ([second, first], 0)

    assert call(api, "groupchat/del_join_way", contact_token, {"config_id": config_id}) == {
        "errcode": 0,
        "errmsg": "ok",
    }
    gone = call(api, "groupchat/get_join_way", contact_token, {"config_id": config_id})
    assert gone["errcode"] == 41044


@pytest.mark.parametrize(
    ("changes", "errcode"),
    [
        ({"scene": 3}, 40058),
        ({"chat_id_list": []}, 40058),
        ({"chat_id_list": ["wrNope"]}, 40050),
        ({"state": "s" * 31}, 40058),
        ({"room_base_name": "名" * 41}, 40058),
        ({"auto_create_room": 2}, 40058),
    ],
)
def test_bad_join_ways_are_refused(api, corp, contact_token, changes, errcode):
    payload = join_way(**{"chat_id_list": [new_group(api)], **changes})
    assert call(api, "groupchat/add_join_way", contact_token, payload)["errcode"] == errcode


def test_six_groups_are_one_too_many(api, corp, contact_token):
    chats = [new_group(api, name=f"群{n}") for n in range(6)]
    answer = call(api, "groupchat/add_join_way", contact_token, join_way(chat_id_list=chats))
    assert answer["errcode"] == 40058


def test_contact_ways_and_join_ways_share_one_quota(api, corp, contact_token, monkeypatch):
    monkeypatch.setattr(wecom, "CONFIG_QUOTA", 2)
    chat_id = new_group(api)
    contact_way = {"type": 1, "scene": 2, "user": ["alice"]}
    assert call(api, "add_contact_way", contact_token, contact_way)["errcode"] == 0
    assert (
        call(api, "groupchat/add_join_way", contact_token, join_way(chat_id_list=[chat_id]))[
            "errcode"
        ]
        == 0
    )
    assert call(api, "add_contact_way", contact_token, contact_way)["errcode"] == 41054
    refused = call(
        api, "groupchat/add_join_way", contact_token, join_way(chat_id_list=[chat_id], state="b")
    )
    assert refused["errcode"] == 41054


def test_a_scan_joins_the_first_group_with_room_and_tells_the_corp(
    api, sandbox_state, corp, contact_token, receiver
):
    full, roomy = new_group(api, name="一群"), new_group(api, name="二群")
    fill(sandbox_state, corp, full, 199, "F")  # the owner and 199 customers: 200
    config_id = call(
        api, "groupchat/add_join_way", contact_token, join_way(chat_id_list=[full, roomy])
    )["config_id"]
    sandbox_state.wait_for_deliveries()
    delivered_before = len(receiver.received)  # filling the group told the corp of each join

    joined = scan(api, config_id, "wmGuest")
    assert joined.status_code == 200, joined.text
    assert joined.json["chat_id"] == roomy
    assert (joined.json["join_scene"], joined.json["state"]) == (3, "summit2026")
    again = scan(api, config_id, "wmGuest")  # already in: stays, no second join
    assert again.json["chat_id"] == roomy

    got = call(api, "groupchat/get", contact_token, {"chat_id": roomy})["group_chat"]
    guest = next(m for m in got["member_list"] if m["userid"] == "wmGuest")
    assert (guest["type"], guest["join_scene"], guest["state"]) == (2, 3, "summit2026")
    owner = next(m for m in got["member_list"] if m["userid"] == "alice")
    assert "state" not in owner

    sandbox_state.wait_for_deliveries()
    events = [parse_message(xml) for xml in receiver.received[delivered_before:]]
    chat_events = [e for e in events if e.event == "change_external_chat"]
    assert len(chat_events) == 1
    (event,) = chat_events
    assert (event.chat_id, event.change_type, event.update_detail) == (
        roomy,
        "update",
        "add_member",
    )
    assert (int(event.join_scene), int(event.mem_change_cnt)) == (3, 1)


def test_full_groups_open_rooms_named_from_the_base(api, sandbox_state, corp, contact_token):
    chats = [new_group(api, name=f"峰会{n}群") for n in range(5)]
    for n, chat_id in enumerate(chats):
        fill(sandbox_state, corp, chat_id, 199, f"G{n}")
    config_id = call(
        api,
        "groupchat/add_join_way",
        contact_token,
        join_way(chat_id_list=chats, room_base_name="峰会交流", room_base_id=6),
    )["config_id"]

    joined = scan(api, config_id, "wmLate")
    assert joined.status_code == 200, joined.text
    room = joined.json["chat_id"]
    assert room not in chats
    got = call(api, "groupchat/get", contact_token, {"chat_id": room})["group_chat"]
    assert (got["name"], got["owner"]) == ("峰会交流6", "alice")
    way = call(api, "groupchat/get_join_way", contact_token, {"config_id": config_id})["join_way"]
    # five at most: the first full group made way for the new room
    assert way["chat_id_list"] == [*chats[1:], room]

    fill(sandbox_state, corp, room, 198, "R")  # alice, wmLate and 198: 200
    second = scan(api, config_id, "wmLater").json["chat_id"]
    got = call(api, "groupchat/get", contact_token, {"chat_id": second})["group_chat"]
    assert got["name"] == "峰会交流7"


def test_without_auto_create_a_scan_into_full_groups_is_refused(
    api, sandbox_state, corp, contact_token
):
    chat_id = new_group(api)
    fill(sandbox_state, corp, chat_id, 199, "F")
    config_id = call(
        api,
        "groupchat/add_join_way",
        contact_token,
        join_way(chat_id_list=[chat_id], auto_create_room=0),
    )["config_id"]
    refused = scan(api, config_id, "wmLate")
    assert refused.json["errcode"] == 90500
    assert "full" in refused.json["errmsg"]
    # a group still admits by invitation up to 500
    with sandbox_state.lock:
        wecom_groups.join_group(sandbox_state, corp, chat_id, "wmInvited")
    assert scan(api, "nope", "wmLate").json["errcode"] == 41044


def test_group_welcome_templates(api, corp, contact_token):
    added = call(
        api,
        "group_welcome_template/add",
        contact_token,
        {
            "text": {"content": "欢迎 %NICKNAME% 加入峰会交流群"},
            "link": {"title": "峰会议程", "url": "https://example.com/agenda"},
            "notify": 1,
        },
    )
    assert added["errcode"] == 0
    template_id = added["template_id"]
    got = call(api, "group_welcome_template/get", contact_token, {"template_id": template_id})
    assert got["text"] == {"content": "欢迎 %NICKNAME% 加入峰会交流群"}
    assert got["link"]["title"] == "峰会议程"
    edited = call(
        api,
        "group_welcome_template/edit",
        contact_token,
        {"template_id": template_id, "text": {"content": "新的欢迎语"}},
    )
    assert edited["errcode"] == 0
    got = call(api, "group_welcome_template/get", contact_token, {"template_id": template_id})
    assert got["text"] == {"content": "新的欢迎语"} and "link" not in got
    assert call(api, "group_welcome_template/add", contact_token, {})["errcode"] == 41059
    too_long = {"text": {"content": "字" * 1001}}  # 3003 bytes
    assert call(api, "group_welcome_template/add", contact_token, too_long)["errcode"] == 40058
    no_url = {"link": {"title": "议程"}}
    assert call(api, "group_welcome_template/add", contact_token, no_url)["errcode"] == 40058
    deleted = call(api, "group_welcome_template/del", contact_token, {"template_id": template_id})
    assert deleted["errcode"] == 0
    gone = call(api, "group_welcome_template/get", contact_token, {"template_id": template_id})
    assert gone["errcode"] == 41060


def test_a_group_send_reaches_the_senders_groups(api, sandbox_state, corp, contact_token):
    mine, other = new_group(api, name="我的群"), new_group(api, owner="bob", name="Bob 的群")
    answer = call(
        api,
        "add_msg_template",
        contact_token,
        {
            "chat_type": "group",
            "sender": "alice",
            "chat_id_list": [mine, other],
            "text": {"content": "峰会明天 9 点开始"},
        },
    )
    assert answer["errcode"] == 0
    assert answer["fail_list"] == [other]
    msgid = answer["msgid"]
    query = {"msgid": msgid, "userid": "alice", "limit": 100}
    pending = call(api, "get_groupmsg_send_result", contact_token, query)["send_list"]
    assert pending == [{"chat_id": mine, "userid": "alice", "status": 0}]
    wecom.confirm_msg_template(sandbox_state, corp, msgid)
    sent = call(api, "get_groupmsg_send_result", contact_token, query)["send_list"]
    assert [(row["chat_id"], row["status"]) for row in sent] == [(mine, 1)]
    assert "send_time" in sent[0]

    everything = call(
        api,
        "add_msg_template",
        contact_token,
        {"chat_type": "group", "sender": "alice", "text": {"content": "全部群"}},
    )
    assert everything["errcode"] == 0 and everything["fail_list"] == []
    nothing = call(
        api,
        "add_msg_template",
        contact_token,
        {
            "chat_type": "group",
            "sender": "alice",
            "chat_id_list": [other],
            "text": {"content": "x"},
        },
    )
    assert nothing["errcode"] == 41048
    wrong = {"chat_type": "room", "sender": "alice", "text": {"content": "x"}}
    assert call(api, "add_msg_template", contact_token, wrong)["errcode"] == 40058


def test_inspect_shows_join_ways(api, sandbox_state, corp, contact_token):
    chat_id = new_group(api)
    call(api, "groupchat/add_join_way", contact_token, join_way(chat_id_list=[chat_id]))
    with sandbox_state.lock:
        shown = wecom_group_marketing.inspect(corp)
    assert [w["state"] for w in shown["join_ways"].values()] == ["summit2026"]
