"""A workspace's own mail server is an address a tenant types in: like a webhook's, it may
not be a private, loopback or link-local one unless the operator allow-lists it
(HARPOON_OUTBOUND_ALLOW). The service's HARPOON_SMTP_URL is the operator's and stays
allowed (the tests' sink listens on 127.0.0.1)."""

import pytest
from sqlalchemy import select

from core.jobs import Job
from models import EmailMessage, EmailStatus, Workspace, utcnow
from outreach import email_sending
from outreach.mail import mailer_for
from tests.app.admin.helpers import field_errors, in_english, post_with_token
from tests.factories import (
    add_email_template,
    add_emailed_contact,
    enrol,
    make_journey,
    workspace_id,
)
from tests.helpers import harpoon_of, run_jobs, session_of

PRIVATE = "A private or local address: only public addresses can be reached."


def email_journey(app, template_id: int) -> int:
    mail = {"kind": "send_email", "email_template_id": template_id}
    document = {
        "nodes": [
            {"id": "start", "type": "entry", "trigger": {"kind": "manual"}, "next": "mail"},
            {"id": "mail", "type": "action", "action": mail, "next": "done"},
            {"id": "done", "type": "exit"},
        ]
    }
    return make_journey(app, "白皮书邮件", document=document)


def run_journeys(app) -> None:
    harpoon_of(app).queue.enqueue(Job.RUN_JOURNEYS, workspace_id(app))
    run_jobs(app)


def smtp_form(client, host):
    data = {"host": host, "port": "25", "security": "smtp", "username": "", "password": ""}
    return post_with_token(client, "/admin/email/settings", data | {"mail_from": ""})


def own_server(app, url):
    with session_of(app) as session:
        session.get(Workspace, workspace_id(app)).smtp_url = url
        session.commit()


def test_private_and_local_addresses_are_refused_when_saved(app, signed_in):
    client = in_english(signed_in("owner"))
    for host in ("127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "0.0.0.0"):
        answer = smtp_form(client, host)
        assert answer.status_code == 400, host
        assert field_errors(answer.text, "host") == [PRIVATE]
    with session_of(app) as session:
        assert session.get(Workspace, workspace_id(app)).smtp_url is None
    assert smtp_form(client, "8.8.8.8").status_code == 302


class TestAnOperatorsAllowList:
    @pytest.fixture
    def app(self, make_app):
        return make_app(outbound_allow=("10.0.0.0/8",))

    def test_it_lets_an_on_premise_server_in(self, app, signed_in):
        client = in_english(signed_in("owner"))
        assert smtp_form(client, "10.1.2.3").status_code == 302
        assert field_errors(smtp_form(client, "127.0.0.1").text, "host") == [PRIVATE]


def test_the_connection_test_refuses_a_name_of_a_local_address(app, signed_in, smtp):
    client = in_english(signed_in("admin"))
    own_server(app, smtp.url.replace("127.0.0.1", "localhost"))
    post_with_token(client, "/admin/email/settings/test")
    page = client.get("/admin/email/settings").text
    assert "Could not connect" in page and "private or local" in page


def test_the_sender_does_not_reach_a_workspaces_local_server(make_app, smtp):
    smtp.mailbox.clear()
    app = make_app(smtp_url=smtp.url, public_base_url="https://harpoon.example")
    contact = add_emailed_contact(app, "王伟", "wang@example.com")
    template = add_email_template(app)
    enrol(app, email_journey(app, template), "mail", contact_id=contact)
    own_server(app, smtp.url.replace("127.0.0.1", "localhost"))  # a tenant's input
    run_journeys(app)

    with session_of(app) as session:
        (row,) = session.scalars(select(EmailMessage)).all()
    assert row.status == EmailStatus.PLANNED
    assert row.reason.startswith("unreachable: localhost: A private or local address")
    assert smtp.mailbox.received == 0

    own_server(app, None)  # the service's own server (HARPOON_SMTP_URL) is the operator's
    later = utcnow() + email_sending.RETRY_MAX
    with session_of(app) as session:
        workspace = session.get(Workspace, workspace_id(app))
        mailer = mailer_for(workspace, default_url=smtp.url, default_sender="h@harpoon.local")
        sender = email_sending.Sender(mailer, "https://harpoon.example", "s" * 32)
        result, _more = email_sending.deliver_due(session, workspace.id, sender, lambda: later)
    assert result.sent == 1 and smtp.mailbox.received == 1
