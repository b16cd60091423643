"""The OA sandbox: users, tags, menus, mass/custom/template messages, QR codes, OAuth,
and the follower actions, each limit answered with the platform's errcode."""

import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.factories import add_template, png_bytes
from tests.wechat.sandbox.helpers import OA_APP_ID, OA_SECRET
from wechat.sandbox import oa

DAY = 24 * 3600


class OAClient:
    """Calls the sandbox's /oa API as wechatpy would, fetching a new access token when
    the old one expired (tests move the clock by days)."""

    def __init__(self, api):
        self.api = api
        self.token = ""

    def get(self, path, **params):
        return self._call("GET", path, params, None)

    def post(self, path, payload):
        return self._call("POST", path, {}, payload)

    def _call(self, method, path, params, payload):
        for _ in range(2):
            query = {"access_token": self.token, **params}
            answer = self.api.open(
                f"/oa/cgi-bin/{path}", method=method, query_string=query, json=payload
            ).json
            if answer.get("errcode") not in (41001, 42001):
                return answer
            self.token = self._fetch_token()
        return answer

    def _fetch_token(self):
        query = {"grant_type": "client_credential", "appid": OA_APP_ID, "secret": OA_SECRET}
        return self.api.get("/oa/cgi-bin/token", query_string=query).json["access_token"]


@pytest.fixture
def wx(api):
    return OAClient(api)


@pytest.fixture
def tenant(sandbox_state):
    return sandbox_state.tenant(OA_APP_ID)


@pytest.fixture
def followers(sandbox_state, tenant):
    """Make people follow the OA; returns their openids."""

    def make(*openids):
        for openid in openids:
            oa.follow(sandbox_state, tenant, openid)
        return list(openids)

    return make


def fields(xml):
    return {child.tag: child.text for child in ET.fromstring(xml)}


def received_events(sandbox_state, receiver, event):
    """The callbacks of this kind the receiver decrypted, as dicts of their fields."""
    sandbox_state.wait_for_deliveries()
    return [f for f in map(fields, receiver.received) if f.get("Event") == event]


def advance_to_next_month(sandbox_state):
    """Move the clock to 01:00 on the 1st of next month, Beijing time."""
    now = datetime.fromtimestamp(sandbox_state.now(), oa.BEIJING)
    first = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=1, minute=0, second=0)
    sandbox_state.advance(first.timestamp() - sandbox_state.now())


def advance_to_next_day(sandbox_state):
    now = datetime.fromtimestamp(sandbox_state.now(), oa.BEIJING)
    tomorrow = (now + timedelta(days=1)).replace(hour=1, minute=0, second=0)
    sandbox_state.advance(tomorrow.timestamp() - sandbox_state.now())


def create_tag(wx, name):
    return wx.post("tags/create", {"tag": {"name": name}})


def tag_users(wx, tag_id, *openids):
    return wx.post("tags/members/batchtagging", {"openid_list": list(openids), "tagid": tag_id})


# --- users --------------------------------------------------------------------------


def test_user_info_has_no_nickname_and_unionid_only_when_bound(wx, sandbox_state, tenant):
    oa.follow(sandbox_state, tenant, "o_plain")
    oa.follow(sandbox_state, tenant, "o_bound", unionid="u_1")
    plain = wx.get("user/info", openid="o_plain")
    assert set(plain) == set(oa.USER_INFO_FIELDS) - {"unionid"}
    assert plain["subscribe"] == 1 and plain["subscribe_scene"] == "ADD_SCENE_SEARCH"
    assert wx.get("user/info", openid="o_bound")["unionid"] == "u_1"


def test_user_info_of_an_unfollower(wx, sandbox_state, tenant, followers):
    followers("o_1")
    oa.unfollow(sandbox_state, tenant, "o_1")
    assert wx.get("user/info", openid="o_1") == {"subscribe": 0, "openid": "o_1"}


def test_batchget_takes_at_most_100_users(wx, followers):
    followers("o_1", "o_2")
    both = wx.post("user/info/batchget", {"user_list": [{"openid": "o_1"}, {"openid": "o_2"}]})
    assert [u["openid"] for u in both["user_info_list"]] == ["o_1", "o_2"]
    too_many = {"user_list": [{"openid": "o_1", "lang": "zh_CN"}] * 101}
    assert wx.post("user/info/batchget", too_many)["errcode"] == 45008
    unknown = {"user_list": [{"openid": "o_1"}, {"openid": "nobody"}]}
    assert wx.post("user/info/batchget", unknown)["errcode"] == 40003


def test_user_get_pages_with_next_openid(wx, followers, monkeypatch):
    monkeypatch.setattr(oa, "OPENIDS_PER_PAGE", 2)
    followers("o_1", "o_2", "o_3")
    first = wx.get("user/get")
    assert first == {
        "total": 3,
        "count": 2,
        "data": {"openid": ["o_1", "o_2"]},
        "next_openid": "o_2",
    }
    second = wx.get("user/get", next_openid="o_2")
    assert (second["count"], second["data"]["openid"]) == (1, ["o_3"])
    assert wx.get("user/get", next_openid="o_3") == {"total": 3, "count": 0, "next_openid": ""}
    assert wx.get("user/get", next_openid="nobody")["errcode"] == 40003


# --- tags -----------------------------------------------------------------------------


def test_tag_ids_start_at_100_and_tags_get_counts_fans(wx, followers):
    followers("o_1")
    assert create_tag(wx, "CIO") == {"tag": {"id": 100, "name": "CIO"}}
    assert create_tag(wx, "制造业")["tag"]["id"] == 101
    assert tag_users(wx, 100, "o_1")["errcode"] == 0
    assert wx.get("tags/get")["tags"] == [
        {"id": 100, "name": "CIO", "count": 1},
        {"id": 101, "name": "制造业", "count": 0},
    ]


def test_tag_names_up_to_30_characters(wx):
    assert create_tag(wx, "标" * 30)["tag"]["id"] == 100
    assert create_tag(wx, "x" * 31)["errcode"] == 45158
    assert create_tag(wx, "")["errcode"] == 45158


def test_duplicate_tag_names_are_refused(wx):
    create_tag(wx, "CIO")
    cto = create_tag(wx, "CTO")["tag"]
    assert create_tag(wx, "CIO")["errcode"] == 45157
    rename = {"tag": {"id": cto["id"], "name": "CIO"}}
    assert wx.post("tags/update", rename)["errcode"] == 45157
    rename["tag"]["name"] = "CTO/CIO"
    assert wx.post("tags/update", rename)["errcode"] == 0
    assert [t["name"] for t in wx.get("tags/get")["tags"]] == ["CIO", "CTO/CIO"]


def test_at_most_100_tags(wx):
    for i in range(100):
        assert "tag" in create_tag(wx, f"tag {i}")
    assert create_tag(wx, "one too many")["errcode"] == 45056


def test_reserved_tags_cannot_change(wx):
    for tag_id in (0, 1, 2):
        assert wx.post("tags/update", {"tag": {"id": tag_id, "name": "x"}})["errcode"] == 45058
        assert wx.post("tags/delete", {"tag": {"id": tag_id}})["errcode"] == 45058


def test_unknown_tags(wx, followers):
    followers("o_1")
    assert wx.post("tags/update", {"tag": {"id": 100, "name": "x"}})["errcode"] == 45159
    assert wx.post("tags/delete", {"tag": {"id": 100}})["errcode"] == 45159
    assert tag_users(wx, 100, "o_1")["errcode"] == 45159
    assert wx.post("user/tag/get", {"tagid": 100})["errcode"] == 45159


def test_deleting_a_tag_untags_its_followers(wx, followers):
    followers("o_1")
    tag = create_tag(wx, "CIO")["tag"]
    tag_users(wx, tag["id"], "o_1")
    assert wx.post("tags/delete", {"tag": {"id": tag["id"]}})["errcode"] == 0
    assert wx.post("tags/getidlist", {"openid": "o_1"}) == {"tagid_list": []}


def test_a_tag_with_too_many_fans_cannot_be_deleted(wx, followers, monkeypatch):
    monkeypatch.setattr(oa, "MAX_FANS_TO_DELETE_TAG", 1)
    followers("o_1", "o_2")
    tag = create_tag(wx, "CIO")["tag"]
    tag_users(wx, tag["id"], "o_1", "o_2")
    assert wx.post("tags/delete", {"tag": {"id": tag["id"]}})["errcode"] == 45057


def test_batch_tagging_takes_1_to_50_openids(wx, followers):
    openids = followers(*(f"o_{i}" for i in range(51)))
    tag = create_tag(wx, "CIO")["tag"]
    assert tag_users(wx, tag["id"], *openids)["errcode"] == 40032
    assert tag_users(wx, tag["id"])["errcode"] == 40032
    assert tag_users(wx, tag["id"], *openids[:50])["errcode"] == 0
    untag = {"openid_list": openids, "tagid": tag["id"]}
    assert wx.post("tags/members/batchuntagging", untag)["errcode"] == 40032


def test_batch_tagging_an_unknown_openid_tags_nobody(wx, followers):
    followers("o_1")
    tag = create_tag(wx, "CIO")["tag"]
    assert tag_users(wx, tag["id"], "o_1", "nobody")["errcode"] == 40003
    assert wx.post("tags/getidlist", {"openid": "o_1"}) == {"tagid_list": []}
    assert wx.post("tags/getidlist", {"openid": "nobody"})["errcode"] == 40003


def test_a_user_has_at_most_20_tags(wx, followers):
    followers("o_1", "o_2")
    ids = [create_tag(wx, f"tag {i}")["tag"]["id"] for i in range(21)]
    for tag_id in ids[:20]:
        assert tag_users(wx, tag_id, "o_1")["errcode"] == 0
    assert tag_users(wx, ids[20], "o_2", "o_1")["errcode"] == 45059
    assert wx.post("tags/getidlist", {"openid": "o_2"}) == {"tagid_list": []}
    assert tag_users(wx, ids[0], "o_1")["errcode"] == 0  # already tagged: no change


def test_tag_members_and_untagging(wx, followers, monkeypatch):
    monkeypatch.setattr(oa, "OPENIDS_PER_PAGE", 1)
    followers("o_1", "o_2", "o_3")
    tag = create_tag(wx, "CIO")["tag"]
    tag_users(wx, tag["id"], "o_1", "o_3")
    first = wx.post("user/tag/get", {"tagid": tag["id"], "next_openid": ""})
    assert first == {"count": 1, "data": {"openid": ["o_1"]}, "next_openid": "o_1"}
    second = wx.post("user/tag/get", {"tagid": tag["id"], "next_openid": "o_1"})
    assert second["data"]["openid"] == ["o_3"]
    untag = {"openid_list": ["o_1"], "tagid": tag["id"]}
    assert wx.post("tags/members/batchuntagging", untag)["errcode"] == 0
    assert wx.post("tags/getidlist", {"openid": "o_1"}) == {"tagid_list": []}
    assert wx.post("tags/getidlist", {"openid": "o_3"}) == {"tagid_list": [tag["id"]]}


# --- menus ----------------------------------------------------------------------------

DEFAULT_MENU = [
    {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
    {
        "name": "菜单",
        "sub_button": [
            {"type": "view", "name": "搜索", "url": "http://www.soso.com/"},
            {"type": "click", "name": "赞一下我们", "key": "V1001_GOOD"},
        ],
    },
]


def menu_of(key):
    return [{"type": "click", "name": key, "key": key}]


def test_menu_create_get_and_delete(wx):
    assert wx.get("menu/get")["errcode"] == 46003
    assert wx.post("menu/create", {"button": DEFAULT_MENU}) == {"errcode": 0, "errmsg": "ok"}
    current = wx.get("menu/get")
    assert current["menu"]["button"] == DEFAULT_MENU
    assert current["conditionalmenu"] == []
    info = wx.get("get_current_selfmenu_info")
    assert info["is_menu_open"] == 1
    assert len(info["selfmenu_info"]["button"][1]["sub_button"]["list"]) == 2
    assert wx.get("menu/delete")["errcode"] == 0
    assert wx.get("menu/get")["errcode"] == 46003


def sub_menu(*subs):
    return [{"name": "菜单", "sub_button": list(subs)}]


def click_button(name="歌曲", key="K"):
    return {"type": "click", "name": name, "key": key}


def view_button(url):
    return {"type": "view", "name": "网页", "url": url}


MENU_VIOLATIONS = {
    "no buttons": ([], 40016),
    "4 buttons": ([click_button()] * 4, 40016),
    "unknown type": ([{"type": "bogus", "name": "x", "key": "K"}], 40017),
    "no type": ([{"name": "no type"}], 40017),
    "18-byte name": ([click_button(name="字" * 6)], 40018),
    "empty name": ([click_button(name="")], 40018),
    "129-byte key": ([click_button(key="k" * 129)], 40019),
    "empty key": ([click_button(key="")], 40019),
    "1025-byte url": ([view_button("http://x.cn/" + "a" * 1013)], 40020),
    "not a web url": ([view_button("javascript:alert(1)")], 40055),
    "6 sub-buttons": (sub_menu(*[click_button()] * 6), 40023),
    "unknown sub type": (sub_menu({"type": "bogus", "name": "x"}), 40024),
    "63-byte sub name": (sub_menu(click_button(name="字" * 21)), 40025),
    "129-byte sub key": (sub_menu(click_button(key="k" * 129)), 40026),
    "1025-byte sub url": (sub_menu(view_button("http://x.cn/" + "a" * 1013)), 40027),
    "not a web sub url": (sub_menu(view_button("ftp://x.cn/")), 40054),
    "third level": (sub_menu({**click_button(), "sub_button": [click_button()]}), 40022),
    "no media_id": ([{"type": "media_id", "name": "素材"}], 40007),
}


def test_menu_violations_answer_the_platform_errcode(wx):
    expected = {case: errcode for case, (_, errcode) in MENU_VIOLATIONS.items()}
    created = {
        case: wx.post("menu/create", {"button": buttons})["errcode"]
        for case, (buttons, _) in MENU_VIOLATIONS.items()
    }
    assert created == expected
    wx.post("menu/create", {"button": DEFAULT_MENU})
    rule = {"tag_id": "100"}
    added = {
        case: wx.post("menu/addconditional", {"button": buttons, "matchrule": rule})["errcode"]
        for case, (buttons, _) in MENU_VIOLATIONS.items()
    }
    assert added == expected


def test_menu_limits_at_their_edges_are_accepted(wx):
    buttons = [
        click_button(name="一二三四五", key="k" * 128),  # 15 bytes
        view_button("https://x.cn/" + "a" * 1011),  # 1024 bytes
        {"name": "更多", "sub_button": [click_button(name="字" * 20)] * 5},  # 60 bytes
    ]
    assert wx.post("menu/create", {"button": buttons})["errcode"] == 0


def test_conditional_menus_need_a_default_menu(wx):
    conditional = {"button": menu_of("CIO"), "matchrule": {"tag_id": "100"}}
    assert wx.post("menu/addconditional", conditional)["errcode"] == 65303


def test_conditional_menus_match_only_tags_and_platform(wx):
    wx.post("menu/create", {"button": DEFAULT_MENU})
    for field in ("sex", "country", "province", "city", "language"):
        conditional = {"button": menu_of("x"), "matchrule": {"tag_id": "100", field: "1"}}
        assert wx.post("menu/addconditional", conditional)["errcode"] == 65320, field


def test_conditional_menu_needs_a_matchrule(wx):
    wx.post("menu/create", {"button": DEFAULT_MENU})
    for rule in (None, {}, {"tag_id": ""}):
        answer = wx.post("menu/addconditional", {"button": menu_of("x"), "matchrule": rule})
        assert answer["errcode"] == 65304


def test_trymatch_newest_matching_conditional_menu_wins(wx, followers, tenant, sandbox_state):
    followers("o_cio", "o_both", "o_none")
    cio = create_tag(wx, "CIO")["tag"]["id"]
    vp = create_tag(wx, "VP")["tag"]["id"]
    tag_users(wx, cio, "o_cio", "o_both")
    tag_users(wx, vp, "o_both")
    wx.post("menu/create", {"button": DEFAULT_MENU})
    cio_menu = wx.post(
        "menu/addconditional", {"button": menu_of("CIO"), "matchrule": {"tag_id": cio}}
    )
    wx.post("menu/addconditional", {"button": menu_of("VP"), "matchrule": {"tag_id": vp}})

    def trymatch(openid):
        return wx.post("menu/trymatch", {"user_id": openid})

    assert trymatch("o_cio") == {"button": menu_of("CIO")}
    assert trymatch("o_both") == {"button": menu_of("VP")}  # the newer menu
    assert trymatch("o_none") == {"button": DEFAULT_MENU}
    assert trymatch("nobody")["errcode"] == 40003
    with sandbox_state.lock:
        assert oa.menu_for(tenant, "o_both") == menu_of("VP")

    wx.post("menu/delconditional", {"menuid": cio_menu["menuid"]})
    assert trymatch("o_cio") == {"button": DEFAULT_MENU}
    assert wx.post("menu/delconditional", {"menuid": cio_menu["menuid"]})["errcode"] == 65301


def test_platform_rules_match_only_that_platform(wx, followers, tenant, sandbox_state):
    followers("o_1")
    wx.post("menu/create", {"button": DEFAULT_MENU})
    ios = {"button": menu_of("iOS"), "matchrule": {"client_platform_type": "1"}}
    wx.post("menu/addconditional", ios)
    with sandbox_state.lock:
        assert oa.menu_for(tenant, "o_1", platform="1") == menu_of("iOS")
        assert oa.menu_for(tenant, "o_1", platform="2") == DEFAULT_MENU


def test_menu_get_lists_conditional_menus_and_delete_removes_them(wx):
    wx.post("menu/create", {"button": DEFAULT_MENU})
    added = wx.post("menu/addconditional", {"button": menu_of("x"), "matchrule": {"tag_id": 100}})
    [conditional] = wx.get("menu/get")["conditionalmenu"]
    assert conditional["matchrule"] == {"tag_id": "100"}
    assert str(conditional["menuid"]) == added["menuid"]
    wx.get("menu/delete")
    wx.post("menu/create", {"button": DEFAULT_MENU})
    assert wx.get("menu/get")["conditionalmenu"] == []


def test_daily_menu_create_and_delete_limits(wx, sandbox_state, monkeypatch):
    monkeypatch.setattr(oa, "MENU_CREATES_PER_DAY", 2)
    monkeypatch.setattr(oa, "MENU_DELETES_PER_DAY", 1)
    assert wx.post("menu/create", {"button": DEFAULT_MENU})["errcode"] == 0
    conditional = {"button": menu_of("x"), "matchrule": {"tag_id": 100}}
    assert "menuid" in wx.post("menu/addconditional", conditional)
    assert wx.post("menu/create", {"button": DEFAULT_MENU})["errcode"] == 45009
    assert wx.get("menu/delete")["errcode"] == 0
    assert wx.get("menu/delete")["errcode"] == 45009
    advance_to_next_day(sandbox_state)
    assert wx.post("menu/create", {"button": DEFAULT_MENU})["errcode"] == 0
    assert wx.get("menu/delete")["errcode"] == 0


# --- mass sends -----------------------------------------------------------------------

TEXT = {"msgtype": "text", "text": {"content": "本月活动"}}


def article(wx) -> dict:
    """An mpnews mass message naming a draft of the OA (its cover a permanent image)."""
    wx.token = wx.token or wx._fetch_token()
    cover = wx.api.open(
        "/oa/cgi-bin/material/add_material",
        method="POST",
        query_string={"access_token": wx.token, "type": "image"},
        data={"media": (io.BytesIO(png_bytes()), "cover.png")},
    ).json
    draft = wx.post(
        "draft/add",
        {
            "articles": [
                {"title": "本月活动", "content": "<p>正文</p>", "thumb_media_id": cover["media_id"]}
            ]
        },
    )
    return {
        "msgtype": "mpnews",
        "mpnews": {"media_id": draft["media_id"]},
        "send_ignore_reprint": 0,
    }


def send_to_all(wx, message=TEXT, **extra):
    return wx.post("message/mass/sendall", {"filter": {"is_to_all": True}, **message, **extra})


def test_sendall_reports_the_job_with_masssendjobfinish(wx, followers, sandbox_state, receiver):
    followers("o_1", "o_2", "o_3")
    cio = create_tag(wx, "CIO")["tag"]["id"]
    tag_users(wx, cio, "o_1", "o_2")
    by_tag = {"filter": {"is_to_all": False, "tag_id": cio}, **article(wx)}
    answer = wx.post("message/mass/sendall", by_tag)
    assert (answer["errcode"], answer["errmsg"]) == (0, "send job submission success")
    assert "msg_data_id" in answer
    text = send_to_all(wx)
    assert "msg_data_id" not in text  # only articles have one

    events = received_events(sandbox_state, receiver, "MASSSENDJOBFINISH")
    [finished] = [e for e in events if e["MsgID"] == str(answer["msg_id"])]
    assert finished["ToUserName"] == f"gh_{OA_APP_ID[-12:]}"
    assert finished["Status"] == "send success"
    counts = [finished[k] for k in ("TotalCount", "FilterCount", "SentCount", "ErrorCount")]
    assert counts == ["2", "2", "2", "0"]
    [to_all] = [e for e in events if e["MsgID"] == str(text["msg_id"])]
    assert to_all["TotalCount"] == "3"

    state = oa.state_of(sandbox_state.tenant(OA_APP_ID))
    assert [r.msg_id for r in state.followers["o_3"].received] == [text["msg_id"]]


def test_each_follower_gets_4_mass_messages_a_month(wx, followers, sandbox_state, tenant):
    advance_to_next_month(sandbox_state)
    followers("o_1", "o_2")
    for _ in range(4):
        assert send_to_all(wx)["errcode"] == 0
    followers("o_new")
    fifth = send_to_all(wx)
    assert fifth["errcode"] == 0  # not an error: o_1 and o_2 are filtered out
    job = oa.state_of(tenant).mass_jobs[-1]
    assert (job.total_count, job.filter_count, job.sent_count) == (3, 1, 1)
    assert job.recipients == ["o_new"]

    advance_to_next_month(sandbox_state)
    send_to_all(wx)
    assert oa.state_of(tenant).mass_jobs[-1].recipients == ["o_1", "o_2", "o_new"]


def test_the_monthly_limit_counts_sends_by_openid_too(wx, followers, tenant, sandbox_state):
    advance_to_next_month(sandbox_state)
    followers("o_1", "o_2")
    for _ in range(4):
        assert wx.post("message/mass/send", {"touser": ["o_1", "o_2"], **TEXT})["errcode"] == 0
    send_to_all(wx)
    assert oa.state_of(tenant).mass_jobs[-1].recipients == []


def test_send_by_openids_takes_2_to_10000(wx, followers):
    followers("o_1", "o_2")
    assert wx.post("message/mass/send", {"touser": ["o_1"], **TEXT})["errcode"] == 40130
    too_many = [f"o_{i}" for i in range(10_001)]
    assert wx.post("message/mass/send", {"touser": too_many, **TEXT})["errcode"] == 40032
    assert wx.post("message/mass/send", {"touser": ["o_1", "o_2"], **TEXT})["errcode"] == 0


def test_clientmsgid_makes_a_mass_send_idempotent_for_24_hours(
    wx, followers, sandbox_state, tenant
):
    followers("o_1", "o_2")
    first = send_to_all(wx, clientmsgid="push-42")
    again = send_to_all(wx, clientmsgid="push-42")
    assert again == {"errcode": 45065, "errmsg": "clientmsgid exist", "msg_id": first["msg_id"]}
    by_openid = {"touser": ["o_1", "o_2"], "clientmsgid": "push-42", **TEXT}
    assert wx.post("message/mass/send", by_openid)["msg_id"] == first["msg_id"]
    assert len(oa.state_of(tenant).mass_jobs) == 1

    sandbox_state.advance(DAY + 1)
    later = send_to_all(wx, clientmsgid="push-42")
    assert later["errcode"] == 0 and later["msg_id"] != first["msg_id"]
    assert send_to_all(wx, clientmsgid="x" * 65)["errcode"] == 45067


def test_subscription_accounts_mass_send_once_a_day(wx, followers, sandbox_state, tenant):
    tenant.account_type = "subscription"
    followers("o_1", "o_2")
    advance_to_next_day(sandbox_state)
    assert send_to_all(wx)["errcode"] == 0
    assert send_to_all(wx)["errcode"] == 45028
    assert wx.post("message/mass/send", {"touser": ["o_1", "o_2"], **TEXT})["errcode"] == 48001
    advance_to_next_day(sandbox_state)
    assert send_to_all(wx)["errcode"] == 0


def test_about_60_mass_send_calls_a_minute(wx, followers, sandbox_state, monkeypatch):
    monkeypatch.setattr(oa, "MASS_CALLS_PER_MINUTE", 2)
    followers("o_1")
    assert [send_to_all(wx)["errcode"] for _ in range(3)] == [0, 0, 45009]
    sandbox_state.advance(61)
    assert send_to_all(wx)["errcode"] == 0


def test_mass_send_errors(wx, followers):
    followers("o_1")
    by_unknown_tag = {"filter": {"is_to_all": False, "tag_id": 999}, **TEXT}
    assert wx.post("message/mass/sendall", by_unknown_tag)["errcode"] == 45159
    assert send_to_all(wx, {"msgtype": "fax", "fax": {"x": 1}})["errcode"] == 40008
    assert send_to_all(wx, {"msgtype": "text"})["errcode"] == 47001


# --- customer-service messages ----------------------------------------------------------


def custom_text(wx, openid, content="您好"):
    message = {"touser": openid, "msgtype": "text", "text": {"content": content}}
    return wx.post("message/custom/send", message)["errcode"]


def test_follow_opens_3_messages_within_a_minute(wx, followers, sandbox_state):
    followers("o_1")
    assert [custom_text(wx, "o_1") for _ in range(4)] == [0, 0, 0, 45047]
    sandbox_state.advance(61)
    assert custom_text(wx, "o_1") == 45015


def test_a_click_or_scan_reopens_the_short_window(wx, followers, sandbox_state, tenant):
    followers("o_1")
    sandbox_state.advance(61)
    assert custom_text(wx, "o_1") == 45015
    oa.click(sandbox_state, tenant, "o_1", "V1001_GOOD")
    assert custom_text(wx, "o_1") == 0
    sandbox_state.advance(61)
    ticket = qrcode(wx, "QR_STR_SCENE", 3600, scene_str="expo")["ticket"]
    oa.scan(sandbox_state, tenant, "o_1", ticket)
    assert custom_text(wx, "o_1") == 0


def test_a_message_opens_5_messages_within_48_hours(wx, followers, sandbox_state, tenant):
    followers("o_1")
    sandbox_state.advance(61)
    oa.send_text(sandbox_state, tenant, "o_1", "价格多少？")
    sandbox_state.advance(47 * 3600)
    assert [custom_text(wx, "o_1") for _ in range(6)] == [0] * 5 + [45047]
    sandbox_state.advance(3600)
    assert custom_text(wx, "o_1") == 45015


def test_windows_are_configurable(wx, followers, monkeypatch):
    monkeypatch.setattr(oa.ServiceWindows, "AFTER_EVENT", oa.WindowRule("event", 60, 1))
    followers("o_1")
    assert [custom_text(wx, "o_1") for _ in range(2)] == [0, 45047]


def test_custom_messages_are_recorded_and_refused_after_unfollow(
    wx, followers, sandbox_state, tenant
):
    followers("o_1")
    assert custom_text(wx, "o_1", "欢迎") == 0
    [message] = oa.state_of(tenant).followers["o_1"].received
    assert (message.kind, message.msgtype, message.content) == (
        "custom",
        "text",
        {"content": "欢迎"},
    )
    oa.unfollow(sandbox_state, tenant, "o_1")
    assert custom_text(wx, "o_1") == 45015
    assert custom_text(wx, "nobody") == 40003


# --- template messages ------------------------------------------------------------------


def test_template_send_reports_templatesendjobfinish(wx, followers, sandbox_state, receiver):
    followers("o_1")
    template_id = add_template(wx)["template_id"]
    listed = wx.get("template/get_all_private_template")["template_list"]
    assert [t["template_id"] for t in listed] == [template_id]
    message = {"touser": "o_1", "template_id": template_id, "data": {"first": {"value": "hi"}}}
    answer = wx.post("message/template/send", message)
    assert answer["errcode"] == 0
    events = received_events(sandbox_state, receiver, "TEMPLATESENDJOBFINISH")
    [finished] = [e for e in events if e["MsgID"] == str(answer["msgid"])]
    assert (finished["FromUserName"], finished["Status"]) == ("o_1", "success")


def test_template_send_errors(wx, followers, sandbox_state, tenant):
    followers("o_1")
    template_id = add_template(wx)["template_id"]
    unknown_template = {"touser": "o_1", "template_id": "nope", "data": {}}
    assert wx.post("message/template/send", unknown_template)["errcode"] == 40037
    oa.unfollow(sandbox_state, tenant, "o_1")
    to_unfollower = {"touser": "o_1", "template_id": template_id, "data": {}}
    assert wx.post("message/template/send", to_unfollower)["errcode"] == 43004
    to_nobody = {"touser": "nobody", "template_id": template_id, "data": {}}
    assert wx.post("message/template/send", to_nobody)["errcode"] == 40003


def test_at_most_25_templates(wx):
    for i in range(25):
        assert add_template(wx, f"TM{i:05}")["errcode"] == 0
    assert add_template(wx)["errcode"] == 45026
    first = wx.get("template/get_all_private_template")["template_list"][0]["template_id"]
    assert wx.post("template/del_private_template", {"template_id": first})["errcode"] == 0
    assert add_template(wx)["errcode"] == 0


def test_templates_are_for_service_accounts(wx, tenant):
    tenant.account_type = "subscription"
    assert add_template(wx)["errcode"] == 48001


def test_daily_template_send_limit(wx, followers, sandbox_state, monkeypatch):
    monkeypatch.setattr(oa, "TEMPLATE_SENDS_PER_DAY", 1)
    followers("o_1")
    message = {"touser": "o_1", "template_id": add_template(wx)["template_id"], "data": {}}
    assert [wx.post("message/template/send", message)["errcode"] for _ in range(2)] == [0, 45009]
    advance_to_next_day(sandbox_state)
    assert wx.post("message/template/send", message)["errcode"] == 0


# --- QR codes ---------------------------------------------------------------------------


def qrcode(wx, action, expire_seconds=None, **scene):
    payload = {"action_name": action, "action_info": {"scene": scene}}
    if expire_seconds is not None:
        payload["expire_seconds"] = expire_seconds
    return wx.post("qrcode/create", payload)


def test_temporary_qr_codes_expire(wx):
    default = qrcode(wx, "QR_SCENE", scene_id=123)
    assert default["expire_seconds"] == 60 and default["url"].startswith("http://weixin.qq.com/q/")
    assert qrcode(wx, "QR_STR_SCENE", 10**8, scene_str="expo")["expire_seconds"] == 2_592_000


def test_permanent_qr_codes(wx, monkeypatch):
    monkeypatch.setattr(oa, "MAX_PERMANENT_QRCODES", 2)
    first = qrcode(wx, "QR_LIMIT_SCENE", scene_id=100_000)
    assert "expire_seconds" not in first
    assert qrcode(wx, "QR_LIMIT_SCENE", scene_id=100_000)["ticket"] == first["ticket"]
    assert "ticket" in qrcode(wx, "QR_LIMIT_STR_SCENE", scene_str="c" * 64)
    assert qrcode(wx, "QR_LIMIT_STR_SCENE", scene_str="third")["errcode"] == 40053


INVALID_QR_CODES = {
    "permanent id over 100000": ("QR_LIMIT_SCENE", {"scene_id": 100_001}),
    "id 0": ("QR_LIMIT_SCENE", {"scene_id": 0}),
    "id not a number": ("QR_SCENE", {"scene_id": "abc"}),
    "empty string scene": ("QR_STR_SCENE", {"scene_str": ""}),
    "65-character scene": ("QR_LIMIT_STR_SCENE", {"scene_str": "c" * 65}),
    "unknown action": ("QR_BOGUS", {"scene_id": 1}),
}


def test_invalid_qr_codes(wx):
    answers = {
        case: qrcode(wx, action, **scene)["errcode"]
        for case, (action, scene) in INVALID_QR_CODES.items()
    }
    assert answers == dict.fromkeys(INVALID_QR_CODES, 40053)


def test_following_by_qr_code_fills_the_scene(wx, sandbox_state, tenant, receiver):
    ticket = qrcode(wx, "QR_STR_SCENE", 3600, scene_str="expo-2024")["ticket"]
    xml = oa.follow(sandbox_state, tenant, "o_1", ticket=ticket)
    user = wx.get("user/info", openid="o_1")
    assert (user["subscribe_scene"], user["qr_scene_str"], user["qr_scene"]) == (
        "ADD_SCENE_QR_CODE",
        "expo-2024",
        0,
    )
    event = fields(xml)
    assert (event["Event"], event["EventKey"], event["Ticket"]) == (
        "subscribe",
        "qrscene_expo-2024",
        ticket,
    )
    sandbox_state.wait_for_deliveries()
    assert xml in receiver.received

    numeric = qrcode(wx, "QR_LIMIT_SCENE", scene_id=7)["ticket"]
    oa.follow(sandbox_state, tenant, "o_2", ticket=numeric)
    assert wx.get("user/info", openid="o_2")["qr_scene"] == 7
    assert fields(oa.scan(sandbox_state, tenant, "o_1", numeric))["EventKey"] == "7"


def test_expired_or_unknown_tickets_cannot_be_scanned(wx, sandbox_state, tenant):
    ticket = qrcode(wx, "QR_SCENE", 60, scene_id=1)["ticket"]
    sandbox_state.advance(61)
    with pytest.raises(ValueError, match="QR code"):
        oa.follow(sandbox_state, tenant, "o_1", ticket=ticket)
    with pytest.raises(ValueError, match="QR code"):
        oa.follow(sandbox_state, tenant, "o_1", ticket="forged")


# --- OAuth (snsapi_base) ------------------------------------------------------------------


def authorize(api, openid="o_reader", **overrides):
    params = {
        "appid": OA_APP_ID,
        "redirect_uri": "https://h5.example.com/article?id=9#/top",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "s-1",
        "openid": openid,
        **overrides,
    }
    return api.get("/open/connect/oauth2/authorize", query_string=params)


def exchange(api, code, secret=OA_SECRET):
    params = {
        "appid": OA_APP_ID,
        "secret": secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    return api.get("/oa/sns/oauth2/access_token", query_string=params).json


def code_from(response):
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.netloc, location.path, location.fragment) == (
        "h5.example.com",
        "/article",
        "/top",
    )
    query = parse_qs(location.query)
    assert (query["id"], query["state"]) == (["9"], ["s-1"])
    return query["code"][0]


def test_oauth_code_gives_the_readers_openid_once(api):
    code = code_from(authorize(api))
    token = exchange(api, code)
    assert (token["openid"], token["scope"], token["expires_in"]) == (
        "o_reader",
        "snsapi_base",
        7200,
    )
    assert {"access_token", "refresh_token"} <= set(token)
    assert exchange(api, code)["errcode"] == 40163


def test_oauth_code_expires_after_5_minutes(api, sandbox_state):
    code = code_from(authorize(api))
    sandbox_state.advance(301)
    assert exchange(api, code)["errcode"] == 40029
    assert exchange(api, "forged")["errcode"] == 40029


def test_a_reader_who_does_not_follow_is_a_user_of_the_oa_after_oauth(api, wx, followers):
    assert wx.get("user/info", openid="o_reader")["errcode"] == 40003
    code_from(authorize(api))
    assert wx.get("user/info", openid="o_reader") == {"subscribe": 0, "openid": "o_reader"}
    assert wx.get("user/get")["total"] == 0  # a user, not a follower
    followers("o_reader")  # following later works as for anyone
    assert wx.get("user/info", openid="o_reader")["subscribe"] == 1


def test_oauth_errors(api):
    assert exchange(api, code_from(authorize(api)), secret="wrong")["errcode"] == 40125
    assert authorize(api, openid="").json["errcode"] == 41009
    assert authorize(api, scope="snsapi_userinfo").json["errcode"] == 10005
    assert authorize(api, appid="wxunknown").json["errcode"] == 40013


# --- follower actions and inspection -------------------------------------------------------


def test_actions_deliver_what_wechat_sends(sandbox_state, tenant, receiver, followers):
    followers("o_1")
    sent = [
        oa.click(sandbox_state, tenant, "o_1", "V1001_GOOD"),
        oa.view(sandbox_state, tenant, "o_1", "https://h5.example.com/a"),
        oa.send_text(sandbox_state, tenant, "o_1", "你好"),
        oa.share_location(sandbox_state, tenant, "o_1", 31.2, 121.5),
        oa.unfollow(sandbox_state, tenant, "o_1"),
    ]
    click, view, text, location, unfollow = map(fields, sent)
    assert (click["Event"], click["EventKey"]) == ("CLICK", "V1001_GOOD")
    assert (view["Event"], view["EventKey"]) == ("VIEW", "https://h5.example.com/a")
    assert (text["MsgType"], text["Content"]) == ("text", "你好") and text["MsgId"]
    assert (location["Event"], location["Latitude"]) == ("LOCATION", "31.2")
    assert unfollow["Event"] == "unsubscribe"
    assert {f["ToUserName"] for f in map(fields, sent)} == {f"gh_{OA_APP_ID[-12:]}"}
    sandbox_state.wait_for_deliveries()
    assert all(xml in receiver.received for xml in sent)


def test_actions_need_a_follower(sandbox_state, tenant, followers):
    with pytest.raises(ValueError, match="does not follow"):
        oa.click(sandbox_state, tenant, "o_1", "K")
    followers("o_1")
    with pytest.raises(ValueError, match="already follows"):
        oa.follow(sandbox_state, tenant, "o_1")
    oa.unfollow(sandbox_state, tenant, "o_1")
    oa.follow(sandbox_state, tenant, "o_1")  # following again is fine


def test_sandbox_state_shows_the_oa(api, wx, followers):
    followers("o_1")
    create_tag(wx, "CIO")
    wx.post("menu/create", {"button": DEFAULT_MENU})
    send_to_all(wx, {"msgtype": "text", "text": {"content": "a"}})
    state = api.get("/sandbox/state").json[OA_APP_ID]
    assert state["kind"] == "oa"
    assert state["followers"]["o_1"]["received"][0]["kind"] == "mass"
    assert state["tags"] == {"100": {"id": 100, "name": "CIO"}}
    assert state["menu"]["button"] == DEFAULT_MENU
    assert state["mass_jobs"][0]["recipients"] == ["o_1"]
