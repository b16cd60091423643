"""An email push to 100,000 recipients, planned on PostgreSQL and sent to a local SMTP sink,
against a bare smtplib loop sending the same messages in the same run, with journeys
sending their own emails meanwhile.

    .venv/bin/python bench/email_push.py [--recipients N] [--traffic-people P] [--batch B]

Seeds N contacts with an email address (0.5 % without one, 0.5 % unsubscribed), a
segment of them all and a Chinese email template, in a throwaway PostgreSQL database.
The SMTP sink (wechat.sandbox.mailbox.SmtpSink) runs in its own process. Meanwhile a
traffic process walks a live journey (send_email, then a tag) for P other contacts of
another workspace, R enrolled a second (--traffic-rate, 20), and delivers their emails
to the same sink (runner.run_due + email_sending.deliver_due, as the run_journeys and
send_emails jobs do), for the whole run.

Timed, ours: `plan_email_push` (one INSERT ... SELECT) and `dispatch_email_push` (every
batch: prepared in a few queries, claimed in one UPDATE and committed, rendered and sent
over one SMTP session, recorded in batched UPDATEs), under no rate limit. Bare: the same
recipients' messages, built beforehand the same way (not timed), sent with one smtplib session in a
loop. Ratio: ours / bare messages per second. Goal >= 0.7.
"""

import argparse
import multiprocessing
import smtplib
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench.callback_ingest import DEFAULT_DATABASE_URL, bench_database  # noqa: E402
from bench.scoring import insert_people, new_workspace  # noqa: E402
from journeys import runner  # noqa: E402
from models import (  # noqa: E402
    Database,
    EmailMessage,
    EmailStatus,
    EmailTemplate,
    Journey,
    JourneyStatus,
    JourneyVersion,
    Push,
    PushStatus,
    SavedSegment,
    migrate,
    utcnow,
)
from outreach import email_pushes, email_sending  # noqa: E402
from outreach.emails import Tracking, compose, person_variables, render  # noqa: E402
from outreach.mail import Mailer  # noqa: E402
from outreach.segments import Segment  # noqa: E402

SENDER = "Harpoon <noreply@harpoon.local>"
BASE = "https://harpoon.example"
SECRET = "bench-secret-" * 3
GOAL = 0.7
SUBJECT = "{{ name }}，{{ company }} 的云迁移白皮书已备好"
BODY = """<html><body style="font-family:sans-serif">
<p>{{ name }} 您好：</p>
<p>感谢您关注华东区 CIO 闭门会。{{ owner or "我们" }} 为 {{ company }} 准备了
《2026 制造业云迁移白皮书》，其中有 12 家同行的迁移路线与成本对比。</p>
<p><a href="https://harpoon.example/whitepaper?from=email">下载白皮书</a> ·
<a href="https://harpoon.example/events/cio-roundtable">报名下一场闭门会</a></p>
<p>如有问题，直接回复这封邮件即可。</p>
<p>—— 鱼叉营销团队</p>
</body></html>"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--traffic-people", type=int, default=5_000)
    parser.add_argument(
        "--traffic-rate", type=int, default=20, help="journey enrolments a second meanwhile"
    )
    parser.add_argument("--batch", type=int, default=email_sending.BATCH)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sink_process(port: int, stop) -> None:
    from wechat.sandbox.mailbox import SmtpSink

    with SmtpSink(port=port) as sink:
        stop.wait()
        print(f"sink: {sink.mailbox.received:,} messages received", flush=True)


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the SMTP sink did not start")


# --- seeding ------------------------------------------------------------------------------


def seed_email_people(db: Database, ws: int, n: int) -> None:
    """n contacts over n/10 accounts; an email address for all but every 200th; every
    200th (offset 1) unsubscribed."""
    insert_people(db, ws, max(1, n // 10), n)
    with db.session() as session:
        params = {"ws": ws, "now": utcnow()}
        session.execute(
            text(
                """
                INSERT INTO identities (workspace_id, contact_id, kind, value, created_at)
                SELECT :ws, id, 'email', 'person' || id || '@example.com', :now
                FROM contacts WHERE workspace_id = :ws AND id % 200 <> 0
                """
            ),
            params,
        )
        session.execute(
            text(
                """
                INSERT INTO email_suppressions (workspace_id, address, reason, created_at)
                SELECT :ws, 'person' || id || '@example.com', 'unsubscribed', :now
                FROM contacts WHERE workspace_id = :ws AND id % 200 = 1
                """
            ),
            params,
        )
        session.commit()


def template_of(db: Database, ws: int) -> int:
    with db.session() as session:
        template = EmailTemplate(workspace_id=ws, name="白皮书", subject=SUBJECT, body_html=BODY)
        session.add(template)
        session.commit()
        return template.id


def seed_push(db: Database, n: int) -> tuple[int, int]:
    ws = new_workspace(db, "bench-email-push")
    seed_email_people(db, ws, n)
    template_id = template_of(db, ws)
    with db.session() as session:
        roles = ("cio", "cto", "engineer", "procurement", "finance", "it_manager")
        segment = SavedSegment(
            workspace_id=ws, name="everyone", document=Segment(roles=roles).to_document()
        )
        session.add(segment)
        session.flush()
        push = Push(
            workspace_id=ws,
            name="白皮书",
            content={"type": "email", "email_template_id": template_id},
            segment_id=segment.id,
            status=PushStatus.SENDING,
        )
        session.add(push)
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        return ws, push.id


def seed_traffic(db: Database, n: int) -> tuple[int, int]:
    """Another workspace with a live journey: send_email, then a tag."""
    ws = new_workspace(db, "bench-email-traffic")
    seed_email_people(db, ws, n)
    template_id = template_of(db, ws)
    with db.session() as session:
        from crm.tags import TagBook
        from models import TagGroup

        tag = TagBook(session, ws).get(session, TagGroup.BEHAVIOR, "收到白皮书")
        journey = Journey(workspace_id=ws, name="白皮书", status=JourneyStatus.LIVE, live_version=1)
        session.add(journey)
        session.flush()
        document = {
            "reentry": "always",
            "nodes": [
                {"id": "start", "type": "entry", "trigger": {"kind": "manual"}, "next": "mail"},
                {
                    "id": "mail",
                    "type": "action",
                    "action": {"kind": "send_email", "email_template_id": template_id},
                    "next": "tag",
                },
                {
                    "id": "tag",
                    "type": "action",
                    "action": {"kind": "add_tag", "tag_id": tag.id},
                    "next": "done",
                },
                {"id": "done", "type": "exit"},
            ],
        }
        session.add(JourneyVersion(journey_id=journey.id, version=1, document=document))
        session.commit()
        return ws, journey.id


def traffic_process(
    url: str, key: str, ws: int, journey_id: int, smtp_url: str, rate: int, stop, out
):
    """Every second: enrol `rate` more contacts, walk the journey, send its emails."""
    db = Database()
    db.configure(url, (key,))
    sender = email_sending.Sender(Mailer(smtp_url, SENDER), BASE, SECRET)
    steps = sent = rounds = 0
    offset = 0
    while not stop.is_set():
        started = time.monotonic()
        with db.session() as session:
            session.execute(
                text(
                    """
                    INSERT INTO enrolments (workspace_id, journey_id, version, contact_id,
                        node_id, status, next_run_at, visit, entered_at, entered_node,
                        entered_because)
                    SELECT :ws, :j, 1, id, 'start', 'active', now(), 1, now(), 'start',
                        '{"kind": "manual"}'
                    FROM contacts WHERE workspace_id = :ws ORDER BY id LIMIT :n OFFSET :o
                    """
                ),
                {"ws": ws, "j": journey_id, "o": offset, "n": rate},
            )
            session.commit()
            offset += rate
            steps += runner.run_due(session, ws, batch_size=100).steps
            result, _more = email_sending.deliver_due(session, ws, sender)
            sent += result.sent
        rounds += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    db.dispose()
    out.put((rounds, steps, sent))


# --- the two senders ------------------------------------------------------------------------


def ours(db: Database, push_id: int, smtp_url: str, batch: int) -> tuple[float, float, dict]:
    sender = email_sending.Sender(Mailer(smtp_url, SENDER), BASE, SECRET)
    with db.session() as session:
        push = session.get(Push, push_id)
        started = time.perf_counter()
        email_pushes.plan_email_push(session, push, utcnow())
        session.commit()
        planned = time.perf_counter() - started
        started = time.perf_counter()
        email_pushes.dispatch_email_push(session, push, sender, 0, batch_size=batch)
        dispatched = time.perf_counter() - started
        return planned, dispatched, push.report


def bare_messages(db: Database, ws: int, rows: list) -> list[tuple[str, bytes]]:
    """The same recipients' messages, rendered and built as ours are, as bytes."""
    with db.session() as session:
        template = session.scalar(select(EmailTemplate).where(EmailTemplate.workspace_id == ws))
        subject, body = template.subject, template.body_html
    built = []
    for token, address, name in rows:
        variables = person_variables(
            name=name, company="华信科技", title="", email=address, phone="", owner=""
        )
        tracking = Tracking(BASE, SECRET, token)
        variables["unsubscribe_url"] = tracking.unsubscribe_url
        composed = compose(
            render(subject, body, variables), sender=SENDER, to=address, tracking=tracking
        )
        built.append((address, composed.data))
    return built


def bare(smtp_url: str, db: Database, ws: int, rows: list, chunk: int = 10_000) -> float:
    """One smtplib session, a loop of sendmail; the messages built beforehand (untimed)."""
    host, port = smtp_url.removeprefix("smtp://").split(":")
    seconds = 0.0
    smtp = smtplib.SMTP(host, int(port))
    try:
        for start in range(0, len(rows), chunk):
            messages = bare_messages(db, ws, rows[start : start + chunk])
            started = time.perf_counter()
            for address, data in messages:
                smtp.sendmail("noreply@harpoon.local", [address], data)
            seconds += time.perf_counter() - started
    finally:
        smtp.quit()
    return seconds


def main() -> int:
    args = parse_args()
    port = free_port()
    smtp_url = f"smtp://127.0.0.1:{port}"
    stop_sink = multiprocessing.Event()
    sink = multiprocessing.Process(target=sink_process, args=(port, stop_sink))
    sink.start()
    wait_for_port(port)
    key = Fernet.generate_key().decode()
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (key,))
        stop_traffic = multiprocessing.Event()
        traffic_out = multiprocessing.Queue()
        traffic = None
        try:
            started = time.perf_counter()
            ws, push_id = seed_push(db, args.recipients)
            traffic_ws, journey_id = seed_traffic(db, args.traffic_people)
            print(
                f"seeded {args.recipients:,} recipients and {args.traffic_people:,} journey "
                f"contacts in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            traffic = multiprocessing.Process(
                target=traffic_process,
                args=(
                    url,
                    key,
                    traffic_ws,
                    journey_id,
                    smtp_url,
                    args.traffic_rate,
                    stop_traffic,
                    traffic_out,
                ),
            )
            traffic.start()

            # The bare loop first (it reads the recipients the way ours will plan them).
            with db.session() as session:
                rows = session.execute(
                    text(
                        """
                        SELECT md5(c.id::text), i.value, c.name FROM contacts c
                        JOIN identities i ON i.contact_id = c.id AND i.kind = 'email'
                        WHERE c.workspace_id = :ws AND c.id % 200 <> 1 ORDER BY c.id
                        """
                    ),
                    {"ws": ws},
                ).all()
            bare_seconds = bare(smtp_url, db, ws, rows)
            bare_rate = len(rows) / bare_seconds
            print(f"bare smtplib loop: {len(rows):,} messages in {bare_seconds:.1f} s", flush=True)

            planned, dispatched, report = ours(db, push_id, smtp_url, args.batch)
            stop_traffic.set()
            traffic_rounds, traffic_steps, traffic_sent = traffic_out.get(timeout=120)
            traffic.join()
            with db.session() as session:
                sent = session.scalar(
                    select(func.count()).where(
                        EmailMessage.push_id == push_id, EmailMessage.status == EmailStatus.SENT
                    )
                )
        finally:
            stop_traffic.set()
            if traffic is not None and traffic.is_alive():
                traffic.join(timeout=30)
            db.dispose()
    stop_sink.set()
    sink.join(timeout=30)

    ours_seconds = planned + dispatched
    ours_rate = sent / ours_seconds
    ratio = ours_rate / bare_rate
    print(f"report: {report}")
    print(
        f"ours: planned {report['targeted']:,} in {planned:.1f} s, sent {sent:,} in "
        f"{dispatched:.1f} s (batches of {args.batch})"
    )
    print(
        f"traffic meanwhile: {traffic_rounds} rounds, {traffic_steps:,} journey steps, "
        f"{traffic_sent:,} journey emails sent"
    )
    print(
        f"| email push, {sent:,} sent: plan + send | {ours_seconds:.1f} s | "
        f"{ours_rate:,.0f} msg/s |"
    )
    print(f"| bare smtplib loop, same messages | {bare_seconds:.1f} s | {bare_rate:,.0f} msg/s |")
    verdict = "PASS" if ratio >= GOAL else "FAIL"
    print(f"| ours / bare | {ratio:.2f} | >= {GOAL} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
