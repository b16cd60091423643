"""Hosted forms: field messages, a submission enriching the contact (title -> role, company
-> account, phone and email -> identities), one submission per rendering, forged tokens
refused, and the follow-up with the download: a WeChat message in the follower's window,
else an email through a real SMTP server."""

import re
import time
from types import SimpleNamespace

import itsdangerous.timed
import pytest
from sqlalchemy import select

from core.tokens import Purpose, Signer
from models import (
    Account,
    Channel,
    Contact,
    ContactTag,
    FormSubmission,
    Identity,
    Interaction,
    PageView,
    SuppressionReason,
    Tag,
)
from models.content import FollowUpStatus
from outreach.suppressions import suppress
from tests.factories import make_form_with_link
from tests.helpers import OA_CREDS, all_rows, harpoon_of, run_jobs
from tests.oa_platform import WECHAT, connect_oa, open_in_wechat
from wechat.sandbox import oa

pytestmark = pytest.mark.sandbox


@pytest.fixture
def app(make_app, platform, smtp):
    """The sandbox's app (see conftest's), sending mail through `smtp`; both start empty."""
    smtp.mailbox.clear()
    platform.reset()
    return make_app(wechat_api_url=platform.url, smtp_url=smtp.url)


@pytest.fixture
def channel_id(app, platform):
    return connect_oa(app, platform)


def received(platform, openid: str) -> list:
    return oa.state_of(platform.state.tenant(OA_CREDS.app_id)).followers[openid].received


FILLED = {
    "name": "王伟",
    "company": "上海华信科技有限公司",
    "title": "信息中心主任",
    "phone": "+86 138-0013-8000",
    "email": "wang.wei@huaxin.com",
    "consent": "true",
}


def form_token(page_text: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', page_text).group(1)


def open_form(client, platform, code: str, openid: str):
    landed = open_in_wechat(client, platform, f"/t/{code}", openid)
    page = client.get(landed.location, headers=WECHAT)
    assert page.status_code == 200
    return page


def test_a_form_shows_each_problem_by_its_field_and_stores_nothing(app, platform, channel_id):
    code = make_form_with_link(app, channel_id)
    client = app.test_client()
    page = open_form(client, platform, code, "oVisitor1")
    posted = {"form_token": form_token(page.text), "name": "王伟", "email": "not-an-email"}

    answer = client.post(f"/f/{code}", data=posted, headers=WECHAT)

    assert answer.status_code == 400
    errors = re.findall(r'<p class="error">([^<]+)</p>', answer.text)
    assert len(errors) == 5  # company, title, phone required; email invalid; consent
    assert 'value="王伟"' in answer.text  # what was typed stays
    assert all_rows(app, FormSubmission) == []


def test_a_submission_enriches_the_contact_and_its_follow_up_comes_in_wechat(
    app, platform, channel_id, smtp
):
    code = make_form_with_link(app, channel_id)
    tenant = platform.state.tenant(OA_CREDS.app_id)
    oa.follow(platform.state, tenant, "oVisitor2")  # scanned the event's code: a window opens
    client = app.test_client()
    page = open_form(client, platform, code, "oVisitor2")
    token = form_token(page.text)

    thanks = client.post(f"/f/{code}", data={"form_token": token, **FILLED}, headers=WECHAT)
    again = client.post(f"/f/{code}", data={"form_token": token, **FILLED}, headers=WECHAT)
    assert thanks.status_code == again.status_code == 200
    assert "/t/" in thanks.text  # the download link
    run_jobs(app)

    [submission] = all_rows(app, FormSubmission)
    assert submission.openid == "oVisitor2" and submission.consent is True
    with harpoon_of(app).db.session() as session:
        contact = session.get(Contact, submission.contact_id)
        assert (contact.name, contact.title, contact.role) == ("王伟", "信息中心主任", "cio")
        assert session.get(Account, contact.account_id).name == "上海华信科技有限公司"
        kinds = {
            i.kind: i.value
            for i in session.scalars(select(Identity).where(Identity.contact_id == contact.id))
        }
        assert kinds == {
            "openid": "oVisitor2",
            "phone": "13800138000",
            "email": "wang.wei@huaxin.com",
        }
        tags = {t.name for t in contact_tags(session, contact.id)}
        assert "AI 白皮书" in tags
    [submit] = all_rows(app, Interaction, Interaction.kind == "form.submit")
    assert submit.contact_id == submission.contact_id
    assert submission.followup_status == FollowUpStatus.SENT
    assert submission.followup_channel == "wechat"
    [message] = received(platform, "oVisitor2")
    assert message.kind == oa.CUSTOM
    assert "感谢报名，白皮书在这里" in message.content["content"]
    assert "AI 白皮书: http://127.0.0.1:8000/t/" in message.content["content"]
    assert list(smtp.mailbox.messages) == []


def contact_tags(session, contact_id):
    return session.scalars(
        select(Tag)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact_id)
    )


def test_outside_the_window_the_follow_up_goes_by_email(app, platform, channel_id, smtp):
    code = make_form_with_link(app, channel_id)
    client = app.test_client()
    page = open_form(client, platform, code, "oStranger")  # read the link, never followed
    client.post(f"/f/{code}", data={"form_token": form_token(page.text), **FILLED}, headers=WECHAT)
    run_jobs(app)

    [submission] = all_rows(app, FormSubmission)
    assert submission.followup_status == FollowUpStatus.SENT
    assert submission.followup_channel == "email"
    [mail] = smtp.mailbox.messages
    assert mail.recipients == ["wang.wei@huaxin.com"]
    body = mail.data.decode()
    assert "Subject: =?utf-8?b?" in body  # 领取 AI 白皮书, encoded
    assert "http://127.0.0.1:8000/t/" in body


def test_a_suppressed_address_gets_no_follow_up_and_the_reason_is_kept(
    app, platform, channel_id, smtp
):
    with harpoon_of(app).db.session() as session:
        form_workspace = session.get(Channel, channel_id).workspace_id
        suppress(session, form_workspace, "Wang.Wei@huaxin.com", SuppressionReason.UNSUBSCRIBED)
        session.commit()
    code = make_form_with_link(app, channel_id)
    client = app.test_client()
    page = open_form(client, platform, code, "oStranger")
    client.post(f"/f/{code}", data={"form_token": form_token(page.text), **FILLED}, headers=WECHAT)
    run_jobs(app)

    [submission] = all_rows(app, FormSubmission)
    assert submission.followup_status == FollowUpStatus.FAILED
    assert "email: the address is suppressed (unsubscribed)" in submission.followup_error
    assert list(smtp.mailbox.messages) == []


def test_without_window_or_email_the_follow_up_fails_with_its_reasons(app, platform, channel_id):
    code = make_form_with_link(app, channel_id)
    oa.follow(platform.state, platform.state.tenant(OA_CREDS.app_id), "oStranger2")
    platform.state.advance(3600)  # the follow's window closed long ago
    client = app.test_client()
    page = open_form(client, platform, code, "oStranger2")
    posted = {k: v for k, v in FILLED.items() if k != "email"}
    client.post(f"/f/{code}", data={"form_token": form_token(page.text), **posted}, headers=WECHAT)
    run_jobs(app)

    [submission] = all_rows(app, FormSubmission)
    assert submission.followup_status == FollowUpStatus.FAILED
    assert "45015" in submission.followup_error and "no address" in submission.followup_error


def test_forged_or_foreign_form_tokens_are_refused(app, platform, channel_id):
    code = make_form_with_link(app, channel_id)
    client = app.test_client()
    page = open_form(client, platform, code, "oVisitor3")
    [view] = all_rows(app, PageView)
    forged = Signer("not-our-key").sign(Purpose.FORM, {"f": 1, "v": view.id, "n": "x"})
    other_form = Signer("test-secret-key").sign(Purpose.FORM, {"f": 999, "v": view.id, "n": "x"})
    for token in (forged, other_form, "", form_token(page.text) + "x"):
        answer = client.post(f"/f/{code}", data={"form_token": token, **FILLED}, headers=WECHAT)
        assert answer.status_code == 400
    run_jobs(app)
    assert all_rows(app, FormSubmission) == []
    assert all_rows(app, Interaction, Interaction.kind == "form.submit") == []


def test_an_expired_form_or_view_token_is_refused(app, platform, channel_id, monkeypatch):
    """A day-old rendering of the form, or beacon of the page, stores nothing."""
    code = make_form_with_link(app, channel_id)
    client = app.test_client()
    open_form(client, platform, code, "oLate")
    [view] = all_rows(app, PageView)
    signer = Signer("test-secret-key")
    real_time = time.time
    monkeypatch.setattr(
        itsdangerous.timed, "time", SimpleNamespace(time=lambda: real_time() - 2 * 86400)
    )
    old_form = signer.sign(Purpose.FORM, {"f": view.form_id, "v": view.id, "n": "late"})
    old_view = signer.sign(Purpose.VIEW, {"v": view.id, "w": view.workspace_id})
    monkeypatch.undo()

    answer = client.post(f"/f/{code}", data={"form_token": old_form, **FILLED}, headers=WECHAT)
    assert answer.status_code == 400
    assert client.post("/b", data={"v": old_view, "e": "like"}).status_code == 400
    run_jobs(app)
    assert all_rows(app, FormSubmission) == []
    assert all_rows(app, Interaction, Interaction.kind.in_(("form.submit", "content.like"))) == []
