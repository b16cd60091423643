"""A push to a million followers: planned on PostgreSQL and dispatched to the sandbox,
against the bare platform calls of the same batches in the same run.

    .venv/bin/python bench/push.py [--recipients N] [--over-quota F] [--calls-per-minute C]

Seeds N followers of one service OA (set-based SQL) and the same followers in an
in-process sandbox; a fraction F already had their 4 mass messages this month, half of
those wrote in within the hour (an open customer-service window). The push goes to a
segment (roles, so not one tag: openid batches of 10,000) with a template fallback.
Timed: `plan_push` (one INSERT ... SELECT and the batch numbering) and `dispatch_push`
(every batch, every single send, the monthly-quota upsert), with the time spent waiting
on the platform's ~60 mass calls a minute measured apart. Baseline: the same openid
batches posted straight to message/mass/send from a loop, paced the same way (next
month, so the quota is fresh). Checks that no follower got a fifth mass message.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

import fakeredis  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from bench.callback_ingest import DEFAULT_DATABASE_URL, bench_database  # noqa: E402
from bench.scoring import insert_people, new_workspace  # noqa: E402
from models import (  # noqa: E402
    Channel,
    Database,
    Push,
    PushBatch,
    PushRecipient,
    PushStatus,
    SavedSegment,
    migrate,
    utcnow,
)
from outreach import pushes  # noqa: E402
from outreach.segments import Segment  # noqa: E402
from wechat.clients import RetryPolicy, TokenStore, WeChatClients  # noqa: E402
from wechat.sandbox import create_sandbox, oa  # noqa: E402
from wechat.sandbox.core import Tenant  # noqa: E402

APP_ID, SECRET = "wxbenchpush000001", "bench-secret"
TARGET_SECONDS = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--over-quota", type=float, default=0.002)
    parser.add_argument(
        "--calls-per-minute",
        type=int,
        default=oa.MASS_CALLS_PER_MINUTE,
        help="the sandbox's mass-send calls a minute (the platform's is about 60)",
    )
    return parser.parse_args()


def serve(app) -> tuple[str, object]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def callback_sink(environ, start_response):
    """Where the sandbox delivers MASSSENDJOBFINISH: this bench reads results from the DB."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"success"]


def seed_database(db: Database, n: int, over_every: int) -> tuple[int, int, int]:
    ws = new_workspace(db, "bench-push")
    insert_people(db, ws, max(1, n // 10), n)
    now = utcnow()
    with db.session() as session:
        channel = Channel(
            workspace_id=ws,
            kind="oa",
            name="bench OA",
            app_id=APP_ID,
            account_type="service",
            token="token",
            secret=SECRET,
        )
        session.add(channel)
        session.flush()
        params = {"ws": ws, "ch": channel.id, "every": over_every, "now": now}
        session.execute(
            text(
                """
                INSERT INTO identities (workspace_id, contact_id, kind, channel_id, value,
                    following, created_at)
                SELECT :ws, id, 'openid', :ch, 'oBench' || id, true, :now
                FROM contacts WHERE workspace_id = :ws
                """
            ),
            params,
        )
        session.execute(
            text(
                """
                INSERT INTO mass_quota (channel_id, month, openid, received)
                SELECT :ch, :month, 'oBench' || id, 4 FROM contacts
                WHERE workspace_id = :ws AND id % :every = 0
                """
            ),
            {**params, "month": pushes.platform_month(now)},
        )
        session.execute(
            text(
                """
                INSERT INTO interactions (workspace_id, contact_id, channel_id, kind,
                    properties, engagement_minutes, occurred_at, created_at)
                SELECT :ws, id, :ch, 'wechat.message', '{}', 0, :now, :now FROM contacts
                WHERE workspace_id = :ws AND id % (:every * 2) = 0
                """
            ),
            params,
        )
        roles = ("cio", "cto", "engineer", "procurement", "finance", "it_manager")
        segment = SavedSegment(
            workspace_id=ws, name="everyone by role", document=Segment(roles=roles).to_document()
        )
        session.add(segment)
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        return ws, channel.id, segment.id


def seed_sandbox(state, callback_url: str, openids: list[str], over: set[str], window: set[str]):
    tenant = state.add_tenant(
        Tenant("oa", APP_ID, {"app": SECRET}, "token", "", callback_url, account_type="service")
    )
    oa_state = oa.state_of(tenant)
    now = state.now()
    for openid in openids:
        follower = oa.Follower(openid)
        if openid in over:
            follower.received = [oa.Received(oa.MASS, 0, "text", {}, now)] * 4
        if openid in window:
            oa._open_window(follower, oa.ServiceWindows.AFTER_MESSAGE, now)
        oa_state.followers[openid] = follower
    return tenant


def main() -> int:
    args = parse_args()
    oa.MASS_CALLS_PER_MINUTE = pushes.MASS_CALLS_PER_MINUTE = args.calls_per_minute
    over_every = max(1, round(1 / args.over_quota)) if args.over_quota else 10**12
    sandbox_app = create_sandbox()
    state = sandbox_app.extensions["sandbox"]
    sandbox_url, _ = serve(sandbox_app)
    sink_url, _ = serve(callback_sink)
    clients = WeChatClients(
        sandbox_url, TokenStore(fakeredis.FakeRedis()), RetryPolicy(busy_retries=0)
    )
    client = clients.oa(APP_ID, SECRET)
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (Fernet.generate_key().decode(),))
        try:
            started = time.perf_counter()
            ws, channel_id, segment_id = seed_database(db, args.recipients, over_every)
            with db.session() as session:
                rows = session.execute(
                    text("SELECT id FROM contacts WHERE workspace_id = :ws ORDER BY id"),
                    {"ws": ws},
                ).all()
                ids = [row[0] for row in rows]
            openids = [f"oBench{i}" for i in ids]
            over = {f"oBench{i}" for i in ids if i % over_every == 0}
            window = {f"oBench{i}" for i in ids if i % (over_every * 2) == 0}
            seed_sandbox(state, sink_url, openids, over, window)
            template_id = client.post(
                "template/api_add_template", data={"template_id_short": "TM0001"}
            )["template_id"]
            print(f"seeded {len(ids):,} followers in {time.perf_counter() - started:.0f} s")

            waited = []

            def pace(seconds: float) -> None:
                waited.append(seconds)
                time.sleep(seconds)

            with db.session() as session:
                push = Push(
                    workspace_id=ws,
                    channel_id=channel_id,
                    name="bench",
                    content={"type": "text", "text": "华东区 CIO 闭门会本周五举行。"},
                    segment_id=segment_id,
                    status=PushStatus.SENDING,
                    fallback_template={"template_id": template_id, "data": {"first": "邀请"}},
                )
                session.add(push)
                session.commit()
                started = time.perf_counter()
                pushes.plan_push(session, push, pushes.PushLimits())
                session.commit()
                plan_seconds = time.perf_counter() - started
                started = time.perf_counter()
                pushes.dispatch_push(session, push, client, pace=pace)
                dispatch_seconds = time.perf_counter() - started
                report = push.report
                batches = session.scalar(select(func.count()).where(PushBatch.push_id == push.id))
                mass_batches = session.scalars(
                    select(PushBatch)
                    .where(PushBatch.push_id == push.id, PushBatch.mechanism == "mass_openid")
                    .order_by(PushBatch.number)
                ).all()
                lists = [
                    session.scalars(
                        select(PushRecipient.openid).where(*pushes.in_batch(batch))
                    ).all()
                    for batch in mass_batches
                ]
        finally:
            db.dispose()
    month = oa._month(state.now())
    fifth = sum(
        1
        for f in oa.state_of(state.tenant(APP_ID)).followers.values()
        if f.mass_messages_in(month) > oa.MASS_MESSAGES_PER_FOLLOWER_PER_MONTH
    )
    # Baseline: the same batches straight to the platform, next month (fresh quotas).
    state.advance(32 * 86400)
    oa.state_of(state.tenant(APP_ID)).mass_calls.clear()
    baseline_waited = []

    def baseline_pace(seconds: float) -> None:
        baseline_waited.append(seconds)
        time.sleep(seconds)

    limiter = pushes.MassCallLimiter(args.calls_per_minute, baseline_pace)
    started = time.perf_counter()
    for batch in lists:
        limiter.wait()
        client.post(
            "message/mass/send",
            data={"touser": batch, "msgtype": "text", "text": {"content": "x"}},
        )
    baseline_seconds = time.perf_counter() - started

    total = plan_seconds + dispatch_seconds
    ours_working = total - sum(waited)
    base_working = baseline_seconds - sum(baseline_waited)
    print(f"report: {report}")
    print(
        f"plan {plan_seconds:.1f} s, dispatch {dispatch_seconds:.1f} s "
        f"({batches} batches, {len(lists)} mass calls; waited {sum(waited):.0f} s on the "
        f"platform's {args.calls_per_minute} calls/minute)"
    )
    print(
        f"baseline: the {len(lists)} openid batches posted in a loop: {baseline_seconds:.1f} s "
        f"(waited {sum(baseline_waited):.0f} s)"
    )
    print(
        f"ours / baseline: {total / baseline_seconds:.2f}x overall, "
        f"{ours_working / max(base_working, 1e-9):.2f}x without the waits"
    )
    verdict = "PASS" if total < TARGET_SECONDS else "FAIL"
    print(f"| {len(ids):,} recipients planned + dispatched | {total:.1f} s | < 60 s | {verdict} |")
    print(
        f"| same, without waiting on the platform's minute limit | {ours_working:.1f} s "
        f"| < 60 s | {'PASS' if ours_working < TARGET_SECONDS else 'FAIL'} |"
    )
    print(
        f"| followers with a fifth mass message this month | {fifth} | 0 | "
        f"{'PASS' if fifth == 0 else 'FAIL'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
