import pytest

from tests.factories import make_channel
from tests.helpers import OA_CREDS, TEST_REDIS_URL, harpoon_of, inbox, post_oa, run_jobs
from wechat import simulate


def test_add_oa_prints_id_url_and_generated_credentials(runner):
    result = runner.invoke(
        args=["channels", "add-oa", "--name", "品牌号", "--appid", "wx1111222233334444"]
    )
    assert result.exit_code == 0, result.output
    assert "channel id:     1" in result.output
    assert "callback URL:   http://127.0.0.1:8000/callbacks/wechat/1" in result.output
    token_line = next(line for line in result.output.splitlines() if line.startswith("Token:"))
    key_line = next(
        line for line in result.output.splitlines() if line.startswith("EncodingAESKey:")
    )
    assert len(token_line.split()[-1]) == 32
    assert len(key_line.split()[-1]) == 43

    listed = runner.invoke(args=["channels", "list"])
    assert "wx1111222233334444" in listed.output and "not verified" in listed.output


def test_add_wecom_with_given_credentials(runner):
    result = runner.invoke(
        args=[
            "channels",
            "add-wecom",
            "--name",
            "销售企业微信",
            "--corp-id",
            "ww9999",
            "--token",
            "tok123",
            "--aes-key",
            "A" * 43,
            "--agent-id",
            "1000002",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "/callbacks/wecom/1" in result.output


def test_add_channel_refuses_bad_fields(runner):
    result = runner.invoke(
        args=["channels", "add-oa", "--name", "x", "--appid", "wx1", "--aes-key", "short"]
    )
    assert result.exit_code == 2
    assert "aes_key: EncodingAESKey is 43 letters or digits" in result.output
    again = ["channels", "add-oa", "--name", "x", "--appid", "wx2"]
    assert runner.invoke(args=again).exit_code == 0
    duplicate = runner.invoke(args=again)
    assert duplicate.exit_code == 2 and "already connected" in duplicate.output


def test_inbox_stats_and_retry(app, runner, failing_clicks):
    channel_id = make_channel(app, "oa", OA_CREDS)
    client = app.test_client()
    post_oa(client, channel_id, simulate.oa_event("o_click", "CLICK", EventKey="K"))
    post_oa(client, channel_id, simulate.oa_event("o_ok", "subscribe"))
    run_jobs(app)
    stats = runner.invoke(args=["inbox", "stats"]).output
    assert "done" in stats and "failed" in stats

    failed = next(row for row in inbox(app) if row.status == "failed")
    result = runner.invoke(args=["inbox", "retry", str(failed.id)])
    assert result.exit_code == 0, result.output
    assert next(row for row in inbox(app) if row.id == failed.id).status == "pending"
    not_failed = runner.invoke(args=["inbox", "retry", str(failed.id)])
    assert not_failed.exit_code == 1 and "is not failed or dead" in not_failed.output
    harpoon_of(app).queue.enqueue_sweep()  # the embedded service's own timer does this
    run_jobs(app)  # retried and, being still broken, failed again
    assert next(row for row in inbox(app) if row.id == failed.id).status == "failed"


def test_worker_and_cron_refuse_the_embedded_queue(make_app):
    runner = make_app(redis_url="").test_cli_runner()
    for command in ("worker", "cron"):
        result = runner.invoke(args=[command])
        assert result.exit_code == 1
        assert "embedded queue" in result.output


def test_every_job_name_has_a_function_rq_can_find_again(app):
    """RQ stores a job as its function's dotted path and imports it in the worker."""
    from werkzeug.utils import import_string

    from app.jobs import JOBS
    from core.jobs import Job

    assert set(JOBS) == set(Job)
    for name, func in JOBS.items():
        assert import_string(f"{func.__module__}.{func.__qualname__}") is func, name


def test_cron_jobs_are_registered_jobs(app):
    queue = harpoon_of(app).queue
    assert [func.__name__ for func, _interval in queue.cron] == [
        "sweep_inbox",
        "tag_inactive_contacts",
        "refresh_group_send_results",
        "refresh_transfers",
        "refresh_scores",
        "send_due_pushes",
        "run_due_journeys",
        "check_routing_slas",
        "attribute_changed_opportunities",
        "reattribute_all",
        "rotate_contact_ways",
        "sync_all_customer_groups",
    ]
    assert all(queue.jobs[func.__name__] is func for func, _interval in queue.cron)


def test_worker_command_drains_with_real_redis(app, runner):
    if not TEST_REDIS_URL:
        pytest.skip("`flask worker` needs REDIS_URL; this run uses the embedded queue")
    channel_id = make_channel(app, "oa", OA_CREDS)
    post_oa(app.test_client(), channel_id, simulate.oa_event("o_cli", "subscribe"))
    result = runner.invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert [row.status for row in inbox(app)] == ["done"]


def test_rotate_aes_key_keeps_the_old_one_for_callbacks_in_flight(app, runner):
    from tests.helpers import post_oa as post

    channel_id = make_channel(app, "oa", OA_CREDS)
    result = runner.invoke(args=["channels", "rotate-aes-key", str(channel_id)])
    assert result.exit_code == 0, result.output
    new_key = result.output.split()[-1]
    assert len(new_key) == 43 and new_key != OA_CREDS.aes_key
    post(app.test_client(), channel_id, simulate.oa_event("o_old", "subscribe"))  # old key
    assert len(inbox(app)) == 1


def test_users_create(runner):
    result = runner.invoke(
        args=["users", "create", "--email", "Li@Acme.example", "--name", "李雷", "--role", "sales"],
        input="long enough pw\nlong enough pw\n",
    )
    assert result.exit_code == 0, result.output
    assert "li@acme.example (sales)" in result.output
    again = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "li@acme.example",
            "--name",
            "x",
            "--password",
            "12345678",
        ]
    )
    assert again.exit_code == 2 and "already has an account" in again.output
    short = runner.invoke(
        args=["users", "create", "--email", "b@acme.example", "--name", "x", "--password", "short"]
    )
    assert short.exit_code == 2 and "at least 8 characters" in short.output
