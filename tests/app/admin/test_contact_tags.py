"""Contacts and their tags: chips, the tag filter, bulk tagging, the contact page's tag forms."""

import re

from sqlalchemy import select

from crm.tags import TagBook, apply_tags, contact_tags
from models import AccountSource, AuditLog, Contact, Tag, TagGroup, TagSource
from tests.app.admin.helpers import (
    contact_ids,
    in_english,
)
from tests.app.admin.helpers import (
    contact_row as row_of,
)
from tests.app.admin.helpers import (
    post_with_token as post,
)
from tests.factories import make_account, make_contact
from tests.helpers import harpoon_of, load


def tag(app, contact_ids, group, name, workspace_id=None) -> int:
    """Put a tag on contacts as a rule would; returns the tag's id."""
    with harpoon_of(app).db.session() as session:
        workspace_id = workspace_id or session.get(Contact, contact_ids[0]).workspace_id
        book = TagBook(session, workspace_id)
        found = book.get(session, group, name)
        apply_tags(session, book, contact_ids, [found], source=TagSource.RULE)
        session.commit()
        return found.id


def tags_of(app, contact_id) -> list[tuple[str, str]]:
    with harpoon_of(app).db.session() as session:
        return [(t.group, t.name) for t in contact_tags(session, [contact_id]).get(contact_id, [])]


def tag_id(app, group, name) -> int | None:
    with harpoon_of(app).db.session() as session:
        return session.scalar(select(Tag.id).where(Tag.group == group, Tag.name == name))


def audits(app, action) -> list[dict]:
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(AuditLog.changes).where(AuditLog.action == action)))


def test_the_list_shows_tags_role_and_seniority_and_filters_by_tag(app, signed_in):
    li = make_contact(app, "Li", role="cio", seniority="director", minutes_ago=1)
    wang = make_contact(app, "Wang", minutes_ago=2)
    zhao = make_contact(app, "Zhao", minutes_ago=3)
    merged = make_contact(app, "Old Li", merged_into_id=li)
    tag(app, [li], TagGroup.ROLE, "cio")
    vip = tag(app, [li, wang, merged], TagGroup.MANUAL, "VIP")
    tag(app, [wang], TagGroup.INDUSTRY, "制造")

    client = in_english(signed_in("viewer"))
    page = client.get("/admin/contacts").text
    assert contact_ids(page) == [li, wang, zhao]  # never the merged contact
    assert "3 contacts" in page
    row = row_of(page, li)
    assert "<td>CIO</td>" in row and "<td>Director</td>" in row
    assert '<span class="chip tag-role" title="Role">CIO</span>' in row
    assert '<span class="chip tag-manual" title="Manual">VIP</span>' in row
    assert 'class="chip tag-industry"' in row_of(page, wang)
    assert f'<option value="{vip}">VIP</option>' in page  # the filter's choices

    filtered = client.get(f"/admin/contacts?tag={vip}").text
    assert contact_ids(filtered) == [li, wang] and "2 contacts" in filtered
    both = client.get(f"/admin/contacts?tag={vip}&q=wang").text
    assert contact_ids(both) == [wang]
    assert "No contact has this tag." in client.get("/admin/contacts?tag=999999").text
    # A viewer gets neither checkboxes nor the bulk form.
    assert 'name="contact_ids"' not in page and 'id="bulk-tag"' not in page


def test_a_merged_contact_leads_to_the_one_it_was_merged_into(app, signed_in):
    kept = make_contact(app, "Li")
    merged = make_contact(app, "Old Li", merged_into_id=kept)
    response = signed_in("viewer").get(f"/admin/contacts/{merged}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/contacts/{kept}"


def test_bulk_adding_and_removing_a_tag(app, signed_in):
    li, wang, zhao, sun = (make_contact(app, name) for name in ("Li", "Wang", "Zhao", "Sun"))
    vip = tag(app, [sun], TagGroup.MANUAL, "VIP")
    client = in_english(signed_in("marketer"))
    page = client.get("/admin/contacts").text
    assert page.count('name="contact_ids"') == 4 and "Select all on this page" in page

    response = post(
        client,
        "/admin/contacts/tags?q=&page=1",
        {"operation": "add", "tag": str(vip), "contact_ids": [str(li), str(wang), str(zhao)]},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/contacts?page=1"
    assert "Tagged 3 contacts with “VIP”." in client.get(response.headers["Location"]).text
    for contact in (li, wang, zhao, sun):
        assert tags_of(app, contact) == [("manual", "VIP")]
    assert audits(app, "contacts.tag_add") == [
        {"tag": "manual:VIP", "contacts": 3, "changed": 3, "ip": "127.0.0.1"}
    ]

    response = post(
        client,
        "/admin/contacts/tags",
        {"operation": "remove", "tag": str(vip), "contact_ids": [str(li), str(wang)]},
    )
    assert "Removed the tag from 2 contacts." in client.get(response.headers["Location"]).text
    assert tags_of(app, li) == tags_of(app, wang) == []
    assert tags_of(app, zhao) == [("manual", "VIP")]
    assert audits(app, "contacts.tag_remove")[0]["contacts"] == 2


def test_bulk_tagging_with_a_new_manual_tag_and_a_role_code(app, signed_in):
    li, wang = make_contact(app, "Li"), make_contact(app, "Wang")
    client = in_english(signed_in("sales"))
    ids = [str(li), str(wang)]
    post(
        client,
        "/admin/contacts/tags",
        {"operation": "add", "new_tag": " 展会 ", "contact_ids": ids},
    )
    assert tags_of(app, li) == tags_of(app, wang) == [("manual", "展会")]
    # A role nobody holds yet is offered by its code, and tagging sets the contact's role.
    # (Sales see their own contacts first: these two are nobody's.)
    assert '<option value="role:cfo">CFO</option>' in client.get("/admin/contacts?scope=all").text
    post(
        client, "/admin/contacts/tags", {"operation": "add", "tag": "role:cfo", "contact_ids": ids}
    )
    assert load(app, Contact, li).role == load(app, Contact, wang).role == "cfo"


def test_bulk_tagging_explains_bad_input(app, signed_in):
    li = make_contact(app, "Li")
    foreign = make_contact(app, "Stranger", workspace="other")
    vip = tag(app, [li], TagGroup.MANUAL, "VIP")
    client = in_english(signed_in("marketer"))
    cases = [
        ({"operation": "add", "tag": str(vip)}, "Select at least one contact."),
        ({"operation": "add", "tag": str(vip), "contact_ids": [str(foreign)]}, "Select at least"),
        ({"operation": "add", "contact_ids": [str(li)]}, "Pick a tag or type a new one."),
        (
            {"operation": "add", "tag": str(vip), "new_tag": "X", "contact_ids": [str(li)]},
            "Pick a tag or type a new one, not both.",
        ),
        (
            {"operation": "remove", "new_tag": "X", "contact_ids": [str(li)]},
            "Only an existing tag can be removed.",
        ),
        ({"operation": "add", "tag": "999999", "contact_ids": [str(li)]}, "Not a valid choice."),
        ({"operation": "add", "new_tag": "x" * 31, "contact_ids": [str(li)]}, "longer than 30"),
    ]
    for data, message in cases:
        response = post(client, "/admin/contacts/tags?q=Li", data)
        assert response.status_code == 200 and message in response.text, data
        assert 'name="q" value="Li"' in response.text  # the list as it was
    checked = post(client, "/admin/contacts/tags", {"operation": "add", "contact_ids": [str(li)]})
    assert f'value="{li}" form="bulk-tag" checked' in checked.text  # the selection is kept
    assert tags_of(app, foreign) == []
    assert audits(app, "contacts.tag_add") == []


def test_a_second_role_tag_replaces_the_first(app, signed_in):
    li = make_contact(app, "Li")
    client = in_english(signed_in("sales"))
    response = post(client, f"/admin/contacts/{li}/tags", {"tag": "role:cio"})
    assert response.status_code == 302
    assert load(app, Contact, li).role == "cio"
    # Once the tag exists it is offered by its id; the same tag again changes nothing.
    cio = tag_id(app, "role", "cio")
    assert f'<option value="{cio}">CIO</option>' in client.get(f"/admin/contacts/{li}").text
    post(client, f"/admin/contacts/{li}/tags", {"tag": str(cio)})
    assert tags_of(app, li) == [("role", "cio")]
    post(client, f"/admin/contacts/{li}/tags", {"tag": "role:cfo"})
    post(client, f"/admin/contacts/{li}/tags", {"tag": "seniority:c_level"})
    assert tags_of(app, li) == [("role", "cfo"), ("seniority", "c_level")]
    contact = load(app, Contact, li)
    assert (contact.role, contact.seniority) == ("cfo", "c_level")
    page = client.get(f"/admin/contacts/{li}").text
    assert "<th>Role</th><td>CFO</td>" in page and "<th>Seniority</th><td>C-level</td>" in page


def test_the_contact_page_adds_and_removes_tags_in_place_with_htmx(app, signed_in):
    li = make_contact(app, "Li")
    client = in_english(signed_in("marketer"))
    htmx = {"HX-Request": "true"}
    response = post(client, f"/admin/contacts/{li}/tags", {"new_tag": "VIP"}, headers=htmx)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="contact-profile"' in response.text and "VIP" in response.text
    vip = tag_id(app, "manual", "VIP")
    assert audits(app, "contact.tag_add") == [{"tag": "manual:VIP", "ip": "127.0.0.1"}]

    invalid = post(client, f"/admin/contacts/{li}/tags", {}, headers=htmx)
    assert invalid.status_code == 200 and "Pick a tag or type a new one." in invalid.text
    assert 'id="contact-profile"' in invalid.text and "<html" not in invalid.text

    removed = post(client, f"/admin/contacts/{li}/tags/{vip}/remove", {}, headers=htmx)
    assert removed.status_code == 200 and "No tags yet." in removed.text
    assert tags_of(app, li) == []
    assert audits(app, "contact.tag_remove") == [{"tag": "manual:VIP", "ip": "127.0.0.1"}]

    # Without JavaScript the same forms post and come back to the page.
    page = client.get(f"/admin/contacts/{li}").text
    assert f'action="/admin/contacts/{li}/tags"' in page and 'hx-target="#contact-profile"' in page
    plain = post(client, f"/admin/contacts/{li}/tags", {"new_tag": "VIP"})
    assert plain.status_code == 302 and plain.headers["Location"] == f"/admin/contacts/{li}"
    removal = post(client, f"/admin/contacts/{li}/tags/{vip}/remove", {})
    assert removal.status_code == 302 and tags_of(app, li) == []
    assert post(client, f"/admin/contacts/{li}/tags/999999/remove", {}).status_code == 404
    invalid = post(client, f"/admin/contacts/{li}/tags", {"new_tag": "x" * 31})
    assert (
        invalid.status_code == 200 and "<html" in invalid.text and "longer than 30" in invalid.text
    )


def test_the_contact_page_shows_who_the_person_is(app, signed_in):
    account = make_account(app, "Huaxin Tech")
    li = make_contact(
        app,
        "Li",
        title="信息中心主任",
        role="cio",
        seniority="director",
        company="华信科技",
        account_id=account,
        account_source=AccountSource.WECOM_REMARK,
    )
    tag(app, [li], TagGroup.INTEREST, "云安全")
    page = in_english(signed_in("viewer")).get(f"/admin/contacts/{li}").text
    for text in (
        "<th>Job title</th><td>信息中心主任</td>",
        "<th>Role</th><td>CIO</td>",
        "<th>Seniority</th><td>Director</td>",
        "<th>Company</th><td>华信科技</td>",
        f'<a href="/admin/accounts/{account}">Huaxin Tech</a>',
        "Source: WeCom remark by sales",
        "云安全",
    ):
        assert text in page, text
    # A viewer may look only.
    assert "remove-tag" not in page and f'action="/admin/contacts/{li}/tags"' not in page
    assert f'action="/admin/contacts/{li}/account"' not in page and "Detach" not in page


def test_tagging_permissions_and_workspaces(app, signed_in):
    li = make_contact(app, "Li")
    vip = tag(app, [li], TagGroup.MANUAL, "VIP")
    viewer = signed_in("viewer")
    assert post(viewer, f"/admin/contacts/{li}/tags", {"new_tag": "X"}).status_code == 403
    assert post(viewer, f"/admin/contacts/{li}/tags/{vip}/remove", {}).status_code == 403
    response = post(viewer, "/admin/contacts/tags", {"new_tag": "X", "contact_ids": [str(li)]})
    assert response.status_code == 403
    assert tags_of(app, li) == [("manual", "VIP")]

    sales = signed_in("sales")
    assert post(sales, f"/admin/contacts/{li}/tags", {"new_tag": "Hot"}).status_code == 302
    assert ("manual", "Hot") in tags_of(app, li)
    # Sales tag people; attaching them to accounts is the marketers'.
    assert post(sales, f"/admin/contacts/{li}/account", {"account_name": "X"}).status_code == 403

    other = signed_in("owner", "other")
    assert post(other, f"/admin/contacts/{li}/tags", {"new_tag": "X"}).status_code == 404
    assert post(other, f"/admin/contacts/{li}/tags/{vip}/remove", {}).status_code == 404
    merged = make_contact(app, "Old Li", merged_into_id=li)
    assert post(sales, f"/admin/contacts/{merged}/tags", {"new_tag": "X"}).status_code == 404
    assert re.search(r"VIP|Hot", other.get("/admin/contacts").text) is None
