"""The email pages: the template editor (field errors naming the variable or the line, a
preview for the sample person or one of the workspace's contacts, a test send through the
workspace's server), the SMTP settings (owners and admins; the password never shown back)
and the suppressions (an admin removes one, audited)."""

import html
import re

import pytest
from sqlalchemy import text

from models import AuditLog, EmailSuppression, EmailTemplate, SuppressionReason, Workspace
from outreach.suppressions import suppress
from tests.app.admin.helpers import csrf_token, field_errors, in_english, post_with_token
from tests.factories import add_identity, make_contact, make_email_template, workspace_id
from tests.helpers import all_of, load, session_of


@pytest.fixture
def app(make_app):
    """The test sink at 127.0.0.1 as a workspace's own server: let in as an operator lets an
    on-premise server in (HARPOON_OUTBOUND_ALLOW); test_email_ssrf.py tests without."""
    return make_app(outbound_allow=("127.0.0.1/32",))


BODY = '<p>{{ name }}，您好：</p><p>{{ company }} 邀您出席。</p><a href="https://example.com/x">报名</a>'


def new_template(client, **fields):
    data = {"name": "发布会邀请", "subject": "{{ name }}，邀请函", "body_html": BODY} | fields
    page = client.get("/admin/email/templates/new")
    return client.post(
        "/admin/email/templates/new", data={**data, "csrf_token": csrf_token(page.text)}
    )


def test_a_template_naming_an_unknown_variable_is_refused_with_its_name(app, signed_in):
    client = in_english(signed_in("marketer"))
    answer = new_template(client, body_html="<p>{{ name }} {{ nickname }}</p>")
    assert answer.status_code == 400
    assert field_errors(answer.text, "body_html") == [
        "Unknown variable “nickname”: use one of the variables listed beside the editor."
    ]
    answer = new_template(client, subject="{{ first_name }}")
    assert "Unknown variable “first_name”" in field_errors(answer.text, "subject")[0]
    answer = new_template(client, body_html="<p>ok</p>\n<p>{% if name %}</p>")
    [error] = field_errors(answer.text, "body_html")
    assert error.startswith("Template syntax error on line 2")
    answer = new_template(client, body_html="{{ ''.__class__ }}")
    assert field_errors(answer.text, "body_html")  # the sandbox refuses, as a field error
    assert all_of(app, EmailTemplate) == []


def test_a_template_is_created_edited_archived_and_restored_and_audited(app, signed_in):
    client = in_english(signed_in("marketer"))
    answer = new_template(client)
    assert answer.status_code == 302
    [row] = all_of(app, EmailTemplate)
    assert (row.name, row.subject, row.body_html) == ("发布会邀请", "{{ name }}，邀请函", BODY)
    page = client.get(f"/admin/email/templates/{row.id}").text
    assert "{{ owner }}" in page and "The salesperson who owns their account" in page
    token = csrf_token(page)
    client.post(
        f"/admin/email/templates/{row.id}",
        data={
            "name": "发布会邀请",
            "subject": "新主题 {{ company }}",
            "body_html": BODY,
            "csrf_token": token,
        },
    )
    assert load(app, EmailTemplate, row.id).subject == "新主题 {{ company }}"
    duplicate = new_template(client)
    assert field_errors(duplicate.text, "name") == ["A template of this name exists already."]
    post_with_token(client, f"/admin/email/templates/{row.id}/archive")
    assert load(app, EmailTemplate, row.id).archived_at is not None
    client.get("/admin/email/templates")  # the flash shown
    assert f"email-template-{row.id}" not in client.get("/admin/email/templates").text
    assert f"email-template-{row.id}" in client.get("/admin/email/templates?archived=1").text
    post_with_token(client, f"/admin/email/templates/{row.id}/restore")
    assert load(app, EmailTemplate, row.id).archived_at is None
    actions = [entry.action for entry in all_of(app, AuditLog)]
    assert actions == [
        "email_template.create",
        "email_template.update",
        "email_template.archive",
        "email_template.restore",
    ]


def preview(client, **data):
    return post_with_token(client, "/admin/email/preview", data)


def iframe_document(page: str) -> str:
    match = re.search(r'<iframe class="email-preview" sandbox="" [^>]*srcdoc="([^"]*)"', page)
    assert match, page
    return html.unescape(match.group(1))


def test_the_preview_renders_for_the_sample_person_or_a_contact_of_the_workspace(app, signed_in):
    client = in_english(signed_in("marketer"))
    sample = preview(client, subject="{{ name }}，邀请函", body_html=BODY + "<script>x()</script>")
    assert sample.status_code == 200
    assert "<strong>王伟，邀请函</strong>" in sample.text
    document = iframe_document(sample.text)
    assert "<p>华信科技 邀您出席。</p>" in document
    assert (
        "<script>" not in sample.text.split("srcdoc=")[1].split('"')[0]
    )  # escaped in the attribute

    contact = make_contact(app, "李娜", company="紫金银行", title="CTO")
    add_identity(app, contact, "email", "li.na@zijin.example")
    mine = preview(client, subject="{{ email }}", body_html=BODY, contact_id=str(contact))
    assert "<strong>li.na@zijin.example</strong>" in mine.text
    assert "<p>紫金银行 邀您出席。</p>" in iframe_document(mine.text)

    theirs = make_contact(app, "外人", workspace="globex", company="Globex")
    refused = preview(client, subject="x", body_html=BODY, contact_id=str(theirs))
    assert f"No contact #{theirs} in this workspace." in refused.text
    assert "Globex" not in refused.text and "<iframe" not in refused.text
    huge = preview(client, subject="x", body_html=BODY, contact_id="99999999999999999999999")
    assert huge.status_code == 200 and "<iframe" not in huge.text

    broken = preview(client, subject="ok", body_html="<p>{{ nickname }}</p>")
    assert "Unknown variable “nickname”" in broken.text and "<iframe" not in broken.text


def test_a_viewer_may_list_templates_but_not_edit_or_preview(app, signed_in):
    template = make_email_template(app)
    client = signed_in("viewer")
    assert client.get("/admin/email/templates").status_code == 200
    assert client.get(f"/admin/email/templates/{template}").status_code == 403
    assert preview(client, subject="x", body_html="y").status_code == 403


def test_another_workspaces_template_is_a_404(app, signed_in):
    theirs = make_email_template(app, workspace="globex")
    client = signed_in("marketer")
    assert client.get(f"/admin/email/templates/{theirs}").status_code == 404
    assert post_with_token(client, f"/admin/email/templates/{theirs}/archive").status_code == 404


def test_a_test_send_goes_through_the_workspaces_own_server(app, signed_in, smtp):
    smtp.mailbox.clear()
    template = make_email_template(app, subject="{{ name }}，您好", body_html=BODY)
    ws = workspace_id(app)
    with session_of(app) as session:
        session.get(Workspace, ws).smtp_url = smtp.url
        session.get(Workspace, ws).mail_from = "华信 <mkt@huaxin.example>"
        session.commit()
    client = in_english(signed_in("marketer"))
    answer = post_with_token(
        client, f"/admin/email/templates/{template}/test", {"to": "me@huaxin.example"}
    )
    assert answer.status_code == 302
    assert (
        "Test sent to me@huaxin.example." in client.get(f"/admin/email/templates/{template}").text
    )
    [mail] = smtp.mailbox.to("me@huaxin.example")
    message = mail.message()
    assert message["Subject"] == "[Test] 王伟，您好"
    assert "mkt@huaxin.example" in message["From"]
    body = message.get_body(("html",)).get_content()
    assert "华信科技 邀您出席" in body and "/e/" in body  # tracked like the real ones
    [entry] = [e for e in all_of(app, AuditLog) if e.action == "email_template.test"]
    assert entry.changes["to"] == "me@huaxin.example"

    refused = post_with_token(
        client, f"/admin/email/templates/{template}/test", {"to": "who@bounce.invalid"}
    )
    assert refused.status_code == 302
    shown = client.get(f"/admin/email/templates/{template}").text
    assert "Test not sent: the mail server answered 550" in html.unescape(shown)
    bad = post_with_token(client, f"/admin/email/templates/{template}/test", {"to": "nope"})
    assert (
        bad.status_code == 302
        and "Test not sent" in client.get(f"/admin/email/templates/{template}").text
    )


def smtp_form(client, **fields):
    data = {
        "host": "smtp.huaxin.example",
        "port": "465",
        "security": "smtps",
        "username": "mkt@huaxin.example",
        "password": "s3cret:/@pw",
        "mail_from": "",
    }
    return post_with_token(client, "/admin/email/settings", data | fields)


def test_owners_set_the_smtp_server_and_its_password_is_never_shown(app, signed_in):
    client = in_english(signed_in("owner"))
    assert smtp_form(client).status_code == 302
    ws = workspace_id(app)
    with session_of(app) as session:
        url = session.get(Workspace, ws).smtp_url
        stored = session.execute(text("SELECT smtp_url FROM workspaces")).scalar()
    assert url == "smtps://mkt%40huaxin.example:s3cret%3A%2F%40pw@smtp.huaxin.example:465"
    assert "s3cret" not in stored  # encrypted at rest
    page = client.get("/admin/email/settings").text
    assert "s3cret" not in page and "A password is saved" in page
    assert 'value="smtp.huaxin.example"' in page

    smtp_form(client, port="", password="")  # the password kept when left empty
    with session_of(app) as session:
        assert session.get(Workspace, ws).smtp_url == (
            "smtps://mkt%40huaxin.example:s3cret%3A%2F%40pw@smtp.huaxin.example"
        )
    entries = [e for e in all_of(app, AuditLog) if e.action.startswith("smtp.")]
    assert [e.action for e in entries] == ["smtp.set", "smtp.set"]
    assert all("s3cret" not in str(e.changes) for e in entries)

    for host in ("evil.example/x", "a@b", "host:25", "", "-x", "a b"):
        answer = smtp_form(client, host=host) if host else None
        if answer is not None:
            assert answer.status_code == 400
            assert field_errors(answer.text, "host") == ["Not a host name, e.g. smtp.example.com."]
    assert field_errors(smtp_form(client, security="http").text, "security")
    assert field_errors(smtp_form(client, port="70000").text, "port")

    smtp_form(client, host="")
    with session_of(app) as session:
        assert session.get(Workspace, ws).smtp_url is None


@pytest.mark.parametrize("role", ["marketer", "sales", "viewer"])
def test_only_owners_and_admins_see_the_smtp_settings(app, signed_in, role):
    client = signed_in(role)
    assert client.get("/admin/email/settings").status_code == 403
    assert smtp_form(client).status_code == 403


def test_the_connection_test_reports_the_server(app, signed_in, smtp):
    client = in_english(signed_in("admin"))
    ws = workspace_id(app)
    with session_of(app) as session:
        session.get(Workspace, ws).smtp_url = smtp.url
        session.commit()
    post_with_token(client, "/admin/email/settings/test")
    assert "Connected and signed in" in client.get("/admin/email/settings").text
    with session_of(app) as session:
        session.get(Workspace, ws).smtp_url = "smtp://127.0.0.1:1"
        session.commit()
    post_with_token(client, "/admin/email/settings/test")
    assert "Could not connect" in client.get("/admin/email/settings").text


def test_suppressions_are_listed_searched_and_removed_by_an_admin(app, signed_in):
    ws, theirs = workspace_id(app), workspace_id(app, "globex")
    with session_of(app) as session:
        suppress(session, ws, "a@huaxin.example", SuppressionReason.UNSUBSCRIBED)
        suppress(session, ws, "b@zijin.example", SuppressionReason.BOUNCED, detail="550 5.1.1")
        suppress(session, theirs, "c@globex.example", SuppressionReason.COMPLAINED)
        session.commit()
    marketer = in_english(signed_in("marketer"))
    page = marketer.get("/admin/email/suppressions").text
    assert "a@huaxin.example" in page and "550 5.1.1" in page and "globex" not in page
    assert "Remove" not in page
    assert "b@zijin" not in marketer.get("/admin/email/suppressions?q=huaxin").text
    assert "a@huaxin" not in marketer.get("/admin/email/suppressions?reason=bounced").text
    assert marketer.get("/admin/email/suppressions?q=%25_\\&reason=zzz").status_code == 200
    refused = post_with_token(
        marketer, "/admin/email/suppressions/remove", {"address": "a@huaxin.example"}
    )
    assert refused.status_code == 403

    admin = in_english(signed_in("admin"))
    post_with_token(admin, "/admin/email/suppressions/remove", {"address": "A@huaxin.example"})
    post_with_token(admin, "/admin/email/suppressions/remove", {"address": "c@globex.example"})
    left = all_of(app, EmailSuppression, EmailSuppression.address)
    assert [row.address for row in left] == ["b@zijin.example", "c@globex.example"]
    [entry] = [e for e in all_of(app, AuditLog) if e.action == "email_suppression.remove"]
    assert entry.target_id == "a@huaxin.example" and entry.changes["reason"] == "unsubscribed"
