"""Attribution recomputed for every opportunity of a large workspace on PostgreSQL, against
a COUNT of the same interactions in the same run.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python bench/attribution.py [--contacts N] [--interactions N]
        [--opportunities N] [--contacts-per-account N]

A database of its own is created (harpoon_bench_<random>) and dropped afterwards;
BENCH_DATABASE_URL names the server (any database on it to connect to first). Generated
with generate_series in SQL: --contacts contacts (1,000,000) in accounts of
--contacts-per-account (10), 1% of them merged into another of their account;
--interactions interactions (10,000,000) over the last 365 days, spread over the contacts,
of kinds that count for content, forms, campaigns, events, live streams, emails, sales,
QR scans and the menu, with a tenth of no-touch kinds; --opportunities opportunities
(10,000) on as many accounts, opened in the last 270 days, 30% won 30-120 days later.

Timed: revenue.attribution.attribute_opportunities over the whole workspace (every chunk
read, credited and written, committed per chunk), and as the baseline one SELECT COUNT(*)
of the interactions in the same windows (the accounts' people, merged ones too, the same
kinds excluded) — the least any recompute must read. Goal: the recompute under 60 s.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.callback_ingest import bench_database  # noqa: E402
from crm.channels import workspace_named  # noqa: E402
from models import Database, migrate  # noqa: E402
from revenue.attribution import WINDOW_DAYS, attribute_opportunities  # noqa: E402
from revenue.credit import NOT_TOUCHES  # noqa: E402

GOAL_SECONDS = 60.0
CONTENTS = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--opportunities", type=int, default=10_000)
    parser.add_argument("--contacts-per-account", type=int, default=10)
    return parser.parse_args()


def generate(session, ws: int, args) -> None:
    accounts = args.contacts // args.contacts_per_account
    p = {"ws": ws, "accounts": accounts, "per": args.contacts_per_account}
    steps = [
        (
            "accounts",
            """INSERT INTO accounts (workspace_id, name, normalized_name, is_target, score, fit,
                 mqa, mqa_since, surging, intent_points, engagement_points, created_at,
                 updated_at)
               SELECT :ws, '公司' || g, 'company' || g, true, 0, 0, g % 3 = 0,
                 CASE WHEN g % 3 = 0 THEN now() - (g % 200) * interval '1 day' END,
                 false, 0, 0, now(), now()
               FROM generate_series(1, :accounts) g""",
        ),
        (
            "contacts",
            """INSERT INTO contacts (workspace_id, account_id, name, first_seen_at,
                 last_seen_at, score_mass, lead_score)
               SELECT :ws, a0.first + (g - 1) / :per, '联系人' || g, now(), now(), 0, 0
               FROM generate_series(1, :contacts) g,
                 (SELECT min(id) AS first FROM accounts WHERE workspace_id = :ws) a0""",
        ),
        (
            "merged contacts (1%)",
            """UPDATE contacts m SET merged_into_id = m.id + 1, account_id = NULL
               WHERE m.workspace_id = :ws AND m.id % 100 = 1
                 AND EXISTS (SELECT 1 FROM contacts s WHERE s.id = m.id + 1
                             AND s.account_id = m.account_id)""",
        ),
        (
            "interactions",
            """INSERT INTO interactions (workspace_id, contact_id, kind, properties,
                 engagement_minutes, occurred_at, created_at)
               SELECT :ws, c0.first + (g::bigint * 7919) % :contacts, k.kind,
                 CASE k.kind
                   WHEN 'content.view'
                     THEN jsonb_build_object('content_id', x0.first + g % :contents)
                   WHEN 'content.read'
                     THEN jsonb_build_object('content_id', x0.first + g % :contents,
                                             'utm_campaign', 'q' || g % 4)
                   WHEN 'form.submit' THEN jsonb_build_object('form_id', 1 + g % 20,
                                                              'campaign', '春季' || g % 3)
                   WHEN 'event.checkin' THEN jsonb_build_object('title', '峰会' || g % 12)
                   WHEN 'live.watch' THEN jsonb_build_object('live_id', g % 30)
                   WHEN 'email.open' THEN jsonb_build_object('subject', '月刊' || g % 10)
                   WHEN 'wechat.scan' THEN jsonb_build_object('scene', g % 50)
                   ELSE '{}'::jsonb END,
                 0, now() - ((g::bigint * 104729) % 31536000) * interval '1 second', now()
               FROM generate_series(1, :interactions) g
               CROSS JOIN (SELECT min(id) AS first FROM contacts WHERE workspace_id = :ws) c0
               CROSS JOIN (SELECT min(id) AS first FROM contents WHERE workspace_id = :ws) x0
               JOIN (VALUES (0, 'content.view'), (1, 'content.read'), (2, 'content.view'),
                            (3, 'form.submit'), (4, 'wechat.menu_click'), (5, 'event.checkin'),
                            (6, 'live.watch'), (7, 'email.open'), (8, 'wechat.scan'),
                            (9, 'sales.meeting'), (10, 'wechat.location'),
                            (11, 'wecom.contact_edited'))
                 AS k(n, kind) ON k.n = (g / 7) % 12""",
        ),
        (
            "opportunities",
            """INSERT INTO opportunities (workspace_id, account_id, name, amount, type, stage,
                 probability, status, source, opened_at, closed_at, created_at, updated_at)
               SELECT :ws, a0.first + (g::bigint * 7) % :accounts, '商机' || g,
                 10000 + (g * 37) % 990000, 'new',
                 CASE WHEN g % 10 < 3 THEN 'won' ELSE 'qualify' END,
                 CASE WHEN g % 10 < 3 THEN 100 ELSE 20 END,
                 CASE WHEN g % 10 < 3 THEN 'won' ELSE 'open' END, 'crm',
                 now() - (30 + g % 240) * interval '1 day',
                 CASE WHEN g % 10 < 3
                   THEN now() - (30 + g % 240) * interval '1 day' + (30 + g % 90) * interval '1 day'
                 END,
                 now(), now()
               FROM generate_series(1, :opportunities) g,
                 (SELECT min(id) AS first FROM accounts WHERE workspace_id = :ws) a0""",
        ),
        ("analyze", "ANALYZE"),
    ]
    params = {**p, **vars(args), "contents": CONTENTS}
    for name, sql in steps:
        started = time.perf_counter()
        # Generated rows reference rows generated before them: skip the foreign-key
        # triggers (a superuser's setting), which would check 20 million references.
        session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(text(sql), params)
        session.commit()
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)


def count_baseline(session, ws: int) -> int:
    """The interactions every recompute has to read: the same people, windows and kinds."""
    return session.scalar(
        text(
            """WITH windows AS (
                 SELECT account_id, opened_at AS until FROM opportunities WHERE workspace_id = :ws
                 UNION ALL
                 SELECT account_id, closed_at FROM opportunities
                 WHERE workspace_id = :ws AND status = 'won' AND closed_at IS NOT NULL),
               people AS (
                 SELECT id AS contact_id, account_id FROM contacts
                 WHERE workspace_id = :ws AND account_id IS NOT NULL
                 UNION ALL
                 SELECT m.id, s.account_id
                 FROM contacts m JOIN contacts s ON s.id = m.merged_into_id
                 WHERE m.workspace_id = :ws AND s.workspace_id = :ws)
               SELECT count(*) FROM windows w
               JOIN people p ON p.account_id = w.account_id
               JOIN interactions i ON i.contact_id = p.contact_id
               WHERE i.workspace_id = :ws AND i.kind <> ALL(:not_touches)
                 AND i.occurred_at >= w.until - make_interval(days => :days)
                 AND i.occurred_at <= w.until"""
        ),
        {"ws": ws, "days": WINDOW_DAYS, "not_touches": list(NOT_TOUCHES)},
    )


def main() -> None:
    args = parse_args()
    admin_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    with bench_database(admin_url) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (Fernet.generate_key().decode(),))
        print(
            f"generating {args.contacts:,} contacts, {args.interactions:,} interactions, "
            f"{args.opportunities:,} opportunities",
            flush=True,
        )
        started = time.perf_counter()
        with db.session() as session:
            ws = workspace_named(session, "bench").id
            session.execute(
                text(
                    "INSERT INTO contents (workspace_id, kind, title, summary, topics, products,"
                    " created_at) SELECT :ws, 'article', '白皮书 ' || g, '', '[]', '[]', now()"
                    " FROM generate_series(1, :n) g"
                ),
                {"ws": ws, "n": CONTENTS},
            )
            session.commit()
            generate(session, ws, args)
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)

        with db.session() as session:
            started = time.perf_counter()
            counted = count_baseline(session, ws)
            baseline = time.perf_counter() - started
        with db.session() as session:
            started = time.perf_counter()
            result = attribute_opportunities(session, ws)
            recompute = time.perf_counter() - started
        with db.session() as session:
            rows = session.scalar(text("SELECT count(*) FROM attribution_touches"))
        print(
            f"baseline: COUNT of the windows' interactions: {counted:,} in {baseline:.2f} s\n"
            f"recompute: {result.opportunities:,} opportunities, {rows:,} rows written "
            f"in {recompute:.2f} s\n"
            f"ratio (recompute / count): {recompute / baseline:.1f}x\n"
            f"goal < {GOAL_SECONDS:.0f} s: {'PASS' if recompute < GOAL_SECONDS else 'FAIL'}",
            flush=True,
        )
        db.dispose()


if __name__ == "__main__":
    main()
