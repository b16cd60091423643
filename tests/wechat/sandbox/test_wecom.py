"""The WeCom sandbox: customer contact, 联系我, welcome messages, corp tags, group sends,
app messages, API limits and the callbacks of what people do in the client."""

import pytest
from wechatpy.work import parse_message

from tests.factories import add_corp_tags, add_customer
from tests.wechat.sandbox.helpers import AGENT_SECRET, CONTACT_SECRET, CORP_ID
from wechat.sandbox import wecom

EXT = "/wecom/cgi-bin/externalcontact"


@pytest.fixture
def corp(sandbox_state):
    """The corp with alice and bob (customer contact) and carol (no permission)."""
    tenant = sandbox_state.tenant(CORP_ID)
    wecom.add_staff(sandbox_state, tenant, "alice", "Alice")
    wecom.add_staff(sandbox_state, tenant, "bob", "Bob")
    wecom.add_staff(sandbox_state, tenant, "carol", "Carol", customer_contact=False)
    yield tenant
    sandbox_state.wait_for_deliveries()  # none may reach the next test's receiver


def get(api, path, token, **params):
    return api.get(path, query_string={"access_token": token, **params}).json


def post(api, path, token, payload):
    return api.post(path, query_string={"access_token": token}, json=payload).json


def received_events(sandbox_state, receiver):
    sandbox_state.wait_for_deliveries()
    return [parse_message(xml) for xml in receiver.received]


# --- staff, customers and permissions ------------------------------------------


def test_follow_user_list_and_user_get(api, corp, contact_token, agent_token):
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["follow_user"] == [
        "alice",
        "bob",
    ]
    assert get(api, "/wecom/cgi-bin/user/get", agent_token, userid="carol")["name"] == "Carol"
    assert get(api, "/wecom/cgi-bin/user/get", agent_token, userid="nobody")["errcode"] == 60111


def test_customer_contact_apis_need_the_contact_secret(api, corp, agent_token):
    assert get(api, f"{EXT}/get_follow_user_list", agent_token)["errcode"] == 48002
    assert post(api, f"{EXT}/get_corp_tag_list", agent_token, {})["errcode"] == 48002


def test_app_messages_need_the_agent_secret(api, corp, contact_token):
    message = {"touser": "alice", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}}
    answer = post(api, "/wecom/cgi-bin/message/send", contact_token, message)
    assert answer["errcode"] == 301002


def test_get_external_contact(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_wang", state="expo", unionid="ou_1")
    add_customer(sandbox_state, corp, "wm_wang", userid="bob")
    add_customer(sandbox_state, corp, "wm_li", corp_name="Li Trading")
    wang = get(api, f"{EXT}/get", contact_token, external_userid="wm_wang")
    assert wang["external_contact"] == {
        "external_userid": "wm_wang",
        "name": "WM_WANG",
        "type": 1,
        "gender": 0,
        "avatar": "",
        "unionid": "ou_1",
    }
    assert [f["userid"] for f in wang["follow_user"]] == ["alice", "bob"]
    assert wang["follow_user"][0]["state"] == "expo"
    assert wang["follow_user"][0]["add_way"] == 1
    assert wang["follow_user"][0]["oper_userid"] == "wm_wang"
    assert "state" not in wang["follow_user"][1]
    assert wang["next_cursor"] == ""
    li = get(api, f"{EXT}/get", contact_token, external_userid="wm_li")["external_contact"]
    assert (li["type"], li["corp_name"]) == (2, "Li Trading")
    assert get(api, f"{EXT}/get", contact_token, external_userid="wm_x")["errcode"] == 84061


def test_list_customers_of_a_staff_member(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    add_customer(sandbox_state, corp, "wm_2")
    listed = get(api, f"{EXT}/list", contact_token, userid="alice")
    assert listed["external_userid"] == ["wm_1", "wm_2"]
    assert get(api, f"{EXT}/list", contact_token, userid="bob")["errcode"] == 84061
    assert get(api, f"{EXT}/list", contact_token, userid="carol")["errcode"] == 84074
    assert get(api, f"{EXT}/list", contact_token, userid="nobody")["errcode"] == 40003


def test_batch_get_by_user_pages_with_a_cursor(api, sandbox_state, corp, contact_token):
    for n in range(5):
        add_customer(sandbox_state, corp, f"wm_a{n}")
    add_customer(sandbox_state, corp, "wm_b0", userid="bob")
    add_customer(sandbox_state, corp, "wm_b1", userid="bob")
    seen, cursor, pages = [], "", 0
    while True:
        page = post(
            api,
            f"{EXT}/batch/get_by_user",
            contact_token,
            {"userid_list": ["alice", "bob"], "cursor": cursor, "limit": 3},
        )
        pages += 1
        entry = page["external_contact_list"][0]
        assert set(entry) == {"external_contact", "follow_info"}
        assert "tag_id" in entry["follow_info"]
        seen += [
            (e["follow_info"]["userid"], e["external_contact"]["external_userid"])
            for e in page["external_contact_list"]
        ]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == [("alice", f"wm_a{n}") for n in range(5)] + [("bob", "wm_b0"), ("bob", "wm_b1")]


def test_batch_get_by_user_limits(api, sandbox_state, corp, contact_token):
    for n in range(3):
        add_customer(sandbox_state, corp, f"wm_{n}")
    batch = f"{EXT}/batch/get_by_user"
    legacy = post(api, batch, contact_token, {"userid": "alice", "limit": 1000})
    assert len(legacy["external_contact_list"]) == 3  # limit over 100 counts as 100
    too_many = post(api, batch, contact_token, {"userid_list": ["alice"] * 101})
    assert too_many["errcode"] == 40032
    assert post(api, batch, contact_token, {"userid_list": ["carol"]})["errcode"] == 84074
    bad_cursor = post(api, batch, contact_token, {"userid_list": ["alice"], "cursor": "zz"})
    assert bad_cursor["errcode"] == 50100


def test_remark_changes_the_follow_user_without_a_callback(
    api, sandbox_state, receiver, corp, contact_token
):
    add_customer(sandbox_state, corp, "wm_1")
    sandbox_state.wait_for_deliveries()
    receiver.received.clear()
    change = {
        "userid": "alice",
        "external_userid": "wm_1",
        "remark": "Mr Wang",
        "description": "CTO",
        "remark_company": "Wang Ltd",
        "remark_mobiles": ["13800000000"],
    }
    assert post(api, f"{EXT}/remark", contact_token, change)["errcode"] == 0
    follow = get(api, f"{EXT}/get", contact_token, external_userid="wm_1")["follow_user"][0]
    assert (follow["remark"], follow["description"]) == ("Mr Wang", "CTO")
    assert (follow["remark_corp_name"], follow["remark_mobiles"]) == ("Wang Ltd", ["13800000000"])
    unknown = {"userid": "bob", "external_userid": "wm_1", "remark": "x"}
    assert post(api, f"{EXT}/remark", contact_token, unknown)["errcode"] == 84061
    assert received_events(sandbox_state, receiver) == []


# --- callbacks of what people do in the client -----------------------------------


def test_add_event_is_delivered_with_state_and_welcome_code(sandbox_state, receiver, corp):
    code = add_customer(sandbox_state, corp, "wm_1", state="expo2024")
    [event] = received_events(sandbox_state, receiver)
    assert event.event == "change_external_contact"
    assert event.change_type == "add_external_contact"
    assert (event.user_id, event.external_user_id) == ("alice", "wm_1")
    assert (event.state, event.welcome_code) == ("expo2024", code)
    assert event.source == "sys"
    assert event.target == CORP_ID


def test_two_customers_added_in_the_same_second_are_two_events(
    sandbox_state, receiver, corp, monkeypatch
):
    monkeypatch.setattr(sandbox_state, "now", lambda: 1_700_000_000.4)
    add_customer(sandbox_state, corp, "wm_1", state="expo")
    add_customer(sandbox_state, corp, "wm_2", state="expo")
    events = received_events(sandbox_state, receiver)
    assert [e.external_user_id for e in events] == ["wm_1", "wm_2"]
    assert {int(e.create_time.timestamp()) for e in events} == {1_700_000_000}
    assert events[0].welcome_code != events[1].welcome_code


def test_half_add_and_no_welcome_code_once_they_have_chatted(sandbox_state, receiver, corp):
    add_customer(sandbox_state, corp, "wm_1", half=True)
    wecom.mark_chatted(sandbox_state, corp, userid="alice", external_userid="wm_1")
    wecom.delete_external_contact(sandbox_state, corp, userid="alice", external_userid="wm_1")
    assert add_customer(sandbox_state, corp, "wm_1") is None
    half, deleted, again = received_events(sandbox_state, receiver)
    assert half.change_type == "add_half_external_contact" and half.welcome_code
    assert deleted.change_type == "del_external_contact" and deleted.del_source is None
    assert again.change_type == "add_external_contact" and again.welcome_code is None
    assert again.state is None


def test_edit_delete_follow_user_transfer_and_transfer_fail_events(
    api, sandbox_state, receiver, corp, contact_token
):
    add_customer(sandbox_state, corp, "wm_1")
    add_customer(sandbox_state, corp, "wm_2")
    wecom.edit_external_contact(
        sandbox_state, corp, userid="alice", external_userid="wm_1", remark="VIP"
    )
    wecom.delete_follow_user(sandbox_state, corp, userid="alice", external_userid="wm_1")
    wecom.delete_external_contact(
        sandbox_state, corp, userid="alice", external_userid="wm_2", by_transfer=True
    )
    wecom.transfer_fail(sandbox_state, corp, userid="bob", external_userid="wm_2")
    events = received_events(sandbox_state, receiver)[2:]
    assert [e.change_type for e in events] == [
        "edit_external_contact",
        "del_follow_user",
        "del_external_contact",
        "transfer_fail",
    ]
    assert events[2].del_source == "DELETE_BY_TRANSFER"
    assert events[3].fail_reason == "customer_refused"
    follow = get(api, f"{EXT}/get", contact_token, external_userid="wm_1")["follow_user"][0]
    assert follow["remark"] == "VIP"
    assert get(api, f"{EXT}/get", contact_token, external_userid="wm_2")["errcode"] == 84061
    with pytest.raises(TypeError):
        wecom.edit_external_contact(
            sandbox_state, corp, userid="alice", external_userid="wm_1", name="x"
        )


# --- 联系我 --------------------------------------------------------------------


def test_contact_way_lifecycle(api, sandbox_state, corp, contact_token):
    added = post(
        api,
        f"{EXT}/add_contact_way",
        contact_token,
        {"type": 2, "scene": 2, "state": "expo", "user": ["alice", "bob"], "remark": "booth"},
    )
    config_id = added["config_id"]
    picture = api.get(added["qr_code"])  # WeCom's picture of the code: a PNG, as its host serves
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.data.startswith(b"\x89PNG")
    scan = added["qr_code"].replace("/qr.png", "/scan")  # what the picture's code encodes
    scanned = api.post(scan, json={"external_userid": "wm_scan", "name": "王芳"})
    assert scanned.status_code == 200 and scanned.json["userid"] in ("alice", "bob")
    way = post(api, f"{EXT}/get_contact_way", contact_token, {"config_id": config_id})
    assert way["contact_way"]["state"] == "expo"
    assert way["contact_way"]["user"] == ["alice", "bob"]
    assert wecom.contact_way_for_state(sandbox_state, corp, "expo").user == ["alice", "bob"]
    update = {"config_id": config_id, "state": "webinar", "user": ["bob"]}
    assert post(api, f"{EXT}/update_contact_way", contact_token, update)["errcode"] == 0
    way = post(api, f"{EXT}/get_contact_way", contact_token, {"config_id": config_id})
    assert (way["contact_way"]["state"], way["contact_way"]["user"]) == ("webinar", ["bob"])
    assert wecom.contact_way_for_state(sandbox_state, corp, "expo") is None
    assert (
        post(api, f"{EXT}/del_contact_way", contact_token, {"config_id": config_id})["errcode"] == 0
    )
    gone = post(api, f"{EXT}/get_contact_way", contact_token, {"config_id": config_id})
    assert gone["errcode"] == 41044
    assert post(api, f"{EXT}/get_contact_way", contact_token, {})["errcode"] == 41043
    mini = post(
        api, f"{EXT}/add_contact_way", contact_token, {"type": 1, "scene": 1, "user": ["bob"]}
    )
    assert mini["errcode"] == 0 and "qr_code" not in mini


@pytest.mark.parametrize(
    ("payload", "errcode"),
    [
        ({"scene": 2, "user": ["alice"]}, 41037),
        ({"type": 1, "user": ["alice"]}, 41038),
        ({"type": 3, "scene": 2, "user": ["alice"]}, 41039),
        ({"type": 1, "scene": 3, "user": ["alice"]}, 41040),
        ({"type": 1, "scene": 2, "user": ["alice"], "state": "s" * 31}, 40058),
        ({"type": 1, "scene": 2, "user": ["alice"], "remark": "r" * 31}, 40058),
        ({"type": 1, "scene": 2, "user": ["alice", "bob"]}, 40058),
        ({"type": 1, "scene": 2, "user": ["carol"]}, 84074),
        ({"type": 2, "scene": 2, "user": ["alice", "nobody"]}, 40003),
    ],
)
def test_contact_way_errors(api, corp, contact_token, payload, errcode):
    assert post(api, f"{EXT}/add_contact_way", contact_token, payload)["errcode"] == errcode


def test_contact_way_state_of_30_characters_is_fine(api, corp, contact_token):
    payload = {"type": 1, "scene": 2, "user": ["alice"], "state": "s" * 30}
    assert post(api, f"{EXT}/add_contact_way", contact_token, payload)["errcode"] == 0


def test_contact_way_at_most_100_members(api, sandbox_state, corp, contact_token):
    users = [f"u{n}" for n in range(101)]
    for userid in users:
        wecom.add_staff(sandbox_state, corp, userid, userid)
    payload = {"type": 2, "scene": 2, "user": users}
    assert post(api, f"{EXT}/add_contact_way", contact_token, payload)["errcode"] == 41041
    payload["user"] = users[:100]
    assert post(api, f"{EXT}/add_contact_way", contact_token, payload)["errcode"] == 0


# --- welcome messages ------------------------------------------------------------


def send_welcome(api, token, code):
    return post(
        api, f"{EXT}/send_welcome_msg", token, {"welcome_code": code, "text": {"content": "Hi"}}
    )


def test_welcome_code_is_single_use(api, sandbox_state, corp, contact_token):
    code = add_customer(sandbox_state, corp, "wm_1")
    sandbox_state.advance(3)
    assert send_welcome(api, contact_token, code)["errcode"] == 0
    assert send_welcome(api, contact_token, code)["errcode"] == 41051
    [sent] = wecom.state_of(corp).welcome_messages
    assert sent.external_userid == "wm_1"
    assert sent.text == {"content": "Hi"}
    assert 3 <= sent.seconds_after_add < 4


def test_welcome_code_expires_after_20_seconds(api, sandbox_state, corp, contact_token):
    late = add_customer(sandbox_state, corp, "wm_1")
    just_in_time = add_customer(sandbox_state, corp, "wm_2")
    sandbox_state.advance(19.5)
    assert send_welcome(api, contact_token, just_in_time)["errcode"] == 0
    sandbox_state.advance(1)
    assert send_welcome(api, contact_token, late)["errcode"] == 41050


def test_welcome_code_errors(api, sandbox_state, corp, contact_token):
    assert send_welcome(api, contact_token, "forged")["errcode"] == 41050
    assert post(api, f"{EXT}/send_welcome_msg", contact_token, {})["errcode"] == 41049
    code = add_customer(sandbox_state, corp, "wm_1")
    ten = [{"msgtype": "image", "image": {"media_id": "m"}}] * 10
    answer = post(
        api, f"{EXT}/send_welcome_msg", contact_token, {"welcome_code": code, "attachments": ten}
    )
    assert answer["errcode"] == 40058
    wecom.mark_chatted(sandbox_state, corp, userid="alice", external_userid="wm_1")
    assert send_welcome(api, contact_token, code)["errcode"] == 41051


# --- corp tags --------------------------------------------------------------------


def test_corp_tags_add_list_edit(api, corp, contact_token):
    created = add_corp_tags(api, contact_token, ["hot", "warm", "hot"], group_name="Intent")
    group = created["tag_group"]
    assert group["group_id"].startswith("et")
    assert [t["name"] for t in group["tag"]] == ["hot", "warm"]  # the same name once
    assert all(t["id"].startswith("et") for t in group["tag"])
    more = add_corp_tags(api, contact_token, ["cold"], group_name="Intent")  # existing group
    assert more["tag_group"]["group_id"] == group["group_id"]
    assert (
        add_corp_tags(api, contact_token, ["hot"], group_id=group["group_id"])["errcode"] == 40071
    )
    assert add_corp_tags(api, contact_token, ["x"], group_id="etnope")["errcode"] == 40068
    assert add_corp_tags(api, contact_token, ["t" * 31], group_name="G")["errcode"] == 40072
    assert add_corp_tags(api, contact_token, [], group_name="Empty")["errcode"] == 40058
    add_corp_tags(api, contact_token, ["CN"], group_name="Region")

    hot_id = group["tag"][0]["id"]
    listed = post(api, f"{EXT}/get_corp_tag_list", contact_token, {})["tag_group"]
    assert [(g["group_name"], len(g["tag"])) for g in listed] == [("Intent", 3), ("Region", 1)]
    by_tag = post(api, f"{EXT}/get_corp_tag_list", contact_token, {"tag_id": [hot_id]})
    assert [t["name"] for g in by_tag["tag_group"] for t in g["tag"]] == ["hot"]
    by_group = post(
        api, f"{EXT}/get_corp_tag_list", contact_token, {"group_id": [group["group_id"]]}
    )
    assert [g["group_name"] for g in by_group["tag_group"]] == ["Intent"]

    edit = f"{EXT}/edit_corp_tag"
    assert post(api, edit, contact_token, {"id": hot_id, "name": "warm"})["errcode"] == 40071
    assert post(api, edit, contact_token, {"id": hot_id, "name": "burning"})["errcode"] == 0
    rename = {"id": group["group_id"], "name": "Region"}
    assert post(api, edit, contact_token, rename)["errcode"] == 40071
    assert post(api, edit, contact_token, {"id": "etnope", "name": "x"})["errcode"] == 40068


def test_mark_tag_and_delete_tags(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    group = add_corp_tags(api, contact_token, ["hot", "warm"], group_name="Intent")["tag_group"]
    hot, warm = (t["id"] for t in group["tag"])
    mark = {"userid": "alice", "external_userid": "wm_1", "add_tag": [hot, warm]}
    assert post(api, f"{EXT}/mark_tag", contact_token, mark)["errcode"] == 0
    follow = get(api, f"{EXT}/get", contact_token, external_userid="wm_1")["follow_user"][0]
    assert follow["tags"] == [
        {"group_name": "Intent", "tag_name": "hot", "tag_id": hot, "type": 1},
        {"group_name": "Intent", "tag_name": "warm", "tag_id": warm, "type": 1},
    ]
    unknown = {**mark, "add_tag": ["etnope"]}
    assert post(api, f"{EXT}/mark_tag", contact_token, unknown)["errcode"] == 40068
    stranger = {**mark, "userid": "bob"}
    assert post(api, f"{EXT}/mark_tag", contact_token, stranger)["errcode"] == 84061
    empty = {"userid": "alice", "external_userid": "wm_1"}
    assert post(api, f"{EXT}/mark_tag", contact_token, empty)["errcode"] == 40058

    assert post(api, f"{EXT}/del_corp_tag", contact_token, {"tag_id": [hot]})["errcode"] == 0
    follow = get(api, f"{EXT}/get", contact_token, external_userid="wm_1")["follow_user"][0]
    assert [t["tag_id"] for t in follow["tags"]] == [warm]
    assert post(api, f"{EXT}/del_corp_tag", contact_token, {"tag_id": [hot]})["errcode"] == 40068
    assert post(api, f"{EXT}/del_corp_tag", contact_token, {"tag_id": [warm]})["errcode"] == 0
    assert post(api, f"{EXT}/get_corp_tag_list", contact_token, {})["tag_group"] == []
    assert post(api, f"{EXT}/del_corp_tag", contact_token, {})["errcode"] == 40058


def test_corp_tag_limit(api, corp, contact_token, monkeypatch):
    monkeypatch.setattr(wecom, "CORP_TAGS_MAX", 3)
    assert add_corp_tags(api, contact_token, ["a", "b"], group_name="G")["errcode"] == 0
    assert add_corp_tags(api, contact_token, ["c", "d"], group_name="G")["errcode"] == 40126
    assert add_corp_tags(api, contact_token, ["c"], group_name="G")["errcode"] == 0


# --- group sends by staff -----------------------------------------------------------


def group_send(api, token, customers, sender="alice"):
    payload = {"chat_type": "single", "sender": sender, "text": {"content": "News"}}
    if customers is not None:
        payload["external_userid"] = customers
    return post(api, f"{EXT}/add_msg_template", token, payload)


def test_group_send_waits_for_confirmation(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    add_customer(sandbox_state, corp, "wm_2")
    add_customer(sandbox_state, corp, "wm_bob", userid="bob")
    answer = group_send(api, contact_token, ["wm_1", "wm_2", "wm_bob"])
    assert answer["fail_list"] == ["wm_bob"]  # not alice's customer
    result = f"{EXT}/get_groupmsg_send_result"
    query = {"msgid": answer["msgid"], "userid": "alice"}
    pending = post(api, result, contact_token, query)["send_list"]
    assert [(r["external_userid"], r["status"]) for r in pending] == [("wm_1", 0), ("wm_2", 0)]
    template = wecom.confirm_msg_template(sandbox_state, corp, answer["msgid"])
    assert template.status == "sent"
    sent = post(api, result, contact_token, query)["send_list"]
    assert [r["status"] for r in sent] == [1, 1]
    assert all(r["send_time"] == template.send_time for r in sent)
    assert post(api, result, contact_token, {"msgid": "nope"})["errcode"] == 41047
    everyone = group_send(api, contact_token, None)  # all of alice's customers
    assert everyone["fail_list"] == []


def test_group_send_monthly_limit_per_customer(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    for _ in range(wecom.MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH):
        msgid = group_send(api, contact_token, ["wm_1"])["msgid"]
        wecom.confirm_msg_template(sandbox_state, corp, msgid)
    add_customer(sandbox_state, corp, "wm_2")
    answer = group_send(api, contact_token, ["wm_1", "wm_2"])
    assert answer["fail_list"] == ["wm_1"]
    assert group_send(api, contact_token, ["wm_1"])["errcode"] == 41048
    sandbox_state.advance(31 * 86400)  # always into another calendar month
    token = get(api, "/wecom/cgi-bin/gettoken", "", corpid=CORP_ID, corpsecret=CONTACT_SECRET)
    assert group_send(api, token["access_token"], ["wm_1"])["fail_list"] == []


def test_group_send_limit_applies_again_at_confirmation(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    limit = wecom.MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH
    msgids = [group_send(api, contact_token, ["wm_1"])["msgid"] for _ in range(limit + 1)]
    results = [wecom.confirm_msg_template(sandbox_state, corp, m).results for m in msgids]
    assert [r["wm_1"] for r in results] == [1] * limit + [3]


def test_group_send_errors(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1")
    wecom.delete_follow_user(sandbox_state, corp, userid="alice", external_userid="wm_1")
    assert group_send(api, contact_token, ["wm_1"])["errcode"] == 41048  # deleted by customer
    assert group_send(api, contact_token, ["wm_1"], sender="carol")["errcode"] == 84074
    no_content = {"sender": "alice", "external_userid": ["wm_1"]}
    assert post(api, f"{EXT}/add_msg_template", contact_token, no_content)["errcode"] == 44004


# --- app messages to staff ------------------------------------------------------------


def app_message(api, token, touser, content="Lead scored", agentid=1000002):
    message = {
        "touser": touser,
        "msgtype": "text",
        "agentid": agentid,
        "text": {"content": content},
    }
    return post(api, "/wecom/cgi-bin/message/send", token, message)


def delivered_to(corp, userid):
    messages = wecom.state_of(corp).app_messages
    return [m for m in messages if m.userid == userid and m.delivered]


def test_app_messages_are_recorded_per_member(api, sandbox_state, corp, agent_token):
    answer = app_message(api, agent_token, "alice|bob|ghost")
    assert answer["errcode"] == 0 and answer["msgid"]
    assert answer["invaliduser"] == "ghost"
    assert [m.content for m in delivered_to(corp, "bob")] == [{"content": "Lead scored"}]
    assert app_message(api, agent_token, "ghost")["errcode"] == 81013
    assert app_message(api, agent_token, "alice", agentid=1000003)["errcode"] == 40056
    card = {"touser": "alice", "msgtype": "textcard", "agentid": "1000002", "textcard": {}}
    assert post(api, "/wecom/cgi-bin/message/send", agent_token, card)["errcode"] == 41016
    card["textcard"] = {"title": "Lead", "description": "hot", "url": "https://h.example"}
    assert post(api, "/wecom/cgi-bin/message/send", agent_token, card)["errcode"] == 0
    card["msgtype"] = "voice"
    assert post(api, "/wecom/cgi-bin/message/send", agent_token, card)["errcode"] == 40008


def test_30_app_messages_a_minute_per_member_then_dropped(api, sandbox_state, corp, agent_token):
    per_minute = wecom.APP_MESSAGES_PER_MEMBER_PER_MINUTE
    for n in range(per_minute):
        assert app_message(api, agent_token, "alice", f"m{n}")["errcode"] == 0
    over = app_message(api, agent_token, "alice|bob", "over")
    assert over["errcode"] == 0  # WeCom answers ok and drops the extra message
    assert len(delivered_to(corp, "alice")) == per_minute
    assert [m.content["content"] for m in delivered_to(corp, "bob")] == ["over"]
    dropped = [m for m in wecom.state_of(corp).app_messages if not m.delivered]
    assert [(m.userid, m.content["content"]) for m in dropped] == [("alice", "over")]
    sandbox_state.advance(61)
    app_message(api, agent_token, "alice", "later")
    assert delivered_to(corp, "alice")[-1].content["content"] == "later"


def test_1000_app_messages_an_hour_per_member(api, sandbox_state, corp, agent_token):
    hour = wecom._member_limit(wecom.state_of(corp), "alice").hour
    hour.times.extend([sandbox_state.now() - 600] * wecom.APP_MESSAGES_PER_MEMBER_PER_HOUR)
    assert app_message(api, agent_token, "alice")["errcode"] == 0
    assert delivered_to(corp, "alice") == []
    sandbox_state.advance(3000)
    agent_token = get(api, "/wecom/cgi-bin/gettoken", "", corpid=CORP_ID, corpsecret=AGENT_SECRET)
    app_message(api, agent_token["access_token"], "alice")
    assert len(delivered_to(corp, "alice")) == 1


def test_app_message_recipient_errors(api, corp, agent_token):
    assert app_message(api, agent_token, "")["errcode"] == 82001
    too_many = "|".join(["alice"] * (wecom.APP_MESSAGE_USERS_MAX + 1))
    assert app_message(api, agent_token, too_many)["errcode"] == 40032
    assert app_message(api, agent_token, "alice", content="")["errcode"] == 44004
    assert app_message(api, agent_token, "@all")["invaliduser"] == ""


# --- API limits per corp ----------------------------------------------------------------


def test_api_calls_a_minute_per_corp(api, sandbox_state, corp, contact_token):
    calls = wecom.state_of(corp).calls
    now = sandbox_state.now()
    calls.minute.times.extend([now] * (wecom.CALLS_PER_MINUTE - 1))
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["errcode"] == 0
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["errcode"] == 45009
    sandbox_state.advance(61)
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["errcode"] == 0


def test_api_calls_an_hour_per_corp(api, sandbox_state, corp, contact_token):
    calls = wecom.state_of(corp).calls
    calls.hour.times.extend([sandbox_state.now() - 120] * wecom.CALLS_PER_HOUR)
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["errcode"] == 45009
    sandbox_state.advance(3600)
    assert get(api, f"{EXT}/get_follow_user_list", contact_token)["errcode"] == 0


def test_inspect_shows_the_corp(api, sandbox_state, corp, contact_token):
    add_customer(sandbox_state, corp, "wm_1", state="expo")
    state = api.get("/sandbox/state").json[CORP_ID]
    assert state["kind"] == "wecom"
    assert set(state["staff"]) == {"alice", "bob", "carol"}
    assert state["external_contacts"]["wm_1"]["name"] == "WM_1"
    assert state["follow_users"][0]["state"] == "expo"
    assert set(state) >= {
        "contact_ways",
        "corp_tags",
        "welcome_messages",
        "msg_templates",
        "app_messages",
    }
