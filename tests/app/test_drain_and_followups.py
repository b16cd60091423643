"""One drain per (workspace, lane) at a time without losing a request; per-channel follow-up jobs
asked for many times run once, and an ask made while one runs queues the next."""

import pytest
from sqlalchemy import text

from core.jobs import Job
from pipeline.drain import drain_lock_key
from tests.factories import make_channel
from tests.helpers import OA_CREDS, harpoon_of, inbox, post_oa, queued_jobs, run_jobs
from wechat import simulate


def test_a_burst_of_followup_asks_is_one_job_and_an_ask_while_it_runs_is_kept(app):
    queue = harpoon_of(app).queue
    for _ in range(3):
        queue.enqueue_followups({("sync_tags", 7), ("send_welcomes", 7)})
    assert [name for name, _args in queued_jobs(app, "low")] == [Job.SYNC_TAGS]
    assert [name for name, _args in queued_jobs(app, "high")] == [Job.SEND_WELCOMES]
    queue.followup_started("sync_tags", 7)  # the job began: the next ask queues another run
    queue.enqueue_followups({("sync_tags", 7)})
    assert [name for name, _args in queued_jobs(app, "low")] == [Job.SYNC_TAGS] * 2


def test_a_drain_that_finds_another_running_leaves_the_request_to_it(app):
    h = harpoon_of(app)
    if h.db.is_sqlite:
        pytest.skip("the drain lock is a PostgreSQL advisory lock; SQLite has one writer")
    channel_id = make_channel(app, "oa", OA_CREDS)
    post_oa(app.test_client(), channel_id, simulate.oa_event("o_locked", "subscribe"))
    workspace_id, lane = inbox(app)[0].workspace_id, inbox(app)[0].lane
    h.queue.drain_requests.flush()
    key = {"key": drain_lock_key(workspace_id, lane)}
    with h.db.engine.connect() as other_drain:  # another worker is draining this lane
        other_drain.execute(text("SELECT pg_advisory_lock(:key)"), key)
        run_jobs(app)
        assert [row.status for row in inbox(app)] == ["pending"]
        assert h.queue.drain_requested(workspace_id, lane)  # left for the running drain to see
        other_drain.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    h.queue.enqueue_drain(workspace_id, lane)  # what the running drain does on seeing the flag
    run_jobs(app)
    assert [row.status for row in inbox(app)] == ["done"]
    assert not h.queue.drain_requested(workspace_id, lane)


def test_wecom_events_are_drained_before_an_oa_backlog(app):
    from pipeline.drain import drain
    from tests.helpers import WECOM_CREDS, post_wecom

    oa_id = make_channel(app, "oa", OA_CREDS)
    wecom_id = make_channel(app, "wecom", WECOM_CREDS)
    client = app.test_client()
    for n in range(3):
        post_oa(client, oa_id, simulate.oa_text(f"o_{n}", "hi", 93000 + n))
    post_wecom(
        client,
        wecom_id,
        simulate.wecom_contact_event(
            WECOM_CREDS.app_id, "add_external_contact", user_id="zhangsan", external_user_id="wm_1"
        ),
    )
    workspace_id = inbox(app)[0].workspace_id
    with harpoon_of(app).db.session() as session:
        drain(session, workspace_id, batch_size=1, max_seconds=0)
    assert [(row.platform, row.status) for row in inbox(app)] == [
        ("oa", "pending"),
        ("oa", "pending"),
        ("oa", "pending"),
        ("wecom", "done"),
    ]
