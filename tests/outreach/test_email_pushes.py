"""Email pushes against a real SMTP server (the sandbox's sink): planned in one statement
(members with an address planned, the others skipped with the reason), sent in batches
under the rate limit by a real worker, resumed after a crash without sending anyone
twice, an unreachable server waited out, and the report's counts."""

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.jobs import Job
from models import (
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    Push,
    PushStatus,
    SavedSegment,
    SuppressionReason,
    utcnow,
)
from outreach import email_pushes, email_sending, pushes
from outreach.email_sending import Reason, Sender
from outreach.mail import MailConnection, Mailer
from tests.factories import add_email_template, add_emailed_contact, workspace_id
from tests.helpers import harpoon_of, run_jobs, session_of

BASE = "https://harpoon.example"


@pytest.fixture
def app(make_app, smtp):
    smtp.mailbox.clear()
    return make_app(smtp_url=smtp.url, public_base_url=BASE, email_rate_per_minute=0)


def sender_of(url: str, connect=MailConnection) -> Sender:
    return Sender(Mailer(url, "Harpoon <noreply@harpoon.local>"), BASE, "s" * 32, connect)


def audience(app, emailed: int, *, without=0, suppressed=0) -> dict:
    """CIOs: `emailed` with an address, `without` none, `suppressed` unsubscribed; and a
    CTO with an address, outside the segment."""
    ws = workspace_id(app)
    people = {
        "emailed": [
            add_emailed_contact(app, f"王{n}", f"wang{n}@example.com", role="cio")
            for n in range(emailed)
        ],
        "without": [add_emailed_contact(app, f"赵{n}", None, role="cio") for n in range(without)],
        "suppressed": [
            add_emailed_contact(app, f"李{n}", f"Li{n}@example.com", role="cio")
            for n in range(suppressed)
        ],
        "outside": add_emailed_contact(app, "陈", "chen@example.com", role="cto"),
    }
    template = add_email_template(app, name=f"白皮书{ws}-{len(people['emailed'])}")
    with session_of(app) as session:
        for n in range(suppressed):
            session.add(
                EmailSuppression(
                    workspace_id=ws,
                    address=f"li{n}@example.com",
                    reason=SuppressionReason.UNSUBSCRIBED,
                )
            )
        segment = SavedSegment(workspace_id=ws, name="CIOs", document={"roles": ["cio"]})
        session.add(segment)
        session.flush()
        push = Push(
            workspace_id=ws,
            channel_id=None,
            name="白皮书",
            content={"type": "email", "email_template_id": template},
            segment_id=segment.id,
            status=PushStatus.SCHEDULED,
        )
        session.add(push)
        session.commit()
        people["push"] = push.id
    return people


def load_push(app, push_id) -> Push:
    with session_of(app) as session:
        return session.get(Push, push_id)


def rows(app, push_id) -> list[EmailMessage]:
    with session_of(app) as session:
        return session.scalars(
            select(EmailMessage).where(EmailMessage.push_id == push_id).order_by(EmailMessage.id)
        ).all()


def received(smtp) -> list[str]:
    return sorted(r for message in smtp.mailbox.messages for r in message.recipients)


def run(app, push_id, sender, **kwargs) -> str:
    with session_of(app) as session:
        return email_pushes.run_email_push(session, push_id, sender, 10_000, 0, **kwargs)


def test_an_email_push_plans_in_one_go_and_a_worker_sends_it_and_reports(app, smtp):
    people = audience(app, 3, without=1, suppressed=1)

    harpoon_of(app).queue.enqueue(Job.SEND_PUSH, people["push"])
    run_jobs(app)

    push = load_push(app, people["push"])
    assert push.status == PushStatus.SENT and push.finished_at is not None
    assert push.targeted == 5
    assert received(smtp) == ["wang0@example.com", "wang1@example.com", "wang2@example.com"]
    report = push.report
    assert report["planned"] == {"email": 3} and report["sent"] == {"email": 3}
    assert report["skipped"] == {Reason.NO_ADDRESS: 1, "suppressed: unsubscribed": 1}
    assert report["failed"] == {} and (report["opened"], report["clicked"]) == (0, 0)
    messages = rows(app, people["push"])
    assert {m.idempotency_key for m in messages} == {
        f"push:{people['push']}:{c}" for c in people["emailed"] + people["without"]
    } | {f"push:{people['push']}:{c}" for c in people["suppressed"]}
    assert len({m.token for m in messages}) == 5 and all(len(m.token) == 32 for m in messages)

    # Opens and clicks (mweb's tracking routes set them) show in the report.
    with session_of(app) as session:
        first, second = [m.id for m in messages if m.status == EmailStatus.SENT][:2]
        session.execute(
            update(EmailMessage).where(EmailMessage.id == first).values(opened_at=utcnow())
        )
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == second)
            .values(opened_at=utcnow(), clicked_at=utcnow())
        )
        session.commit()
        report = email_pushes.email_report(session, session.get(Push, people["push"]))
    assert (report["opened"], report["clicked"]) == (2, 1)


def test_batches_go_under_the_rate_limit(app, smtp):
    people = audience(app, 5)
    waits = []

    status = run(app, people["push"], sender_of(smtp.url), batch_size=2)
    assert status == PushStatus.SENT
    assert smtp.mailbox.received == 5

    # The same again under a limit: the dispatcher waits after each batch to keep the pace.
    with session_of(app) as session:
        first = session.get(Push, people["push"])
        again = Push(
            workspace_id=first.workspace_id,
            name="再发一次",
            content=first.content,
            segment_id=first.segment_id,
            status=PushStatus.SCHEDULED,
        )
        session.add(again)
        session.commit()
        email_pushes.run_email_push(
            session,
            again.id,
            sender_of(smtp.url),
            10_000,
            6,  # one every 10 seconds
            pace=waits.append,
            batch_size=2,
        )
    # 2, 4 and 5 messages: 20, 40 and 50 seconds from the start, less the time the
    # sending took (the waits here do not sleep)
    assert len(waits) == 3
    assert all(due - 10 < wait <= due for wait, due in zip(waits, (20, 40, 50), strict=True))
    assert smtp.mailbox.received == 10


def test_a_push_resumed_after_a_crash_sends_no_one_twice(app, smtp):
    """The worker dies as the second batch goes out, while the third is already claimed
    (prepared while the second was on the wire): both are failed on resume, the fourth is
    sent, nobody gets it twice."""
    people = audience(app, 8)
    connections = []

    def dies_on_the_second_batch(url):
        connections.append(url)
        if len(connections) == 2:
            raise SystemExit("killed")  # the worker dies between the claim and the send
        return MailConnection(url)

    with pytest.raises(SystemExit):
        run(app, people["push"], sender_of(smtp.url, dies_on_the_second_batch), batch_size=2)
    assert smtp.mailbox.received == 2
    statuses = [m.status for m in rows(app, people["push"])]
    assert statuses == ["sent"] * 2 + ["sending"] * 4 + ["planned"] * 2
    assert load_push(app, people["push"]).status == PushStatus.SENDING

    # Another worker right away: the push's heartbeat holds it.
    assert run(app, people["push"], sender_of(smtp.url)) == "not_due"
    # Once quiet, the sweeper's due_pushes hands it back and it is resumed.
    later = utcnow() + pushes.STALE_AFTER + timedelta(seconds=1)
    with session_of(app) as session:
        assert people["push"] in pushes.due_pushes(session, later)
    # The rest is sent; the claimed rows are left alone while their lease runs (their
    # worker might only be slow), so the push is not done yet.
    assert run(app, people["push"], sender_of(smtp.url), now=lambda: later) == PushStatus.SENDING
    statuses = [m.status for m in rows(app, people["push"])]
    assert statuses == ["sent"] * 2 + ["sending"] * 4 + ["sent"] * 2
    # Once their lease is over they are failed as interrupted, never sent again.
    after_lease = utcnow() + email_sending.SEND_LEASE + timedelta(seconds=1)
    assert run(app, people["push"], sender_of(smtp.url), now=lambda: after_lease) == "sent"

    messages = rows(app, people["push"])
    assert [m.status for m in messages] == ["sent"] * 2 + ["failed"] * 4 + ["sent"] * 2
    assert {m.reason for m in messages if m.status == "failed"} == {Reason.INTERRUPTED}
    assert smtp.mailbox.received == 4 and len(set(received(smtp))) == 4
    report = load_push(app, people["push"]).report
    assert report["sent"] == {"email": 4} and report["failed"] == {Reason.INTERRUPTED: 4}


def test_an_unreachable_server_holds_the_push_until_it_answers_and_bounces_suppress(app, smtp):
    people = audience(app, 3)
    bouncing = add_emailed_contact(app, "查无此人", "nobody@bounce.invalid", role="cio")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"smtp://127.0.0.1:{probe.getsockname()[1]}"
    now = utcnow()

    assert run(app, people["push"], sender_of(closed), now=lambda: now) == PushStatus.SENDING
    messages = rows(app, people["push"])
    assert {m.status for m in messages} == {EmailStatus.PLANNED}
    assert {m.attempts for m in messages} == {1}
    assert all(m.reason.startswith(Reason.UNREACHABLE) for m in messages)
    assert load_push(app, people["push"]).report["planned"] == {"email": 4}

    later = now + pushes.STALE_AFTER + timedelta(seconds=1)
    assert run(app, people["push"], sender_of(smtp.url), now=lambda: later) == PushStatus.SENT
    assert received(smtp) == ["wang0@example.com", "wang1@example.com", "wang2@example.com"]
    by_contact = {m.contact_id: m for m in rows(app, people["push"])}
    assert by_contact[bouncing].status == EmailStatus.FAILED
    report = load_push(app, people["push"]).report
    assert report["sent"] == {"email": 3} and report["failed"] == {Reason.BOUNCED: 1}
    with session_of(app) as session:
        assert session.scalars(select(EmailSuppression.address)).all() == ["nobody@bounce.invalid"]


def test_a_push_whose_template_is_gone_fails_with_the_reason(app, smtp):
    people = audience(app, 1)
    with session_of(app) as session:
        push = session.get(Push, people["push"])
        push.content = {"type": "email", "email_template_id": 10**6}
        session.commit()
    assert run(app, people["push"], sender_of(smtp.url)) == PushStatus.FAILED
    assert "template" in load_push(app, people["push"]).error
    assert smtp.mailbox.received == 0


def test_a_long_wait_on_the_rate_limit_keeps_the_push_from_a_second_worker(app, smtp):
    """Ten minutes of waiting (ten messages at one a minute) are longer than the heartbeat
    lasts (pushes.STALE_AFTER): the dispatcher renews it while it waits, so no second
    worker takes the push meanwhile."""
    people = audience(app, 10)
    clock = [utcnow()]
    taken = []

    def pace(seconds):
        clock[0] += timedelta(seconds=seconds)
        with session_of(app) as other:  # the sweeper's next worker, at this moment
            taken.append(pushes.claim_push(other, people["push"], clock[0]))

    with session_of(app) as session:
        status = email_pushes.run_email_push(
            session,
            people["push"],
            sender_of(smtp.url),
            10_000,
            1,
            now=lambda: clock[0],
            pace=pace,
            batch_size=10,
        )
    assert status == PushStatus.SENT and smtp.mailbox.received == 10
    assert len(taken) >= 9 and not any(taken)


def test_rows_another_worker_claimed_meanwhile_are_not_sent_again(app, smtp):
    """Two workers prepare the same batch; the second's claim takes only rows still
    planned, so it sends nothing the first claimed."""
    people = audience(app, 3)
    ws = workspace_id(app)
    with session_of(app) as session:
        push = session.get(Push, people["push"])
        email_pushes.plan_email_push(session, push, utcnow())
        session.commit()
    ids = [m.id for m in rows(app, people["push"])]

    with session_of(app) as session:

        def the_other_worker_claims_first():  # between this worker's prepare and its claim
            session.execute(
                update(EmailMessage)
                .where(EmailMessage.id.in_(ids[:2]))
                .values(status=EmailStatus.SENDING)
            )
            return utcnow()

        ready = email_sending.claim_batch(
            session,
            ws,
            ids,
            sender_of(smtp.url),
            the_other_worker_claims_first,
            email_sending.SendResult(),
        )
    assert [item.id for item in ready] == ids[2:]
    assert [m.attempts for m in rows(app, people["push"])] == [0, 0, 1]
