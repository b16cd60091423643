"""The sandbox's customer groups: made and joined over HTTP, read with groupchat/list and
groupchat/get as WeCom answers them, within the 500-people limit."""

import pytest

from tests.factories import add_customer
from tests.wechat.sandbox.helpers import CORP_ID
from wechat.callbacks import parse_xml
from wechat.sandbox import wecom, wecom_groups


@pytest.fixture
def corp(sandbox_state):
    tenant = sandbox_state.tenant(CORP_ID)
    wecom.add_staff(sandbox_state, tenant, "alice", "Alice")
    yield tenant
    sandbox_state.wait_for_deliveries()


def call(api, path, token, payload):
    return api.post(f"/wecom/cgi-bin/{path}", query_string={"access_token": token}, json=payload)


def test_a_group_made_over_http_is_listed_and_read(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wmCustomerA", unionid="uA")
    made = api.post(
        f"/sandbox/wecom/{CORP_ID}/groups",
        json={"owner": "alice", "name": "华信项目群", "members": ["wmCustomerA"]},
    )
    assert made.status_code == 200, made.text
    chat_id = made.json["chat_id"]
    joined = api.post(
        f"/sandbox/wecom/{CORP_ID}/groups/{chat_id}/members",
        json={"userids": ["wmStranger"], "join_scene": 3},
    )
    assert joined.status_code == 200
    listed = call(api, "externalcontact/groupchat/list", contact_token, {"limit": 1000}).json
    assert listed["errcode"] == 0
    assert listed["group_chat_list"] == [{"chat_id": chat_id, "status": 0}]
    got = call(api, "externalcontact/groupchat/get", contact_token, {"chat_id": chat_id}).json
    assert got["errcode"] == 0
    members = got["group_chat"]["member_list"]
    assert [(m["userid"], m["type"], m["join_scene"]) for m in members] == [
        ("alice", 1, 1),
        ("wmCustomerA", 2, 1),
        ("wmStranger", 2, 3),
    ]
    assert members[1]["unionid"] == "uA"
    assert members[2]["invitor"] == {"userid": "alice"}
    assert got["group_chat"]["name"] == "华信项目群"


def test_limits_and_errors(api, sandbox_state, corp, contact_token, agent_token):
    assert (
        call(api, "externalcontact/groupchat/list", contact_token, {"limit": 1001}).json["errcode"]
        == 40058
    )
    unknown = call(api, "externalcontact/groupchat/get", contact_token, {"chat_id": "wrNope"})
    assert unknown.json["errcode"] == 40050
    wrong_secret = call(api, "externalcontact/groupchat/get", agent_token, {"chat_id": "x"})
    assert wrong_secret.json["errcode"] == 48002
    group = wecom_groups.create_group(sandbox_state, corp, owner="alice", name="满员群")
    for n in range(wecom_groups.GROUP_MEMBERS_MAX - 1):
        wecom_groups.join_group(sandbox_state, corp, group.chat_id, f"wm{n:05d}")
    full = api.post(
        f"/sandbox/wecom/{CORP_ID}/groups/{group.chat_id}/members", json={"userids": ["wmLate"]}
    )
    assert full.json["errcode"] == 90500
    assert len(group.members) == wecom_groups.GROUP_MEMBERS_MAX


def test_pages_by_cursor(api, sandbox_state, corp, contact_token):
    ids = [
        wecom_groups.create_group(sandbox_state, corp, owner="alice", name=f"群{n}").chat_id
        for n in range(3)
    ]
    first = call(api, "externalcontact/groupchat/list", contact_token, {"limit": 2}).json
    second = call(
        api,
        "externalcontact/groupchat/list",
        contact_token,
        {"limit": 2, "cursor": first["next_cursor"]},
    ).json
    seen = [g["chat_id"] for g in first["group_chat_list"] + second["group_chat_list"]]
    assert sorted(seen) == sorted(ids)
    assert second["next_cursor"] == ""


def test_what_people_do_is_delivered_as_change_external_chat(
    api, sandbox_state, corp, contact_token
):
    wecom.add_staff(sandbox_state, corp, "bob", "Bob")
    chat_id = api.post(
        f"/sandbox/wecom/{CORP_ID}/groups", json={"owner": "alice", "name": "群"}
    ).json["chat_id"]
    base = f"/sandbox/wecom/{CORP_ID}/groups/{chat_id}"
    api.post(f"{base}/members", json={"userids": ["wmA"], "join_scene": 3})
    api.post(f"{base}/members/leave", json={"userids": ["wmA"], "removed": True})
    api.post(f"{base}/owner", json={"owner": "bob"})
    api.post(base, json={"name": "新群名", "notice": "公告"})
    assert api.post(f"{base}/members/leave", json={"userids": ["bob"]}).json["errcode"] == 40003
    api.post(f"{base}/dismiss")
    events = [parse_xml(d.xml) for d in sandbox_state.deliveries]
    assert {e["Event"] for e in events} == {"change_external_chat"}
    assert {e["ChatId"] for e in events} == {chat_id}
    assert [(e["ChangeType"], e.get("UpdateDetail")) for e in events] == [
        ("create", None),
        ("update", "add_member"),
        ("update", "del_member"),
        ("update", "change_owner"),
        ("update", "change_name"),
        ("update", "change_notice"),
        ("dismiss", None),
    ]
    assert (events[1]["JoinScene"], events[1]["MemChangeCnt"]) == ("3", "1")
    assert events[2]["QuitScene"] == "1"
    gone = call(api, "externalcontact/groupchat/get", contact_token, {"chat_id": chat_id})
    assert gone.json["errcode"] == 40050


def test_group_transfers_keep_wecoms_limits(api, sandbox_state, corp, contact_token):
    wecom.add_staff(sandbox_state, corp, "bob", "Bob")
    chat = wecom_groups.create_group(sandbox_state, corp, owner="alice", name="群").chat_id

    def onjob(new_owner, chats=None):
        payload = {"chat_id_list": chats or [chat], "new_owner": new_owner}
        return call(api, "externalcontact/groupchat/onjob_transfer", contact_token, payload).json

    assert onjob("bob") == {"errcode": 0, "errmsg": "ok", "failed_chat_list": []}
    assert onjob("alice")["failed_chat_list"] == []
    (refused,) = onjob("bob")["failed_chat_list"]  # a third time within 90 days
    assert refused["errcode"] == wecom_groups.GROUP_TOO_OFTEN
    assert onjob("bob", [f"wr{n}" for n in range(101)])["errcode"] == 40058
    (unknown,) = onjob("bob", ["wrNope"])["failed_chat_list"]
    assert unknown["errcode"] == 40050
    departed = call(
        api,
        "externalcontact/groupchat/transfer",
        contact_token,
        {"chat_id_list": [chat], "new_owner": "bob"},
    ).json
    assert departed["failed_chat_list"][0]["errcode"] == wecom_groups.OWNER_NOT_DEPARTED
