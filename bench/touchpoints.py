"""Touchpoints beyond callbacks, each against a baseline in the same run:

    .venv/bin/python bench/touchpoints.py [--part a,b,c] [--batches N] [--items M]
        [--opens K]

(a) Ingest: N API requests of M touchpoints each (key check, per-item validation, one
    INSERT ... ON CONFLICT for the batch) through the app, in process. Baseline: the same
    bodies json-parsed and their rows inserted by one bare INSERT each (no key, no
    validation). Target: >= 10,000 items/s and >= 0.25 of the baseline.
(b) Drain: the drain over those N x M touchpoints (each names a new person by phone with
    a title and company: contact, identity, role, account, interaction, score), against
    the drain over as many OA text messages from as many new followers introducing
    themselves ("我是CIO，来自..." through the self-identification rule: the same title
    and company work). Target: >= 0.5 of the callbacks' events/s.
(c) Tracked link: K openings of /t/<code> by a reader the visitor cookie names (a page
    view and its touchpoint in one transaction, then the redirect), against a bare Flask
    route answering the same redirect. Reported per request; target p50 < 10 ms.

PostgreSQL and Redis on 127.0.0.1 (BENCH_DATABASE_URL, BENCH_REDIS_URL as for the other
benches); a throwaway database, dropped at the end.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from flask import Flask, redirect  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from bench.callback_ingest import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    bench_database,
    percentile,
)
from core.tokens import Purpose  # noqa: E402
from crm.api_keys import create_api_key  # noqa: E402
from crm.channels import add_channel, workspace_named  # noqa: E402
from crm.rule_config import DEFAULT_PROFILE_PATTERN  # noqa: E402
from crm.touchpoints import API, inbox_row  # noqa: E402
from models import (  # noqa: E402
    Content,
    InboundEvent,
    InboxStatus,
    Interaction,
    RuleKind,
    TagRule,
    migrate,
    utcnow,
)
from models.base import insert_ignoring_conflicts  # noqa: E402
from outreach.content import create_link  # noqa: E402
from pipeline.drain import drain  # noqa: E402

TARGET_ITEMS_PER_SECOND = 10_000
TARGET_INGEST_RATIO = 0.25
TARGET_DRAIN_RATIO = 0.5
TARGET_OPEN_P50_MS = 10.0
TITLES = ["CIO", "信息中心主任", "采购经理", "CTO", "工程师", "财务总监"]
COMPANIES = ["上海华信科技有限公司", "南京紫金银行", "杭州云栖数据有限公司", "成都天府教育集团"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="a,b,c")
    parser.add_argument("--batches", type=int, default=20, help="(a, b) API requests")
    parser.add_argument("--items", type=int, default=1000, help="(a, b) touchpoints each")
    parser.add_argument("--opens", type=int, default=2000, help="(c) link openings")
    return parser.parse_args()


def items(batch: int, size: int) -> list[dict]:
    return [
        {
            "kind": "live.watch",
            "external_id": f"live-{batch}-{n}",
            "phone": f"139{batch:04d}{n:04d}",
            "minutes": 10 + n % 50,
            "person": {"title": TITLES[n % len(TITLES)], "company": COMPANIES[n % len(COMPANIES)]},
            "properties": {"stream": "bench"},
        }
        for n in range(size)
    ]


def part_a(app, key: str, workspace_id: int, batches: int, size: int) -> float:
    client = app.test_client()
    bodies = [json.dumps({"items": items(b, size)}) for b in range(batches)]
    started = time.perf_counter()
    for body in bodies:
        answer = client.post(
            "/api/v1/touchpoints",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 200 and answer.json["accepted"] == size, answer.json
    ours = time.perf_counter() - started

    engine = app.extensions["harpoon"].db.autocommit_engine
    stmt = insert_ignoring_conflicts(engine.dialect.name, InboundEvent.__table__)
    baseline_bodies = [json.dumps({"items": items(b + batches, size)}) for b in range(batches)]
    started = time.perf_counter()
    for body in baseline_bodies:
        now = utcnow()
        rows = [
            inbox_row(workspace_id, None, API, f"bare:{i['external_id']}", i, now, lanes=4)
            for i in json.loads(body)["items"]
        ]
        with engine.connect() as conn:
            conn.execute(stmt, rows)
    bare = time.perf_counter() - started
    with app.extensions["harpoon"].db.session() as session:  # the baseline's rows go again
        session.execute(
            InboundEvent.__table__.delete().where(InboundEvent.dedupe_key.like("bare:%"))
        )
        session.commit()

    total = batches * size
    ratio = bare / ours
    print(
        f"(a) ingest: ours {total / ours:,.0f} items/s ({ours / batches * 1000:.1f} ms per "
        f"{size}-item request), bare insert {total / bare:,.0f} items/s; ratio {ratio:.2f}"
    )
    passed = total / ours >= TARGET_ITEMS_PER_SECOND and ratio >= TARGET_INGEST_RATIO
    print(
        f"    target >= {TARGET_ITEMS_PER_SECOND:,} items/s and ratio >= "
        f"{TARGET_INGEST_RATIO}: {verdict(passed)}"
    )
    return ours


def timed_drain(app, workspace_id: int) -> tuple[int, float]:
    db = app.extensions["harpoon"].db
    started = time.perf_counter()
    handled = 0
    with db.session() as session:
        while True:
            result = drain(session, workspace_id, batch_size=200, max_seconds=600)
            handled += result.handled
            if not result.more:
                break
    return handled, time.perf_counter() - started


def intro(n: int) -> str:
    """What a follower says of themselves: the same title and company the API items state."""
    return f"我是{TITLES[n % len(TITLES)]}，来自{COMPANIES[n % len(COMPANIES)]}"


def text_callbacks(channel_id: int, app_id: str, count: int) -> list[dict]:
    now = utcnow()
    rows = []
    for n in range(count):
        xml = (
            f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<FromUserName><![CDATA[oBench{n:07d}]]></FromUserName>"
            f"<CreateTime>{int(now.timestamp())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{intro(n)}]]></Content><MsgId>{9_000_000 + n}</MsgId></xml>"
        )
        rows.append(
            {
                "workspace_id": None,
                "channel_id": channel_id,
                "platform": "oa",
                "dedupe_key": f"msg:{9_000_000 + n}",
                "payload": xml,
                "status": InboxStatus.PENDING.value,
                "attempts": 0,
                "received_at": now,
                "next_attempt_at": now,
            }
        )
    return rows


def part_b(app, workspace_id: int, callbacks_workspace: int, oa_id: int) -> None:
    touch_events, touch_seconds = timed_drain(app, workspace_id)
    db = app.extensions["harpoon"].db
    with db.session() as session:
        recorded = session.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.workspace_id == workspace_id)
        )
        rows = text_callbacks(oa_id, "bench", touch_events)
        for row in rows:
            row["workspace_id"] = callbacks_workspace
        session.execute(InboundEvent.__table__.insert(), rows)
        session.commit()
    callback_events, callback_seconds = timed_drain(app, callbacks_workspace)
    ours, theirs = touch_events / touch_seconds, callback_events / callback_seconds
    ratio = ours / theirs
    print(
        f"(b) drain: touchpoints {ours:,.0f} events/s ({touch_events:,} -> {recorded:,} "
        f"interactions), OA text callbacks {theirs:,.0f} events/s; ratio {ratio:.2f}"
    )
    print(f"    target ratio >= {TARGET_DRAIN_RATIO}: {verdict(ratio >= TARGET_DRAIN_RATIO)}")


def part_c(app, workspace_id: int, oa_id: int, opens: int) -> None:
    h = app.extensions["harpoon"]
    with h.db.session() as session:
        content = Content(workspace_id=workspace_id, title="bench", url="https://example.com/x")
        session.add(content)
        session.flush()
        code = create_link(session, workspace_id, content_id=content.id, channel_id=oa_id).code
        session.commit()
    cookie = h.signer.sign(Purpose.VISITOR, {"w": workspace_id, "ch": oa_id, "o": "oReader"})
    client = app.test_client()
    client.set_cookie(f"hp_r{oa_id}", cookie)
    headers = {"User-Agent": "Mozilla/5.0 MicroMessenger/8.0"}

    bare_app = Flask("bare")

    @bare_app.get("/t/<code>")
    def bare_open(code):
        return redirect("https://example.com/x")

    bare_client = bare_app.test_client()
    ours = timings(lambda: client.get(f"/t/{code}", headers=headers), opens)
    bare = timings(lambda: bare_client.get(f"/t/{code}", headers=headers), opens)
    p50, p95 = percentile(ours, 0.5), percentile(ours, 0.95)
    print(
        f"(c) tracked link: ours p50 {p50:.2f} ms, p95 {p95:.2f} ms; bare redirect p50 "
        f"{percentile(bare, 0.5):.2f} ms; ratio (bare/ours, p50) {percentile(bare, 0.5) / p50:.3f}"
    )
    print(f"    target p50 < {TARGET_OPEN_P50_MS} ms: {verdict(p50 < TARGET_OPEN_P50_MS)}")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def timings(call, count: int) -> list[float]:
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        answer = call()
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 302, answer.status_code
    return spent


def main() -> None:
    args = parse_args()
    parts = set(args.part.split(","))
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    redis.Redis.from_url(redis_url).flushdb()
    with bench_database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)) as url:
        migrate.upgrade(url)
        app = create_app(
            {
                "database_url": url,
                "redis_url": redis_url,
                "encryption_keys": (Fernet.generate_key().decode(),),
                "secret_key": "bench",
                "api_rate_limit": "1000000 per minute",
                "log_level": "WARNING",
            }
        )
        h = app.extensions["harpoon"]
        with app.app_context(), h.db.session() as session:
            workspace = workspace_named(session, "bench")
            callbacks = workspace_named(session, "bench-callbacks")
            oa = add_channel(
                session,
                callbacks,
                kind="oa",
                name="bench OA",
                app_id="wxbench",
                token="benchtoken",
                message_mode="plain",
                aes_key=None,
            )
            reader_oa = add_channel(
                session,
                workspace,
                kind="oa",
                name="reader OA",
                app_id="wxreader",
                token="benchtoken",
                message_mode="plain",
                aes_key=None,
            )
            key = create_api_key(session, workspace.id, "bench").key
            session.add(
                TagRule(
                    workspace_id=callbacks.id,
                    kind=RuleKind.PROFILE,
                    name="我是…来自…",
                    config={"pattern": DEFAULT_PROFILE_PATTERN},
                )
            )
            session.commit()
            ids = workspace.id, callbacks.id, oa.id, reader_oa.id
        with app.app_context():
            if parts & {"a", "b"}:
                part_a(app, key, ids[0], args.batches, args.items)
            if "b" in parts:
                part_b(app, ids[0], ids[1], ids[2])
            if "c" in parts:
                part_c(app, ids[0], ids[3], args.opens)
        h.db.dispose()


if __name__ == "__main__":
    main()
