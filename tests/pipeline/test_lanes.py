"""Lanes and queues: a workspace's inbox drained by several workers at once, each lane in
order; the high queue ahead of the others; drains bounded in time; recovery from killed
workers and a killed sweeper job without a person."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from rq.executions import Execution
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, text, update

import app.jobs as app_jobs
from app.queue import ThreadWorker
from config import ROOT
from core.jobs import QUEUE_OF, Job, Urgency
from core.lanes import lane_of
from crm.channels import workspace_named
from crm.touchpoints import person_key
from models import Account, Contact, Identity, InboundEvent, Interaction, utcnow
from pipeline.drain import drain_lock_key
from pipeline.inbox import callback_lane
from scoring.engine import Scorer
from tests.factories import add_contact, add_way, make_account, make_channel, make_oa, touches
from tests.helpers import (
    ENCRYPTION_KEY,
    OA_CREDS,
    TEST_REDIS_URL,
    WECOM_CREDS,
    harpoon_of,
    inbox,
    interactions,
    post_oa,
    post_wecom,
    run_jobs,
)
from wechat import simulate

PEOPLE = 16


def test_every_job_has_a_queue_and_the_urgent_ones_are_high():
    assert set(QUEUE_OF) == set(Job)
    assert {job for job, urgency in QUEUE_OF.items() if urgency == Urgency.HIGH} == {
        Job.DRAIN_INBOX,
        Job.SWEEP_INBOX,
        Job.SEND_WELCOMES,
        Job.SEND_FORM_FOLLOWUPS,
    }


def test_a_person_has_one_lane_whatever_the_source():
    assert (
        lane_of("o_ann", 4)
        == lane_of("o_ann", 4)
        == callback_lane("oa", {"FromUserName": "o_ann"}, 4)
    )
    assert callback_lane("oa", {"FromUserName": "o_ann"}, 4) == lane_of(
        person_key({"openid": "o_ann", "phone": "13800000000"}), 4
    )
    change = {"FromUserName": "sys", "UserID": "alice", "ExternalUserID": "wm_bob"}
    assert callback_lane("wecom", change, 4) == lane_of("wm_bob", 4)
    assert callback_lane("wecom", {"FromUserName": "alice"}, 4) == lane_of("alice", 4)
    assert {lane_of(f"o_{n}", 4) for n in range(50)} == {0, 1, 2, 3}
    assert {lane_of(f"o_{n}", 1) for n in range(50)} == {0}


def _people(app, channel_id, workspace="acme"):
    """PEOPLE followers spread over 3 accounts; their openids."""
    accounts = [make_account(app, f"{workspace} Corp {n}", workspace=workspace) for n in range(3)]
    openids = [f"o_{workspace}_{n}" for n in range(PEOPLE)]
    for n, openid in enumerate(openids):
        add_contact(
            app,
            workspace=workspace,
            openid=openid,
            channel_id=channel_id,
            account_id=accounts[n % 3],
            name=f"P{n}",
        )
    return openids


def _traffic(client, channel_id, openids, base):
    """Each person follows, clicks, writes; every other one unfollows after following."""
    at = int(time.time()) - 60
    for n, openid in enumerate(openids):
        post_oa(client, channel_id, simulate.oa_event(openid, "subscribe", at=at))
        post_oa(client, channel_id, simulate.oa_event(openid, "CLICK", EventKey="K", at=at + 1))
        post_oa(client, channel_id, simulate.oa_text(openid, "hi", base + n, at=at + 2))
        if n % 2:
            post_oa(client, channel_id, simulate.oa_event(openid, "unsubscribe", at=at + 3))


def _scores(app, workspace):
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, workspace).id
        accounts = session.execute(
            select(Account.name, Account.score).where(Account.workspace_id == ws)
        ).all()
        contacts = session.execute(
            select(Contact.name, Contact.score_mass).where(Contact.workspace_id == ws)
        ).all()
        following = session.execute(
            select(Identity.value, Identity.following).where(Identity.workspace_id == ws)
        ).all()
    strip = len(workspace)
    return (
        {name[strip:]: score for name, score in accounts},
        dict(contacts),
        {value[2 + strip :]: follows for value, follows in following},
    )


def _work_in_threads(app, workers: int) -> None:
    """`workers` RQ workers, each on its own thread with its own connections, until the
    queues are empty."""
    queue = harpoon_of(app).queue
    queue.drain_requests.flush()
    errors = []

    def work():
        try:
            queue.worker(app, ThreadWorker).work(burst=True, logging_level="WARNING")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_workers_drain_one_workspace_across_lanes_as_one_would(make_app, caplog):
    app = make_app(inbox_lanes=4, inbox_batch_size=5, drain_max_seconds=0.05)
    if harpoon_of(app).db.is_sqlite:
        pytest.skip("one SQLite writer: parallel drains need PostgreSQL")
    client = app.test_client()
    one = make_oa(app)
    two = make_channel(
        app, "oa", OA_CREDS, workspace="globex", message_mode="safe", account_type="service"
    )
    _traffic(client, one, _people(app, one), 10_000)
    _work_in_threads(app, 1)
    _traffic(client, two, _people(app, two, "globex"), 20_000)
    with caplog.at_level(logging.INFO):
        _work_in_threads(app, 2)

    rows = inbox(app)
    assert {row.lane for row in rows} == {0, 1, 2, 3}
    assert {row.status for row in rows} == {"done"}
    kept = interactions(app)
    assert len(kept) == len(rows)  # each event recorded once
    assert len({i.source_event_id for i in kept}) == len(rows)
    single, double = _scores(app, "acme"), _scores(app, "globex")
    assert double[0] == pytest.approx(single[0], rel=1e-3)  # account scores
    assert double[1] == pytest.approx(single[1], rel=1e-6)  # lead score masses
    assert double[2] == single[2]  # follow state, in each person's order
    assert [following for _, following in sorted(double[2].items())].count(False) == PEOPLE // 2
    drain_problems = [
        r for r in caplog.records if r.name.startswith("pipeline") and r.levelno >= logging.WARNING
    ]
    assert drain_problems == []  # no event failed, no scoring or journeys dropped
    assert not any("deadlock" in r.getMessage().lower() for r in caplog.records)


def test_a_welcome_goes_before_a_busy_default_queue(app, monkeypatch):
    order = []
    monkeypatch.setattr(app_jobs, "run_journeys", lambda ws: order.append("journeys"))
    monkeypatch.setattr(app_jobs, "send_welcomes", lambda channel: order.append("welcome"))
    monkeypatch.setattr(app_jobs, "sync_tags", lambda channel: order.append("tags"))
    queue = harpoon_of(app).queue
    queue.enqueue(Job.SYNC_TAGS, 1)
    queue.enqueue(Job.RUN_JOURNEYS, 1)
    queue.enqueue(Job.SEND_WELCOMES, 1)
    run_jobs(app)
    assert order == ["welcome", "journeys", "tags"]


def test_a_welcome_goes_before_the_drains_waiting_on_the_high_queue(make_app, monkeypatch):
    """A drain past its budget requeues itself at the back of the high queue; a welcome
    is queued at its front, so it never waits for the drains."""
    app = make_app(inbox_lanes=1, inbox_batch_size=1, drain_max_seconds=0)
    client = app.test_client()
    channel = make_oa(app)
    for n in range(3):
        post_oa(client, channel, simulate.oa_text(f"o_{n}", "hi", 30_000 + n))
    order = []
    drain_inbox = app_jobs.drain_inbox

    def drain(workspace_id, lane):
        order.append("drain")
        return drain_inbox(workspace_id, lane)

    monkeypatch.setattr(app_jobs, "drain_inbox", drain)
    monkeypatch.setattr(app_jobs, "send_welcomes", lambda channel: order.append("welcome"))
    queue = harpoon_of(app).queue
    queue.drain_requests.flush()  # the drain is queued first
    queue.enqueue(Job.SEND_WELCOMES, 1)
    run_jobs(app)
    assert order[0] == "welcome"
    assert order.count("drain") >= 3 and "welcome" not in order[1:]  # a batch of one a run
    assert [row.status for row in inbox(app)] == ["done"] * 3


def test_a_drain_steps_aside_for_the_welcome_its_batch_asked_for(make_app, monkeypatch):
    """With time left in its budget, a drain whose batch recorded a welcome ends its job:
    the welcome runs next, then the drain goes on."""
    app = make_app(inbox_lanes=1, inbox_batch_size=1, drain_max_seconds=60)
    client = app.test_client()
    corp = make_channel(app, "wecom", WECOM_CREDS)
    add_way(app, corp, "expo")
    now = int(time.time())
    for n in range(2):
        post_wecom(
            client,
            corp,
            simulate.wecom_contact_event(
                WECOM_CREDS.app_id,
                "add_external_contact",
                user_id="zhangsan",
                external_user_id=f"wmADD{n}",
                at=now,
                State="expo",
                WelcomeCode=f"WELCOME{n}",
            ),
        )
    order = []
    drain_inbox = app_jobs.drain_inbox

    def drain(workspace_id, lane):
        order.append("drain")
        return drain_inbox(workspace_id, lane)

    def welcome(channel_id):
        order.append("welcome")
        queue.followup_started(Job.SEND_WELCOMES, channel_id)  # as the real job does

    queue = harpoon_of(app).queue
    monkeypatch.setattr(app_jobs, "drain_inbox", drain)
    monkeypatch.setattr(app_jobs, "send_welcomes", welcome)
    queue.drain_requests.flush()
    run_jobs(app)
    assert order[:4] == ["drain", "welcome", "drain", "welcome"]
    assert [row.status for row in inbox(app)] == ["done"] * 2


def test_a_drain_job_queued_before_lanes_asks_for_every_lane(app, oa_channel):
    """A rolling deploy: `drain_inbox(workspace_id)` queued by the release before lanes
    runs on this one and every lane is drained."""
    client = app.test_client()
    for n in range(8):
        post_oa(client, oa_channel, simulate.oa_text(f"o_{n}", "hi", 40_000 + n))
    assert len({row.lane for row in inbox(app)}) > 1
    h = harpoon_of(app)
    with h.db.session() as session:
        ws = workspace_named(session, "acme").id
    # The callbacks' own drain requests are made and dropped: the old job alone remains.
    h.queue.drain_requests.flush()
    h.queue.queue_of(Job.DRAIN_INBOX).empty()
    for lane in range(h.settings.inbox_lanes):
        h.queue.drain_started(ws, lane)
    h.queue.queue_of(Job.DRAIN_INBOX).enqueue("app.jobs.drain_inbox", ws)  # the old shape
    run_jobs(app)
    assert [row.status for row in inbox(app)] == ["done"] * 8


def test_the_sweeper_recovers_after_its_own_drain_was_killed(app, oa_channel):
    """kill -9 during a drain leaves the job `started` in RQ (and its flag cleared by the
    drain's start): the next sweep asks for the lane's drain all the same."""
    h = harpoon_of(app)
    post_oa(app.test_client(), oa_channel, simulate.oa_event("o_swept", "subscribe"))
    [row] = inbox(app)
    queue = h.queue
    with app.app_context():
        for _ in range(2):  # as RQ leaves a job whose worker was killed: started, forever
            job = queue.high.enqueue(app_jobs.JOBS[Job.DRAIN_INBOX], row.workspace_id, row.lane)
            queue.high.remove(job)
            with queue.connection.pipeline() as pipe:
                job.prepare_for_execution("killed-worker", pipe)
                Execution.create(job, ttl=86400, pipeline=pipe, worker_name="killed-worker")
                pipe.execute()
            assert job.id in StartedJobRegistry(queue=queue.high).get_job_ids()
        queue.drain_started(row.workspace_id, row.lane)  # what the killed drain did first
        assert app_jobs.sweep_inbox() == [(row.workspace_id, row.lane)]
    queue.worker(app).work(burst=True)
    assert [r.status for r in inbox(app)] == ["done"]


def test_the_sweeper_requeues_followups_whose_flag_a_killed_job_left(app, monkeypatch):
    ran = []
    monkeypatch.setattr(app_jobs, "send_welcomes", lambda channel: ran.append(channel))
    queue = harpoon_of(app).queue
    queue.enqueue_followups({(Job.SEND_WELCOMES, 5)})
    queue.high.empty()  # the job was taken and killed: its flag stays for 300 s
    queue.enqueue_followups({(Job.SEND_WELCOMES, 5)})
    assert queue.high.jobs == []  # an ordinary ask waits behind the flag...
    queue.enqueue_followups({(Job.SEND_WELCOMES, 5)}, force=True)  # ...the sweeper's does not
    queue.worker(app).work(burst=True)
    assert ran == [5]


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from app import create_app
    from handlers.registry import HANDLERS

    marker = Path(sys.argv[1])
    original = HANDLERS["wechat.menu_click"]

    def held(session, ctx):
        original(session, ctx)
        marker.write_text("holding")
        time.sleep(120)  # killed here, its batch uncommitted

    HANDLERS["wechat.menu_click"] = held
    app = create_app()  # the environment's settings: the test's database and Redis
    app.extensions["harpoon"].queue.worker(app).work(burst=True)
    """
)


def test_a_worker_killed_mid_drain_loses_nothing_and_doubles_nothing(app, oa_channel, tmp_path):
    h = harpoon_of(app)
    if h.db.is_sqlite:
        pytest.skip("a worker process needs the shared PostgreSQL and Redis")
    client = app.test_client()
    for n in range(6):
        post_oa(client, oa_channel, simulate.oa_event(f"o_k{n}", "CLICK", EventKey="K"))
    h.queue.drain_requests.flush()
    marker = tmp_path / "holding"
    env = {
        **os.environ,
        "DATABASE_URL": h.settings.database_url.replace("+psycopg", ""),
        "REDIS_URL": TEST_REDIS_URL,
        "HARPOON_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "HARPOON_SECRET_KEY": h.settings.secret_key,
        "HARPOON_INSTANCE_DIR": str(tmp_path / "child"),
        "HARPOON_INBOX_LANES": str(h.settings.inbox_lanes),
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], cwd=ROOT, env=env)
    try:
        for _ in range(600):
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the worker never took a batch"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    _until_locks_released(h)
    assert {row.status for row in inbox(app)} == {"pending"}  # the held batch rolled back
    with app.app_context():  # the cron's sweep, then a worker
        h.queue.enqueue_sweep()
    run_jobs(app)
    run_jobs(app)
    rows = inbox(app)
    assert {row.status for row in rows} == {"done"}
    with h.db.session() as session:
        per_event = session.execute(
            select(Interaction.source_event_id, func.count()).group_by(Interaction.source_event_id)
        ).all()
    assert sorted(count for _, count in per_event) == [1] * len(rows)


def _until_locks_released(h) -> None:
    """PostgreSQL ends a killed client's session (its locks with it) once it sees the
    socket closed: wait for that, not for a fixed time."""
    with h.db.engine.connect() as conn:
        for _ in range(300):
            held = conn.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            )
            if not held:
                return
            time.sleep(0.1)
    raise AssertionError("the killed worker's advisory lock was never released")


def test_lane_lock_keys_never_collide():
    keys = {drain_lock_key(ws, lane) for ws in range(1, 30) for lane in range(256)}
    assert len(keys) == 29 * 256
    assert InboundEvent.__table__.c.lane.nullable is False


def test_two_lanes_scoring_one_account_at_once_lose_no_update(app, oa_channel):
    """Lane A has scored Ann (uncommitted) when lane B scores Bob of the same account: B
    waits for A's commit, then reads A's ledger, so the account keeps both."""
    h = harpoon_of(app)
    if h.db.is_sqlite:
        pytest.skip("one SQLite writer: concurrent transactions need PostgreSQL")
    now = utcnow()
    ws = touches(
        app, oa_channel, [("wechat.message", "", "Ann", now), ("wechat.message", "", "Bob", now)]
    )
    account = make_account(app, "Acme Corp")
    with h.db.session() as session:
        session.execute(update(Contact).values(account_id=account))
        session.execute(update(Interaction).values(account_id=account))
        session.commit()
        ann, bob = session.scalars(select(Interaction.id).order_by(Interaction.id)).all()
    first = h.db.session()
    Scorer.load(first, ws).score_interaction_ids([ann])  # lane A: the account row locked

    def lane_b():
        with h.db.session() as second:
            Scorer.load(second, ws).score_interaction_ids([bob])
            second.commit()

    other = threading.Thread(target=lane_b)
    other.start()
    with h.db.engine.connect() as conn:  # until lane B waits on lane A's lock
        for _ in range(300):
            if conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("lane B never waited for lane A")
    first.commit()
    first.close()
    other.join()
    with h.db.session() as session:
        stored = session.scalar(select(Account.score).where(Account.id == account))
        Scorer.load(session, ws).refresh_accounts([account])  # judged afresh from the ledger
        fresh = session.scalar(select(Account.score).where(Account.id == account))
    assert stored > 0
    assert stored == pytest.approx(fresh, rel=1e-6)


def test_scoring_an_account_another_lane_just_named_does_not_wait_for_it(app, oa_channel):
    """Lane B has recorded an interaction naming the account (its foreign key holds FOR KEY
    SHARE on the row until B commits); lane A scoring that account must not wait for B, or
    A and B, each about to lock the account, would deadlock every time."""
    h = harpoon_of(app)
    if h.db.is_sqlite:
        pytest.skip("one SQLite writer: concurrent transactions need PostgreSQL")
    ws = touches(app, oa_channel, [("wechat.message", "", "Ann", utcnow())])
    account = make_account(app, "Acme Corp")
    with h.db.session() as session:
        session.execute(update(Contact).values(account_id=account))
        session.execute(update(Interaction).values(account_id=account))
        session.commit()
        [ann] = session.scalars(select(Interaction.id)).all()
    with h.db.session() as lane_b, h.db.session() as lane_a:
        lane_b.execute(
            text("SELECT id FROM accounts WHERE id = :id FOR KEY SHARE"), {"id": account}
        )
        lane_a.execute(text("SET LOCAL lock_timeout = '2s'"))
        Scorer.load(lane_a, ws).score_interaction_ids([ann])  # 55P03 if it waited
        lane_a.commit()
        lane_b.rollback()
    with h.db.session() as session:
        assert session.scalar(select(Account.score).where(Account.id == account)) > 0
