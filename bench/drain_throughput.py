"""Drain throughput: events handled per second by one drain, ours vs event-by-event.

    .venv/bin/python bench/drain_throughput.py [--events N] [--people P]

Creates a throwaway PostgreSQL database (dropped at the end), stores the same
mix of callbacks in two workspaces' inboxes — OA follows, menu clicks and
messages, and WeCom adds with a WelcomeCode through a 联系我 code with tags
and a welcome (a quarter of the events) — with the demo's tag rules, then
drains each in-process: the baseline with a savepoint per event from the
start (`optimistic=False`), ours with the optimistic batch pass. Prints
events/s for each and the ratio, in the same run.
"""

import argparse
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

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
from crm.channels import add_channel, workspace_named  # noqa: E402
from crm.users import create_user  # noqa: E402
from demo.data import seed_demo_tagging  # noqa: E402
from models import ContactWay, Role, migrate  # noqa: E402
from pipeline.drain import drain  # noqa: E402
from wechat import simulate  # noqa: E402
from wechat.callbacks import dedupe_key, parse_xml  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
OA_APP_ID, CORP_ID = "wxdrainbench00001", "wwdrainbench00001"
AES_KEY = "B" * 43


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events per workspace")
    parser.add_argument("--people", type=int, default=800, help="distinct OA followers")
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


def fill_inbox(h, ids: tuple[int, int, int], events: int, people: int) -> None:
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
        h.inbox.store(
            workspace_id=workspace_id,
            channel_id=channel_id,
            platform=platform,
            dedupe_key=dedupe_key(platform, parse_xml(xml), xml),
            payload=xml,
        )


def timed_drain(h, workspace_id: int, optimistic: bool) -> tuple[int, int, float]:
    started = time.perf_counter()
    with h.db.session() as session:
        result = drain(session, workspace_id, max_seconds=3600, optimistic=optimistic)
    return result.done, result.failed + result.dead, time.perf_counter() - started


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
    print(f"{'drain':16} {'events':>7} {'failed':>7} {'seconds':>8} {'events/s':>9}")
    for label, (done, failed, seconds) in runs.items():
        print(f"{label:16} {done:7d} {failed:7d} {seconds:8.2f} {done / seconds:9.0f}")
    base, ours = (runs[k][0] / runs[k][2] for k in ("event by event", "ours"))
    print(f"\nratio ours / event by event: {ours / base:.1f}x")


if __name__ == "__main__":
    main()
