"""The menus page against the sandbox: who may see and edit, the editor's field errors and
buttons, publishing through the confirmation, preview as a follower, refusals and
rollback."""

import re

import pytest

from models import AuditLog, MenuStatus, MenuVersion, TagRule
from outreach import menus
from tests.app.admin.helpers import csrf_token, in_english
from tests.helpers import all_of, harpoon_of
from tests.oa_platform import connect_oa
from tests.outreach.menu_platform import follow, oa_tenant, settle, tag, tag_followers, workspace_of
from wechat.sandbox import oa
from wechat.sandbox.core import Fault

pytestmark = pytest.mark.sandbox

PAGE = "/admin/menus"


@pytest.fixture
def channel_id(app, platform, live_server):
    return connect_oa(app, platform, live_server)


@pytest.fixture
def marketer(signed_in):
    return in_english(signed_in("marketer"))


def form_of(document: dict) -> dict:
    """The editor's inputs for a document, named as the page names them."""
    data = {}

    def action(at, button):
        data[f"{at}.name"] = button.get("name", "")
        data[f"{at}.type"] = button.get("type", "click")
        for field in ("key", "url", "appid", "pagepath", "reply"):
            data[f"{at}.{field}"] = button.get(field, "")
        data[f"{at}.tag_id"] = str(button.get("tag_id") or "")

    def buttons(prefix, items):
        for i, button in enumerate(items):
            at = f"{prefix}.{i}"
            if "sub_button" in button:
                data[f"{at}.name"], data[f"{at}.kind"] = button["name"], "submenu"
                data[f"{at}.type"] = "click"
                for j, sub in enumerate(button["sub_button"]):
                    action(f"{at}.sub_button.{j}", sub)
            else:
                action(at, button)
                data[f"{at}.kind"] = "action"

    buttons("default", document["default"])
    for n, menu in enumerate(document["conditional"]):
        data[f"conditional.{n}.tag_id"] = str(menu["tag_id"] or "")
        buttons(f"conditional.{n}.buttons", menu["buttons"])
    return data


def post_draft(client, channel_id, document, op="save"):
    token = csrf_token(client.get(PAGE).text)
    return client.post(
        f"{PAGE}/{channel_id}/draft",
        data={**form_of(document), "op": op, "csrf_token": token},
    )


def publish_draft(client, channel_id, document):
    assert post_draft(client, channel_id, document, "publish").status_code == 302
    confirm = client.get(f"{PAGE}/{channel_id}/publish")
    assert confirm.status_code == 200
    return client.post(f"{PAGE}/{channel_id}/publish", data=confirmation(confirm.text))


def confirmation(html: str) -> dict:
    """The confirmation form's fields: the CSRF token and the digest of the draft shown."""
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', html).group(1)
    return {"csrf_token": csrf_token(html), "digest": digest}


def versions(app):
    return all_of(app, MenuVersion)


def draft_document(app):
    (draft,) = [v for v in versions(app) if v.status == MenuStatus.DRAFT]
    return draft.document


def error_at(html: str, path: str) -> str | None:
    """The message shown under the input named `path`."""
    error = r'<small class="error" role="alert">([^<]*)</small>'
    match = re.search(rf'name="{re.escape(path)}"[^>]*>.*?(?:{error}|</div>)', html, re.S)
    return match.group(1) if match else None


SALES = {"name": "联系销售", "type": "click", "key": "CONTACT_SALES", "reply": "稍后联系您"}
DEFAULT = {"default": [SALES, {"name": "官网", "type": "view", "url": "https://harpoon.example/"}]}


def test_no_oa_yet(marketer):
    page = marketer.get(PAGE)
    assert page.status_code == 200 and "No Official Account is connected yet" in page.text


def test_a_viewer_sees_the_menus_but_may_not_change_them(app, signed_in, marketer, channel_id):
    publish_draft(marketer, channel_id, {**DEFAULT, "conditional": []})
    viewer = in_english(signed_in("viewer"))
    page = viewer.get(PAGE)
    assert page.status_code == 200
    assert 'id="menu-editor"' not in page.text and "Preview as a follower" in page.text
    assert "Live menus" in page.text and "联系销售" in page.text
    assert "Roll back to this" not in page.text
    token = csrf_token(page.text)
    for path in ("draft", "publish", "discard", "versions/1/rollback"):
        response = viewer.post(f"{PAGE}/{channel_id}/{path}", data={"csrf_token": token})
        assert response.status_code == 403, path
    assert viewer.get(f"{PAGE}/{channel_id}/publish").status_code == 403


def test_the_page_starts_with_one_empty_button_and_no_complaints(marketer, channel_id):
    page = marketer.get(PAGE)
    assert 'name="default.0.name"' in page.text and 'name="default.1.name"' not in page.text
    assert 'role="alert"' not in page.text
    assert marketer.get(f"{PAGE}?channel=999").status_code == 200  # an unknown id: the first OA


def test_field_errors_show_next_to_the_button_and_nothing_typed_is_lost(app, marketer, channel_id):
    document = {
        "default": [
            {"name": "六个中文字符", "type": "click", "key": "K"},
            {
                "name": "更多",
                "sub_button": [
                    {"name": "网页", "type": "view", "url": "ftp://files.example/a"},
                    {"name": "小程序", "type": "miniprogram", "url": "https://x.example/"},
                ],
            },
        ],
        "conditional": [{"tag_id": None, "buttons": [{"name": "", "type": "click", "key": ""}]}],
    }
    response = post_draft(marketer, channel_id, document, "publish")
    assert response.status_code == 400
    html = response.text
    assert "cannot be published yet" in html
    assert (
        error_at(html, "default.0.name") == "At most 16 bytes: 5 Chinese characters, or 16 letters."
    )
    assert error_at(html, "default.1.sub_button.0.url") == (
        "A web address starting with http:// or https://."
    )
    assert error_at(html, "default.1.sub_button.1.appid") == "Required."
    assert error_at(html, "default.1.sub_button.1.pagepath") == "Required."
    assert error_at(html, "conditional.0.tag_id") == "Choose the tag whose followers see this menu."
    assert error_at(html, "conditional.0.buttons.0.name") == "Required."
    assert error_at(html, "default.0.key") is None
    assert 'value="六个中文字符"' in html and 'value="ftp://files.example/a"' in html
    assert draft_document(app)["default"][0]["name"] == "六个中文字符"
    assert versions(app)[0].status == MenuStatus.DRAFT and len(versions(app)) == 1


def test_the_editor_buttons_add_remove_and_move(app, marketer, channel_id):
    base = {"default": [SALES], "conditional": []}
    assert post_draft(marketer, channel_id, base, "add:default").status_code == 302
    assert len(draft_document(app)["default"]) == 2
    document = draft_document(app)
    document["default"][1] = {"name": "更多", "sub_button": []}
    post_draft(marketer, channel_id, document, "add_sub:default.1")
    assert draft_document(app)["default"][1]["sub_button"] == [
        {"name": "", "type": "click", "key": ""}
    ]
    post_draft(marketer, channel_id, draft_document(app), "up:default.1")
    assert [b["name"] for b in draft_document(app)["default"]] == ["更多", "联系销售"]
    post_draft(marketer, channel_id, draft_document(app), "add_menu")
    menu = draft_document(app)["conditional"][0]
    assert menu["tag_id"] is None and menu["buttons"] == draft_document(app)["default"]
    post_draft(marketer, channel_id, draft_document(app), "remove:default.0")
    assert [b["name"] for b in draft_document(app)["default"]] == ["联系销售"]
    post_draft(marketer, channel_id, draft_document(app), "remove:conditional.0")
    assert draft_document(app)["conditional"] == []
    three = {"default": [SALES] * 3, "conditional": []}
    assert post_draft(marketer, channel_id, three, "add:default").status_code == 400
    assert post_draft(marketer, channel_id, three, "remove:default.7").status_code == 400
    assert post_draft(marketer, channel_id, three, "remove:workspace_id").status_code == 400


def test_publish_through_the_confirmation(app, platform, marketer, channel_id):
    follow(app, platform, "o_med")
    medical = tag(app, channel_id, "industry", "医美")
    interest = tag(app, channel_id, "interest", "整形")
    tag_followers(app, channel_id, medical, "o_med")
    settle(app, platform)
    consult = {"name": "我要整形", "type": "click", "key": "MED", "tag_id": interest, "reply": "好"}
    document = {**DEFAULT, "conditional": [{"tag_id": medical, "buttons": [consult]}]}
    assert post_draft(marketer, channel_id, document, "publish").status_code == 302
    confirm = marketer.get(f"{PAGE}/{channel_id}/publish")
    assert "1 follower holds it now" in confirm.text
    assert "these tags are mirrored to WeChat" in confirm.text and "Industry · 医美" in confirm.text
    assert "MED" in confirm.text and "Publish now" in confirm.text
    assert oa.state_of(oa_tenant(platform)).menu is None  # nothing yet

    # Someone changes the draft meanwhile: what was confirmed is no longer what would go out.
    stale = confirmation(confirm.text)
    post_draft(marketer, channel_id, {**document, "default": [SALES]})
    response = marketer.post(f"{PAGE}/{channel_id}/publish", data=stale)
    assert response.headers["Location"].endswith(f"{PAGE}/{channel_id}/publish")
    assert oa.state_of(oa_tenant(platform)).menu is None
    post_draft(marketer, channel_id, document)
    confirm = marketer.get(f"{PAGE}/{channel_id}/publish")

    response = marketer.post(f"{PAGE}/{channel_id}/publish", data=confirmation(confirm.text))
    assert response.status_code == 302
    settle(app, platform)
    page = marketer.get(PAGE)
    assert "is live" in page.text
    live = [v for v in versions(app) if v.status == MenuStatus.PUBLISHED]
    assert len(live) == 1 and live[0].document == {
        **document,
        "conditional": document["conditional"],
    }
    assert oa.state_of(oa_tenant(platform)).menu.button == menus.wechat_buttons(DEFAULT["default"])
    assert "unpublished changes" not in page.text
    (rule,) = [r for r in all_of(app, TagRule) if r.config["key"] == "MED"]
    assert (rule.tag_id, rule.reply) == (interest, "好")
    actions = [log.action for log in all_of(app, AuditLog)]
    assert "menu.draft" in actions and "menu.publish" in actions

    # The follower holding the tag gets the conditional menu; WeChat says so.
    preview = marketer.get(f"{PAGE}?channel={channel_id}&openid=o_med")
    assert "the conditional menu for Industry · 医美" in preview.text
    assert "我要整形" in preview.text


def test_preview_as_a_follower(app, platform, marketer, channel_id):
    follow(app, platform, "o_plain")
    page = marketer.get(f"{PAGE}?openid=o_plain")
    assert "WeChat says this account has no menu." in page.text
    assert '<option value="o_plain">' in page.text  # the picker lists the OA's followers
    publish_draft(marketer, channel_id, {**DEFAULT, "conditional": []})
    page = marketer.get(f"{PAGE}?openid=o_plain")
    assert "the default menu" in page.text and 'data-openid="o_plain"' in page.text
    unknown = marketer.get(f"{PAGE}?openid=o_nobody")
    assert "WeChat refused (40003)" in unknown.text


def test_a_refused_publish_keeps_the_live_version(app, platform, marketer, channel_id):
    publish_draft(marketer, channel_id, {**DEFAULT, "conditional": []})
    changed = {"default": [SALES], "conditional": []}
    platform.state.add_fault(Fault("/oa/cgi-bin/menu/create", errcode=40018))
    response = publish_draft(marketer, channel_id, changed)
    assert response.status_code == 302
    page = marketer.get(PAGE)
    assert "WeChat refused the menu" in page.text and "Followers still see version" in page.text
    by_status = {v.status: v for v in versions(app)}
    assert "40018" in by_status[MenuStatus.FAILED].error
    assert by_status[MenuStatus.PUBLISHED].document["default"] == DEFAULT["default"]
    assert oa.state_of(oa_tenant(platform)).menu.button == menus.wechat_buttons(DEFAULT["default"])
    assert draft_document(app) == changed  # the edit waits in the draft
    assert 'data-status="failed"' in page.text and "40018" in page.text


def test_rollback_and_discard(app, platform, marketer, channel_id):
    publish_draft(marketer, channel_id, {**DEFAULT, "conditional": []})
    publish_draft(marketer, channel_id, {"default": [SALES], "conditional": []})
    first = min(v.id for v in versions(app) if v.status == MenuStatus.SUPERSEDED)
    page = marketer.get(PAGE)
    response = marketer.post(
        f"{PAGE}/{channel_id}/versions/{first}/rollback", data={"csrf_token": csrf_token(page.text)}
    )
    assert response.status_code == 302
    (live,) = [v for v in versions(app) if v.status == MenuStatus.PUBLISHED]
    assert live.restored_from_id == first and live.document["default"] == DEFAULT["default"]
    assert oa.state_of(oa_tenant(platform)).menu.button == menus.wechat_buttons(DEFAULT["default"])
    page = marketer.get(PAGE)
    assert f"Rollback to version {first}" in page.text
    assert "menu.rollback" in [log.action for log in all_of(app, AuditLog)]
    assert (
        marketer.post(
            f"{PAGE}/{channel_id}/versions/{live.id + 99}/rollback",
            data={"csrf_token": csrf_token(page.text)},
        ).status_code
        == 404
    )

    # The draft still holds the second version; discarding it shows the live menus again.
    assert "unpublished changes" in page.text
    marketer.post(f"{PAGE}/{channel_id}/discard", data={"csrf_token": csrf_token(page.text)})
    assert [v for v in versions(app) if v.status == MenuStatus.DRAFT] == []
    page = marketer.get(PAGE)
    assert 'value="https://harpoon.example/"' in page.text


def test_another_workspace_s_channel_is_not_found(app, signed_in, channel_id):
    outsider = in_english(signed_in("marketer", workspace="other"))
    page = outsider.get(PAGE)
    assert "No Official Account is connected yet" in page.text
    token = csrf_token(page.text)
    assert (
        outsider.post(
            f"{PAGE}/{channel_id}/draft", data={"csrf_token": token, "op": "save"}
        ).status_code
        == 404
    )
    assert outsider.get(f"{PAGE}/{channel_id}/publish").status_code == 404


def test_menu_rules_made_on_the_tags_page_are_shown_and_kept(app, marketer, channel_id):
    interest = tag(app, channel_id, "interest", "销售")
    with harpoon_of(app).db.session() as session:
        session.add(
            TagRule(
                workspace_id=workspace_of(app, channel_id),
                kind="menu",
                name="手工：联系销售",
                tag_id=interest,
                config={"key": "CONTACT_SALES"},
            )
        )
        session.commit()
    post_draft(marketer, channel_id, {"default": [SALES], "conditional": []})
    page = marketer.get(PAGE)
    assert "Rules on the Tags page act on this key too: 手工：联系销售." in page.text
    publish_draft(marketer, channel_id, {"default": [SALES], "conditional": []})
    names = sorted(rule.name for rule in all_of(app, TagRule))
    assert names == ["oa wx5f3a9e0c1b2d4e6f · 联系销售", "手工：联系销售"]
