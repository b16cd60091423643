"""Accounts page: list filters, counts and scoring orders, the buying-committee grid, editing,
manual assignment; the account's score explained, its stage history and moves by hand."""

import json
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from crm.accounts import assign_account
from crm.channels import workspace_named
from crm.companies import normalize_company
from crm.tags import TagBook, apply_tags, contact_tags
from models import (
    Account,
    AccountSnapshot,
    AccountSource,
    AuditLog,
    Contact,
    Interaction,
    StageChange,
    TagGroup,
    TagSource,
    User,
    utcnow,
)
from scoring.engine import Scorer
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import make_account, make_contact, make_user
from tests.helpers import harpoon_of, load


def shanghai_time(moment) -> str:
    """As the pages show a time: in the workspace's zone (Asia/Shanghai, UTC+8 all year)."""
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")


def post(client, path, data, **kwargs):
    """POST a form with the session's CSRF token (read from any admin page)."""
    token = csrf_token(client.get("/admin/accounts").text)
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def account_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/admin/accounts/(\d+)"', page)]


def row_of(page: str, account_id: int) -> str:
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        if f'href="/admin/accounts/{account_id}"' in row:
            return row
    raise AssertionError(f"account {account_id} is not listed")


def committee(page: str) -> dict[str, str]:
    """The grid's roles -> "known" / "missing"."""
    return {
        role: state
        for state, role in re.findall(
            r'class="committee-role (known|missing)" data-role="(\w+)"', page
        )
    }


@contextmanager
def counted_queries(app):
    statements = []
    engine = harpoon_of(app).db.engine

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_list_counts_contacts_roles_and_last_activity(app, signed_in):
    client = in_english(signed_in("viewer"))
    huaxin = make_account(app, "Huaxin Tech", is_target=True, industry="制造", acv=300000)
    beta = make_account(app, "Beta Bank", industry="金融")
    make_contact(app, "Li", account_id=huaxin, role="cio", minutes_ago=30)
    make_contact(app, "Wang", account_id=huaxin, role="cio", minutes_ago=90)
    zhao = make_contact(app, "Zhao", account_id=huaxin, role="cfo", minutes_ago=5)
    kept = make_contact(app, "Sun", account_id=huaxin, role="marketing", minutes_ago=60)
    # A merged contact counts no more: its person is the one it was merged into.
    make_contact(app, "Sun (old)", account_id=huaxin, role="ciso", merged_into_id=kept)
    make_contact(app, "Qian", account_id=beta, role="marketing", minutes_ago=2000)

    page = client.get("/admin/accounts")
    assert page.status_code == 200
    # Targets first, then by name.
    assert account_ids(page.text) == [huaxin, beta]
    row = row_of(page.text, huaxin)
    assert "Target" in row and "制造" in row and "300,000" in row
    assert '<td class="num" data-contacts>4</td>' in row
    assert "2/9 roles" in row  # cio twice and cfo; marketing is not on the committee
    assert shanghai_time(load(app, Contact, zhao).last_seen_at) in row  # the latest activity
    assert "0/9 roles" in row_of(page.text, beta)
    assert "2 accounts" in page.text


def test_list_filters_by_name_target_industry_region_and_owner(app, signed_in):
    client = in_english(signed_in("marketer"))
    sales = make_user(app, "sales")
    huaxin = make_account(
        app, "Huaxin Tech", is_target=True, industry="制造", region="华东", owner_id=sales
    )
    beta = make_account(app, "Beta Bank", industry="金融", region="华北")
    gamma = make_account(app, "Gamma 50%_off", industry="金融", region="华东")

    def listed(**args):
        return account_ids(client.get("/admin/accounts", query_string=args).text)

    assert listed() == [huaxin, beta, gamma]
    assert listed(q="huaxin") == [huaxin]
    assert listed(q="BANK") == [beta]
    assert listed(q="%_") == [gamma]  # LIKE wildcards are literal
    assert listed(target="1") == [huaxin]
    assert listed(industry="金融") == [beta, gamma]
    assert listed(region="华东") == [huaxin, gamma]
    assert listed(industry="金融", region="华东") == [gamma]
    assert listed(owner=str(sales)) == [huaxin]
    assert listed(owner="none") == [beta, gamma]
    assert listed(owner="nonsense") == [huaxin, beta, gamma]
    page = client.get("/admin/accounts?industry=医疗").text
    assert account_ids(page) == [] and "No account matches these filters." in page

    # The selects offer the workspace's own values and users.
    page = client.get("/admin/accounts").text
    assert '<option value="制造"' in page and '<option value="华北"' in page
    assert f'<option value="{sales}"' in page and "Sales User" in page


def test_list_queries_do_not_grow_with_the_page(app, signed_in):
    client = signed_in("marketer")
    for n in range(2):
        account = make_account(app, f"Account {n}")
        make_contact(app, f"Lead {n}", account_id=account, role="cio")
    with counted_queries(app) as few:
        client.get("/admin/accounts")
    for n in range(2, 8):
        account = make_account(app, f"Account {n}")
        make_contact(app, f"Lead {n}", account_id=account, role="cfo")
    with counted_queries(app) as many:
        client.get("/admin/accounts")
    assert len(many) == len(few)


def test_list_pages_and_answers_htmx_with_the_table(app, signed_in):
    for n in range(55):
        make_account(app, f"Account {n:02d}", industry="制造")
    client = in_english(signed_in("marketer"))
    first = client.get("/admin/accounts?industry=制造").text
    assert len(account_ids(first)) == 50 and "Page 1 of 2" in first
    assert 'href="/admin/accounts?page=2&amp;industry=%E5%88%B6%E9%80%A0"' in first
    second = client.get("/admin/accounts?industry=制造&page=2").text
    assert len(account_ids(second)) == 5

    partial = client.get("/admin/accounts?q=Account 01", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and account_ids(partial.text) == account_ids(
        client.get("/admin/accounts?q=Account 01").text
    )
    assert "HX-Request" in partial.headers["Vary"]
    page = client.get("/admin/accounts").text
    assert 'hx-trigger="input changed delay:300ms"' in page and 'hx-push-url="true"' in page


def test_the_import_link_needs_the_import_permission(app, signed_in):
    assert "admin.imports" in app.view_functions
    link = 'href="/admin/accounts/import"'
    assert link in signed_in("marketer").get("/admin/accounts").text
    assert link not in signed_in("sales").get("/admin/accounts").text


def test_detail_shows_the_committee_coverage_contacts_and_interactions(app, signed_in):
    account = make_account(app, "Huaxin Tech", industry="制造", domain="huaxin.com")
    li = make_contact(
        app, "Li", account_id=account, role="cio", seniority="director", title="信息中心主任"
    )
    make_contact(app, "Zhao", account_id=account, role="cfo", seniority="c_level", title="CFO")
    make_contact(app, "Zhou", account_id=account, role="engineer", seniority="staff")
    make_contact(app, "Ma", account_id=account, role="marketing", seniority="vp")
    make_contact(app, "Old Li", account_id=account, role="ciso", merged_into_id=li)
    with harpoon_of(app).db.session() as session:
        book = TagBook(session, load(app, Account, account).workspace_id)
        apply_tags(
            session,
            book,
            [li],
            [book.get(session, TagGroup.INTEREST, "云安全")],
            source=TagSource.MANUAL,
        )
        session.add(
            Interaction(
                workspace_id=book.workspace_id,
                contact_id=li,
                account_id=account,
                kind="wechat.menu_click",
                properties={"key": "MENU_PRICING"},
                occurred_at=utcnow(),
            )
        )
        session.commit()

    page = in_english(signed_in("sales")).get(f"/admin/accounts/{account}")
    assert page.status_code == 200
    text = page.text
    grid = committee(text)
    assert list(grid) == [
        "ceo",
        "cio",
        "cto",
        "cfo",
        "ciso",
        "it_manager",
        "procurement",
        "finance",
        "engineer",
    ]
    assert {role for role, state in grid.items() if state == "known"} == {"cio", "cfo", "engineer"}
    assert grid["ciso"] == "missing"  # the merged contact does not count
    cio = text[text.index('data-role="cio"') :][:600]
    assert "Li" in cio and "信息中心主任" in cio and "Director" in cio
    assert "Missing" in text[text.index('data-role="ceo"') :][:300]
    assert "3 of 9 roles known" in text
    assert "Highest seniority reached: C-level" in text  # Zhao, the CFO
    contacts = text[text.index('id="account-contacts"') :]
    assert "CIO" in contacts and "Marketing" in contacts and "云安全" in contacts
    assert "Old Li" not in contacts
    assert "Tapped a menu" in text and "MENU_PRICING" in text
    assert "huaxin.com" in text
    # Sales may look, not edit.
    assert f'action="/admin/accounts/{account}/edit"' not in text
    assert f'action="/admin/accounts/{account}/contacts"' not in text


def test_edit_rejects_bad_values_with_field_messages(app, signed_in):
    account = make_account(app, "Huaxin Tech", industry="制造")
    client = in_english(signed_in("marketer"))
    response = post(
        client,
        f"/admin/accounts/{account}/edit",
        {
            "industry": "x" * 51,
            "employees": "many",
            "annual_revenue": "nan",
            "acv": "-5",
            "domain": "not a domain",
            "owner_id": "999999",
        },
    )
    assert response.status_code == 200
    text = response.text
    assert text.count('class="field has-error"') == 6
    for message in (
        "Field cannot be longer than 50 characters.",
        "Not a valid integer value.",
        "Enter a number.",
        "Number must be between 0 and 1000000000000.",
        "A domain such as huaxin.com.",
        "Not a valid choice.",
    ):
        assert message in text, message
    assert load(app, Account, account).industry == "制造"

    other_owner = make_user(app, "owner", "other")
    response = post(client, f"/admin/accounts/{account}/edit", {"owner_id": str(other_owner)})
    assert "Not a valid choice." in response.text  # a user of another workspace


def test_edit_saves_audits_and_tags_contacts_with_the_new_industry(app, signed_in):
    client = in_english(signed_in("marketer"))
    sales = make_user(app, "sales")
    account = make_account(app, "Huaxin Tech", industry="制造")
    li = make_contact(app, "Li", account_id=account)
    wang = make_contact(app, "Wang", account_id=account)
    merged = make_contact(app, "Old Wang", account_id=account, merged_into_id=wang)
    with harpoon_of(app).db.session() as session:
        book = TagBook(session, load(app, Account, account).workspace_id)
        old = book.get(session, TagGroup.INDUSTRY, "制造")
        apply_tags(session, book, [li, wang], [old], source=TagSource.ACCOUNT)
        session.commit()

    response = post(
        client,
        f"/admin/accounts/{account}/edit",
        {
            "industry": " 金融 ",
            "region": "华东",
            "employees": "1200",
            "annual_revenue": "5e8",
            "acv": "300000",
            "domain": " WWW.Huaxin.COM ",
            "owner_id": str(sales),
            "is_target": "y",
        },
    )
    assert response.status_code == 302
    saved = load(app, Account, account)
    assert (saved.industry, saved.region, saved.employees) == ("金融", "华东", 1200)
    assert (saved.annual_revenue, saved.acv, saved.domain) == (5e8, 300000, "huaxin.com")
    assert saved.owner_id == sales and saved.is_target is True
    with harpoon_of(app).db.session() as session:
        tags = contact_tags(session, [li, wang, merged])
        log = session.scalars(select(AuditLog).where(AuditLog.action == "account.update")).one()
    # The industry group is exclusive: the new tag replaced the old one.
    for contact in (li, wang):
        assert [(t.group, t.name) for t in tags[contact]] == [("industry", "金融")]
    assert merged not in tags
    assert log.changes["industry"] == ["制造", "金融"] and log.changes["employees"] == [None, 1200]
    page = client.get(response.headers["Location"]).text
    assert "Saved Huaxin Tech." in page and "2 contacts took the industry tag “金融”." in page

    # Clearing a value stores nothing, not an empty string.
    post(client, f"/admin/accounts/{account}/edit", {"industry": "金融", "region": "  "})
    saved = load(app, Account, account)
    assert saved.region is None and saved.is_target is False and saved.owner_id is None


def test_a_viewer_may_not_edit_or_attach(app, signed_in):
    account = make_account(app, "Huaxin Tech")
    contact = make_contact(app, "Li")
    viewer = signed_in("viewer")
    assert viewer.get(f"/admin/accounts/{account}").status_code == 200
    assert post(viewer, f"/admin/accounts/{account}/edit", {"region": "x"}).status_code == 403
    response = post(viewer, f"/admin/accounts/{account}/contacts", {"contact_id": str(contact)})
    assert response.status_code == 403
    assert post(
        viewer, f"/admin/contacts/{contact}/account", {"account_name": "X"}
    ).status_code == (403)
    assert load(app, Contact, contact).account_id is None


def test_manual_assignment_wins_over_a_later_automatic_one(app, signed_in):
    client = in_english(signed_in("marketer"))
    account = make_account(app, "Huaxin Tech", industry="制造")
    li = make_contact(app, "Li")
    with harpoon_of(app).db.session() as session:
        workspace = load(app, Account, account).workspace_id
        session.add(
            Interaction(
                workspace_id=workspace, contact_id=li, kind="wechat.follow", occurred_at=utcnow()
            )
        )
        session.commit()

    response = post(client, f"/admin/accounts/{account}/contacts", {"contact_id": str(li)})
    assert response.status_code == 302
    assert "Li now belongs to Huaxin Tech." in client.get(response.headers["Location"]).text
    contact = load(app, Contact, li)
    assert (contact.account_id, contact.account_source) == (account, AccountSource.MANUAL)

    with harpoon_of(app).db.session() as session:
        contact = session.get(Contact, li)
        book = TagBook(session, workspace)
        moved = assign_account(
            session, book, contact, source=AccountSource.WECOM, company="Other Corp"
        )
        session.commit()
        assert moved is False
        assert session.get(Contact, li).account_id == account
        assert session.scalar(
            select(Interaction.account_id).where(Interaction.contact_id == li)
        ) == (account)
        assert [t.name for t in contact_tags(session, [li])[li]] == ["制造"]
        assert session.scalar(
            select(AuditLog.changes).where(AuditLog.action == "contact.assign_account")
        )["account_id"] == [None, account]


def test_assigning_a_contact_to_an_account_by_name(app, signed_in):
    client = in_english(signed_in("marketer"))
    existing = make_account(app, "Huaxin Tech")
    li = make_contact(app, "Li")
    page = client.get(f"/admin/contacts/{li}").text
    assert '<option value="Huaxin Tech">' in page  # the existing accounts are suggested

    response = post(client, f"/admin/contacts/{li}/account", {"account_name": "新华信息有限公司"})
    assert response.status_code == 302
    contact = load(app, Contact, li)
    created = load(app, Account, contact.account_id)
    assert created.name == "新华信息有限公司" and contact.account_source == AccountSource.MANUAL
    page = client.get(f"/admin/contacts/{li}").text
    assert "新华信息有限公司" in page and "Manual assignment" in page

    post(client, f"/admin/contacts/{li}/account", {"account_name": "huaxin tech"})
    assert load(app, Contact, li).account_id == existing  # the same company, not a new account

    for name, message in (("", "This field is required."), ("...", "Enter a company name.")):
        response = post(client, f"/admin/contacts/{li}/account", {"account_name": name})
        assert response.status_code == 200 and message in response.text
    assert load(app, Contact, li).account_id == existing


def test_attaching_by_id_explains_what_is_wrong(app, signed_in):
    client = in_english(signed_in("marketer"))
    account = make_account(app, "Huaxin Tech")
    kept = make_contact(app, "Li")
    merged = make_contact(app, "Old Li", merged_into_id=kept)
    foreign = make_contact(app, "Stranger", workspace="other")
    cases = {
        "": "This field is required.",
        "abc": "Not a valid integer value.",
        "0": "Number must be between 1 and",
        "999999999": "No contact #999999999 in this workspace.",
        str(foreign): f"No contact #{foreign} in this workspace.",
        str(merged): f"Contact #{merged} was merged into #{kept}: attach that one.",
    }
    for value, message in cases.items():
        response = post(client, f"/admin/accounts/{account}/contacts", {"contact_id": value})
        assert response.status_code == 200 and message in response.text, value
    assert load(app, Contact, foreign).account_id is None
    assert load(app, Contact, merged).account_id is None


def test_detaching_keeps_automation_from_attaching_again(app, signed_in):
    client = in_english(signed_in("marketer"))
    account = make_account(app, "Huaxin Tech", domain="huaxin.com")
    li = make_contact(app, "Li", account_id=account, account_source=AccountSource.EMAIL)
    wang = make_contact(app, "Wang", account_id=account, account_source=AccountSource.WECOM)
    with harpoon_of(app).db.session() as session:
        workspace = load(app, Account, account).workspace_id
        session.add(
            Interaction(
                workspace_id=workspace,
                contact_id=li,
                account_id=account,
                kind="wechat.follow",
                occurred_at=utcnow(),
            )
        )
        session.commit()

    response = post(client, f"/admin/contacts/{li}/account/detach", {})
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/contacts/{li}"
    contact = load(app, Contact, li)
    assert (contact.account_id, contact.account_source) == (None, AccountSource.MANUAL)
    with harpoon_of(app).db.session() as session:
        assert (
            session.scalar(select(Interaction.account_id).where(Interaction.contact_id == li))
            is None
        )
        contact = session.get(Contact, li)
        book = TagBook(session, workspace)
        assert not assign_account(
            session, book, contact, source=AccountSource.EMAIL, email="li@huaxin.com"
        )
        assert not assign_account(
            session, book, contact, source=AccountSource.WECOM_REMARK, company="Huaxin Tech"
        )
        session.commit()
    assert load(app, Contact, li).account_id is None

    # From the account page, back to the account page (never to another site).
    back = f"/admin/accounts/{account}"
    response = post(client, f"/admin/contacts/{wang}/account/detach", {"next": back})
    assert response.headers["Location"] == back
    assert load(app, Contact, wang).account_id is None
    detached = make_contact(app, "Zhao", account_id=account)
    response = post(
        client, f"/admin/contacts/{detached}/account/detach", {"next": "https://evil.example/"}
    )
    assert response.headers["Location"] == f"/admin/contacts/{detached}"
    assert "Wang" not in client.get(back).text.split('id="account-contacts"')[1]


def test_another_workspace_never_sees_or_changes_acme_accounts(app, signed_in):
    account = make_account(app, "Huaxin Tech")
    contact = make_contact(app, "Li", account_id=account)
    own = make_account(app, "Own Corp", workspace="other")
    other = signed_in("owner", "other")
    assert other.get(f"/admin/accounts/{account}").status_code == 404
    assert post(other, f"/admin/accounts/{account}/edit", {"region": "x"}).status_code == 404
    own_contact = make_contact(app, "Own", workspace="other")
    response = post(other, f"/admin/accounts/{account}/contacts", {"contact_id": str(own_contact)})
    assert response.status_code == 404
    assert post(other, f"/admin/contacts/{contact}/account/detach", {}).status_code == 404
    assert account_ids(other.get("/admin/accounts").text) == [own]
    assert "Huaxin" not in other.get("/admin/accounts?q=huaxin").text
    assert load(app, Contact, contact).account_id == account


# --- scoring: the list's columns, orders and filters; the account page's explanation ---


def ranked_accounts(app) -> dict[str, int]:
    """Four accounts whose scoring columns disagree, so each order tells them apart."""
    return {
        "delta": make_account(
            app,
            "Delta",
            score=300,
            scaled_score=63.2,
            tier=1,
            stage="mqa",
            fit=90,
            mqa=True,
            mqa_since=utcnow(),
            surging=True,
            surge_ratio=3.2,
        ),
        "bravo": make_account(
            app, "Bravo", score=120, tier=2, stage="engaged", fit=70, surge_ratio=1.5
        ),
        "charlie": make_account(
            app, "Charlie", score=50, stage="customer", fit=20, surging=True, surge_ratio=2.1
        ),
        "alpha": make_account(app, "Alpha", score=0, tier=3, fit=0),
    }


@pytest.mark.parametrize(
    ("sort", "descending"),
    [
        ("score", ["delta", "bravo", "charlie", "alpha"]),
        ("tier", ["alpha", "bravo", "delta", "charlie"]),  # no tier last, either way
        ("stage", ["charlie", "delta", "bravo", "alpha"]),  # the model's order, not A-Z
        ("surge", ["delta", "charlie", "bravo", "alpha"]),  # surging first, then the ratio
        ("fit", ["delta", "bravo", "charlie", "alpha"]),
        ("name", ["delta", "charlie", "bravo", "alpha"]),
    ],
)
def test_the_list_sorts_by_each_scoring_column_both_ways(app, signed_in, sort, descending):
    client = signed_in("viewer")
    ids = ranked_accounts(app)

    def listed(direction):
        page = client.get("/admin/accounts", query_string={"sort": sort, "dir": direction})
        return account_ids(page.text)

    assert listed("desc") == [ids[name] for name in descending]
    ascending = [*reversed(descending)]
    if sort in ("tier", "stage"):  # the account without a value stays last
        ascending = [*reversed(descending[:-1]), descending[-1]]
    assert listed("asc") == [ids[name] for name in ascending]


def test_the_list_order_is_validated_and_headers_keep_the_filters(app, signed_in):
    client = in_english(signed_in("viewer"))
    ids = ranked_accounts(app)
    by_score = [ids[name] for name in ("delta", "bravo", "charlie", "alpha")]
    assert account_ids(client.get("/admin/accounts").text) == by_score  # the default
    nonsense = client.get("/admin/accounts?sort=id;drop&dir=sideways")
    assert nonsense.status_code == 200 and account_ids(nonsense.text) == by_score
    # A first click sorts best first: tier 1 up, names A-Z.
    tiers = account_ids(client.get("/admin/accounts?sort=tier").text)
    assert tiers == [ids["delta"], ids["bravo"], ids["alpha"], ids["charlie"]]

    page = client.get("/admin/accounts?surging=1&sort=score&dir=desc").text
    headers = dict(re.findall(r'data-sort="(\w+)"[^>]*><a href="([^"]+)"', page))
    assert headers["score"] == "/admin/accounts?surging=1&amp;sort=score&amp;dir=asc"
    assert headers["name"] == "/admin/accounts?surging=1&amp;sort=name&amp;dir=asc"
    assert headers["fit"] == "/admin/accounts?surging=1&amp;sort=fit&amp;dir=desc"
    assert 'data-sort="score" aria-sort="descending"' in page
    # The filter form carries a chosen order on; the default needs no parameters.
    page = client.get("/admin/accounts?sort=fit&dir=asc").text
    assert '<input type="hidden" name="sort" value="fit">' in page
    assert '<input type="hidden" name="dir" value="asc">' in page
    assert 'type="hidden" name="sort"' not in client.get("/admin/accounts").text


def test_the_list_shows_and_filters_scoring(app, signed_in):
    client = in_english(signed_in("viewer"))
    ids = ranked_accounts(app)

    def listed(**args):
        return account_ids(client.get("/admin/accounts", query_string=args).text)

    assert listed(tier="1") == [ids["delta"]]
    assert listed(tier="none") == [ids["charlie"]]
    assert listed(stage="engaged") == [ids["bravo"]]
    assert listed(mqa="1") == [ids["delta"]]
    assert listed(surging="1") == [ids["delta"], ids["charlie"]]
    assert listed(surging="1", sort="name") == [ids["charlie"], ids["delta"]]
    assert len(listed(tier="7", stage="nonsense", mqa="yes")) == 4  # ignored
    page = client.get("/admin/accounts").text
    delta = row_of(page, ids["delta"])
    # The 0-100 score people read, the raw points beside it as the explanation.
    assert "<span data-score>63</span>" in delta and '<small class="muted">300</small>' in delta
    assert "Tier 1" in delta and ">MQA</span>" in delta and "↑ 3.2×" in delta
    assert 'data-stage="mqa">MQA<' in delta
    assert "1.5×" in row_of(page, ids["bravo"]) and "↑" not in row_of(page, ids["bravo"])
    assert 'data-stage="customer">Customer<' in row_of(page, ids["charlie"])
    assert '<option value="engaged"' in page and '<option value="none"' in page


def test_the_pager_keeps_the_order(app, signed_in):
    for n in range(55):
        make_account(app, f"Account {n:02d}", fit=n)
    client = in_english(signed_in("viewer"))
    first = client.get("/admin/accounts?sort=fit&dir=asc").text
    assert 'href="/admin/accounts?page=2&amp;sort=fit&amp;dir=asc"' in first
    second = client.get("/admin/accounts?sort=fit&dir=asc&page=2").text
    assert len(account_ids(second)) == 5
    assert account_ids(second)[-1] == account_ids(client.get("/admin/accounts?sort=fit").text)[0]


def scored_account(app, name="Huaxin Tech"):
    """A target account scored by the engine: its CIO (C-level) submitted a form and met
    sales, its engineer read the pricing page; returns (account id, {name: contact id})."""
    now = utcnow()
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme").id
        account = Account(
            workspace_id=ws, name=name, normalized_name=normalize_company(name), is_target=True
        )
        session.add(account)
        session.flush()
        people = {
            "Li": Contact(
                workspace_id=ws, account_id=account.id, name="Li", role="cio", seniority="c_level"
            ),
            "Zhou": Contact(
                workspace_id=ws,
                account_id=account.id,
                name="Zhou",
                role="engineer",
                seniority="staff",
            ),
        }
        session.add_all(people.values())
        session.flush()
        touches = [
            ("Li", "form.submit", {}, 2),
            ("Li", "sales.meeting", {}, 1),
            ("Zhou", "content.view", {"topics": ["pricing"]}, 0.1),
        ]
        rows = []
        for person, kind, properties, days_ago in touches:
            interaction = Interaction(
                workspace_id=ws,
                contact_id=people[person].id,
                account_id=account.id,
                kind=kind,
                properties=properties,
                occurred_at=now - timedelta(days=days_ago),
            )
            session.add(interaction)
            rows.append(interaction)
        session.flush()
        Scorer.load(session, ws).score_interaction_ids([row.id for row in rows])
        session.commit()
        return account.id, {person: contact.id for person, contact in people.items()}


def test_the_account_page_explains_its_score(app, signed_in):
    account_id, people = scored_account(app)
    page = in_english(signed_in("viewer")).get(f"/admin/accounts/{account_id}")
    assert page.status_code == 200
    text = page.text
    account = load(app, Account, account_id)
    assert account.stage == "engaged" and account.score > 100
    scoring = text[text.index('id="account-scoring"') :][:3000]
    assert 0 < account.scaled_score < 100
    assert f"data-score>{account.scaled_score:.0f}</strong>" in scoring
    assert f"/ 100 · {account.score:,.0f} points" in scoring
    assert "Engaged" in scoring and "Tier" in scoring

    breakdown = text[text.index('id="score-contributions"') : text.index('id="ledger"')]
    rows = re.findall(r'data-contribution="(\d+)"', breakdown)
    assert rows == [str(people["Li"]), str(people["Zhou"])]  # the largest first
    li = breakdown[breakdown.index(f'data-contribution="{people["Li"]}"') :][:900]
    assert "CIO" in li and "C-level" in li and "× 4" in li  # 2.0 for the role, 2.0 for C-level
    zhou = breakdown[breakdown.index(f'data-contribution="{people["Zhou"]}"') :][:900]
    assert "× 0.8" in zhou and "10" in zhou  # the pricing page's 10 points
    assert "Breadth: 2 committee roles engaged × 10" in breakdown
    assert "CIO, Engineer" in breakdown
    # The parts add up to the account's score.
    total = re.search(r"<strong>= ([\d,.]+)</strong>", breakdown).group(1)
    assert float(total.replace(",", "")) == pytest.approx(account.score, abs=0.1)

    ledger = text[text.index('id="ledger"') : text.index('id="buying-committee"')]
    assert re.findall(r'data-rule="(\w+)"', ledger) == ["content_pricing", "meeting", "form_submit"]
    assert "Met sales" in ledger and "Submitted a form" in ledger and "Viewed content" in ledger
    assert "+30" in ledger and "Zhou" in ledger

    history = text[text.index('id="stage-card"') : text.index('id="score-contributions"')]
    assert "Engaged" in history and "account score" in history and ">rule<" in history
    assert 'action="/admin/accounts/' not in history  # a viewer may not move stages
    trend = json.loads(re.search(r'id="trend-data"[^>]*>(.*?)</script>', text, re.S).group(1))
    day, score, _tier, stage, mqa, _surging = trend["points"][-1]
    # The trend plots the 0-100 score, as the page reads it.
    assert (score, stage, mqa) == (round(account.scaled_score, 1), "Engaged", False)
    with harpoon_of(app).db.session() as session:
        snapshot = select(AccountSnapshot.day).where(AccountSnapshot.account_id == account_id)
        assert day == session.scalar(snapshot).isoformat()
    assert "echarts.min.js" in text


def test_an_unscored_account_page_says_so(app, signed_in):
    account = make_account(app, "Quiet Co")
    text = in_english(signed_in("viewer")).get(f"/admin/accounts/{account}").text
    assert "Not scored yet" in text and "No points yet." in text
    assert "No contact of this account has scored points yet." in text
    assert "No stage change yet." in text and 'id="trend-data"' not in text
    assert "echarts.min.js" not in text


def test_sales_move_an_account_back_with_a_reason(app, signed_in):
    account_id, _people = scored_account(app)
    client = in_english(signed_in("sales"))
    page = client.get(f"/admin/accounts/{account_id}").text
    form = page[page.index('class="stage-move"') :]
    assert f'action="/admin/accounts/{account_id}/stage"' in page
    for key, reason in (
        ("meeting", "Meeting held"),
        ("opportunity", "Opportunity opened"),
        ("customer", "Won: now a customer"),
    ):
        assert f'data-stage="{key}" data-reason="{reason}"' in form

    response = post(
        client, f"/admin/accounts/{account_id}/stage", {"stage": "aware", "reason": " 预算冻结 "}
    )
    assert response.status_code == 302
    with harpoon_of(app).db.session() as session:
        change = session.scalars(
            select(StageChange)
            .where(StageChange.subject == "account", StageChange.subject_id == account_id)
            .order_by(StageChange.id.desc())
        ).first()
        sales = session.scalar(select(User.id).where(User.role == "sales"))
        log = session.scalars(select(AuditLog).where(AuditLog.action == "account.stage")).one()
        snapshot = session.scalar(
            select(AccountSnapshot.stage).where(AccountSnapshot.account_id == account_id)
        )
    assert (change.from_stage, change.to_stage, change.reason) == ("engaged", "aware", "预算冻结")
    assert change.user_id == sales
    assert log.changes["stage"] == ["engaged", "aware"] and log.changes["reason"] == "预算冻结"
    # Re-judged at once: no rule crossed, so the move back sticks; today's snapshot follows.
    assert load(app, Account, account_id).stage == "aware" and snapshot == "aware"
    page = client.get(response.headers["Location"]).text
    assert "Moved Huaxin Tech to Aware." in page
    history = page[page.index('class="stage-history"') :]
    assert "预算冻结" in history and "Sales User" in history
    assert history.index("预算冻结") < history.index("account score")  # newest first

    again = post(client, f"/admin/accounts/{account_id}/stage", {"stage": "aware", "reason": "x"})
    assert "Huaxin Tech is at Aware already." in client.get(again.headers["Location"]).text


def test_a_bad_stage_move_shows_field_errors_and_saves_nothing(app, signed_in):
    account_id, _people = scored_account(app)
    client = in_english(signed_in("marketer"))
    for data, message in (
        ({"stage": "won", "reason": "签约"}, "Not a valid choice."),
        ({"stage": "customer", "reason": "   "}, "This field is required."),
        ({"stage": "customer", "reason": "x" * 301}, "Field cannot be longer than 300"),
    ):
        response = post(client, f"/admin/accounts/{account_id}/stage", data)
        assert response.status_code == 200 and message in response.text, data
        assert response.text.count('class="field has-error"') == 1
    assert load(app, Account, account_id).stage == "engaged"
    with harpoon_of(app).db.session() as session:
        moves = select(StageChange.to_stage, StageChange.user_id).where(
            StageChange.subject == "account"
        )
        # Only the rules' steps, none by a person.
        assert session.execute(moves.order_by(StageChange.id)).all() == [
            ("target", None),
            ("aware", None),
            ("engaged", None),
        ]


def test_a_viewer_may_not_move_stages(app, signed_in):
    account_id, people = scored_account(app)
    viewer = signed_in("viewer")
    data = {"stage": "customer", "reason": "won"}
    assert post(viewer, f"/admin/accounts/{account_id}/stage", data).status_code == 403
    assert post(viewer, f"/admin/contacts/{people['Li']}/stage", data).status_code == 403
    assert load(app, Account, account_id).stage == "engaged"
    other = signed_in("owner", "other")
    assert post(other, f"/admin/accounts/{account_id}/stage", data).status_code == 404


def test_moving_a_person_between_accounts_re_judges_both(app, signed_in):
    client = in_english(signed_in("marketer"))
    account_id, people = scored_account(app)
    other = make_account(app, "Zhongke Soft")
    before = load(app, Account, account_id).score
    post(client, f"/admin/contacts/{people['Li']}/account", {"account_name": "Zhongke Soft"})
    # The CIO's points left with them: the old account drops, the new one rises at once.
    assert load(app, Account, account_id).score < before
    assert load(app, Account, other).score > 0
    post(client, f"/admin/contacts/{people['Li']}/account/detach", {})
    assert load(app, Account, other).score == 0
