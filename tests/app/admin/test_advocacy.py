"""The advocacy leaderboard: staff and customers ranked by the leads and views their shares
brought, over a window; one list or either kind alone."""

import re

from tests.app.admin.helpers import in_english
from tests.factories import (
    make_account,
    make_contact,
    make_content,
    make_form,
    make_link,
    make_oa,
    make_staff,
    make_submission,
    view,
)


def ranking(page: str) -> list[tuple[str, list[str]]]:
    """(data-sharer, [leads, views, readers, accounts]) per row, in order."""
    rows = re.findall(r'<tr data-sharer="([^"]+)">(.*?)</tr>', page, re.S)
    return [
        (
            sharer,
            [
                re.sub(r"<[^>]+>", "", cell).strip()
                for cell in re.findall(r'<td class="num">(.*?)</td>', body, re.S)
            ],
        )
        for sharer, body in rows
    ]


def test_sharers_rank_by_leads_then_views(app, signed_in):
    channel_id = make_oa(app)
    content_id = make_content(app)
    link_id, _code = make_link(app, content_id=content_id, channel_id=channel_id)
    form_id = make_form(app)
    acme, globex = make_account(app, "艾克米制造"), make_account(app, "环球电子")
    customer = make_contact(app, "王总", account_id=acme, title="CIO")
    readers = [make_contact(app, f"读者{n}", account_id=[acme, globex][n % 2]) for n in range(4)]
    merged = make_contact(app, "读者0（旧）", merged_into_id=readers[0])
    zhang, li = make_staff(app, "张销售", "zhang"), make_staff(app, "李销售", "li")

    # 张: 3 views by 2 readers (one a new lead), one anonymous, and a form submission.
    view(app, link_id, contact_id=readers[0], sharer_staff_id=zhang, new_lead=True)
    view(app, link_id, contact_id=merged, sharer_staff_id=zhang, days_ago=1)
    view(app, link_id, contact_id=readers[1], sharer_staff_id=zhang)
    view(app, link_id, sharer_staff_id=zhang)
    make_submission(app, form_id, "z1", contact_id=readers[2], sharer_staff_id=zhang)
    # The customer: 5 views by one reader, no lead.
    for n in range(5):
        view(app, link_id, contact_id=readers[3], sharer_contact_id=customer, days_ago=n)
    # 李: only long ago.
    view(app, link_id, contact_id=readers[1], sharer_staff_id=li, new_lead=True, days_ago=60)

    client = in_english(signed_in("sales"))
    page = client.get("/admin/advocacy").text
    assert ranking(page) == [
        (f"staff-{zhang}", ["2", "4", "2", "2"]),
        (f"contact-{customer}", ["0", "5", "1", "1"]),
    ]
    assert "张销售" in page and "王总" in page and "CIO · 艾克米制造" in page

    staff_only = client.get("/admin/advocacy?kind=staff").text
    assert [sharer for sharer, _cells in ranking(staff_only)] == [f"staff-{zhang}"]
    customers = client.get("/admin/advocacy?kind=contact").text
    assert [sharer for sharer, _cells in ranking(customers)] == [f"contact-{customer}"]

    longer = client.get("/admin/advocacy?days=90").text
    assert ranking(longer)[:2] == [
        (f"staff-{zhang}", ["2", "4", "2", "2"]),
        (f"staff-{li}", ["1", "1", "1", "1"]),
    ]


def test_an_empty_leaderboard_says_how_to_fill_it(app, signed_in):
    page = in_english(signed_in("viewer")).get("/admin/advocacy?days=7").text
    assert "No one has brought a reader through a share in the last 7 days." in page
    assert "<strong>7 days</strong>" in page
