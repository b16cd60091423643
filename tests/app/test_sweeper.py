"""Nothing is lost when Redis is down at callback time: the sweeper picks it up."""

from core.jobs import Job
from tests.helpers import harpoon_of, inbox, interactions, post_oa, queued_jobs, run_jobs
from wechat import simulate

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_callback_is_acked_and_stored_while_redis_is_down(make_app, caplog):
    app = make_app()
    from tests.factories import make_channel
    from tests.helpers import OA_CREDS

    channel_id = make_channel(app, "oa", OA_CREDS)
    redis_down = make_app(redis_url=UNREACHABLE_REDIS)

    response = post_oa(
        redis_down.test_client(), channel_id, simulate.oa_event("o_down", "subscribe")
    )
    assert response.data == b"success"
    assert [row.status for row in inbox(app)] == ["pending"]
    harpoon_of(redis_down).queue.drain_requests.flush()
    assert "drain request failed" in caplog.text

    # Redis is back: the sweeper (a periodic job) finds the row and requests a drain.
    harpoon_of(app).queue.enqueue_sweep()
    run_jobs(app)
    assert [row.status for row in inbox(app)] == ["done"]
    assert [i.kind for i in interactions(app)] == ["wechat.follow"]


def test_health_reports_redis_down(make_app):
    response = make_app(redis_url=UNREACHABLE_REDIS).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "ok"
    assert response.json["redis"].startswith("error")


def test_health_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_the_embedded_timer_runs_each_cron_job_when_its_interval_has_passed(app):
    queue = harpoon_of(app).queue
    last_run: dict[str, float] = {}
    queue._enqueue_periodic(last_run)
    queued = {
        urgency: sorted(name for name, _args in queued_jobs(app, urgency))
        for urgency in ("high", "default", "low")
    }
    assert queued == {  # each on the queue its work belongs to (core.jobs.QUEUE_OF)
        "high": [Job.SWEEP_INBOX],
        "default": [
            Job.CHECK_ROUTING_SLAS,
            Job.REFRESH_GROUP_SEND_RESULTS,
            Job.REFRESH_TRANSFERS,
            Job.ROTATE_CONTACT_WAYS,
            Job.RUN_DUE_JOURNEYS,
            Job.SEND_DUE_PUSHES,
        ],
        "low": [
            Job.ATTRIBUTE_CHANGED_OPPORTUNITIES,
            Job.REATTRIBUTE_ALL,
            Job.REFRESH_SCORES,
            Job.SYNC_ALL_CUSTOMER_GROUPS,
            Job.TAG_INACTIVE_CONTACTS,
        ],
    }
    for each in queue.queues:
        each.empty()
    queue._enqueue_periodic(last_run)  # the next tick: no interval has passed yet
    assert all(each.jobs == [] for each in queue.queues)
    last_run["sweep_inbox"] -= harpoon_of(app).settings.sweep_interval_seconds
    queue._enqueue_periodic(last_run)
    assert [name for name, _args in queued_jobs(app, "high")] == [Job.SWEEP_INBOX]
