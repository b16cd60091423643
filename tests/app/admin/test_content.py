"""The content library pages: the list with its figures and window, the editor and its
field errors, a content item's page (links, staff share links, chart, top accounts,
latest readers), tracked links, archive; the contact timeline's labels for touchpoints."""

import html
import json
import re
from dataclasses import replace

import pytest

from app.admin.contacts.presenters import INTERACTION_LABELS, PROPERTY_LABELS, key_properties
from app.admin.labels import LINK_MEDIUM_LABELS
from core.tokens import Signer, verify_share
from crm.touchpoints import KINDS
from models import (
    AuditLog,
    Content,
    TrackedLink,
)
from outreach.library import editing
from tests.app.admin.helpers import (
    csrf_token,
    field_errors,
    in_english,
    post_form,
    row_cells,
    sign_in,
)
from tests.factories import (
    make_account,
    make_channel,
    make_contact,
    make_content,
    make_link,
    make_oa,
    make_staff,
    make_user,
    view,
    workspace_id,
)
from tests.helpers import OA_CREDS, all_of, audit_actions

# ---- factories ----------------------------------------------------------------------------


def chart_data(page: str, script_id: str) -> dict:
    match = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', page)
    return json.loads(html.unescape(match.group(1)))


def content_form(**changes) -> dict:
    return {
        "title": "智能工厂案例集",
        "kind": "download",
        "source": "url",
        "url": "https://example.com/cases.pdf",
        "body": "",
        "summary": "三家工厂的数字化改造。",
        "topics": "智能制造、MES, AI 安全",
        "products": "云MES",
        **changes,
    }


# ---- the editor ---------------------------------------------------------------------------


def test_a_marketer_adds_content_and_lands_on_its_page(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = post_form(client, "/admin/content/new", content_form())

    (content,) = all_of(app, Content)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/content/{content.id}")
    assert (content.kind, content.url, content.body) == (
        "download",
        "https://example.com/cases.pdf",
        None,
    )
    assert content.topics == ["智能制造", "MES", "AI", "安全"]
    assert content.products == ["云MES"]
    assert audit_actions(app) == ["content.create"]
    page = client.get(response.headers["Location"]).text
    assert "“智能工厂案例集” saved." in page
    assert "https://example.com/cases.pdf" in page and "三家工厂的数字化改造。" in page


def test_a_hosted_page_keeps_its_body_and_no_link(app, signed_in):
    client = in_english(signed_in("marketer"))
    body = "第一段。\r\n\r\n第二段。"
    post_form(client, "/admin/content/new", content_form(source="body", body=body))
    (content,) = all_of(app, Content)
    assert (content.url, content.body) == (None, "第一段。\n\n第二段。")
    page = client.get(f"/admin/content/{content.id}").text
    assert "A page Harpoon hosts (2 paragraphs)" in page


def test_editing_switches_a_link_to_a_hosted_page_and_audits_the_change(app, signed_in):
    client = in_english(signed_in("marketer"))
    content_id = make_content(app)
    form = client.get(f"/admin/content/{content_id}/edit").text
    assert 'value="https://example.com/wp"' in form
    response = post_form(
        client,
        f"/admin/content/{content_id}/edit",
        content_form(title="2026 制造业数字化白皮书", source="body", body="正文"),
    )
    assert response.status_code == 302
    (content,) = all_of(app, Content)
    assert (content.url, content.body) == (None, "正文")
    (entry,) = all_of(app, AuditLog)
    assert entry.action == "content.update"
    assert entry.changes["url"] == ["https://example.com/wp", None]
    assert "title" not in entry.changes


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": " "}, "title", "Required."),
        ({"title": "标" * 201}, "title", "1 to 200 characters."),
        ({"url": ""}, "url", "Either a link to the content or a page body for Harpoon to host."),
        ({"url": "ftp://example.com/x"}, "url", "A web address starting with http:// or https://."),
        ({"url": "example.com/x"}, "url", "A web address starting with http:// or https://."),
        ({"url": "https://example.com/" + "x" * 1010}, "url", "At most 1024 characters."),
        (
            {"source": "body", "body": ""},
            "body",
            "Either a link to the content or a page body for Harpoon to host.",
        ),
        ({"summary": "字" * 501}, "summary", "At most 500 characters."),
        ({"topics": " ".join(f"t{n}" for n in range(21))}, "topics", "At most 20 names."),
        ({"products": "产" * 31}, "products", "Each name at most 30 characters."),
        ({"kind": "poster"}, "kind", "Not a kind of content."),
    ],
)
def test_bad_input_shows_on_its_field(app, signed_in, changes, field, message):
    client = in_english(signed_in("marketer"))
    response = post_form(client, "/admin/content/new", content_form(**changes))
    assert response.status_code == 400
    assert message in field_errors(response.text, field)
    assert all_of(app, Content) == []


def test_a_link_and_a_body_together_are_refused():
    with pytest.raises(editing.ValidationError) as refused:
        editing.load_content({"title": "x", "url": "https://example.com", "body": "正文"})
    assert refused.value.messages == {"body": [editing.NOT_BOTH]}


def test_viewers_read_but_do_not_manage(app, signed_in):
    content_id = make_content(app)
    link_id, _code = make_link(app, content_id=content_id)
    client = in_english(signed_in("viewer"))
    assert client.get("/admin/content").status_code == 200
    page = client.get(f"/admin/content/{content_id}")
    assert page.status_code == 200
    assert "New content" not in client.get("/admin/content").text
    assert "Retire" not in page.text and "New tracked link" not in page.text
    assert client.get("/admin/content/new").status_code == 403
    assert client.get(f"/admin/content/{content_id}/edit").status_code == 403
    token = csrf_token(page.text)
    for path in (
        f"/admin/content/{content_id}/archive",
        f"/admin/content/{content_id}/links",
        f"/admin/links/{link_id}/archive",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 403


def test_another_workspace_sees_none_of_it(app, signed_in):
    content_id = make_content(app)
    link_id, _code = make_link(app, content_id=content_id)
    client = signed_in("marketer", workspace="other")
    assert client.get(f"/admin/content/{content_id}").status_code == 404
    assert "2026 制造业数字化白皮书" not in client.get("/admin/content").text
    token = csrf_token(client.get("/admin/").text)
    assert (
        client.post(f"/admin/links/{link_id}/archive", data={"csrf_token": token}).status_code
        == 404
    )


# ---- the figures --------------------------------------------------------------------------


@pytest.fixture
def readers(app):
    """One content item read through two links by people of two accounts, a contact merged
    into another, an anonymous view, a staff member's and a customer's shares, and a view
    40 days ago (outside the default 30-day window)."""
    channel_id = make_oa(app)
    content_id = make_content(app, topics=["AI"])
    menu_id, menu_code = make_link(app, content_id=content_id, channel_id=channel_id)
    push_id, push_code = make_link(
        app, content_id=content_id, channel_id=channel_id, medium="push", label="3月推送"
    )
    acme, globex = make_account(app, "艾克米制造"), make_account(app, "环球电子")
    wang = make_contact(app, "王总", account_id=acme, title="CIO")
    li = make_contact(app, "李工", account_id=acme, title="工程师")
    li_before = make_contact(app, "李工（旧）", merged_into_id=li)
    zhao = make_contact(app, "赵经理", account_id=globex)
    staff = make_staff(app, "张销售", "zhang")
    view(app, menu_id, contact_id=wang, days_ago=1, active_seconds=120, liked=True, shares=2)
    view(app, menu_id, contact_id=li, days_ago=2, active_seconds=30, sharer_staff_id=staff)
    view(
        app,
        push_id,
        contact_id=li_before,
        days_ago=3,
        active_seconds=30,
        sharer_contact_id=wang,
        new_lead=True,
    )
    view(app, push_id, contact_id=zhao, days_ago=0.1, active_seconds=60)
    view(app, push_id, days_ago=0.2)  # opened outside WeChat
    view(app, menu_id, contact_id=zhao, days_ago=40, active_seconds=600)
    return {
        "content_id": content_id,
        "channel_id": channel_id,
        "menu": (menu_id, menu_code),
        "push": (push_id, push_code),
        "accounts": (acme, globex),
        "people": {"wang": wang, "li": li, "zhao": zhao},
        "staff": staff,
    }


def test_the_list_counts_views_readers_accounts_minutes_likes_and_shares(app, signed_in, readers):
    client = in_english(signed_in("viewer"))
    page = client.get("/admin/content").text
    # views, readers (李工 once: merged), accounts, minutes, likes, shares
    assert row_cells(page, f"content-{readers['content_id']}") == ["5", "3", "2", "4.0", "1", "2"]
    longer = client.get("/admin/content?days=90").text
    assert row_cells(longer, f"content-{readers['content_id']}") == [
        "6",
        "3",
        "2",
        "14.0",
        "1",
        "2",
    ]
    assert "<strong>90 days</strong>" in longer


def test_the_list_pages_and_searches(app, signed_in):
    ids = [make_content(app, title=f"案例 {n:02d}") for n in range(53)]
    client = in_english(signed_in("viewer"))
    first = client.get("/admin/content").text
    assert f'id="content-{ids[-1]}"' in first and f'id="content-{ids[0]}"' not in first
    assert "Page 1 of 2" in first
    second = client.get("/admin/content?page=2").text
    assert f'id="content-{ids[0]}"' in second
    found = client.get("/admin/content?q=案例 07").text
    assert f'id="content-{ids[7]}"' in found and found.count('<tr id="content-') == 1


def test_the_page_of_an_item_shows_links_chart_accounts_and_readers(app, signed_in, readers):
    client = in_english(signed_in("viewer"))
    page = client.get(f"/admin/content/{readers['content_id']}").text
    for kpi, value in {"views": "5", "readers": "3", "accounts": "2", "minutes": "4.0"}.items():
        assert f'data-kpi="{kpi}">{value}<' in page
    assert "1 anonymous" in page and "1 new leads" in page

    _menu_id, menu_code = readers["menu"]
    _push_id, push_code = readers["push"]
    assert f'value="http://127.0.0.1:8000/t/{menu_code}"' in page
    # 30 days: the menu link's 2 views and readers; ever: 3 with the old one
    assert row_cells(page, f"link-{menu_code}") == ["2", "2", "3"]
    assert row_cells(page, f"link-{push_code}") == ["3", "2", "3"]
    assert "3月推送" in page

    chart = chart_data(page, "views-data")
    assert len(chart["days"]) == 30 and sum(chart["views"]) == 5
    assert sum(chart["readers"]) == 4  # 李工 on two days; no one twice on one day
    assert chart["names"] == {"views": "Views", "readers": "Readers"}

    accounts = re.search(r'<table class="top-accounts">(.*?)</table>', page, re.S).group(1)
    assert accounts.index("艾克米制造") < accounts.index("环球电子")
    media = re.search(r'<table class="media">(.*?)</table>', page, re.S).group(1)
    assert media.index("Push") < media.index("OA menu")

    latest = re.search(r'<table class="recent-readers">(.*?)</table>', page, re.S).group(1)
    assert latest.index("赵经理") < latest.index("Anonymous") < latest.index("王总")
    assert "张销售" in latest  # 李工 read through the staff member's share
    assert "李工（旧）" not in latest  # shown as the contact it was merged into


def test_each_active_staff_member_has_a_personal_share_link(app, signed_in, readers):
    make_staff(app, "离职的人", "gone", active=False)
    owner_id = make_user(app, "sales")
    make_staff(app, "我自己", "me", user_id=owner_id)
    client = app.test_client()
    sign_in(client, "sales@acme.example")
    page = client.get(f"/admin/content/{readers['content_id']}").text
    shares = re.search(r'<table class="share-links">(.*?)</table>', page, re.S).group(1)
    assert "离职的人" not in shares
    assert shares.index("我自己") < shares.index("张销售")  # your own link first
    _push_id, push_code = readers["push"]  # the newest link by default
    urls = re.findall(r'value="(http://127\.0\.0\.1:8000/t/[^"]+)"', shares)
    assert len(urls) == 2 and all(
        url.startswith(f"http://127.0.0.1:8000/t/{push_code}?s=") for url in urls
    )
    token = html.unescape(urls[1]).split("?s=", 1)[1]
    sharer = verify_share(Signer("test-secret-key"), token, workspace_id(app))
    assert sharer.staff_id == readers["staff"]

    menu_id, menu_code = readers["menu"]
    through_menu = client.get(f"/admin/content/{readers['content_id']}?share={menu_id}").text
    assert f"/t/{menu_code}?s=" in re.search(
        r'<table class="share-links">(.*?)</table>', through_menu, re.S
    ).group(1)


# ---- links and archiving ------------------------------------------------------------------


def test_a_marketer_makes_a_tracked_link_on_the_first_official_account(app, signed_in):
    first = make_oa(app)
    second = make_channel(app, "oa", replace(OA_CREDS, app_id="wx0000000000000002"))
    content_id = make_content(app)
    client = in_english(signed_in("marketer"))
    page = client.get(f"/admin/content/{content_id}").text
    assert f'<option value="{first}" selected>' in page
    response = client.post(
        f"/admin/content/{content_id}/links",
        data={
            "medium": "push",
            "label": "3月推送",
            "channel_id": str(first),
            "csrf_token": csrf_token(page),
        },
    )
    assert response.status_code == 302
    (link,) = all_of(app, TrackedLink)
    assert (link.content_id, link.form_id, link.channel_id, link.medium, link.label) == (
        content_id,
        None,
        first,
        "push",
        "3月推送",
    )
    assert audit_actions(app) == ["tracked_link.create"]
    page = client.get(response.headers["Location"]).text
    assert f"Tracked link http://127.0.0.1:8000/t/{link.code} created." in page
    assert f'id="link-{link.code}"' in page
    assert f'<option value="{second}" >' in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"medium": "billboard"}, "medium", "Not a place for a link."),
        ({"medium": "menu", "label": "标" * 101}, "label", "At most 100 characters."),
        (
            {"medium": "menu", "channel_id": "999999"},
            "channel_id",
            "Not an Official Account of this workspace.",
        ),
    ],
)
def test_a_bad_link_shows_its_mistake_in_place(app, signed_in, data, field, message):
    make_oa(app)
    content_id = make_content(app)
    client = in_english(signed_in("marketer"))
    token = csrf_token(client.get(f"/admin/content/{content_id}").text)
    response = client.post(f"/admin/content/{content_id}/links", data={**data, "csrf_token": token})
    assert response.status_code == 400
    assert message in field_errors(response.text, field)
    assert all_of(app, TrackedLink) == []


def test_archive_hides_restore_returns_and_a_link_retires(app, signed_in):
    content_id = make_content(app)
    link_id, code = make_link(app, content_id=content_id)
    client = in_english(signed_in("marketer"))
    token = csrf_token(client.get("/admin/").text)

    client.post(f"/admin/links/{link_id}/archive", data={"csrf_token": token})
    (link,) = all_of(app, TrackedLink)
    assert link.archived_at is not None
    assert f'id="link-{code}"' not in client.get(f"/admin/content/{content_id}").text

    response = client.post(f"/admin/content/{content_id}/archive", data={"csrf_token": token})
    assert response.headers["Location"].endswith("/admin/content")
    assert f'id="content-{content_id}"' not in client.get("/admin/content").text
    assert f'id="content-{content_id}"' in client.get("/admin/content?archived=1").text
    refused = client.post(
        f"/admin/content/{content_id}/links", data={"medium": "menu", "csrf_token": token}
    )
    assert "restore it first" in client.get(refused.headers["Location"]).text
    assert len(all_of(app, TrackedLink)) == 1
    client.post(f"/admin/content/{content_id}/restore", data={"csrf_token": token})
    assert f'id="content-{content_id}"' in client.get("/admin/content").text
    assert audit_actions(app) == ["tracked_link.archive", "content.archive", "content.restore"]


def test_a_link_stops_opening_as_soon_as_its_content_is_archived(app, signed_in):
    content_id = make_content(app)
    _link_id, code = make_link(app, content_id=content_id)
    reader = app.test_client()
    assert reader.get(f"/t/{code}").status_code == 302  # to the content, and cached
    client = signed_in("marketer")
    token = csrf_token(client.get("/admin/").text)
    client.post(f"/admin/content/{content_id}/archive", data={"csrf_token": token})
    assert reader.get(f"/t/{code}").status_code == 404
    client.post(f"/admin/content/{content_id}/restore", data={"csrf_token": token})
    assert reader.get(f"/t/{code}").status_code == 302


# ---- the contact timeline -----------------------------------------------------------------


def test_every_touchpoint_kind_has_a_timeline_label():
    assert set(KINDS) <= set(INTERACTION_LABELS)


def test_a_views_properties_read_well_on_the_timeline(app):
    properties = {"title": "白皮书", "medium": "menu", "topics": ["AI", "安全"], "view_id": 7}
    with app.test_request_context():
        shown = [(str(label), str(value)) for label, value in key_properties(properties)]
        expected = [
            (str(PROPERTY_LABELS["title"]), "白皮书"),
            (str(PROPERTY_LABELS["medium"]), str(LINK_MEDIUM_LABELS["menu"])),
            (str(PROPERTY_LABELS["topics"]), "AI、安全"),
        ]
    assert shown == expected
