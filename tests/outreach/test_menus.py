"""OA menus: every WeChat limit checked before publishing, the publish order against the
sandbox (the document's first matching menu wins), trymatch, refusals that keep what is
live, rollback, and the menu-click rules a publish keeps in step."""

import copy

import pytest
from sqlalchemy import select

from core.jobs import Followups
from core.references import TAG
from crm.rules import RuleBook
from models import (
    Channel,
    ContactTag,
    Identity,
    MenuStatus,
    MenuVersion,
    RuleKind,
    Tag,
    TagRule,
)
from outreach import menus
from outreach.menus import MenuContext, MenuInvalid, validate_menu
from tests.helpers import harpoon_of
from tests.oa_platform import connect_oa
from tests.outreach.menu_platform import (
    follow,
    oa_client,
    oa_tenant,
    settle,
    tag,
    tag_followers,
    wechat_tags_of,
    workspace_of,
)
from wechat.sandbox import oa
from wechat.sandbox.core import Fault

pytestmark = pytest.mark.sandbox


def click(name: str, key: str, **action) -> dict:
    return {"name": name, "type": "click", "key": key, **action}


def view(name: str, url: str = "https://harpoon.example/") -> dict:
    return {"name": name, "type": "view", "url": url}


def doc(default=None, *conditional) -> dict:
    return {
        "default": default if default is not None else [click("菜单", "MENU")],
        "conditional": [{"tag_id": t, "buttons": b} for t, b in conditional],
    }


# ---- the limits ---------------------------------------------------------------------


def test_a_menu_within_every_limit_passes():
    document = doc(
        [
            {"name": "五个中文字", "sub_button": [click("二" * 20, "K" * 128)] * 5},
            view("a" * 16, "https://x.example/" + "p" * 1000),
            {
                "name": "小程序",
                "type": "miniprogram",
                "appid": "wx0123456789abcdef",
                "pagepath": "pages/index/index",
                "url": "http://x.example/",
            },
        ],
        (7, [click("医美", "MED", tag_id=9, reply="谢谢")]),
    )
    assert validate_menu(document) == {}


@pytest.mark.parametrize("count", [0, 4])
def test_one_to_three_top_buttons(count):
    errors = validate_menu(doc([click(f"b{n}", f"K{n}") for n in range(count)]))
    assert errors == {"default": menus.TOP_COUNT}
    conditional = validate_menu(doc(None, (1, [click(f"b{n}", f"K{n}") for n in range(count)])))
    assert conditional == {"conditional.0.buttons": menus.TOP_COUNT}


@pytest.mark.parametrize("count", [0, 6])
def test_one_to_five_sub_buttons(count):
    subs = [click(f"s{n}", f"K{n}") for n in range(count)]
    errors = validate_menu(doc([{"name": "更多", "sub_button": subs}]))
    assert errors == {"default.0.sub_button": menus.SUB_COUNT}


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a" * 16, True), ("a" * 17, False), ("五个中文字", True), ("六个中文字符", False)],
)
def test_top_names_count_utf8_bytes(name, ok):
    errors = validate_menu(doc([click(name, "K")]))
    assert errors == ({} if ok else {"default.0.name": menus.TOP_NAME_BYTES})


@pytest.mark.parametrize(("name", "ok"), [("中" * 20, True), ("中" * 20 + "a", False)])
def test_sub_names_count_utf8_bytes(name, ok):
    errors = validate_menu(doc(None, (3, [{"name": "更多", "sub_button": [click(name, "K")]}])))
    assert errors == (
        {} if ok else {"conditional.0.buttons.0.sub_button.0.name": menus.SUB_NAME_BYTES}
    )


@pytest.mark.parametrize(
    ("key", "ok"), [("K" * 128, True), ("K" * 129, False), ("键" * 42, True), ("键" * 43, False)]
)
def test_keys_count_utf8_bytes(key, ok):
    errors = validate_menu(doc([click("按钮", key)]))
    assert errors == ({} if ok else {"default.0.key": menus.KEY_BYTES})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://x.example/" + "p" * 1006, None),
        ("https://x.example/" + "p" * 1007, menus.URL_BYTES),
        ("https://x.example/" + "页" * 336, menus.URL_BYTES),
        ("ftp://x.example/file", menus.URL_SCHEME),
        ("weixin://dl/business", menus.URL_SCHEME),
        ("x.example/page", menus.URL_SCHEME),
        ("", menus.REQUIRED),
    ],
)
def test_urls_are_http_within_1024_bytes(url, message):
    errors = validate_menu(doc([view("网页", url)]))
    assert errors == ({} if message is None else {"default.0.url": message})


def test_a_mini_program_needs_its_appid_page_and_a_fallback_url():
    bare = {"name": "小程序", "type": "miniprogram"}
    assert validate_menu(doc([bare])) == {
        "default.0.url": menus.REQUIRED,
        "default.0.appid": menus.REQUIRED,
        "default.0.pagepath": menus.REQUIRED,
    }
    wrong = {**bare, "appid": "0123456789", "pagepath": "pages/a", "url": "https://x.example/"}
    assert validate_menu(doc([wrong])) == {"default.0.appid": menus.APPID}


def test_names_keys_and_types_are_required():
    document = doc([{"name": " ", "type": "click", "key": ""}, {"name": "b", "type": "media_id"}])
    assert validate_menu(document) == {
        "default.0.name": menus.REQUIRED,
        "default.0.key": menus.REQUIRED,
        "default.1.type": menus.BUTTON_TYPE,
    }


def test_each_tag_has_at_most_one_conditional_menu():
    document = doc(None, (5, [click("a", "A")]), (6, [click("b", "B")]), (5, [click("c", "C")]))
    assert validate_menu(document) == {"conditional.2.tag_id": menus.TAG_TWICE}
    assert validate_menu(doc(None, (None, [click("a", "A")]))) == {
        "conditional.0.tag_id": menus.TAG_REQUIRED
    }


def test_errors_are_keyed_by_position():
    document = doc(
        None,
        (5, [click("a", "A")]),
        (
            6,
            [
                click("b", "B"),
                {"name": "更多", "sub_button": [click("x", "X"), view("y"), click("", "Z")]},
            ],
        ),
    )
    assert validate_menu(document) == {"conditional.1.buttons.1.sub_button.2.name": menus.REQUIRED}


def test_only_clicks_tag_or_reply_and_a_reply_fits_600_characters():
    document = doc([{**view("网页"), "tag_id": 3}, click("长", "LONG", reply="字" * 601)])
    assert validate_menu(document) == {
        "default.0.tag_id": menus.ACTION_ON_CLICK_ONLY,
        "default.1.reply": menus.REPLY_LENGTH,
    }


def test_one_key_does_one_thing():
    document = doc(
        [click("联系", "SALES", reply="稍后联系您")],
        (5, [click("联系销售", "SALES", reply="稍后联系您")]),
        (6, [click("联系", "SALES", tag_id=5)]),
    )
    assert validate_menu(document) == {"conditional.1.buttons.0.key": menus.KEY_ACTIONS_DIFFER}


def test_the_database_checks():
    context = MenuContext(
        unknown=frozenset({"default.1.tag_id", "conditional.2.tag_id"}),  # 99 and 42
        no_room=frozenset({7}),
        foreign_actions={"SHARED": (5, None)},
    )
    document = doc(
        [click("a", "SHARED", tag_id=6), click("b", "NEW", tag_id=99)],
        (5, [click("c", "SHARED")]),
        (7, [click("d", "D")]),
        (42, [click("e", "E")]),
    )
    assert validate_menu(document, context) == {
        "default.0.key": menus.KEY_USED_ELSEWHERE,
        "default.1.tag_id": TAG.message,
        "conditional.1.tag_id": menus.TAG_NO_ROOM,
        "conditional.2.tag_id": TAG.message,
    }


def test_not_a_document():
    assert validate_menu(["button"]) == {"": menus.NOT_A_DOCUMENT}
    assert validate_menu({"default": "x"}) == {"": menus.NOT_A_DOCUMENT}


def test_wechat_gets_each_type_s_own_fields():
    buttons = [
        click("a", "A", tag_id=3, reply="hi"),
        {"name": "更多", "sub_button": [view("v"), click("b", "B")]},
    ]
    assert menus.wechat_buttons(buttons) == [
        {"type": "click", "name": "a", "key": "A"},
        {
            "name": "更多",
            "sub_button": [
                {"type": "view", "name": "v", "url": "https://harpoon.example/"},
                {"type": "click", "name": "b", "key": "B"},
            ],
        },
    ]


# ---- publishing against the sandbox --------------------------------------------------


@pytest.fixture
def channel_id(app, platform, live_server):
    return connect_oa(app, platform, live_server)


def publish(app, channel_id, document, *, expect_ok=True):
    followups = Followups()
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        version = menus.new_version(channel, document, None)
        result = menus.publish(session, channel, oa_client(app), version, None, followups)
        session.commit()
        assert result.ok is expect_ok, version.error
    harpoon_of(app).queue.enqueue_followups(followups.jobs)
    return version.id, result.restored


def versions(app):
    with harpoon_of(app).db.session() as session:
        return {v.id: v for v in session.scalars(select(MenuVersion).order_by(MenuVersion.id))}


def sandbox_menus(platform):
    state = oa.state_of(oa_tenant(platform))
    default = state.menu.button if state.menu else None
    return default, [(m.matchrule, m.button) for m in state.conditional_menus]


MEDICAL = [click("我要整形", "MED_CONSULT"), click("医美快讯", "MED_NEWS")]
EDUCATION = [click("我要报名", "EDU_SIGNUP"), click("教育资讯", "EDU_NEWS")]


def test_the_first_conditional_menu_wins_for_a_follower_holding_both_tags(
    app, platform, channel_id
):
    follow(app, platform, "o_both", "o_medical", "o_plain")
    medical = tag(app, channel_id, "industry", "医美")
    education = tag(app, channel_id, "interest", "教育")
    tag_followers(app, channel_id, medical, "o_both", "o_medical")
    tag_followers(app, channel_id, education, "o_both")
    document = doc(None, (medical, MEDICAL), (education, EDUCATION))
    version_id, _ = publish(app, channel_id, document)
    settle(app, platform)  # the publish made both tags synced: their holders are mirrored

    assert wechat_tags_of(platform, "o_both") == {"医美", "教育"}
    client = oa_client(app)
    assert menus.try_match(client, "o_both") == menus.wechat_buttons(MEDICAL)
    assert menus.try_match(client, "o_medical") == menus.wechat_buttons(MEDICAL)
    assert menus.try_match(client, "o_plain") == menus.wechat_buttons(document["default"])
    # The newest conditional menu matches first: the document's first was added last.
    _, conditional = sandbox_menus(platform)
    assert [button for _, button in conditional] == [
        menus.wechat_buttons(EDUCATION),
        menus.wechat_buttons(MEDICAL),
    ]
    version = versions(app)[version_id]
    assert version.status == MenuStatus.PUBLISHED and version.published_at is not None
    state = oa.state_of(oa_tenant(platform))
    assert set(version.remote_ids["menus"]) == {str(medical), str(education)}
    assert {str(m.menuid) for m in state.conditional_menus} == set(
        version.remote_ids["menus"].values()
    )
    assert menus.matched_menu(document, menus.try_match(client, "o_both")) == (True, medical)
    with harpoon_of(app).db.session() as session:
        assert {t.name for t in session.scalars(select(Tag).where(Tag.sync_wechat))} == {
            "医美",
            "教育",
        }


def test_an_untagged_follower_gets_the_default_and_no_menu_is_none(app, platform, channel_id):
    follow(app, platform, "o_new")
    client = oa_client(app)
    assert menus.try_match(client, "o_new") is None
    medical = tag(app, channel_id, "industry", "医美")
    publish(app, channel_id, doc([view("官网")], (medical, MEDICAL)))
    assert menus.try_match(client, "o_new") == [menus.wechat_buttons([view("官网")])[0]]


def test_a_new_version_supersedes_the_live_one(app, platform, channel_id):
    first, _ = publish(app, channel_id, doc([click("一", "ONE")]))
    second, _ = publish(app, channel_id, doc([click("二", "TWO")]))
    by_id = versions(app)
    assert (by_id[first].status, by_id[second].status) == (
        MenuStatus.SUPERSEDED,
        MenuStatus.PUBLISHED,
    )
    assert sandbox_menus(platform) == ([{"type": "click", "name": "二", "key": "TWO"}], [])


def test_a_refusal_keeps_the_live_version(app, platform, channel_id):
    medical = tag(app, channel_id, "industry", "医美")
    live, _ = publish(app, channel_id, doc([click("旧", "OLD", reply="旧的")], (medical, MEDICAL)))
    before = sandbox_menus(platform)
    # WeChat takes the default menu, then refuses the conditional one: the old menus go back.
    platform.state.add_fault(Fault("/oa/cgi-bin/menu/addconditional", errcode=65303))
    refused, restored = publish(
        app,
        channel_id,
        doc([click("新", "NEW", reply="新的")], (medical, EDUCATION)),
        expect_ok=False,
    )
    assert restored is True
    by_id = versions(app)
    assert by_id[refused].status == MenuStatus.FAILED
    assert "65303" in by_id[refused].error
    assert by_id[live].status == MenuStatus.PUBLISHED
    assert sandbox_menus(platform)[0] == before[0]
    assert [b for _, b in sandbox_menus(platform)[1]] == [b for _, b in before[1]]
    assert by_id[live].remote_ids["menus"][str(medical)] == str(
        oa.state_of(oa_tenant(platform)).conditional_menus[0].menuid
    )
    with harpoon_of(app).db.session() as session:  # the new version's rules never came
        rules = session.scalars(select(TagRule)).all()
        assert [(r.config["key"], r.reply) for r in rules] == [("OLD", "旧的")]


def test_a_refusal_before_anything_changed_touches_nothing(app, platform, channel_id):
    live, _ = publish(app, channel_id, doc([click("旧", "OLD")]))
    platform.state.add_fault(Fault("/oa/cgi-bin/menu/delete", errcode=40001, times=2))
    refused, restored = publish(app, channel_id, doc([click("新", "NEW")]), expect_ok=False)
    assert restored is None
    assert versions(app)[refused].status == MenuStatus.FAILED
    assert versions(app)[live].status == MenuStatus.PUBLISHED
    assert sandbox_menus(platform)[0] == [{"type": "click", "name": "旧", "key": "OLD"}]


def test_a_broken_document_is_refused_before_any_call(app, platform, channel_id):
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        version = menus.new_version(channel, doc([click("六个中文字符", "K")]), None)
        with pytest.raises(MenuInvalid) as refused:
            menus.publish(session, channel, oa_client(app), version, None)
        assert refused.value.errors == {"default.0.name": menus.TOP_NAME_BYTES}
        session.rollback()
    assert versions(app) == {}
    state = oa.state_of(oa_tenant(platform))
    assert state.menu is None and state.menu_deletes.used == 0 and not state.tags


def test_rollback_publishes_the_earlier_document_as_a_new_version(app, platform, channel_id):
    medical = tag(app, channel_id, "industry", "医美")
    first_doc = doc([click("一", "ONE")], (medical, MEDICAL))
    first, _ = publish(app, channel_id, first_doc)
    second, _ = publish(app, channel_id, doc([click("二", "TWO")]))
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        result = menus.rollback(session, channel, oa_client(app), first, None)
        session.commit()
        assert result.ok
        third = result.version.id
    by_id = versions(app)
    assert by_id[third].restored_from_id == first
    assert by_id[third].document == first_doc
    assert [by_id[v].status for v in (first, second, third)] == [
        MenuStatus.SUPERSEDED,
        MenuStatus.SUPERSEDED,
        MenuStatus.PUBLISHED,
    ]
    default, conditional = sandbox_menus(platform)
    assert default == [{"type": "click", "name": "一", "key": "ONE"}]
    assert [b for _, b in conditional] == [menus.wechat_buttons(MEDICAL)]
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        with pytest.raises(LookupError):
            menus.rollback(session, channel, oa_client(app), 999, None)


def test_click_actions_become_menu_rules_kept_in_step_with_the_menu(app, platform, channel_id):
    interest = tag(app, channel_id, "interest", "整形")
    ws = workspace_of(app, channel_id)
    with harpoon_of(app).db.session() as session:  # a marketer's own rule on the tags page
        session.add(
            TagRule(
                workspace_id=ws,
                kind=RuleKind.MENU,
                name="手工规则",
                tag_id=interest,
                config={"key": "HAND"},
            )
        )
        session.commit()
    first = doc(
        [
            click("我要整形", "MED_CONSULT", tag_id=interest, reply="顾问稍后联系您"),
            click("只回复", "REPLY_ONLY", reply="收到"),
            click("手工", "HAND"),
        ]
    )
    publish(app, channel_id, first)
    with harpoon_of(app).db.session() as session:
        rules = {r.config["key"]: r for r in session.scalars(select(TagRule))}
        assert set(rules) == {"MED_CONSULT", "REPLY_ONLY", "HAND"}
        consult = rules["MED_CONSULT"]
        assert (consult.kind, consult.tag_id, consult.reply) == (
            RuleKind.MENU,
            interest,
            "顾问稍后联系您",
        )
        assert (rules["REPLY_ONLY"].tag_id, rules["REPLY_ONLY"].reply) == (None, "收到")
        consult_id = consult.id
        book = RuleBook.load(session, ws)
        assert book.reply_to("wechat.menu_click", "MED_CONSULT") == "顾问稍后联系您"

    # A follower's tap goes through the pipeline: tagged, and the rule answers.
    follow(app, platform, "o_tap")
    oa.click(platform.state, oa_tenant(platform), "o_tap", "MED_CONSULT")
    settle(app, platform)
    with harpoon_of(app).db.session() as session:
        contact_id = session.scalar(select(Identity.contact_id).where(Identity.value == "o_tap"))
        held = session.scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == contact_id))
        assert interest in set(held)

    second = copy.deepcopy(first)
    second["default"][0]["reply"] = "欢迎咨询"
    second["default"][1] = click("只看看", "REPLY_ONLY")  # no action any more
    publish(app, channel_id, second)
    with harpoon_of(app).db.session() as session:
        rules = {r.config["key"]: r for r in session.scalars(select(TagRule))}
        assert set(rules) == {"MED_CONSULT", "HAND"}  # the hand-made rule stays
        assert (rules["MED_CONSULT"].id, rules["MED_CONSULT"].reply) == (consult_id, "欢迎咨询")
        assert rules["HAND"].name == "手工规则"
