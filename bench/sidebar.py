"""The chat sidebar's contact panel: p95 latency over HTTP (the Flask test client, the whole
request: session, sign-in check, every section's query, rendering) for a person whose account
has 50 contacts and 5,000 interactions with their ledger entries, 30 content items (some read),
and journeys, against a bare Flask page in the same run and process.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/<n> .venv/bin/python bench/sidebar.py

The database is migrated and used as is (its tables are emptied first: give it a database of
its own); target: p95 < 150 ms.
"""

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from flask import Flask  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from bench.callback_ingest import percentile  # noqa: E402
from bench.scoring import rq_worker  # noqa: E402
from crm.api_keys import create_api_key  # noqa: E402
from crm.channels import add_channel, workspace_named  # noqa: E402
from crm.companies import normalize_company  # noqa: E402
from crm.users import create_user  # noqa: E402
from journeys.definitions import create_journey, go_live  # noqa: E402
from models import (  # noqa: E402
    Account,
    Channel,
    Contact,
    Content,
    Enrolment,
    FollowRelation,
    Identity,
    IdentityKind,
    InboundEvent,
    InboxStatus,
    Interaction,
    PageView,
    ScoreEntry,
    Staff,
    migrate,
    utcnow,
)
from outreach.content import create_link  # noqa: E402
from scoring.engine import Scorer  # noqa: E402
from tests.helpers import empty_tables  # noqa: E402

TARGET_P95_MS = 150.0
CONTACTS = 50
INTERACTIONS = 5_000
CONTENTS = 30
ROLES = ["cio", "cto", "cfo", "it_manager", "engineer", "procurement", "finance", None]
SENIORITIES = ["c_level", "vp", "director", "manager", "staff"]
KINDS = ["content.view", "content.read", "wechat.menu_click", "form.submit", "live.watch"]
JOURNEY = {
    "scope": "contact",
    "reentry": "once",
    "nodes": [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "content.read"}},
            "next": "wait_read",
        },
        {
            "id": "wait_read",
            "type": "wait",
            "wait": {"event": {"kind": "form.submit"}, "timeout_minutes": 2880},
            "next": "done",
            "timeout_next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--mix-rate",
        type=float,
        default=40.0,
        help="touchpoints/s the account's people send during the live phase (0: skip it)",
    )
    return parser.parse_args()


def seed(app) -> tuple[int, str, int, str]:
    """The workspace's data: (channel id, the person's external_userid, user id, its token)."""
    h = app.extensions["harpoon"]
    rng = random.Random(20)
    now = utcnow()
    with app.app_context(), h.db.session() as session:
        workspace = workspace_named(session, "bench")
        ws = workspace.id
        corp = add_channel(
            session,
            workspace,
            kind="wecom",
            name="bench corp",
            app_id="wwbench",
            token="benchtoken",
            aes_key="a" * 43,
            message_mode="safe",
            secret="contact",
        )
        oa = add_channel(
            session,
            workspace,
            kind="oa",
            name="bench OA",
            app_id="wxbench",
            token="benchtoken",
            message_mode="plain",
            aes_key=None,
        )
        user = create_user(session, workspace, "sales@bench.example", "张三", "pw-123456", "sales")
        session.add(Staff(workspace_id=ws, channel_id=corp.id, userid="zhangsan", name="张三"))
        session.flush()
        session.query(Staff).filter_by(workspace_id=ws).update({"user_id": user.id})
        # Other accounts, so the percentile has company.
        for n in range(200):
            session.add(
                Account(
                    workspace_id=ws,
                    name=f"公司{n}",
                    normalized_name=normalize_company(f"公司{n}"),
                    score=rng.uniform(0, 80),
                )
            )
        account = Account(
            workspace_id=ws, name="华信科技", normalized_name=normalize_company("华信科技")
        )
        session.add(account)
        session.flush()
        account.owner_id = user.id
        people = [
            Contact(
                workspace_id=ws,
                account_id=account.id,
                name=f"联系人{n}",
                title="信息中心主任",
                role=ROLES[n % len(ROLES)],
                seniority=SENIORITIES[n % len(SENIORITIES)],
            )
            for n in range(CONTACTS)
        ]
        session.add_all(people)
        session.flush()
        person = people[0]
        for contact in people:
            session.add(
                Identity(
                    workspace_id=ws,
                    contact_id=contact.id,
                    kind=IdentityKind.EXTERNAL_USERID,
                    channel_id=corp.id,
                    value=f"wm{contact.id:08d}",
                )
            )
            session.add(
                FollowRelation(
                    workspace_id=ws,
                    channel_id=corp.id,
                    contact_id=contact.id,
                    external_userid=f"wm{contact.id:08d}",
                    staff_userid="zhangsan",
                    added_at=now,
                )
            )
        contents = []
        for n in range(CONTENTS):
            content = Content(
                workspace_id=ws,
                title=f"内容{n}",
                url=f"https://example.com/{n}",
                topics=[rng.choice(["数字化", "安全", "云", "pricing", "cio"])],
            )
            session.add(content)
            contents.append(content)
        session.flush()
        links = [create_link(session, ws, content_id=c.id, channel_id=oa.id) for c in contents[:10]]
        interactions = []
        for n in range(INTERACTIONS):
            contact = people[n % CONTACTS]
            interactions.append(
                {
                    "workspace_id": ws,
                    "contact_id": contact.id,
                    "account_id": account.id,
                    "channel_id": oa.id,
                    "kind": KINDS[n % len(KINDS)],
                    "properties": {"title": f"内容{n % CONTENTS}"},
                    "engagement_minutes": rng.uniform(0, 5),
                    "occurred_at": now - timedelta(minutes=rng.uniform(0, 60 * 24 * 90)),
                }
            )
        session.execute(Interaction.__table__.insert(), interactions)
        ids = session.execute(
            Interaction.__table__.select()
            .with_only_columns(
                Interaction.id, Interaction.contact_id, Interaction.kind, Interaction.occurred_at
            )
            .where(Interaction.workspace_id == ws)
        ).all()
        session.execute(
            ScoreEntry.__table__.insert(),
            [
                {
                    "workspace_id": ws,
                    "contact_id": contact_id,
                    "interaction_id": interaction_id,
                    "rule_key": kind,
                    "points": 5.0,
                    "weight": 1.0,
                    "minutes": 2.0,
                    "signal": "engagement",
                    "occurred_at": at,
                }
                for interaction_id, contact_id, kind, at in ids
            ],
        )
        for n, link in enumerate(links * 5):
            session.add(
                PageView(
                    workspace_id=ws,
                    link_id=link.id,
                    content_id=link.content_id,
                    channel_id=oa.id,
                    contact_id=people[n % 5].id,
                    started_at=now - timedelta(days=n),
                    active_seconds=120,
                )
            )
        journey = create_journey(session, ws, "阅读后跟进", "", JOURNEY, None)
        go_live(session, journey)
        session.flush()
        for contact in people[:10]:
            session.add(
                Enrolment(
                    workspace_id=ws,
                    journey_id=journey.id,
                    version=1,
                    contact_id=contact.id,
                    node_id="wait_read",
                    status="waiting",
                    entered_node="start",
                    next_run_at=now + timedelta(days=1),
                )
            )
        session.commit()
        scorer = Scorer.load(session, ws)
        scorer.refresh_contacts([c.id for c in people])
        scorer.refresh_accounts([account.id])
        session.commit()
        return corp.id, f"wm{person.id:08d}", user.id, user.session_token


class LiveTraffic(threading.Thread):
    """The account's people acting while the panel is read: touchpoints through the API
    (batches of 10 at `rate` a second) that an RQ worker drains, scores and feeds to the
    live journey, so the panel's queries meet the drain's writes and locks."""

    def __init__(self, app, channel_id: int, key: str, rate: float):
        super().__init__(daemon=True)
        self.client, self.channel_id, self.key, self.rate = app.test_client(), channel_id, key, rate
        self.stop, self.sent, self.failed = threading.Event(), 0, 0
        with app.app_context(), app.extensions["harpoon"].db.session() as session:
            self.people = session.scalars(
                select(Identity.value).where(Identity.channel_id == channel_id)
            ).all()

    def run(self) -> None:
        rng, started = random.Random(5), time.monotonic()
        while not self.stop.is_set():
            items = [
                {
                    "kind": rng.choice(("content.read", "content.view", "live.watch")),
                    "external_userid": rng.choice(self.people),
                    "channel_id": self.channel_id,
                    "minutes": rng.randint(1, 20),
                    "external_id": f"mix-{self.sent + n}",
                }
                for n in range(10)
            ]
            answer = self.client.post(
                "/api/v1/touchpoints",
                json={"items": items},
                headers={"Authorization": f"Bearer {self.key}"},
            )
            if answer.status_code < 300:
                self.sent += len(items)
            else:
                self.failed += len(items)
            due = started + self.sent / self.rate
            self.stop.wait(max(0.0, due - time.monotonic()))


def timings(call, count: int) -> list[float]:
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        answer = call()
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.status_code
    return spent


def report(phase: str, client, bare_client, path: str, body: bytes, requests: int) -> None:
    ours = timings(lambda: client.get(path), requests)
    theirs = timings(lambda: bare_client.get(path), requests)
    p50, p95 = percentile(ours, 0.5), percentile(ours, 0.95)
    b50, b95 = percentile(theirs, 0.5), percentile(theirs, 0.95)
    print(
        f"{phase}: contact panel ({CONTACTS} contacts, {INTERACTIONS:,} interactions, "
        f"{len(body):,} bytes): p50 {p50:.1f} ms, p95 {p95:.1f} ms; bare page p50 {b50:.2f} ms, "
        f"p95 {b95:.2f} ms; ratio (ours/bare, p95) {p95 / b95:.0f}x"
    )
    print(f"    target p95 < {TARGET_P95_MS:.0f} ms: {'PASS' if p95 < TARGET_P95_MS else 'FAIL'}")


def main() -> None:
    args = parse_args()
    url = os.environ["BENCH_DATABASE_URL"]
    redis_url = os.environ["BENCH_REDIS_URL"]
    redis.Redis.from_url(redis_url).flushdb()
    migrate.upgrade(url)
    app = create_app(
        {
            "database_url": url,
            "redis_url": redis_url,
            "encryption_keys": (Fernet.generate_key().decode(),),
            "secret_key": "bench",
            "log_level": "WARNING",
        }
    )
    h = app.extensions["harpoon"]
    empty_tables(h.db)
    channel_id, external_userid, user_id, token = seed(app)
    client = app.test_client()
    with client.session_transaction("/admin/") as session:
        session["_user_id"] = f"{user_id}:{token}"
        session["_fresh"] = True
    path = f"/wecom/panel/{channel_id}/contact/{external_userid}"
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    body = page.data

    bare_app = Flask("bare")

    @bare_app.get("/wecom/panel/<int:channel_id>/contact/<external_userid>")
    def bare(channel_id, external_userid):
        return body

    bare_client = bare_app.test_client()
    timings(lambda: client.get(path), args.warmup)
    timings(lambda: bare_client.get(path), args.warmup)
    report("quiet", client, bare_client, path, body, args.requests)
    if args.mix_rate > 0:
        with app.app_context(), h.db.session() as session:
            key = create_api_key(session, session.get(Channel, channel_id).workspace_id, "mix")
            session.commit()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "HARPOON_ENCRYPTION_KEYS": ",".join(h.settings.encryption_keys),
            "HARPOON_SECRET_KEY": "bench",
            "HARPOON_LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory() as tmp, rq_worker(env, Path(tmp)):
            traffic = LiveTraffic(app, channel_id, key.key, args.mix_rate)
            traffic.start()
            time.sleep(3)  # the worker up, the drain under way
            report(
                f"live ({args.mix_rate:.0f} touchpoints/s drained, scored, journeys)",
                client,
                bare_client,
                path,
                body,
                args.requests,
            )
            traffic.stop.set()
            traffic.join()
            with app.app_context(), h.db.session() as session:
                done = session.scalar(
                    select(func.count()).where(InboundEvent.status == InboxStatus.DONE)
                )
            print(
                f"    live traffic: {traffic.sent} sent, {traffic.failed} refused, {done} drained"
            )
    with app.app_context():
        empty_tables(h.db)
    redis.Redis.from_url(redis_url).flushdb()


if __name__ == "__main__":
    main()
