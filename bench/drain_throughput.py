"""Drain throughput: events handled per second by one drain, ours vs event-by-event; then
one workspace drained by one worker and by two (lanes).

    .venv/bin/python bench/drain_throughput.py [--events N] [--people P] [--lanes L]

Creates a throwaway PostgreSQL database (dropped at the end), stores the same
mix of callbacks in two workspaces' inboxes — OA follows, menu clicks and
messages, and WeCom adds with a WelcomeCode through a 联系我 code with tags
and a welcome (a quarter of the events) — with the demo's tag rules, then
drains each in-process: the baseline with a savepoint per event from the
start (`optimistic=False`), ours with the optimistic batch pass. Prints
events/s for each and the ratio, in the same run.

(b) Scale-out: two more workspaces get the same mix plus API touchpoints of the
followers (live.watch, email.click), each row in its lane, with scoring on and a
live journey entering on a text message; real `flask worker` processes (Redis
db 14, a queue prefix of this run's own) drain the first with one worker, the
second with two. Prints events/s for each and the ratio two / one (target
>= 1.5).
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import redis
from cryptography.fernet import Fernet
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make app, models and wechat importable

from app import create_app  # noqa: E402
from app.extensions import harpoon  # noqa: E402
from bench.callback_ingest import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    bench_database,
    flush_redis,
)
from bench.journeys import live_journey  # noqa: E402
from bench.scoring import rq_worker  # noqa: E402
from crm.channels import add_channel, workspace_named  # noqa: E402
from crm.touchpoints import API, inbox_row  # noqa: E402
from crm.users import create_user  # noqa: E402
from demo.data import seed_demo_tagging  # noqa: E402
from models import ContactWay, InboundEvent, InboxStatus, Role, migrate  # noqa: E402
from pipeline.drain import drain  # noqa: E402
from pipeline.inbox import callback_lane  # noqa: E402
from wechat import simulate  # noqa: E402
from wechat.callbacks import dedupe_key, parse_xml  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
WORKERS_REDIS_URL = "redis://127.0.0.1:6379/14"
PROCESS_START_SECONDS = 60
WORKER_LOGS = "/tmp/harpoon-drain-bench-workers"  # the workers' output (platform refusals)
OA_APP_ID, CORP_ID = "wxdrainbench00001", "wwdrainbench00001"
AES_KEY = "B" * 43


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events per workspace")
    parser.add_argument("--people", type=int, default=800, help="distinct OA followers")
    parser.add_argument("--lanes", type=int, default=4, help="(b) HARPOON_INBOX_LANES")
    return parser.parse_args()


def seed_workspace(h, name: str) -> tuple[int, int, int]:
    """A workspace with the demo's rules and ICP list, an OA, a WeCom corp and a code."""
    with h.db.session() as session:
        workspace = workspace_named(session, name)
        owner = create_user(
            session, workspace, f"owner@{name}.example", "Owner", "bench-password", Role.OWNER
        )
        oa = add_channel(
            session,
            workspace,
            kind="oa",
            name="OA",
            app_id=OA_APP_ID,
            token="benchtoken",
            aes_key=AES_KEY,
        )
        corp = add_channel(
            session,
            workspace,
            kind="wecom",
            name="WeCom",
            app_id=CORP_ID,
            token="benchtoken",
            aes_key=AES_KEY,
        )
        session.commit()
        seed_demo_tagging(session, workspace.id, owner.id, owner.email)
        session.add(
            ContactWay(
                workspace_id=workspace.id,
                channel_id=corp.id,
                name="展会",
                state="expo",
                staff_userids=["zhangsan"],
                welcome_text="{name}您好，我是{staff}。",
            )
        )
        session.commit()
        return workspace.id, oa.id, corp.id


def fill_inbox(
    h, ids: tuple[int, int, int], events: int, people: int, lanes: int = 1, touchpoints=False
) -> None:
    workspace_id, oa_id, corp_id = ids
    now = int(time.time())
    for n in range(events):
        person = f"oBench{n % people:06d}"
        match n % 4:
            case 0:
                xml = simulate.oa_event(person, "subscribe", at=now + n, EventKey="qrscene_expo")
            case 1:
                xml = simulate.oa_event(person, "CLICK", at=now + n, EventKey="PRICING")
            case 2:
                xml = simulate.oa_text(person, "我是信息中心主任，来自上海华信科技", 10**12 + n)
            case _:
                xml = simulate.wecom_contact_event(
                    CORP_ID,
                    "add_external_contact",
                    user_id="zhangsan",
                    external_user_id=f"wmBench{n:06d}",
                    at=now + n,
                    State="expo",
                    WelcomeCode=f"code{n}",
                )
        platform, channel_id = ("wecom", corp_id) if n % 4 == 3 else ("oa", oa_id)
        fields = parse_xml(xml)
        h.inbox.store(
            workspace_id=workspace_id,
            channel_id=channel_id,
            platform=platform,
            dedupe_key=dedupe_key(platform, fields, xml),
            payload=xml,
            lane=callback_lane(platform, fields, lanes),
        )
        if touchpoints and n % 8 == 2:  # a follower's live stream or email click
            store_touchpoint(h, workspace_id, oa_id, person, n, lanes)


def store_touchpoint(h, workspace_id: int, oa_id: int, openid: str, n: int, lanes: int) -> None:
    kind = "live.watch" if n % 16 == 2 else "email.click"
    payload = {
        "kind": kind,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "identity": {"openid": openid, "channel_id": oa_id},
        "person": {},
        "properties": {"campaign": "bench"},
        "minutes": 30.0 if kind == "live.watch" else 0.0,
    }
    row = inbox_row(workspace_id, None, API, f"api:bench:{n}", payload, h_now(), lanes)
    with h.db.session() as session:
        session.add(InboundEvent(**row, next_attempt_at=row["received_at"]))
        session.commit()


def h_now():
    from models import utcnow

    return utcnow()


def timed_drain(h, workspace_id: int, optimistic: bool) -> tuple[int, int, float]:
    started = time.perf_counter()
    done = failed = 0
    with h.db.session() as session:
        more = True
        while more:  # a drain steps aside after a batch that asked for a welcome
            result = drain(session, workspace_id, max_seconds=3600, optimistic=optimistic)
            done, failed, more = (
                done + result.done,
                failed + result.failed + result.dead,
                result.more,
            )
    return done, failed, time.perf_counter() - started


def worker_env(url: str, settings, prefix: str, lanes: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARPOON_")}
    env.update(
        DATABASE_URL=url.replace("+psycopg", ""),
        REDIS_URL=WORKERS_REDIS_URL,
        HARPOON_ENCRYPTION_KEYS=",".join(settings.encryption_keys),
        HARPOON_SECRET_KEY=settings.secret_key,
        HARPOON_QUEUE_PREFIX=prefix,
        HARPOON_INBOX_LANES=str(lanes),
        HARPOON_INSTANCE_DIR="/tmp/harpoon-drain-bench",
        HARPOON_WECHAT_API_URL="http://127.0.0.1:9",  # refused at once: no real platform
        HARPOON_LOG_LEVEL="WARNING",
    )
    return env


def pending(h, workspace_id: int) -> int:
    with h.db.session() as session:
        return session.scalar(
            select(func.count()).where(
                InboundEvent.workspace_id == workspace_id,
                InboundEvent.status == InboxStatus.PENDING,
            )
        )


def drained_by_workers(h, url: str, workspace_id: int, workers: int, lanes: int, prefix: str):
    """Start `workers` worker processes, wait for them to listen, ask for every lane's
    drain, and time until the workspace has no pending event; (done, failed, seconds)."""
    env = worker_env(url, h.settings, prefix, lanes)
    connection = redis.Redis.from_url(WORKERS_REDIS_URL)
    log_dir = Path(WORKER_LOGS) / f"workers-{workers}"
    log_dir.mkdir(parents=True, exist_ok=True)
    with rq_worker(env, log_dir, workers) as procs:
        deadline = time.monotonic() + PROCESS_START_SECONDS
        while len(_listening(connection, prefix)) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the workers did not start")
            time.sleep(0.2)
        started = time.perf_counter()
        for lane in range(lanes):
            h.queue.enqueue_drain(workspace_id, lane)
        while pending(h, workspace_id):
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    with h.db.session() as session:
        counts = dict(
            session.execute(
                select(InboundEvent.status, func.count())
                .where(InboundEvent.workspace_id == workspace_id)
                .group_by(InboundEvent.status)
            ).all()
        )
    failed = counts.get(InboxStatus.FAILED, 0) + counts.get(InboxStatus.DEAD, 0)
    return counts.get(InboxStatus.DONE, 0) + counts.get(InboxStatus.IGNORED, 0), failed, seconds


def _listening(connection, prefix: str) -> list:
    from rq import Worker

    return [
        w
        for w in Worker.all(connection=connection)
        if any(q.name.startswith(prefix) for q in w.queues)
    ]


def scale_out(url: str, args) -> dict:
    """(b): one workspace drained by one worker, another by two, in the same run."""
    prefix = f"drainbench{uuid.uuid4().hex[:8]}"
    settings = {
        "database_url": url,
        "redis_url": WORKERS_REDIS_URL,
        "queue_prefix": prefix,
        "inbox_lanes": args.lanes,
        "encryption_keys": (Fernet.generate_key().decode(),),
        "secret_key": "drain-bench",
        "instance_dir": Path("/tmp/harpoon-drain-bench"),
    }
    app = create_app(settings)
    runs = {}
    with app.app_context():
        h = harpoon()
        try:
            for workers in (1, 2):
                ids = seed_workspace(h, f"lanes-{workers}")
                trigger = {"kind": "interaction", "event": {"kind": "wechat.message"}}
                live_journey(h.db, ids[0], trigger)
                fill_inbox(h, ids, args.events, args.people, args.lanes, touchpoints=True)
                runs[workers] = drained_by_workers(h, url, ids[0], workers, args.lanes, prefix)
        finally:
            h.db.dispose()
            connection = redis.Redis.from_url(WORKERS_REDIS_URL)
            for key in connection.scan_iter(f"*{prefix}*"):
                connection.delete(key)
    return runs


def main() -> None:
    args = parse_args()
    flush_redis(REDIS_URL)
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        app = create_app(
            {
                "database_url": url,
                "redis_url": REDIS_URL,
                "encryption_keys": (Fernet.generate_key().decode(),),
                "secret_key": "drain-bench",
                "instance_dir": Path("/tmp/harpoon-drain-bench"),
            }
        )
        with app.app_context():
            h = harpoon()
            try:
                runs = {}
                for label, optimistic in (("event by event", False), ("ours", True)):
                    ids = seed_workspace(h, label.replace(" ", "-"))
                    fill_inbox(h, ids, args.events, args.people)
                    runs[label] = timed_drain(h, ids[0], optimistic)
            finally:
                h.db.dispose()
                flush_redis(REDIS_URL)
        workers = scale_out(url, args)
    print(f"{'drain':16} {'events':>7} {'failed':>7} {'seconds':>8} {'events/s':>9}")
    for label, (done, failed, seconds) in runs.items():
        print(f"{label:16} {done:7d} {failed:7d} {seconds:8.2f} {done / seconds:9.0f}")
    base, ours = (runs[k][0] / runs[k][2] for k in ("event by event", "ours"))
    print(f"\nratio ours / event by event: {ours / base:.1f}x")
    print(f"\n(b) one workspace, {args.lanes} lanes, real RQ workers (scoring, a live journey;")
    print(f"    their logs: {WORKER_LOGS}/)")
    print(f"{'workers':16} {'events':>7} {'failed':>7} {'seconds':>8} {'events/s':>9}")
    for count, (done, failed, seconds) in workers.items():
        print(f"{count:<16d} {done:7d} {failed:7d} {seconds:8.2f} {done / seconds:9.0f}")
    one, two = (workers[k][0] / workers[k][2] for k in (1, 2))
    print(f"\nratio two workers / one: {two / one:.2f}x (target >= 1.5)")


if __name__ == "__main__":
    main()
