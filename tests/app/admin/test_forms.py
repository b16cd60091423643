"""The forms pages: the editor (fields asked, consent, tags, download content, follow-up)
and its field errors, the list's figures, a form's page with its tracked links and its
submissions (contact, what they stated, consent, follow-up, sharer), permissions."""

import pytest

from models import AuditLog, Form, FormSubmission, TrackedLink, utcnow
from tests.app.admin.helpers import csrf_token, field_errors, in_english, post_form, row_cells
from tests.factories import (
    make_account,
    make_contact,
    make_content,
    make_form,
    make_link,
    make_oa,
    make_staff,
    make_submission,
    tag_ids,
    view,
)
from tests.helpers import all_of, audit_actions, session_of


def definition(**changes) -> dict:
    return {
        "title": "预约演示",
        "intro": "留下联系方式，我们将在一个工作日内联系您。",
        "fields.name": "required",
        "fields.company": "required",
        "fields.title": "optional",
        "fields.phone": "required",
        "fields.email": "",
        "consent_text": "我同意艾克米按隐私政策联系我。",
        "thank_you": "谢谢！白皮书已发送。",
        "download_content_id": "",
        "follow_up.message": "",
        **changes,
    }


# ---- the editor ---------------------------------------------------------------------------


def test_a_marketer_creates_a_form_with_tags_and_a_follow_up(app, signed_in):
    download = make_content(app, kind="download")
    interest, event = tag_ids(app, "interest:智能制造", "source:2026 展会")
    client = in_english(signed_in("marketer"))
    page = client.get("/admin/forms/new").text
    assert "智能制造" in page and "2026 制造业数字化白皮书" in page

    response = post_form(
        client,
        "/admin/forms/new",
        definition(
            tag_ids=[str(interest), str(event)],
            download_content_id=str(download),
            **{"follow_up.wechat": "1", "follow_up.message": "这是您要的白皮书："},
        ),
    )

    (form,) = all_of(app, Form)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/forms/{form.id}")
    assert form.fields == {
        "name": "required",
        "company": "required",
        "title": "optional",
        "phone": "required",
    }
    assert form.tag_ids == sorted([interest, event])
    assert form.download_content_id == download
    assert form.follow_up == {"wechat": True, "email": False, "message": "这是您要的白皮书："}
    assert audit_actions(app) == ["form.create"]
    page = client.get(f"/admin/forms/{form.id}").text
    assert "Form “预约演示” saved." in page
    assert "智能制造" in page and "这是您要的白皮书：" in page and "我同意艾克米" in page


def test_editing_shows_the_form_as_saved_and_audits_what_changed(app, signed_in):
    form_id = make_form(app)
    client = in_english(signed_in("marketer"))
    page = client.get(f"/admin/forms/{form_id}/edit").text
    assert '<option value="required" selected>' in page and 'value="预约演示"' in page
    post_form(
        client,
        f"/admin/forms/{form_id}/edit",
        definition(**{"fields.email": "optional", "consent_text": "我同意"}),
    )
    (entry,) = all_of(app, AuditLog)
    assert entry.action == "form.update"
    assert set(entry.changes) >= {"fields", "intro", "thank_you"}
    assert "consent_text" not in entry.changes
    (form,) = all_of(app, Form)
    assert form.fields["email"] == "optional"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": ""}, "title", "Required."),
        (
            {"fields.phone": "", "fields.email": ""},
            "fields.name",
            "Ask for a phone number or an email (or both): outside WeChat they are how a "
            "submission names a person.",
        ),
        ({"fields.phone": "always"}, "fields.phone", "Not asked, optional or required."),
        ({"consent_text": "意" * 501}, "consent_text", "At most 500 characters."),
        ({"intro": "介" * 2001}, "intro", "At most 2000 characters."),
        (
            {"follow_up.wechat": "1"},
            "download_content_id",
            "The follow-up hands out this content: choose it, or turn the follow-up off.",
        ),
        ({"follow_up.message": "话" * 601}, "follow_up.message", "At most 600 characters."),
        ({"tag_ids": ["999999"]}, "tag_ids", "Not tags of this workspace."),
    ],
)
def test_bad_input_shows_in_place(app, signed_in, changes, field, message):
    tag_ids(app, "interest:AI")  # the tag select shows
    client = in_english(signed_in("marketer"))
    response = post_form(client, "/admin/forms/new", definition(**changes))
    assert response.status_code == 400
    if field == "fields.name":  # the message of the whole group of field choices
        assert message in response.text
    else:
        assert message in field_errors(response.text, field)
    assert all_of(app, Form) == []


def test_an_email_follow_up_needs_the_email_field(app, signed_in):
    download = make_content(app)
    client = in_english(signed_in("marketer"))
    response = post_form(
        client,
        "/admin/forms/new",
        definition(download_content_id=str(download), **{"follow_up.email": "1"}),
    )
    assert field_errors(response.text, "follow_up.email") == [
        "An email follow-up needs the form to ask for an email address."
    ]


def test_archived_or_foreign_content_cannot_be_handed_out(app, signed_in):
    archived = make_content(app, archived_at=utcnow())
    foreign = make_content(app, workspace="other")
    client = in_english(signed_in("marketer"))
    for content_id in (archived, foreign):
        response = post_form(
            client, "/admin/forms/new", definition(download_content_id=str(content_id))
        )
        assert field_errors(response.text, "download_content_id") == [
            "Choose content of the library (archived content is not handed out)."
        ]
    assert all_of(app, Form) == []


def test_viewers_read_but_do_not_manage(app, signed_in):
    form_id = make_form(app)
    client = in_english(signed_in("viewer"))
    assert client.get("/admin/forms").status_code == 200
    page = client.get(f"/admin/forms/{form_id}")
    assert page.status_code == 200 and "New form" not in client.get("/admin/forms").text
    assert client.get("/admin/forms/new").status_code == 403
    assert client.get(f"/admin/forms/{form_id}/edit").status_code == 403
    token = csrf_token(page.text)
    for path in (f"/admin/forms/{form_id}/archive", f"/admin/forms/{form_id}/links"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403
    other = signed_in("marketer", workspace="other")
    assert other.get(f"/admin/forms/{form_id}").status_code == 404


# ---- figures and submissions --------------------------------------------------------------


def test_the_list_and_the_page_count_views_submissions_and_follow_ups(app, signed_in):
    channel_id = make_oa(app)
    form_id = make_form(app, consent_text="我同意")
    link_id, code = make_link(app, form_id=form_id, channel_id=channel_id, medium="push")
    account = make_account(app, "艾克米制造")
    wang = make_contact(app, "王总", account_id=account, title="CIO")
    staff = make_staff(app, "张销售", "zhang")
    for n in range(4):
        view(app, link_id, days_ago=n)
    view(app, link_id, days_ago=45)
    make_submission(
        app,
        form_id,
        "n1",
        contact_id=wang,
        data={"name": "王总", "phone": "13800138000", "company": "艾克米"},
        consent=True,
        sharer_staff_id=staff,
        followup_status="failed",
        followup_channel="wechat",
        followup_error="outside the 48-hour window and no email",
    )
    make_submission(app, form_id, "n2", data={"name": "新人", "phone": "13900000000"}, consent=True)
    old = make_submission(app, form_id, "n3", data={"phone": "13700000000"}, followup_status="sent")
    with session_of(app) as session:
        session.get(FormSubmission, old).submitted_at = utcnow().replace(year=2020)
        session.commit()

    client = in_english(signed_in("viewer"))
    listed = client.get("/admin/forms").text
    # views, submissions, conversion, all submissions, failed follow-ups (30 days)
    assert row_cells(listed, f"form-{form_id}") == ["4", "2", "50.0%", "3", "1"]

    page = client.get(f"/admin/forms/{form_id}").text
    assert 'data-kpi="conversion">50.0%<' in page
    assert 'data-kpi="followups">1<' in page and "1 failed" in page
    assert f'id="link-{code}"' in page
    assert row_cells(page, f"link-{code}") == ["4", "0", "5"]
    rows = page[page.index('<table class="submissions">') :]
    assert rows.index("新人") < rows.index("王总")  # newest first
    assert "13800138000" in rows and "艾克米制造" in rows and "张销售" in rows
    assert "outside the 48-hour window and no email" in rows and ">Failed<" in rows
    assert "Being recorded…" in rows  # the drain has not named 新人 yet
    assert ">Given<" in rows and ">Not given<" in rows


def test_submissions_page_through(app, signed_in):
    form_id = make_form(app)
    for n in range(53):
        make_submission(app, form_id, f"n{n}", data={"phone": f"1380000{n:04d}"})
    client = in_english(signed_in("viewer"))
    first = client.get(f"/admin/forms/{form_id}").text
    assert first.count('<tr id="submission-') == 50 and "Page 1 of 2" in first
    second = client.get(f"/admin/forms/{form_id}?page=2").text
    assert second.count('<tr id="submission-') == 3


def test_a_link_to_the_form_and_archiving(app, signed_in):
    channel_id = make_oa(app)
    form_id = make_form(app)
    client = in_english(signed_in("marketer"))
    token = csrf_token(client.get(f"/admin/forms/{form_id}").text)
    response = client.post(
        f"/admin/forms/{form_id}/links",
        data={
            "medium": "qr",
            "label": "展台海报",
            "channel_id": str(channel_id),
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    (link,) = all_of(app, TrackedLink)
    assert (link.form_id, link.content_id, link.medium) == (form_id, None, "qr")
    assert f'id="link-{link.code}"' in client.get(f"/admin/forms/{form_id}").text

    client.post(f"/admin/forms/{form_id}/archive", data={"csrf_token": token})
    assert f'id="form-{form_id}"' not in client.get("/admin/forms").text
    assert f'id="form-{form_id}"' in client.get("/admin/forms?archived=1").text
    retire = client.post(f"/admin/links/{link.id}/archive", data={"csrf_token": token})
    assert retire.headers["Location"].endswith(f"/admin/forms/{form_id}")
    assert audit_actions(app) == ["tracked_link.create", "form.archive", "tracked_link.archive"]
