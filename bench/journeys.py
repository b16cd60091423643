"""Journeys under load: (a) 100K enrolments due at once, walked by the due-step runner;
(b) callback -> journey action, under open-loop load through gunicorn and --workers workers.

    .venv/bin/python bench/journeys.py [--part a,b] [--enrolments N] [--runners R]
        [--rate R] [--seconds S]

(a) Seeds N contacts enrolled at the entry of a live journey (entry -> add a tag -> wait a
day), all due now, and times `journeys.runner.run_due` with R runner processes sharing
the work through SKIP LOCKED: steps per second, and each enrolment's lag (its first
step's time minus its due time). Baseline in the same run: a bare loop doing the
minimum per enrolment a row-at-a-time runner must (claim it, write one step row, move
it on) in raw SQL, one process.

(b) A live journey enters on a text message and tags the sender; followers already in
accounts send messages open-loop at --rate for --seconds; latency runs from each
callback's scheduled send to its journey step committed (the drain enrols, the
`run_journeys` job tags). Targets: >= 2,000 steps/s, lag < 5 s; (b) p95 < 2 s.
"""

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.callback_ingest import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    bench_database,
    percentile,
)
from bench.scoring import (  # noqa: E402
    callback_latencies,
    insert_people,
    new_workspace,
)
from crm.tags import TagBook  # noqa: E402
from journeys import runner  # noqa: E402
from models import (  # noqa: E402
    Database,
    Journey,
    JourneyStatus,
    JourneyVersion,
    TagGroup,
    migrate,
)

TARGET_STEPS = 2000
TARGET_LAG = 5.0
TARGET_P95 = 2.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="a,b")
    parser.add_argument("--enrolments", type=int, default=100_000, help="(a)")
    parser.add_argument("--runners", type=int, default=2, help="(a) runner processes")
    parser.add_argument("--baseline", type=int, default=20_000, help="(a) baseline enrolments")
    parser.add_argument("--rate", type=float, default=100, help="(b) callbacks per second")
    parser.add_argument("--seconds", type=float, default=10, help="(b) seconds of load")
    parser.add_argument("--processes", type=int, default=2, help="(b) generator processes")
    parser.add_argument("--workers", type=int, default=2, help="(b) RQ worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="(b) connections")
    return parser.parse_args()


def tagging_journey(trigger: dict, tag_id: int) -> dict:
    return {
        "reentry": "always",
        "nodes": [
            {"id": "start", "type": "entry", "trigger": trigger, "next": "tag"},
            {
                "id": "tag",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": tag_id},
                "next": "later",
            },
            {"id": "later", "type": "wait", "wait": {"minutes": 1440}, "next": "done"},
            {"id": "done", "type": "exit"},
        ],
    }


def live_journey(db: Database, ws: int, trigger: dict) -> int:
    with db.session() as session:
        tag = TagBook(session, ws).get(session, TagGroup.BEHAVIOR, "bench")
        journey = Journey(workspace_id=ws, name="bench", status=JourneyStatus.LIVE, live_version=1)
        session.add(journey)
        session.flush()
        session.add(
            JourneyVersion(
                journey_id=journey.id, version=1, document=tagging_journey(trigger, tag.id)
            )
        )
        session.commit()
        return journey.id


# --- (a) ---------------------------------------------------------------------------------


def enrol_everyone(db: Database, ws: int, journey_id: int) -> None:
    """Every contact of the workspace enrolled at the entry, due now (set-based)."""
    with db.session() as session:
        session.execute(
            text(
                """
                INSERT INTO enrolments (workspace_id, journey_id, version, contact_id,
                    node_id, status, next_run_at, visit, entered_at, entered_node,
                    entered_because)
                SELECT :ws, :j, 1, id, 'start', 'active', now(), 1, now(), 'start',
                    '{"kind": "manual"}'
                FROM contacts WHERE workspace_id = :ws
                """
            ),
            {"ws": ws, "j": journey_id},
        )
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()


def runner_process(url: str, key: str, ws: int, results) -> None:
    db = Database()
    db.configure(url, (key,))
    with db.session() as session:
        result = runner.run_due(session, ws, batch_size=200, max_batches=10**6)
    db.dispose()
    results.put(result.steps)


def part_a(url: str, key: str, db: Database, args) -> None:
    ws = new_workspace(db, "bench-journeys-a")
    insert_people(db, ws, max(1, args.enrolments // 10), args.enrolments)
    journey_id = live_journey(db, ws, {"kind": "manual"})
    enrol_everyone(db, ws, journey_id)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    started = time.perf_counter()
    children = [
        context.Process(target=runner_process, args=(url, key, ws, results))
        for _ in range(args.runners)
    ]
    for child in children:
        child.start()
    steps = sum(results.get() for _ in children)
    for child in children:
        child.join()
    seconds = time.perf_counter() - started
    with db.session() as session:
        lags = [
            row[0]
            for row in session.execute(
                text(
                    """
                    SELECT extract(epoch FROM s.at - e.entered_at) FROM journey_steps s
                    JOIN enrolments e ON e.id = s.enrolment_id
                    WHERE s.journey_id = :j AND s.node_id = 'start' AND s.outcome = 'done'
                    """
                ),
                {"j": journey_id},
            )
        ]
        waiting = session.scalar(
            text("SELECT count(*) FROM enrolments WHERE journey_id = :j AND node_id = 'later'"),
            {"j": journey_id},
        )
    base_seconds = baseline(db, args.baseline)
    ours = steps / seconds
    base = args.baseline * 3 / base_seconds
    lags = [float(lag) for lag in lags]
    print(
        f"(a) {args.enrolments:,} enrolments due at once, {args.runners} runners: {steps:,} steps "
        f"in {seconds:.1f} s = {ours:,.0f} steps/s; {waiting:,} now waiting a day"
    )
    print(
        f"    lag (first step - due): p50 {percentile(lags, 0.5):.1f} s, "
        f"p95 {percentile(lags, 0.95):.1f} s, max {max(lags, default=0):.1f} s"
    )
    print(
        f"    baseline (raw SQL claim + step row + move, 1 process): {base:,.0f} steps/s; "
        f"ours / baseline {ours / base:.2f}x"
    )
    verdict = "PASS" if ours >= TARGET_STEPS else "FAIL"
    print(f"| due-step runner | {ours:,.0f} steps/s | >= 2,000 | {verdict} |")
    lag95 = percentile(lags, 0.95)
    print(f"| lag p95 | {lag95:.1f} s | < 5 s | {'PASS' if lag95 < TARGET_LAG else 'FAIL'} |")


def baseline(db: Database, n: int) -> float:
    """Row at a time, the least a runner can do: claim, log one step, move on (x3 nodes)."""
    ws = new_workspace(db, "bench-journeys-base")
    insert_people(db, ws, max(1, n // 10), n)
    journey_id = live_journey(db, ws, {"kind": "manual"})
    enrol_everyone(db, ws, journey_id)
    started = time.perf_counter()
    with db.session() as session:
        while True:
            ids = list(
                session.scalars(
                    text(
                        "SELECT id FROM enrolments WHERE journey_id = :j AND status = 'active' "
                        "AND next_run_at <= now() ORDER BY next_run_at LIMIT 200 "
                        "FOR UPDATE SKIP LOCKED"
                    ),
                    {"j": journey_id},
                )
            )
            if not ids:
                break
            for enrolment_id in ids:
                for visit, node in enumerate(("start", "tag", "later"), start=1):
                    session.execute(
                        text(
                            "INSERT INTO journey_steps (enrolment_id, journey_id, version, "
                            "node_id, visit, outcome, detail, at) VALUES "
                            "(:e, :j, 1, :n, :v, 'done', '{}', now())"
                        ),
                        {"e": enrolment_id, "j": journey_id, "n": node, "v": visit},
                    )
                session.execute(
                    text(
                        "UPDATE enrolments SET node_id = 'later', status = 'waiting', "
                        "next_run_at = now() + interval '1 day' WHERE id = :e"
                    ),
                    {"e": enrolment_id},
                )
            session.commit()
    return time.perf_counter() - started


# --- (b) ---------------------------------------------------------------------------------


STEP_ROWS = (
    "SELECT s.id, e.contact_id FROM journey_steps s "
    "JOIN enrolments e ON e.id = s.enrolment_id "
    "WHERE s.id > :last AND s.journey_id = :j AND s.node_id = 'tag' "
    "AND s.outcome = 'done' ORDER BY s.id"
)


def part_b(url: str, args) -> None:
    def prepare(db: Database, ws: int) -> dict:
        trigger = {"kind": "interaction", "event": {"kind": "wechat.message"}}
        return {"j": live_journey(db, ws, trigger)}

    latencies, tally, _ = callback_latencies(url, args, STEP_ROWS, prepare)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        f"(b) {args.rate:.0f} callbacks/s for {args.seconds:.0f} s: {tally.ok} answered, "
        f"{len(latencies)} journey actions; callback -> action p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s, max {max(latencies, default=0):.2f} s"
    )
    print(
        f"| callback -> journey action p95 at {args.rate:.0f}/s | {p95:.2f} s | < 2 s | "
        f"{'PASS' if p95 < TARGET_P95 else 'FAIL'} |"
    )


def main() -> int:
    args = parse_args()
    parts = set(args.part.split(","))
    key = Fernet.generate_key().decode()
    with bench_database(DEFAULT_DATABASE_URL) as url:
        migrate.upgrade(url)
        db = Database()
        db.configure(url, (key,))
        try:
            if "a" in parts:
                part_a(url, key, db, args)
            if "b" in parts:
                part_b(url, args)
        finally:
            db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
