"""Scoring benches on PostgreSQL + Redis, each against a baseline or target in the same run.

    .venv/bin/python bench/scoring.py [--part a,b,c] [--events N] [--naive N]
        [--accounts A --contacts C] [--rate R --seconds S]

(a) Pipeline throughput with scoring on: the drain's scoring stage (ledger, lead
    scores, account scores, MQA, tiers, surges, stages, snapshots) over batches of
    recorded interactions, in events/s on one worker, against a naive baseline in the
    same run: one RQ job per event, each an ORM round trip (load the interaction, match
    the rule, add the entry, update the contact and its account), run by a real RQ
    SimpleWorker on Redis. Also the whole drain (callbacks parsed, identities, tags,
    interactions) with scoring on against the same drain with scoring off.
(b) Full recompute on a generated workspace of --accounts accounts and --contacts
    contacts with one ledger entry each: every lead score summed again from the ledger
    and every account re-judged (`Scorer.recompute`), and the daily pass
    (`Scorer.refresh_workspace`).
(c) Callback -> account score updated, under an open-loop load of --rate callbacks/s
    for --seconds: gunicorn (config/gunicorn.py) and --workers RQ workers (`flask worker`),
    followers who already belong to accounts; each callback's latency runs from its
    scheduled send to the moment its ledger entry (committed with the account score)
    is visible.
"""

import argparse
import collections
import multiprocessing
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))  # before bench/: `scoring` is the package, not this file

from cryptography.fernet import Fernet  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench.callback_ingest import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    Schedule,
    Tally,
    _collect,
    bench_credentials,
    bench_database,
    create_channel,
    flush_redis,
    generator_process,
    gunicorn_server,
    percentile,
    server_env,
    stop_process_group,
)
from models import (  # noqa: E402
    Account,
    Contact,
    Database,
    Interaction,
    ScoreEntry,
    Workspace,
    migrate,
    utcnow,
)
from scoring.engine import EPOCH, Scorer, weight_of  # noqa: E402
from scoring.model import DEFAULT_RULES, matching_rule  # noqa: E402
from wechat import simulate  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/11"
ROLES = ["cio", "cto", "engineer", "procurement", "finance", "it_manager", "ceo", None]
SENIORITIES = ["c_level", "vp", "director", "manager", "staff", None]
KINDS = [
    ("wechat.menu_click", {"key": "PRICING"}, 0),
    ("wechat.menu_click", {"key": "CASES"}, 0),
    ("wechat.menu_view", {"url": "https://harpoon.example/whitepaper"}, 0),
    ("wechat.message", {"content": "报价多少"}, 0),
    ("wechat.follow", {}, 0),
    ("content.view", {"topics": ["pricing"]}, 3),
    ("live.watch", {}, 25),
    ("wecom.contact_added", {}, 0),
]
WARMUP_CALLBACKS = 300
TARGETS = {"a_events": 5000, "a_ratio": 10, "b_seconds": 60, "c_p95": 2.0}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="a,b,c", help="which benches: a, b, c")
    parser.add_argument("--events", type=int, default=20_000, help="(a) events scored")
    parser.add_argument("--naive", type=int, default=1_000, help="(a) events, naive jobs")
    parser.add_argument(
        "--batches", default="200,1000", help="(a) batch sizes (the drain's default is 200)"
    )
    parser.add_argument("--accounts", type=int, default=100_000, help="(b) accounts")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="(b) contacts")
    parser.add_argument("--rate", type=float, default=1000, help="(c) callbacks per second")
    parser.add_argument("--seconds", type=float, default=10, help="(c) seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="(c) RQ worker processes")
    parser.add_argument("--processes", type=int, default=2, help="(c) generator processes")
    parser.add_argument("--concurrency", type=int, default=32, help="(c) connections")
    return parser.parse_args()


# --- seeding -----------------------------------------------------------------------


ACCOUNTS_SQL = """
    INSERT INTO accounts (workspace_id, name, normalized_name, is_target, industry, region,
        employees, acv, score, fit, mqa, surging, intent_points, engagement_points, stage,
        created_at, updated_at)
    SELECT :ws, 'Account ' || g, 'account ' || g, g % 3 = 0,
        (ARRAY['制造','软件','金融','医药','教育'])[1 + g % 5],
        (ARRAY['华东','华北','华南'])[1 + g % 3],
        100 + (g * 37) % 5000, 100000 * (1 + g % 20), 0, 0, false, false, 0, 0,
        CASE WHEN g % 3 = 0 THEN 'target' END, now(), now()
    FROM generate_series(1, :accounts) AS g
"""
CONTACTS_SQL = """
    INSERT INTO contacts (workspace_id, account_id, name, role, seniority, score_mass,
        lead_score, first_seen_at, last_seen_at)
    SELECT :ws, :first + g % :accounts, 'Person ' || g,
        (ARRAY['cio','cto','engineer','procurement','finance','it_manager'])[1 + g % 6],
        (ARRAY['c_level','vp','director','manager','staff'])[1 + (g / 6) % 5],
        0, 0, now(), now()
    FROM generate_series(1, :contacts) AS g
"""


def new_workspace(db: Database, name: str) -> int:
    with db.session() as session:
        workspace = Workspace(name=name)
        session.add(workspace)
        session.commit()
        return workspace.id


def insert_people(db: Database, ws: int, accounts: int, contacts: int) -> int:
    """`accounts` target accounts and `contacts` contacts spread over them, with set-based
    SQL; returns the first contact's id (their ids are consecutive)."""
    with db.session() as session:
        params = {"ws": ws, "accounts": accounts, "contacts": contacts}
        session.execute(text(ACCOUNTS_SQL), params)
        first_account = session.scalar(
            select(func.min(Account.id)).where(Account.workspace_id == ws)
        )
        session.execute(text(CONTACTS_SQL), {**params, "first": first_account})
        first_contact = session.scalar(
            select(func.min(Contact.id)).where(Contact.workspace_id == ws)
        )
        session.commit()
        return first_contact


def record_interactions(db: Database, ws: int, contact_ids: list[int], count: int, seed=11):
    """`count` interactions over these contacts in the last hour, as the drain records them."""
    rng = random.Random(seed)
    now = utcnow()
    rows = []
    for _ in range(count):
        kind, properties, minutes = rng.choice(KINDS)
        rows.append(
            {
                "workspace_id": ws,
                "contact_id": rng.choice(contact_ids),
                "kind": kind,
                "properties": properties,
                "engagement_minutes": minutes,
                "occurred_at": now - timedelta(seconds=rng.uniform(0, 3600)),
                "created_at": now,
            }
        )
    with db.session() as session:
        ids = list(session.scalars(Interaction.__table__.insert().returning(Interaction.id), rows))
        session.commit()
    return ids


# --- (a) throughput ----------------------------------------------------------------


def part_a(db: Database, database_url: str, args) -> dict:
    ws = new_workspace(db, "bench-a")
    first_contact = insert_people(db, ws, 1000, 20_000)
    contacts = list(range(first_contact, first_contact + 20_000))
    rates = {}
    for batch in (int(size) for size in args.batches.split(",")):
        ours_ids = record_interactions(db, ws, contacts, args.events, seed=batch)
        started = time.perf_counter()
        for start in range(0, len(ours_ids), batch):
            with db.session() as session:
                scorer = Scorer.load(session, ws)
                scorer.score_interaction_ids(ours_ids[start : start + batch])
                session.commit()
        rates[batch] = len(ours_ids) / (time.perf_counter() - started)

    naive_ids = record_interactions(db, ws, contacts, args.naive, seed=12)
    os.environ["BENCH_SCORING_DATABASE_URL"] = database_url
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    queue = Queue("bench-naive", connection=redis)
    started = time.perf_counter()
    for interaction_id in naive_ids:
        queue.enqueue("bench.scoring.naive_score_one", interaction_id)
    SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
    naive = len(naive_ids) / (time.perf_counter() - started)
    with db.session() as session:
        scored = session.scalar(
            select(func.count()).where(ScoreEntry.interaction_id.in_(naive_ids))
        )
    redis.flushdb()
    for batch, rate in rates.items():
        print(
            f"(a) scoring stage, batches of {batch}: {rate:,.0f} events/s ({args.events:,} "
            f"events over 20,000 contacts of 1,000 accounts), {rate / naive:.1f}x naive"
        )
    print(f"(a) naive: {naive:,.0f} events/s ({len(naive_ids):,} jobs, {scored} scored)")
    return {"naive": naive, "rates": rates}


_naive_db: list[Database] = []


def naive_score_one(interaction_id: int) -> None:
    """The baseline: one job, one event, the ORM all the way."""
    if not _naive_db:
        db = Database()
        db.configure(os.environ["BENCH_SCORING_DATABASE_URL"], (Fernet.generate_key().decode(),))
        _naive_db.append(db)
    with _naive_db[0].session() as session:
        interaction = session.get(Interaction, interaction_id)
        rule = matching_rule(DEFAULT_RULES, interaction.kind, interaction.properties)
        if rule is None:
            return
        points = rule.points_for(interaction.engagement_minutes)
        session.add(
            ScoreEntry(
                workspace_id=interaction.workspace_id,
                contact_id=interaction.contact_id,
                interaction_id=interaction.id,
                rule_key=rule.key,
                points=points,
                weight=weight_of(points, interaction.occurred_at, 30),
                minutes=interaction.engagement_minutes,
                occurred_at=interaction.occurred_at,
            )
        )
        contact = session.get(Contact, interaction.contact_id)
        contact.score_mass += weight_of(points, interaction.occurred_at, 30)
        contact.lead_score = max(contact.score_mass * 2 ** (-_days_since_epoch() / 30), 0)
        account = session.get(Account, contact.account_id)
        members = session.scalars(select(Contact).where(Contact.account_id == account.id)).all()
        account.score = sum(m.lead_score for m in members)
        account.scored_at = utcnow()
        session.commit()


def _days_since_epoch() -> float:
    return (utcnow() - EPOCH).total_seconds() / 86400


# --- (b) full recompute --------------------------------------------------------------


def part_b(db: Database, args) -> dict:
    started = time.perf_counter()
    ws = new_workspace(db, "bench-b")
    insert_people(db, ws, args.accounts, args.contacts)
    with db.session() as session:
        session.execute(
            text(
                """
                INSERT INTO interactions (workspace_id, contact_id, kind, properties,
                    engagement_minutes, occurred_at, created_at)
                SELECT workspace_id, id, 'wechat.message', '{}'::jsonb, 0,
                    now() - (id % 60) * interval '1 day', now()
                FROM contacts WHERE workspace_id = :ws
                """
            ),
            {"ws": ws},
        )
        session.execute(
            text(
                """
                INSERT INTO score_ledger (workspace_id, contact_id, interaction_id, rule_key,
                    points, weight, minutes, signal, occurred_at)
                SELECT workspace_id, contact_id, id, 'message', 4,
                    4 * power(2, extract(epoch FROM occurred_at - :epoch) / 86400 / 30), 0,
                    'engagement', occurred_at
                FROM interactions WHERE workspace_id = :ws
                """
            ),
            {"ws": ws, "epoch": EPOCH},
        )
        # As the pipeline keeps them: each contact's score mass is its ledger's sum.
        session.execute(
            text(
                """
                UPDATE contacts SET score_mass = l.weight, lead_score = l.points,
                    last_engaged_at = l.occurred_at
                FROM score_ledger l WHERE l.contact_id = contacts.id AND l.workspace_id = :ws
                """
            ),
            {"ws": ws},
        )
        session.commit()
        session.execute(text("ANALYZE"))
    seeded = time.perf_counter() - started
    print(
        f"(b) seeded {args.accounts:,} accounts, {args.contacts:,} contacts and as many ledger "
        f"entries in {seeded:.0f} s"
    )
    figures = {}
    for method in ("recompute", "refresh_workspace"):
        with db.session() as session:
            started = time.perf_counter()
            result = getattr(Scorer.load(session, ws), method)()
            session.commit()
            figures[method] = time.perf_counter() - started
        print(f"(b) {method}: {figures[method]:.1f} s for {result.accounts:,} accounts")
    with db.session() as session:
        scored = session.scalar(
            select(func.count()).where(Account.workspace_id == ws, Account.score > 0)
        )
    print(f"(b) accounts with a score: {scored:,}")
    return figures


# --- (c) callback -> account score ----------------------------------------------------


LEDGER_ROWS = "SELECT id, contact_id FROM score_ledger WHERE id > :last ORDER BY id"


def part_c(database_url: str, args) -> dict:
    latencies, tally, sent = callback_latencies(database_url, args, LEDGER_ROWS)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        f"(c) {args.rate:.0f} callbacks/s for {args.seconds:.0f} s: {tally.ok} answered, "
        f"{tally.failed} failed, {len(latencies)} scored; callback -> account score "
        f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies, default=0):.2f} s"
    )
    return {"p50": p50, "p95": p95, "scored": len(latencies), "sent": sent}


def callback_latencies(database_url: str, args, rows_sql: str, prepare=None):
    """Open-loop text callbacks from followers already in accounts, through gunicorn and
    `--workers` RQ workers, after a warm-up: each one's latency from its scheduled send until a row
    of `rows_sql` (id, contact_id; ids after :last) names its contact. `prepare(db,
    workspace_id)` returns extra parameters for the query. Returns (latencies, tally,
    followers measured)."""
    followers = int(args.rate * args.seconds)
    key = Fernet.generate_key().decode()
    creds = bench_credentials()
    with tempfile.TemporaryDirectory(prefix="harpoon-latency-") as tmp:
        instance_dir = Path(tmp) / "instance"
        settings = {
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "encryption_keys": (key,),
            "secret_key": secrets.token_hex(32),
            "instance_dir": instance_dir,
            "log_level": "WARNING",
        }
        channel_id = create_channel(settings, creds)
        db = Database()
        db.configure(database_url, (key,))
        everyone = seed_followers(db, channel_id, followers + WARMUP_CALLBACKS)
        warmup, openids = everyone[:WARMUP_CALLBACKS], everyone[WARMUP_CALLBACKS:]
        with db.session() as session:
            ws = session.scalar(select(Workspace.id).where(Workspace.name == "bench"))
        params = prepare(db, ws) if prepare else {}
        flush_redis(REDIS_URL)
        env = server_env(database_url, REDIS_URL, key, instance_dir, creds, channel_id)
        path = f"/callbacks/wechat/{channel_id}"
        with (
            gunicorn_server("ours", ["wsgi:app"], env, path, Path(tmp)) as server,
            rq_worker(env, Path(tmp), getattr(args, "workers", 1)),
        ):
            seen = RowWatch(db, channel_id, rows_sql, params)
            seen.start()
            # Warm-up (connections, imports, first drains), then the measured load.
            for batch in (warmup, openids):
                seen.times.clear()
                start_at, tally = open_loop(server, path, text_callbacks(creds, batch), args)
                # This batch's people: the watch reads recent rows again (its lag window),
                # so the warm-up's may show up in `times` too.
                wanted = {seen.contact_by_openid.get(openid) for openid in batch} - {None}
                deadline = time.monotonic() + 180
                while not wanted <= seen.times.keys() and time.monotonic() < deadline:
                    time.sleep(0.2)
            seen.stop()
        db.dispose()
    contact_of = {openid: n for n, openid in enumerate(openids)}
    latencies = [
        seen.times[contact] - (start_at + contact_of[openid] / args.rate)
        for openid, contact in seen.contact_by_openid.items()
        if contact in seen.times and openid in contact_of
    ]
    return latencies, tally, len(openids)


def text_callbacks(creds, openids: list[str]) -> list[tuple[str, bytes]]:
    callbacks = []
    for openid in openids:
        xml = simulate.oa_text(openid, "想了解报价", 31_000_000_000 + int(openid[6:]))
        message = simulate.oa_message(creds, xml, mode="safe")
        callbacks.append((message.query, message.body))
    return callbacks


def seed_followers(db: Database, channel_id: int, count: int) -> list[str]:
    """Followers who already belong to accounts (10 each), with their OA openids."""
    with db.session() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.name == "bench"))
    insert_people(db, ws, max(count // 10, 1), count)
    with db.session() as session:
        session.execute(
            text(
                """
                INSERT INTO identities (workspace_id, contact_id, kind, channel_id, value,
                    following, created_at)
                SELECT workspace_id, id, 'openid', :channel, 'oScore' || lpad(id::text, 22, '0'),
                    true, now()
                FROM contacts WHERE workspace_id = :ws
                """
            ),
            {"ws": ws, "channel": channel_id},
        )
        session.commit()
        return list(
            session.scalars(
                text("SELECT value FROM identities WHERE channel_id = :c ORDER BY contact_id"),
                {"c": channel_id},
            )
        )


class RowWatch(threading.Thread):
    """When each contact first appears in rows of `sql` (id, contact_id; ids after :last)."""

    LAG_SECONDS = 10.0  # longer than a drain batch or journey run holds its rows uncommitted

    def __init__(self, db: Database, channel_id: int, sql: str, params: dict):
        super().__init__(daemon=True)
        self.db, self.channel_id, self.sql, self.params = db, channel_id, sql, params
        self.times: dict[int, float] = {}
        self.contact_by_openid: dict[str, int] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        with self.db.session() as session:
            self.contact_by_openid = dict(
                session.execute(
                    text("SELECT value, contact_id FROM identities WHERE channel_id = :c"),
                    {"c": self.channel_id},
                ).all()
            )
        # Rows commit out of id order (drains of several lanes, several workers): each poll
        # reads again from the highest id seen LAG_SECONDS ago, not from the highest seen.
        last, marks = 0, collections.deque([(time.monotonic(), 0)])
        while not self._halt.wait(0.1):
            now = time.monotonic()
            while len(marks) > 1 and marks[1][0] <= now - self.LAG_SECONDS:
                marks.popleft()
            with self.db.session() as session:
                floor = {"last": marks[0][1]}
                rows = session.execute(text(self.sql), {**self.params, **floor}).all()
            now = time.monotonic()
            for row_id, contact_id in rows:
                self.times.setdefault(contact_id, now)
                last = max(last, row_id)
            marks.append((now, last))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def open_loop(server, path, callbacks, args) -> tuple[float, Tally]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = args.processes
    start_at = time.monotonic() + 0.5
    stop_at = start_at + args.seconds + 5
    children = [
        context.Process(
            target=generator_process,
            args=(
                server.port,
                path,
                callbacks[offset::processes],
                Schedule(start_at, stop_at, offset, processes, args.rate),
                args.concurrency // processes,
                results,
            ),
            daemon=True,
        )
        for offset in range(processes)
    ]
    for child in children:
        child.start()
    return start_at, _collect(results, children, stop_at)


@contextmanager
def rq_worker(env: dict, log_dir: Path, workers: int = 1):
    """`workers` RQ worker processes (`flask worker`), each in its own process group."""
    processes = []
    try:
        for index in range(workers):
            with open(log_dir / f"worker-{index}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield processes
    finally:
        for process in processes:
            stop_process_group(process)


# --- main ----------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    parts = set(args.part.split(","))
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    summary = {}
    with bench_database(admin_url) as database_url:
        migrate.upgrade(database_url)
        db = Database()
        db.configure(database_url, (Fernet.generate_key().decode(),))
        try:
            if "a" in parts:
                summary["a"] = part_a(db, database_url, args)
            if "b" in parts:
                summary["b"] = part_b(db, args)
        finally:
            db.dispose()
        if "c" in parts:
            summary["c"] = part_c(database_url, args)
    print_report(summary)
    return 0


def print_report(summary: dict) -> None:
    print("\n| bench | figure | target | verdict |\n|---|---|---|---|")
    if "a" in summary:
        a = summary["a"]
        for batch, rate in a["rates"].items():
            ratio = rate / a["naive"]
            ok = rate >= TARGETS["a_events"] and ratio >= TARGETS["a_ratio"]
            print(
                f"| (a) scoring stage, batch {batch} | {rate:,.0f} events/s, {ratio:.1f}x naive "
                f"| >= 5,000/s and >= 10x | {'PASS' if ok else 'FAIL'} |"
            )
    if "b" in summary:
        b = summary["b"]
        ok = b["recompute"] < TARGETS["b_seconds"]
        print(
            f"| (b) full recompute | {b['recompute']:.1f} s (daily pass "
            f"{b['refresh_workspace']:.1f} s) | < 60 s | {'PASS' if ok else 'FAIL'} |"
        )
    if "c" in summary:
        c = summary["c"]
        ok = c["p95"] < TARGETS["c_p95"] and c["scored"] == c["sent"]
        print(
            f"| (c) callback -> account score | p95 {c['p95']:.2f} s, {c['scored']}/{c['sent']} "
            f"scored | p95 < 2 s | {'PASS' if ok else 'FAIL'} |"
        )


if __name__ == "__main__":
    sys.exit(main())
