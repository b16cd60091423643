"""Journey emails against a real SMTP server (the sandbox's aiosmtpd sink), run by real
workers: the journey step decides (an EmailMessage row, planned, in the runner's
transaction), the sender job delivers after the commit, exactly once across a rerun and a
crash; suppressed and address-less contacts and a template naming an unknown variable are
skipped with their reasons; an unreachable server is recorded and retried; a 550 bounce
fails the message and suppresses the address while the batch goes on."""

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.jobs import Job
from models import (
    Contact,
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    Enrolment,
    IdentityKind,
    Step,
    SuppressionReason,
    User,
    Workspace,
    utcnow,
)
from outreach import email_sending
from outreach.email_sending import Reason, Sender
from outreach.email_variables import contact_variables
from outreach.emails import render
from outreach.mail import MailConnection, Mailer
from tests.factories import (
    add_email_template,
    add_emailed_contact,
    add_identity,
    enrol,
    make_account,
    make_journey,
    make_user,
    workspace_id,
)
from tests.helpers import harpoon_of, queued_jobs, run_jobs, session_of

SENDER = "Harpoon <noreply@harpoon.local>"
BASE = "https://harpoon.example"
SECRET = "s" * 32


@pytest.fixture
def app(make_app, smtp):
    smtp.mailbox.clear()
    return make_app(smtp_url=smtp.url, public_base_url=BASE)


def email_journey(app, template_id: int, name: str = "白皮书邮件") -> int:
    document = {
        "nodes": [
            {"id": "start", "type": "entry", "trigger": {"kind": "manual"}, "next": "mail"},
            {
                "id": "mail",
                "type": "action",
                "action": {"kind": "send_email", "email_template_id": template_id},
                "next": "done",
            },
            {"id": "done", "type": "exit"},
        ]
    }
    return make_journey(app, name, document=document)


def run_journeys(app) -> None:
    """The journey job, as the drain asks for it; its follow-ups run in the same burst."""
    harpoon_of(app).queue.enqueue(Job.RUN_JOURNEYS, workspace_id(app))
    run_jobs(app)


def messages(app) -> list[EmailMessage]:
    with session_of(app) as session:
        return session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()


def by_contact(app) -> dict[int, EmailMessage]:
    return {row.contact_id: row for row in messages(app)}


def step_of(app, row: EmailMessage) -> Step:
    with session_of(app) as session:
        return session.get(Step, row.step_id)


def sender_of(url: str, connect=MailConnection) -> Sender:
    return Sender(Mailer(url, SENDER), BASE, SECRET, connect)


def deliver(app, sender: Sender, at=None) -> email_sending.SendResult:
    at = at or utcnow()
    with session_of(app) as session:
        result, _more = email_sending.deliver_due(session, workspace_id(app), sender, lambda: at)
    return result


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"smtp://127.0.0.1:{port}"  # nobody listens once the probe is closed


def test_a_journey_email_is_decided_in_the_run_and_sent_after_its_commit_once(app, smtp):
    owner = make_user(app, "sales", email="zhang@acme.example")
    with session_of(app) as session:
        session.get(User, owner).name = "张三"
        session.commit()
    account = make_account(app, "华信科技", owner_id=owner)
    wang = add_emailed_contact(app, "王伟", "Wang.Wei@example.com", account_id=account)
    template = add_email_template(app)
    journey = email_journey(app, template)
    enrol(app, journey, "mail", contact_id=wang)

    # The decision alone: a planned row, a send_emails job asked for, nothing sent yet.
    from journeys import runner

    with session_of(app) as session:
        result = runner.run_due(session, workspace_id(app))
    assert result.queued == 1
    assert (Job.SEND_EMAILS, workspace_id(app)) in result.followups.jobs
    (row,) = messages(app)
    assert (row.status, row.attempts, row.step_id is not None) == (EmailStatus.PLANNED, 0, True)
    assert step_of(app, row).outcome == "queued"
    assert smtp.mailbox.received == 0

    # The sender, through a real worker: the claim is on record before the SMTP session.
    seen_at_connect = []

    def connect(url):
        with session_of(app) as session:
            seen_at_connect.append(session.get(EmailMessage, row.id).status)
        return MailConnection(url)

    with session_of(app) as session:
        sent = email_sending.deliver_due(session, workspace_id(app), sender_of(smtp.url, connect))
    assert seen_at_connect == [EmailStatus.SENDING]
    assert sent[0].sent == 1

    (mail,) = smtp.mailbox.to("Wang.Wei@example.com")
    message = mail.message()
    assert message["Subject"] == "王伟，华信科技 的云迁移白皮书"
    assert message["List-Unsubscribe"] == f"<{BASE}/e/{row.token}/u>"
    html = message.get_body(("html",)).get_content()
    assert "张三 为您准备了" in html and f"{BASE}/e/{row.token}/o.gif" in html
    assert f"{BASE}/e/{row.token}/c?u=" in html
    (row,) = messages(app)
    assert (row.status, row.attempts, row.to_address) == (
        EmailStatus.SENT,
        1,
        "Wang.Wei@example.com",
    )
    assert row.message_id == message["Message-ID"].strip()
    step = step_of(app, row)
    assert step.outcome == "done" and step.detail["message"] is True
    assert step.detail["email"] == "sent"

    # Run it all again, jobs and all: nothing is decided or sent twice.
    run_journeys(app)
    harpoon_of(app).queue.enqueue(Job.SEND_EMAILS, workspace_id(app))
    run_jobs(app)
    assert smtp.mailbox.received == 1 and len(messages(app)) == 1


def test_the_worker_sends_what_the_journey_job_decided(app, smtp):
    wang = add_emailed_contact(app, "王伟", "wang@example.com")
    journey = email_journey(app, add_email_template(app))
    enrol(app, journey, "mail", contact_id=wang)

    run_journeys(app)  # run_journeys asks for send_emails; the burst runs both

    assert [m.recipients for m in smtp.mailbox.messages] == [["wang@example.com"]]
    assert queued_jobs(app) == []
    (row,) = messages(app)
    assert row.status == EmailStatus.SENT and step_of(app, row).outcome == "done"


def test_a_sender_that_died_mid_send_leaves_the_email_failed_never_sent_twice(app, smtp):
    wang = add_emailed_contact(app, "王伟", "wang@example.com")
    journey = email_journey(app, add_email_template(app))
    enrol(app, journey, "mail", contact_id=wang)
    from journeys import runner

    with session_of(app) as session:
        runner.run_due(session, workspace_id(app))
    (row,) = messages(app)

    # What a sender killed between its claim and its record leaves: `sending`, leased.
    def crash(url):
        raise SystemExit("killed")

    with pytest.raises(SystemExit), session_of(app) as session:
        email_sending.deliver_due(session, workspace_id(app), sender_of(smtp.url, crash))
    (row,) = messages(app)
    assert row.status == EmailStatus.SENDING and row.next_attempt_at > utcnow()

    assert deliver(app, sender_of(smtp.url)).sent == 0  # still leased: left alone
    later = utcnow() + email_sending.SEND_LEASE + timedelta(seconds=1)
    result = deliver(app, sender_of(smtp.url), later)

    assert (result.sent, result.interrupted) == (0, 1)
    (row,) = messages(app)
    assert (row.status, row.reason) == (EmailStatus.FAILED, Reason.INTERRUPTED)
    step = step_of(app, row)
    assert step.outcome == "failed" and step.detail["error"] == Reason.INTERRUPTED
    assert step.detail["message"] is False
    assert smtp.mailbox.received == 0


def test_suppressed_addressless_and_unrenderable_are_skipped_with_their_reasons(app, smtp):
    ws = workspace_id(app)
    sent = add_emailed_contact(app, "王伟", "wang@example.com")
    gone = add_emailed_contact(app, "李娜", "Li.Na@example.com")
    nowhere = add_emailed_contact(app, "赵敏", None)
    with session_of(app) as session:
        session.add(
            EmailSuppression(
                workspace_id=ws, address="li.na@example.com", reason=SuppressionReason.UNSUBSCRIBED
            )
        )
        session.commit()
    good = email_journey(app, add_email_template(app))
    template = add_email_template(app, name="坏模板", subject="{{ nickname }}，您好")
    broken = email_journey(app, template, "坏模板")
    for contact in (sent, gone, nowhere):
        enrol(app, good, "mail", contact_id=contact)
    enrol(app, broken, "mail", contact_id=sent)

    run_journeys(app)

    rows = messages(app)
    outcomes = sorted((row.contact_id, row.status, row.reason) for row in rows)
    assert outcomes == sorted(
        [
            (sent, EmailStatus.SENT, None),
            (sent, EmailStatus.SKIPPED, "template: unknown variable nickname"),
            (gone, EmailStatus.SKIPPED, "suppressed: unsubscribed"),
            (nowhere, EmailStatus.SKIPPED, Reason.NO_ADDRESS),
        ]
    )
    assert [m.recipients for m in smtp.mailbox.messages] == [["wang@example.com"]]
    failed_steps = [step_of(app, row) for row in rows if row.status == EmailStatus.SKIPPED]
    assert {step.outcome for step in failed_steps} == {"failed"}
    assert sorted(step.detail["error"] for step in failed_steps) == sorted(
        ["template: unknown variable nickname", "suppressed: unsubscribed", Reason.NO_ADDRESS]
    )


def test_an_unreachable_server_is_recorded_and_retried_and_the_run_goes_on(app, smtp):
    wang = add_emailed_contact(app, "王伟", "wang@example.com")
    li = add_emailed_contact(app, "李娜", "li@example.com")
    journey = email_journey(app, add_email_template(app))
    for contact in (wang, li):
        enrol(app, journey, "mail", contact_id=contact)
    from journeys import runner

    with session_of(app) as session:
        runner.run_due(session, workspace_id(app))
    now = utcnow()

    result = deliver(app, sender_of(closed_port_url()), now)

    assert (result.sent, result.retrying, result.unreachable) == (0, 2, True)
    rows = messages(app)
    assert {row.status for row in rows} == {EmailStatus.PLANNED}
    assert all(row.reason.startswith(Reason.UNREACHABLE) for row in rows)
    assert {row.attempts for row in rows} == {1}
    assert all(row.next_attempt_at >= now + email_sending.RETRY_BASE for row in rows)
    assert {step_of(app, row).outcome for row in rows} == {"queued"}
    assert {step_of(app, row).detail["email"] for row in rows} == {"retrying"}
    with session_of(app) as session:  # the journey itself went on to its exit
        assert {e.status for e in session.scalars(select(Enrolment))} == {"completed"}

    assert deliver(app, sender_of(smtp.url), now).sent == 0  # not due yet
    later = now + email_sending.RETRY_BASE + timedelta(seconds=1)
    assert deliver(app, sender_of(smtp.url), later).sent == 2
    assert deliver(app, sender_of(smtp.url), later + email_sending.RETRY_MAX).sent == 0
    assert sorted(r for m in smtp.mailbox.messages for r in m.recipients) == [
        "li@example.com",
        "wang@example.com",
    ]
    assert {(row.status, row.attempts) for row in messages(app)} == {(EmailStatus.SENT, 2)}


def test_retries_run_out_and_the_email_fails_with_the_reason(app, smtp):
    wang = add_emailed_contact(app, "王伟", "wang@example.com")
    enrol(app, email_journey(app, add_email_template(app)), "mail", contact_id=wang)
    from journeys import runner

    with session_of(app) as session:
        runner.run_due(session, workspace_id(app))
    at = utcnow()
    for _ in range(email_sending.MAX_ATTEMPTS):
        deliver(app, sender_of(closed_port_url()), at)
        at += email_sending.RETRY_MAX + timedelta(seconds=1)

    (row,) = messages(app)
    assert row.status == EmailStatus.FAILED and row.reason.startswith(Reason.UNREACHABLE)
    assert row.attempts == email_sending.MAX_ATTEMPTS
    assert step_of(app, row).outcome == "failed"
    assert deliver(app, sender_of(smtp.url), at + email_sending.RETRY_MAX).sent == 0


def test_a_550_bounce_fails_and_suppresses_and_a_451_is_retried_the_batch_goes_on(app, smtp):
    ws = workspace_id(app)
    bounced = add_emailed_contact(app, "查无此人", "nobody@bounce.invalid")
    busy = add_emailed_contact(app, "忙", "later@busy.invalid")
    fine = add_emailed_contact(app, "王伟", "wang@example.com")
    journey = email_journey(app, add_email_template(app))
    for contact in (bounced, busy, fine):
        enrol(app, journey, "mail", contact_id=contact)

    run_journeys(app)

    rows = by_contact(app)
    assert rows[bounced].status == EmailStatus.FAILED
    assert rows[bounced].reason.startswith("bounced: 550")
    assert rows[busy].status == EmailStatus.PLANNED and rows[busy].reason.startswith("451")
    assert rows[fine].status == EmailStatus.SENT
    assert [m.recipients for m in smtp.mailbox.messages] == [["wang@example.com"]]
    with session_of(app) as session:
        (suppression,) = session.scalars(select(EmailSuppression)).all()
    assert (suppression.workspace_id, suppression.address, suppression.reason) == (
        ws,
        "nobody@bounce.invalid",
        SuppressionReason.BOUNCED,
    )
    assert suppression.message_id == rows[bounced].id

    # The bounced address is skipped from now on, by any journey.
    again = email_journey(app, add_email_template(app, name="第二封"), "第二封")
    enrol(app, again, "mail", contact_id=bounced)
    run_journeys(app)
    newest = messages(app)[-1]
    assert (newest.status, newest.reason) == (EmailStatus.SKIPPED, "suppressed: bounced")


def test_compose_writes_the_message_build_message_does():
    """The bytes the sender writes itself read back as the email package's message:
    headers (the Chinese subject too), both parts, the tracking."""
    from email import message_from_bytes, policy

    from outreach.emails import Tracking, build_message, compose, render

    rendered = render(
        "{{ name }}，{{ company }} 的云迁移白皮书已备好，请查收附件中的完整版本",
        '<p>{{ name }} 您好</p><a href="https://x.cn/wp">白皮书</a>',
        {"name": "王伟", "company": "华信科技", "unsubscribe_url": ""},
    )
    tracking = Tracking(BASE, SECRET, "tok-123")
    sender = "鱼叉营销 <noreply@harpoon.local>"
    composed = compose(rendered, sender=sender, to="w@x.cn", tracking=tracking)
    built = build_message(rendered, sender=sender, to="w@x.cn", tracking=tracking)
    ours = message_from_bytes(composed.data, policy=policy.default)
    theirs = message_from_bytes(built.as_bytes(), policy=policy.default)

    assert all(len(line) <= 78 for line in composed.data.split(b"\r\n"))
    assert b"\n" not in composed.data.replace(b"\r\n", b"")
    for header in ("From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert str(ours[header]) == str(theirs[header]), header
    assert ours["Message-ID"].strip() == composed.message_id
    for kind in ("plain", "html"):
        mine, its = (m.get_body((kind,)).get_content().rstrip("\r\n") for m in (ours, theirs))
        assert mine == its, kind
    assert compose(rendered, sender=sender, to="王@例子.中国", tracking=tracking) is None


def set_mail_from(app, mail_from: str) -> None:
    with session_of(app) as session:
        session.get(Workspace, workspace_id(app)).mail_from = mail_from
        session.commit()


def test_a_refused_sender_suppresses_no_one_and_the_batch_waits_as_for_an_outage(app, smtp):
    """A 550 to MAIL FROM (a login the server wants, a sender address it will not take) is
    the server's problem: nobody is suppressed or failed, the emails wait and are retried."""
    set_mail_from(app, "Harpoon <noreply@refused.invalid>")
    first = add_emailed_contact(app, "王伟", "wang@example.com")
    second = add_emailed_contact(app, "李娜", "li@example.com")
    journey = email_journey(app, add_email_template(app))
    for contact in (first, second):
        enrol(app, journey, "mail", contact_id=contact)

    run_journeys(app)

    rows = messages(app)
    assert [m.status for m in rows] == [EmailStatus.PLANNED] * 2
    assert all(m.reason.startswith(f"{Reason.UNREACHABLE}: 550") for m in rows)
    assert smtp.mailbox.received == 0
    with session_of(app) as session:
        assert session.scalars(select(EmailSuppression)).all() == []

    # Once the sender is one the server takes, the retry sends both.
    set_mail_from(app, "Harpoon <noreply@harpoon.local>")
    later = utcnow() + email_sending.RETRY_MAX
    assert deliver(app, sender_of(smtp.url), later).sent == 2
    assert sorted(received for m in smtp.mailbox.messages for received in m.recipients) == [
        "li@example.com",
        "wang@example.com",
    ]


def test_a_refused_message_fails_alone_and_its_address_is_not_suppressed(app, smtp):
    """A 554 after DATA refuses that message (its size, its content), not the address."""
    rejected = add_emailed_contact(app, "内容", "someone@rejected.invalid")
    fine = add_emailed_contact(app, "王伟", "wang@example.com")
    journey = email_journey(app, add_email_template(app))
    for contact in (rejected, fine):
        enrol(app, journey, "mail", contact_id=contact)

    run_journeys(app)

    rows = by_contact(app)
    assert rows[rejected].status == EmailStatus.FAILED
    assert rows[rejected].reason.startswith(f"{Reason.REFUSED}: 554")
    assert rows[fine].status == EmailStatus.SENT
    with session_of(app) as session:
        assert session.scalars(select(EmailSuppression)).all() == []


def test_the_sent_email_is_the_previewed_one(app, smtp):
    """The preview's variables (email_variables) and the sender's agree: the account's name
    before the company the contact gave, the newest email address and phone."""
    account = make_account(app, "华信科技")
    contact = add_emailed_contact(
        app, "王伟", "old@example.com", account_id=account, company="华信"
    )
    add_identity(app, contact, IdentityKind.EMAIL, "New@Example.com")
    add_identity(app, contact, IdentityKind.PHONE, "13800000001")
    add_identity(app, contact, IdentityKind.PHONE, "13900000002")
    subject = "{{ company }} {{ email }} {{ phone }}"
    template = add_email_template(app, subject=subject)
    enrol(app, email_journey(app, template), "mail", contact_id=contact)

    run_journeys(app)

    with session_of(app) as session:
        variables = contact_variables(session, session.get(Contact, contact))
    previewed = render(subject, "<p>hi</p>", variables).subject
    assert previewed == "华信科技 New@Example.com 13900000002"
    (delivered,) = smtp.mailbox.messages
    assert delivered.recipients == ["New@Example.com"]
    assert delivered.message()["Subject"] == previewed
