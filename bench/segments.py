"""Segments over a large workspace: count and materialize a 3-predicate segment on
PostgreSQL, with its EXPLAIN, against a full scan of the same contacts in the same run.

    .venv/bin/python bench/segments.py [--contacts N] [--accounts A] [--rounds R]

Generates --contacts contacts over --accounts accounts (set-based SQL), tags a third of
them with 价格 and gives each a score mass, then times `outreach.segments.contacts_query`
for "tagged 价格, role CIO or CTO, lead score >= 20": count(*) and fetching every id,
beside the baseline `SELECT count(*) FROM contacts` of the workspace. Prints the plan,
the indexes it uses (from EXPLAIN (FORMAT JSON)) and PASS / FAIL for count < 1 s and
for the count's plan using an index.
"""

import argparse
import statistics
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
from models import (  # noqa: E402
    Contact,
    Database,
    Tag,
    migrate,
    utcnow,
)
from outreach.segments import Range, Segment, contacts_query  # noqa: E402
from scoring.engine import decay_factor  # noqa: E402

TARGET_COUNT_SECONDS = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def seed(db: Database, args) -> tuple[int, int]:
    ws = new_workspace(db, "bench-segments")
    insert_people(db, ws, args.accounts, args.contacts)
    factor = decay_factor(utcnow(), 30)
    with db.session() as session:
        tag = Tag(workspace_id=ws, group="interest", name="价格")
        session.add(tag)
        session.flush()
        # Lead scores 0..99 spread over the contacts, stored as masses.
        session.execute(
            text("UPDATE contacts SET score_mass = (id % 100) / :factor WHERE workspace_id = :ws"),
            {"factor": factor, "ws": ws},
        )
        session.execute(
            text(
                """
                INSERT INTO contact_tags (contact_id, tag_id, workspace_id, source, created_at)
                SELECT id, :tag, workspace_id, 'rule', now() FROM contacts
                WHERE workspace_id = :ws AND id % 3 = 0
                """
            ),
            {"tag": tag.id, "ws": ws},
        )
        session.commit()
        session.execute(text("ANALYZE"))
        return ws, tag.id


def timed(fn, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def indexes_used(session, statement) -> list[str]:
    """The indexes the planner reads for `statement`: "index (node type on table)"."""
    (explained,) = session.execute(text(f"EXPLAIN (FORMAT JSON) {literal(session, statement)}"))
    return [
        f"{node['Index Name']} ({node['Node Type']}"
        + (f" on {node['Relation Name']})" if "Relation Name" in node else ")")
        for node in plan_nodes(explained[0][0]["Plan"])
        if "Index Name" in node
    ]


def literal(session, statement) -> str:
    return str(
        statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
    )


def main() -> int:
    args = parse_args()
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (Fernet.generate_key().decode(),))
        try:
            started = time.perf_counter()
            ws, tag_id = seed(db, args)
            print(f"seeded {args.contacts:,} contacts in {time.perf_counter() - started:.0f} s")
            segment = Segment(tags_any=(tag_id,), roles=("cio", "cto"), lead_score=Range(min=20))
            query = contacts_query(segment, ws, 30)
            counted = select(func.count()).select_from(query.subquery())
            everyone = select(func.count()).where(Contact.workspace_id == ws)
            with db.session() as session:
                baseline, total = timed(lambda: session.scalar(everyone), args.rounds)
                count_seconds, members = timed(lambda: session.scalar(counted), args.rounds)
                fetch_seconds, ids = timed(lambda: session.scalars(query).all(), args.rounds)
                plan = session.execute(
                    text(f"EXPLAIN (ANALYZE, COSTS OFF) {literal(session, counted)}")
                ).all()
                count_indexes = indexes_used(session, counted)
                fetch_indexes = indexes_used(session, query)
        finally:
            db.dispose()
    print("\n".join(row[0] for row in plan))
    print(f"\nindexes of the count: {', '.join(count_indexes) or 'none'}")
    print(f"indexes of the materialize: {', '.join(fetch_indexes) or 'none'}")
    print(
        f"\nsegment: {members:,} of {total:,} contacts; count {count_seconds * 1000:.0f} ms, "
        f"materialize {fetch_seconds * 1000:.0f} ms ({len(ids):,} ids); "
        f"baseline count(*) of the workspace {baseline * 1000:.0f} ms; "
        f"count / baseline {count_seconds / baseline:.1f}x"
    )
    verdict = "PASS" if count_seconds < TARGET_COUNT_SECONDS else "FAIL"
    print(f"| segment count | {count_seconds * 1000:.0f} ms | < 1 s | {verdict} |")
    indexed = "PASS" if count_indexes else "FAIL"
    print(f"| count's plan uses an index | {len(count_indexes)} index scans | >= 1 | {indexed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
