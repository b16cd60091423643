"""Lifecycle KPIs at scale: every query of the revenue dashboard on PostgreSQL over
1,000,000 contacts, 10,000,000 interactions, 10,000 opportunities, ~100,000 accounts and
their stage history, against a count of the opportunities in the same run.

    .venv/bin/python bench/kpis.py [--contacts N] [--interactions I] [--opportunities O]
                                   [--accounts A] [--rounds R] [--without-kpi-indexes]
                                   [--only dormant,furthest]

Generates the history with generate_series SQL in a throwaway database (dropped after),
then times each `revenue.kpis` query (median of --rounds) for the dashboard's default
period (six months) with no filter, one tier, and one owner, and prints its ratio to the
baseline `SELECT count(*) FROM opportunities WHERE workspace_id = ...`. Goal: each under
300 ms (PASS / FAIL). --without-kpi-indexes drops migration 0026's indexes first, to show
what they buy. The generated rows bypass the writers that keep accounts.stages_reached,
accounts.last_active_at and account_reactivations, so migration 0027's backfill fills them
after the seed (timed). --only times only the queries whose names contain one of the
comma-separated words.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import case, func, select, text, union_all  # noqa: E402

from bench.callback_ingest import DEFAULT_DATABASE_URL, bench_database  # noqa: E402
from bench.scoring import insert_people, new_workspace  # noqa: E402
from models import (  # noqa: E402
    Account,
    Database,
    Interaction,
    Opportunity,
    StageChange,
    migrate,
    utcnow,
)
from revenue import kpis  # noqa: E402
from scoring.model import DEFAULT_STAGES  # noqa: E402

TARGET_MS = 300.0
TIMEZONE = "Asia/Shanghai"
OWNERS = 20
PERIOD_DAYS = 183  # the dashboard's default: about six months

USERS_SQL = """
    INSERT INTO users (workspace_id, email, name, password_hash, role, locale, active,
        session_token, created_at)
    SELECT :ws, 'sales' || g || '@bench.example', '销售' || g, '-', 'sales', 'zh_CN', true,
        md5(g::text), now()
    FROM generate_series(1, :owners) AS g
"""
# Tiers 1-3 and none, owners round-robin, stages spread over the model's eight.
ACCOUNTS_SQL = """
    UPDATE accounts SET
        tier = CASE WHEN id % 4 = 0 THEN NULL ELSE 1 + id % 3 END,
        owner_id = CASE WHEN id % 10 = 0 THEN NULL ELSE :first_user + id % :owners END,
        stage = (ARRAY['target','target','aware','aware','engaged','engaged','mqa','meeting',
                       'opportunity','customer','expansion'])[1 + id % 11],
        mqa_since = CASE WHEN id % 11 >= 6 THEN now() - ((id * 7) % 365) * interval '1 day' END
    WHERE workspace_id = :ws
"""
# Three moves per account on average: aware, engaged, and for some MQA and later.
STAGE_CHANGES_SQL = """
    INSERT INTO stage_changes (workspace_id, subject, subject_id, from_stage, to_stage, reason,
        changed_at)
    SELECT a.workspace_id, 'account', a.id, NULL, s.stage, 'bench',
        now() - ((a.id * 13 + s.step * 29) % 540) * interval '1 day'
    FROM accounts a
    CROSS JOIN LATERAL (VALUES (1, 'aware'), (2, 'engaged'), (3, 'mqa'), (4, 'opportunity'))
        AS s(step, stage)
    WHERE a.workspace_id = :ws AND (s.step <= 2 OR a.id % (s.step * 2) = 0)
"""
# Spread over a year; one in 1,999 an NPS answer with a score 0-10. A fifth of the
# accounts went quiet 300-365 days ago, half of them back in the last 60 days.
INTERACTIONS_SQL = """
    INSERT INTO interactions (workspace_id, contact_id, account_id, kind, properties,
        engagement_minutes, occurred_at, created_at)
    SELECT :ws, :first_contact + k, :first_account + (k + 1) % :accounts,
        CASE WHEN g % 1999 = 0 THEN 'survey.nps' ELSE 'content.view' END,
        CASE WHEN g % 1999 = 0 THEN jsonb_build_object('score', g % 11) ELSE '{}'::jsonb END,
        0, now() - CASE
            WHEN (k + 1) % :accounts % 5 <> 0 THEN spread % (365 * 86400)
            WHEN (k + 1) % :accounts % 10 = 5 AND g % 7 = 0 THEN spread % (60 * 86400)
            ELSE 300 * 86400 + spread % (65 * 86400) END * interval '1 second',
        now()
    FROM generate_series(1, :interactions) AS g,
        LATERAL (SELECT (g::bigint * 7919) % :contacts AS k, g::bigint * 104729 AS spread) AS pick
"""
# 30% open, 40% won, 30% lost; a tenth renewals, a tenth expansions; over 18 months.
OPPORTUNITIES_SQL = """
    INSERT INTO opportunities (workspace_id, external_id, account_id, name, amount, type, stage,
        probability, status, source, opened_at, closed_at, created_at, updated_at)
    SELECT :ws, 'crm-' || g, :first_account + (g * 37) % :accounts, '商机 ' || g,
        10000 + (g * 7919) % 500000,
        CASE (g / 10) % 10 WHEN 0 THEN 'renewal' WHEN 1 THEN 'expansion' ELSE 'new' END,
        CASE WHEN g % 10 < 3 THEN 'solution' WHEN g % 10 < 7 THEN 'won' ELSE 'lost' END,
        CASE WHEN g % 10 < 3 THEN 30 WHEN g % 10 < 7 THEN 100 ELSE 0 END,
        CASE WHEN g % 10 < 3 THEN 'open' WHEN g % 10 < 7 THEN 'won' ELSE 'lost' END,
        'crm', opened, CASE WHEN g % 10 >= 3
            THEN LEAST(now(), opened + (5 + g % 120) * interval '1 day') END,
        now(), now()
    FROM generate_series(1, :opportunities) AS g,
        LATERAL (SELECT now() - ((g * 53) % 540) * interval '1 day' AS opened) AS o
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--opportunities", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--without-kpi-indexes", action="store_true")
    parser.add_argument("--only", default="", help="e.g. dormant,furthest")
    return parser.parse_args()


def interaction_indexes(session) -> list[tuple[str, str]]:
    return session.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'interactions' "
            r"AND indexname LIKE 'ix\_%'"
        )
    ).all()


def seed(db: Database, args) -> int:
    ws = new_workspace(db, "bench-kpis")
    first_contact = insert_people(db, ws, args.accounts, args.contacts)
    with db.session() as session:
        session.execute(text(USERS_SQL), {"ws": ws, "owners": OWNERS})
        first_user = session.scalar(
            text("SELECT min(id) FROM users WHERE workspace_id = :ws"), {"ws": ws}
        )
        first_account = session.scalar(
            text("SELECT min(id) FROM accounts WHERE workspace_id = :ws"), {"ws": ws}
        )
        params = {
            "ws": ws,
            "owners": OWNERS,
            "first_user": first_user,
            "first_account": first_account,
            "first_contact": first_contact,
            "accounts": args.accounts,
            "contacts": args.contacts,
            "interactions": args.interactions,
            "opportunities": args.opportunities,
        }
        session.execute(text(ACCOUNTS_SQL), params)
        session.execute(text(STAGE_CHANGES_SQL), params)
        session.execute(text(OPPORTUNITIES_SQL), params)
        # Loading 10M rows is faster without the indexes; they are rebuilt as they were.
        indexes = interaction_indexes(session)
        for name, _definition in indexes:
            session.execute(text(f'DROP INDEX "{name}"'))
        session.execute(text(INTERACTIONS_SQL), params)
        for _name, definition in indexes:
            session.execute(text(definition))
        if args.without_kpi_indexes:
            for name in ("ix_interactions_account_occurred", "ix_interactions_nps"):
                session.execute(text(f'DROP INDEX "{name}"'))
        session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    started = time.perf_counter()
    with db.engine.begin() as connection:
        backfill_0027(connection)
    print(f"migration 0027's backfill: {time.perf_counter() - started:.1f} s")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE accounts"))
        connection.execute(text("VACUUM ANALYZE account_reactivations"))
    return ws


def backfill_0027(connection) -> None:
    """What migration 0027 computes from the stage history and the interactions."""
    path = ROOT / "models/migrations/versions/0027_account_activity.py"
    spec = importlib.util.spec_from_file_location("migration_0027", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._backfill(connection)


# ---- the two queries as they were before migration 0027, to compare in the same run ----


def probed_dormant_recovery(session, scope, days: int = kpis.DORMANT_DAYS) -> kpis.Recovery:
    """Per account two probes of ix_interactions_account_occurred (before 0027)."""
    quiet_since = scope.start - timedelta(days=days)
    of_account = (
        Interaction.workspace_id == scope.workspace_id,
        Interaction.account_id == Account.id,
    )
    last_before = (
        select(func.max(Interaction.occurred_at))
        .where(*of_account, Interaction.occurred_at < scope.start)
        .scalar_subquery()
    )
    back = (
        select(Interaction.id)
        .where(
            *of_account,
            Interaction.occurred_at >= scope.start,
            Interaction.occurred_at < scope.end,
        )
        .exists()
    )
    dormant = last_before < quiet_since
    row = session.execute(
        select(kpis._count_if(dormant), kpis._count_if(dormant & back)).where(*scope.accounts())
    ).one()
    return kpis.Recovery(row[0], row[1])


def aggregated_furthest_stage(session, scope, stages: list[str]) -> dict[str, int]:
    """Every account's stage history aggregated (before 0027)."""
    moves = union_all(
        select(StageChange.subject_id.label("account_id"), StageChange.to_stage.label("s")).where(
            StageChange.workspace_id == scope.workspace_id,
            StageChange.subject == "account",
        ),
        select(Account.id, Account.stage).where(
            Account.workspace_id == scope.workspace_id, Account.stage.is_not(None)
        ),
    ).subquery()
    position = case({key: index for index, key in enumerate(stages)}, value=moves.c.s, else_=None)
    furthest = (
        select(moves.c.account_id, func.max(position).label("furthest"))
        .group_by(moves.c.account_id)
        .subquery()
    )
    rows = session.execute(
        select(furthest.c.furthest, func.count())
        .join(Account, Account.id == furthest.c.account_id)
        .where(*scope.accounts(), furthest.c.furthest.is_not(None))
        .group_by(furthest.c.furthest)
    ).all()
    return {stages[index]: count for index, count in rows}


def timed(fn, rounds: int) -> float:
    fn()  # warm
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(db: Database, ws: int, rounds: int, only: str) -> list[tuple[str, str, float]]:
    stages = [stage.key for stage in DEFAULT_STAGES]
    now = utcnow()
    with db.session() as session:
        first_user = session.scalar(
            text("SELECT min(id) FROM users WHERE workspace_id = :ws"), {"ws": ws}
        )
        scopes = {
            "all": kpis.Scope(ws, now - timedelta(days=PERIOD_DAYS), now),
            "tier 1": kpis.Scope(ws, now - timedelta(days=PERIOD_DAYS), now, tier=1),
            # The first user owns no account (id % 20 = 0 has no owner): the second, ~5,000.
            "owner": kpis.Scope(
                ws, now - timedelta(days=PERIOD_DAYS), now, owner_id=first_user + 1
            ),
        }
        queries = {
            "pipeline": lambda s: kpis.pipeline(session, s),
            "closed (win rate, deal size, cycle, renewal/expansion)": lambda s: kpis.closed(
                session, s
            ),
            "over time, by month": lambda s: kpis.over_time(session, s, TIMEZONE, "month"),
            "over time, by week": lambda s: kpis.over_time(session, s, TIMEZONE, "week"),
            "MQA -> opportunity": lambda s: kpis.mqa_conversion(session, s),
            "dormant recovery": lambda s: kpis.dormant_recovery(session, s),
            "NPS": lambda s: kpis.nps(session, s),
            "accounts per stage": lambda s: kpis.accounts_per_stage(session, s),
            "furthest stage (conversion)": lambda s: kpis.furthest_stage(session, s, stages),
            "dormant recovery, before 0027 (probes)": lambda s: probed_dormant_recovery(session, s),
            "furthest stage, before 0027 (history aggregated)": lambda s: aggregated_furthest_stage(
                session, s, stages
            ),
        }
        words = [word for word in only.split(",") if word]
        if words:
            queries = {k: q for k, q in queries.items() if any(w in k for w in words)}
        for scope_name, scope in scopes.items():  # the same answers as before 0027
            now_, then = (
                kpis.dormant_recovery(session, scope),
                probed_dormant_recovery(session, scope),
            )
            same = "same" if now_ == then else "DIFFERENT"
            print(f"{scope_name}: dormant recovery {same}: {now_} (before 0027: {then})")
            now_, then = (
                kpis.furthest_stage(session, scope, stages),
                aggregated_furthest_stage(session, scope, stages),
            )
            same = "same" if now_ == then else "DIFFERENT"
            print(f"{scope_name}: furthest stage {same}: {now_} (before 0027: {then})")
        rows = []
        for scope_name, scope in scopes.items():
            for name, query in queries.items():
                rows.append((scope_name, name, timed(lambda q=query, s=scope: q(s), rounds)))
        sample = kpis.kpis(session, scopes["all"])
        print(f"sample (all, {PERIOD_DAYS} days): {sample}")
    return rows


def main() -> int:
    args = parse_args()
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (Fernet.generate_key().decode(),))
        try:
            started = time.perf_counter()
            ws = seed(db, args)
            print(
                f"seeded {args.accounts:,} accounts, {args.contacts:,} contacts, "
                f"{args.interactions:,} interactions, {args.opportunities:,} opportunities "
                f"in {time.perf_counter() - started:.0f} s"
                + (" (without migration 0026's indexes)" if args.without_kpi_indexes else "")
            )
            with db.session() as session:
                count = select(func.count()).where(Opportunity.workspace_id == ws)
                baseline = timed(lambda: session.scalar(count), args.rounds)
                stage_rows = session.scalar(text("SELECT count(*) FROM stage_changes"))
            print(f"stage history: {stage_rows:,} rows")
            print(f"baseline count(*) of opportunities: {baseline:.1f} ms")
            rows = measure(db, ws, args.rounds, args.only)
        finally:
            db.dispose()
    print(f"\n{'scope':8} {'query':55} {'ms':>8} {'x base':>8}  goal < {TARGET_MS:.0f} ms")
    failed = 0
    for scope_name, name, ms in rows:
        ok = ms < TARGET_MS
        failed += not ok
        print(
            f"{scope_name:8} {name:55} {ms:8.1f} {ms / baseline:8.1f}  {'PASS' if ok else 'FAIL'}"
        )
    print(f"\n{len(rows) - failed} of {len(rows)} under {TARGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
