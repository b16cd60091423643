"""examples/: the scripts a user runs against a live Harpoon, run here against one."""

import runpy
import threading
import time
from pathlib import Path

import pytest

from app.channels import workspace_named
from app.queue import ThreadWorker
from journeys import engine
from models import utcnow
from outreach.api_keys import create_api_key, sign
from tests.app.test_api import post
from tests.conftest import harpoon_of, run_jobs
from tests.journeys.test_webhooks import submit, webhook_journey, with_secret

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def script(name: str):
    """An example's main(), imported from its file as the user would run it."""
    return runpy.run_path(str(EXAMPLES / name))["main"]


@pytest.fixture
def worker(app):
    """The queue's worker on a thread while the test runs, as the embedded default runs it
    beside the web process: a script's posts are drained and scored meanwhile."""
    stop = threading.Event()
    queue = harpoon_of(app).queue

    def work():
        while not stop.wait(0.2):
            queue.worker(app, ThreadWorker).work(burst=True, logging_level="WARNING")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def new_key(app, *, require_signature=False):
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        key = create_api_key(session, workspace.id, "直播平台", require_signature=require_signature)
        session.commit()
        return key


def test_live_minutes_posted_by_the_example_are_seen_scored(
    app, client, live_server, worker, capsys
):
    key = new_key(app)
    registered = {
        "kind": "event.register",
        "phone": "13900001111",
        "person": {"name": "周敏", "company": "南京紫金银行", "title": "CIO"},
    }
    post(client, key.key, {"items": [registered]})
    run_jobs(app)

    main = script("post_live_minutes.py")
    status = main(["--base", live_server, "--key", key.key, "--phone", "13900001111"])

    out = capsys.readouterr().out
    assert status == 0, out
    before, posted, after, gained = out.splitlines()
    assert before.startswith("before: 周敏 CIO: lead score ")
    assert "account 南京紫金银行 score" in before
    assert posted.startswith("posted: 42 minutes of 《AI 发布会》 (live:AI 发布会:13900001111:")
    assert after.startswith("after:  周敏 CIO: lead score ")
    assert float(gained.split()[-1]) == pytest.approx(5 + 0.5 * 42)  # the live_watch rule


def test_the_example_signs_when_given_the_secret(app, live_server, worker, capsys):
    key = new_key(app, require_signature=True)
    main = script("post_live_minutes.py")
    args = ["--base", live_server, "--key", key.key, "--email", "li.na@zijinbank.com"]

    assert main(args) == 1  # the key insists on signatures
    assert "401" in capsys.readouterr().err

    assert main([*args, "--secret", key.signing_secret, "--minutes", "10"]) == 0
    out = capsys.readouterr().out
    assert "before: nobody yet" in out and "lead score +10.0" in out


def test_the_webhook_receiver_acts_once_on_what_the_workspace_signed(make_app):
    app = make_app(outbound_allow=("127.0.0.1/32",))
    names = runpy.run_path(str(EXAMPLES / "receive_webhooks.py"))
    with harpoon_of(app).db.session() as session:
        workspace_id = workspace_named(session, "acme").id
        session.commit()
    secret = with_secret(app, workspace_id)
    delivered = []
    server = names["make_server"]([secret], lambda delivery, payload: delivered.append(payload))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        journey_id = webhook_journey(
            app, workspace_id, f"http://127.0.0.1:{server.server_port}/harpoon"
        )
        submit(app, workspace_id, utcnow())
        harpoon_of(app).queue.enqueue_followups({(engine.RUN_JOURNEYS, workspace_id)})
        run_jobs(app)  # the job composes the outbound client from the settings
        assert [(p["workspace_id"], p["journey_id"]) for p in delivered] == [
            (workspace_id, journey_id)
        ]
    finally:
        server.shutdown()
        server.server_close()

    problem = names["signature_problem"]
    body, now = b'{"journey_id": 1}', time.time()
    signed = sign(secret, body, int(now))
    assert problem([secret], signed, body, now) is None
    assert problem(["whsec_old", secret], signed, body, now) is None  # during a rotation
    assert problem([secret], signed, body + b" ", now) == "signature does not match"
    app_secret = harpoon_of(app).settings.secret_key
    assert problem([secret], sign(app_secret, body, int(now)), body, now) is not None
    assert problem([secret], signed, body, now + 301) == "timestamp too old or in the future"
    assert problem([secret], None, body, now) == "missing signature"
