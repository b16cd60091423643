"""The WeCom pages against the sandbox: 联系我 codes (list, chart, forms, WeCom's
refusals), staff (sync, mapping, customers) and the contact page's WeCom card."""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.accounts import account_named
from crm.channels import workspace_named
from crm.tags import TagBook
from models import Contact, ContactWay, FollowRelation, Staff, TagGroup, User, utcnow
from tests.app.admin.helpers import (
    field_errors,
    in_english,
    post_form,
    post_with_token,
)
from tests.factories import add_relation, add_staff, make_user
from tests.helpers import all_of, audit_actions, harpoon_of, run_jobs
from tests.wecom_platform import (
    api_calls,
    connect_corp,
    contact_ways_in_wecom,
    fail_next,
    set_customer_contact,
    sync_staff_now,
)
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox

OTHER_CORP = Credentials(
    app_id="ww9f8e7d6c5b4a3f2e",
    token="othertoken",
    aes_key="0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
)


@pytest.fixture
def channel_id(app, platform):
    """The acme corp with two salespeople, synced."""
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三", email="sales@acme.example")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)
    return channel_id


def code_form(**changes):
    return {
        "name": "2026 展会展台",
        "state": "expo2026",
        "staff_userids": ["zhangsan"],
        "skip_verify": "y",
        "welcome_text": "{name}您好，我是{staff}。",
        **changes,
    }


def create_code(client, channel_id, **changes):
    response = post_form(client, f"/admin/contact-ways/new/{channel_id}", code_form(**changes))
    assert response.status_code == 302, response.text
    return response


def the_way(app, state="expo2026") -> ContactWay:
    return next(w for w in all_of(app, ContactWay) if w.state == state)


def the_staff(app, userid) -> Staff:
    return next(s for s in all_of(app, Staff) if s.userid == userid)


# --- 联系我 codes -------------------------------------------------------------


def test_a_code_is_created_in_wecom_from_the_form(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    form = client.get(f"/admin/contact-ways/new/{channel_id}").text
    assert "张三" in form and "李四" in form and "{last_read}" in form
    assert 'required type="checkbox"' not in form  # any one staff member will do

    create_code(client, channel_id, staff_userids=["zhangsan", "lisi"])

    way = the_way(app)
    remote = contact_ways_in_wecom(platform)[way.config_id]
    assert (remote.type, remote.user, remote.state) == (2, ["zhangsan", "lisi"], "expo2026")
    assert way.welcome_text == "{name}您好，我是{staff}。" and way.skip_verify
    assert audit_actions(app) == ["contact_way.create"]
    assert "Contact Me code 2026 展会展台 saved." in client.get("/admin/contact-ways").text


def test_the_list_shows_codes_with_staff_tags_adds_and_the_chart(
    app, platform, signed_in, channel_id
):
    with harpoon_of(app).db.session() as session:
        tag = TagBook(session, workspace_named(session, "acme").id).get(
            session, TagGroup.SOURCE, "expo"
        )
        session.commit()
        tag_id = tag.id
    client = in_english(signed_in("marketer"))
    create_code(client, channel_id, staff_userids=["zhangsan", "lisi"], tag_ids=[str(tag_id)])
    create_code(client, channel_id, name="Webinar", state="webinar")
    expo = the_way(app)
    now = utcnow()
    for n, days_ago in enumerate((0, 0, 1, 45)):
        add_relation(
            app,
            channel_id,
            staff_userid="zhangsan",
            external_userid=f"wm_{n}",
            name=f"客户{n}",
            way=expo,
            added_at=now - timedelta(days=days_ago),
        )

    page = client.get("/admin/contact-ways").text

    row = re.search(rf'<tr id="way-{expo.id}".*?</tr>', page, re.S).group(0)
    assert "2026 展会展台" in row and "expo2026" in row and "张三, 李四" in row
    assert 'class="chip tag-source"' in row and ">expo<" in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["3", "4"]
    assert f'href="{expo.qr_code}"' in row
    chart = json.loads(re.search(r'id="adds-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert len(chart["days"]) == 30
    series = {s["name"]: s["counts"] for s in chart["series"]}
    assert sum(series["2026 展会展台"]) == 3 and series["2026 展会展台"][-1] in (1, 2, 3)
    assert sum(series["Webinar"]) == 0
    assert "echarts.min.js" in page and "charts.js" in page
    assert 'data-chart="contact-way-adds" data-source="adds-data"' in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"state": "s" * 31}, "state", "Field cannot be longer than 30 characters."),
        ({"state": "expo 2026"}, "state", "No spaces."),
        ({"staff_userids": []}, "staff_userids", "Choose at least one staff member."),
        ({"staff_userids": ["ghost"]}, "staff_userids", "'ghost' is not a valid choice"),
        ({"tag_ids": ["x"]}, "tag_ids", "could not be coerced"),
        ({"name": ""}, "name", "This field is required."),
        ({"welcome_text": "x" * 1001}, "welcome_text", "Field cannot be longer than 1000"),
        (
            {"welcome_text": "{nickname}，欢迎 {company}"},
            "welcome_text",
            "Unknown placeholder {nickname}, {company}: use only {name}, {account}, {staff}, "
            "{last_read}.",
        ),
    ],
)
def test_bad_input_shows_on_its_field_and_reaches_no_api(
    app, platform, signed_in, channel_id, changes, field, message
):
    client = in_english(signed_in("marketer"))
    before = api_calls(platform)
    page = post_form(client, f"/admin/contact-ways/new/{channel_id}", code_form(**changes))
    assert page.status_code == 200
    assert any(message in error for error in field_errors(page.text, field)), field_errors(
        page.text, field
    )
    assert api_calls(platform) == before and all_of(app, ContactWay) == []


def test_a_state_in_use_is_refused(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    create_code(client, channel_id)
    page = post_form(client, f"/admin/contact-ways/new/{channel_id}", code_form(name="Again"))
    assert field_errors(page.text, "state") == ["Another code of this channel uses this state."]
    assert len(contact_ways_in_wecom(platform)) == 1


def test_wecoms_refusal_is_a_form_error_and_stores_nothing(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    fail_next(platform, "externalcontact/add_contact_way", 84074)
    page = post_form(client, f"/admin/contact-ways/new/{channel_id}", code_form())
    assert page.status_code == 200
    assert '<p class="form-error" role="alert">WeCom refused the change (84074)' in page.text
    assert "customer-contact permission" in page.text
    assert all_of(app, ContactWay) == [] and audit_actions(app) == []


def test_an_edit_and_a_delete_reach_wecom(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    create_code(client, channel_id, staff_userids=["zhangsan", "lisi"])
    way = the_way(app)
    edit = f"/admin/contact-ways/{way.id}/edit"
    assert 'value="expo2026"' in client.get(edit).text

    response = post_form(
        client, edit, code_form(state="expo-b", staff_userids=["zhangsan", "lisi"])
    )
    assert response.status_code == 302
    remote = contact_ways_in_wecom(platform)[way.config_id]
    assert remote.state == "expo-b"
    assert the_way(app, "expo-b").id == way.id

    response = post_with_token(client, f"/admin/contact-ways/{way.id}/delete")
    assert response.status_code == 302
    assert contact_ways_in_wecom(platform) == {}
    assert the_way(app, "expo-b").deleted_at is not None
    assert audit_actions(app) == [
        "contact_way.create",
        "contact_way.update",
        "contact_way.delete",
    ]
    page = client.get("/admin/contact-ways").text
    assert "Deleted" in page and f"/admin/contact-ways/{way.id}/edit" not in page
    assert client.get(edit).status_code == 404


def test_who_may_see_and_change_codes(app, platform, signed_in, channel_id):
    marketer = signed_in("marketer")
    create_code(marketer, channel_id)
    way = the_way(app)
    viewer = signed_in("viewer")
    for path in (
        "/admin/contact-ways",
        f"/admin/contact-ways/new/{channel_id}",
        f"/admin/contact-ways/{way.id}/edit",
    ):
        assert viewer.get(path).status_code == 403, path
    assert (
        post_with_token(viewer, f"/admin/contact-ways/new/{channel_id}", code_form()).status_code
        == 403
    )
    assert post_with_token(viewer, f"/admin/contact-ways/{way.id}/delete").status_code == 403
    assert signed_in("sales").get("/admin/contact-ways").status_code == 403
    assert the_way(app).deleted_at is None


def test_another_workspace_sees_none_of_it(app, platform, signed_in, channel_id):
    create_code(signed_in("marketer"), channel_id)
    way = the_way(app)
    other_channel = connect_corp(app, platform, OTHER_CORP, workspace="globex")
    with harpoon_of(app).db.session() as session:
        member = session.scalars(select(Staff)).first()
    stranger = signed_in("marketer", "globex")
    assert "2026 展会展台" not in stranger.get("/admin/contact-ways").text
    for path in (
        f"/admin/contact-ways/{way.id}/edit",
        f"/admin/contact-ways/new/{channel_id}",
        f"/admin/staff/{member.id}",
    ):
        assert stranger.get(path).status_code == 404, path
    assert post_with_token(stranger, f"/admin/contact-ways/{way.id}/delete").status_code == 404
    assert post_with_token(stranger, f"/admin/staff/sync/{channel_id}").status_code == 404
    assert post_with_token(stranger, f"/admin/staff/{member.id}/user").status_code == 404
    assert stranger.get(f"/admin/contact-ways/new/{other_channel}").status_code == 200
    assert "张三" not in stranger.get("/admin/staff").text


# --- staff ------------------------------------------------------------------


def test_the_staff_page_shows_customers_losses_and_accounts(app, platform, signed_in, channel_id):
    client = in_english(signed_in("sales"))  # sales@acme.example: 张三's email
    sync_staff_now(app, channel_id)
    with harpoon_of(app).db.session() as session:
        sales = session.scalar(select(User).where(User.email == "sales@acme.example"))
        account_named(session, sales.workspace_id, "东方电气").owner_id = sales.id
        session.commit()
    add_relation(app, channel_id, staff_userid="zhangsan", external_userid="wm_a", name="甲")
    add_relation(app, channel_id, staff_userid="zhangsan", external_userid="wm_b", name="乙")
    add_relation(
        app,
        channel_id,
        staff_userid="zhangsan",
        external_userid="wm_c",
        name="丙",
        removed_at=utcnow(),
        removed_by="customer",
    )

    page = client.get("/admin/staff").text

    members = {s.userid: s for s in all_of(app, Staff)}
    row = re.search(rf'<tr id="staff-{members["zhangsan"].id}".*?</tr>', page, re.S).group(0)
    assert "张三" in row and "Sales User" in row and "Active" in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "1", "1"]
    assert "Sync staff" not in page and 'name="user_id"' not in page  # sales only look


def test_sync_staff_queues_the_job(app, platform, signed_in, channel_id):
    add_staff(platform, "wangwu", "王五")
    client = in_english(signed_in("marketer"))
    assert "Sync staff" in client.get("/admin/staff").text
    response = post_with_token(client, f"/admin/staff/sync/{channel_id}")
    assert response.status_code == 302
    run_jobs(app)
    assert "王五" in client.get("/admin/staff").text
    assert post_with_token(signed_in("sales"), f"/admin/staff/sync/{channel_id}").status_code == 403


def test_mapping_a_salesperson_to_a_user(app, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    signed_in("viewer", "globex")
    members = {s.userid: s for s in all_of(app, Staff)}
    users = {u.email: u.id for u in all_of(app, User)}
    path = f"/admin/staff/{members['lisi'].id}/user"

    assert (
        post_with_token(client, path, {"user_id": users["marketer@acme.example"]}).status_code
        == 302
    )
    assert the_staff(app, "lisi").user_id == users["marketer@acme.example"]
    assert audit_actions(app) == ["staff.map_user"]

    post_with_token(client, path, {"user_id": users["viewer@globex.example"]})
    assert the_staff(app, "lisi").user_id == users["marketer@acme.example"]
    assert "Not a user of this workspace." in client.get("/admin/staff").text

    post_with_token(client, path, {"user_id": ""})
    assert the_staff(app, "lisi").user_id is None
    assert post_with_token(signed_in("sales"), path, {"user_id": ""}).status_code == 403


def test_nobody_links_a_member_to_a_user_who_ranks_above_them(app, signed_in, channel_id):
    """A marketer linking their own member to the owner would become the owner in WeCom."""
    marketer = in_english(signed_in("marketer"))
    owner = make_user(app, "owner", email="boss@acme.example")
    admin = make_user(app, "admin", email="it@acme.example")
    path = f"/admin/staff/{the_staff(app, 'lisi').id}/user"

    for above in (owner, admin):
        assert post_with_token(marketer, path, {"user_id": above}).status_code == 302
        assert the_staff(app, "lisi").user_id is None
    assert "whose role is above yours" in marketer.get("/admin/staff").text
    assert audit_actions(app) == []

    acting_admin = in_english(signed_in("admin"))
    post_with_token(acting_admin, path, {"user_id": admin})
    assert the_staff(app, "lisi").user_id == admin  # an admin may link an equal
    post_with_token(acting_admin, path, {"user_id": owner})
    assert the_staff(app, "lisi").user_id == admin


def test_a_salespersons_page_lists_customers_and_accounts(app, signed_in, channel_id):
    marketer = in_english(signed_in("marketer"))
    create_code(marketer, channel_id)
    way = the_way(app)
    kept = add_relation(
        app,
        channel_id,
        staff_userid="zhangsan",
        external_userid="wm_a",
        name="王总",
        way=way,
        account=True,
        add_way=1,
        remark="华信 王总",
    )
    lost = add_relation(
        app,
        channel_id,
        staff_userid="zhangsan",
        external_userid="wm_b",
        name="赵工",
        removed_at=utcnow(),
        removed_by="customer",
    )
    member = the_staff(app, "zhangsan")

    page = in_english(signed_in("sales")).get(f"/admin/staff/{member.id}").text

    assert f"/admin/contacts/{kept}" in page and f"/admin/contacts/{lost}" in page
    assert "华信科技" in page and "2026 展会展台" in page and "expo2026" in page
    assert "Scanned a QR code" in page and "华信 王总" in page
    assert "Lost: the customer deleted them" in page
    assert "Map this staff member to an admin user" in page


def test_the_contact_page_shows_its_wecom_relations(app, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    create_code(client, channel_id)
    contact_id = add_relation(
        app,
        channel_id,
        staff_userid="zhangsan",
        external_userid="wm_a",
        name="王总",
        way=the_way(app),
        remark="华信 王总",
        add_way=1,
    )
    with harpoon_of(app).db.session() as session:
        contact = session.get(Contact, contact_id)
        session.add(
            FollowRelation(
                workspace_id=contact.workspace_id,
                channel_id=channel_id,
                contact_id=contact_id,
                external_userid="wm_a",
                staff_userid="lisi",
                added_at=utcnow() - timedelta(days=3),
                removed_at=utcnow(),
                removed_by="customer",
            )
        )
        session.commit()

    page = client.get(f"/admin/contacts/{contact_id}").text

    card = re.search(r"<h2>WeCom relations</h2>.*?</section>", page, re.S).group(0)
    assert "张三" in card and "李四" in card
    assert "2026 展会展台" in card and "expo2026" in card and "华信 王总" in card
    assert "Scanned a QR code" in card and "Lost: the customer deleted them" in card


def test_the_navigation_lists_the_pages_a_role_may_open(signed_in, channel_id):
    marketer = in_english(signed_in("marketer")).get("/admin/").text
    assert "Contact Me codes" in marketer and 'href="/admin/staff"' in marketer
    sales = in_english(signed_in("sales")).get("/admin/").text
    assert "Contact Me codes" not in sales and 'href="/admin/staff"' in sales


def test_the_default_locale_renders_every_page(app, signed_in, channel_id):
    client = signed_in("admin")
    create_code(client, channel_id)
    way = the_way(app)
    contact_id = add_relation(
        app, channel_id, staff_userid="zhangsan", external_userid="wm_a", name="王总", way=way
    )
    member = the_staff(app, "zhangsan")
    for path in (
        "/admin/contact-ways",
        f"/admin/contact-ways/new/{channel_id}",
        f"/admin/contact-ways/{way.id}/edit",
        "/admin/staff",
        f"/admin/staff/{member.id}",
        f"/admin/contacts/{contact_id}",
    ):
        assert client.get(path).status_code == 200, path
    page = post_form(client, f"/admin/contact-ways/new/{channel_id}", code_form(state="x" * 31))
    assert page.status_code == 200 and field_errors(page.text, "state")


def test_a_code_whose_staff_member_left_asks_to_drop_them(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    create_code(client, channel_id, staff_userids=["zhangsan", "lisi"])
    way = the_way(app)
    set_customer_contact(platform, "lisi", False)
    sync_staff_now(app, channel_id)
    edit = f"/admin/contact-ways/{way.id}/edit"
    assert "李四 (inactive)" in client.get(edit).text

    page = post_form(client, edit, code_form(staff_userids=["zhangsan", "lisi"]))
    assert field_errors(page.text, "staff_userids") == [
        "李四 no longer has the customer-contact permission."
    ]

    response = post_form(client, edit, code_form(staff_userids=["zhangsan"]))
    assert response.status_code == 302
    assert "it has a new QR code" in client.get("/admin/contact-ways").text
    new = the_way(app)
    assert new.staff_userids == ["zhangsan"] and new.config_id != way.config_id
    assert list(contact_ways_in_wecom(platform)) == [new.config_id]
