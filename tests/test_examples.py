"""examples/: the scripts a user runs against a live Harpoon, run here against one."""

import contextlib
import http.client
import runpy
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.queue import ThreadWorker
from core.jobs import Job
from crm.api_keys import create_api_key, sign
from crm.channels import workspace_named
from models import utcnow
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


@contextlib.contextmanager
def example_receiver(secrets: list[str]):
    """examples/receive_webhooks.py serving on a thread: (its names, its url, what it acted on)."""
    names = runpy.run_path(str(EXAMPLES / "receive_webhooks.py"))
    delivered = []
    server = names["make_server"](secrets, lambda delivery, payload: delivered.append(payload))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield names, f"http://127.0.0.1:{server.server_port}/harpoon", delivered
    finally:
        server.shutdown()
        server.server_close()


def acme_with_secret(app) -> tuple[int, str]:
    with harpoon_of(app).db.session() as session:
        workspace_id = workspace_named(session, "acme").id
        session.commit()
    return workspace_id, with_secret(app, workspace_id)


def deliver(app, workspace_id: int, url: str) -> int:
    """A journey posting a webhook to url, run once by the queue's job; its id."""
    journey_id = webhook_journey(app, workspace_id, url)
    submit(app, workspace_id, utcnow())
    harpoon_of(app).queue.enqueue_followups({(Job.RUN_JOURNEYS, workspace_id)})
    run_jobs(app)  # the job composes the outbound client from the settings
    return journey_id


def send(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST exactly these headers (no Content-Length added) and the answer's status."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.putrequest("POST", parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_webhook_receiver_acts_once_on_what_the_workspace_signed(make_app):
    app = make_app(outbound_allow=("127.0.0.1/32",))
    workspace_id, secret = acme_with_secret(app)
    with example_receiver([secret]) as (names, url, delivered):
        journey_id = deliver(app, workspace_id, url)
    assert [(p["workspace_id"], p["journey_id"]) for p in delivered] == [(workspace_id, journey_id)]

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


WIRE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "X-Harpoon-Workspace",
    "X-Harpoon-Delivery",
    "X-Harpoon-Signature",
)


def test_a_replay_with_a_new_delivery_header_is_not_acted_on_again(make_app, receiver):
    app = make_app(outbound_allow=("127.0.0.1/32",))
    workspace_id, secret = acme_with_secret(app)
    deliver(app, workspace_id, receiver.url("/ok"))
    (captured,) = receiver.received  # a delivery as it went over the wire
    headers = {name: captured.headers[name] for name in WIRE_HEADERS}

    with example_receiver([secret]) as (_, url, delivered):
        assert send(url, captured.body, headers) == 200
        for forged in ("999999-1", headers["X-Harpoon-Delivery"] + "x"):
            assert send(url, captured.body, {**headers, "X-Harpoon-Delivery": forged}) == 200
        assert send(url, captured.body, headers) == 200

    assert [payload["delivery_id"] for payload in delivered] == [headers["X-Harpoon-Delivery"]]


LATIN_SMALL_E_ACUTE = "\u00e9"


def test_the_webhook_receiver_answers_400_to_a_malformed_request():
    secret = "whsec_test"
    body = b'{"delivery_id": "1-1"}'
    signed = sign(secret, body)
    good = {"Content-Length": str(len(body)), "X-Harpoon-Signature": signed}
    timestamp, digest = signed.split(",")
    with example_receiver([secret]) as (names, url, delivered):
        malformed = [
            {**good, "Content-Length": "abc"},
            {**good, "Content-Length": "\u00b2"},  # a digit to isdigit(), not to int()
            {"X-Harpoon-Signature": signed},  # no Content-Length
            {**good, "X-Harpoon-Signature": f"{timestamp},v1={LATIN_SMALL_E_ACUTE * 64}"},
            {**good, "X-Harpoon-Signature": f"t=\u00b2,{digest}"},
            {**good, "X-Harpoon-Signature": f"{timestamp},{digest.upper()}"},
            {**good, "X-Harpoon-Signature": f"{timestamp},v1=abc"},
            {**good, "X-Harpoon-Signature": timestamp},
            {**good, "X-Harpoon-Signature": f"{timestamp},{timestamp},{digest}"},
        ]
        assert [send(url, body, headers) for headers in malformed] == [400] * len(malformed)
        not_a_delivery = {"Content-Length": "3", "X-Harpoon-Signature": sign(secret, b"[1]")}
        assert send(url, b"[1]", not_a_delivery) == 400
        assert send(url, body, {**good, "X-Harpoon-Signature": sign("whsec_other", body)}) == 401
        assert send(url, body, {"Content-Length": good["Content-Length"]}) == 401
        assert send(url, body, good) == 200
        assert delivered == [{"delivery_id": "1-1"}]
        arabic_digits = "\u0661\u0667" * 5
        assert (
            names["signature_problem"]([secret], f"t={arabic_digits},{digest}", body)
            == (names["MALFORMED"])
        )


def test_the_webhook_receiver_forgets_a_delivery_once_its_signature_is_stale():
    names = runpy.run_path(str(EXAMPLES / "receive_webhooks.py"))
    recent, tolerance = names["RecentDeliveries"](), names["TOLERANCE_SECONDS"]
    signed_at = 1_800_000_000
    assert recent.first("1-1", signed_at, signed_at)
    assert not recent.first("1-1", signed_at, signed_at + tolerance)  # a replay in time
    for n in range(100):
        assert recent.first(f"2-{n}", signed_at + 10, signed_at + 10)
    assert len(recent) == 101
    assert recent.first("3-1", signed_at + 10 + tolerance + 1, signed_at + 10 + tolerance + 1)
    assert len(recent) == 1  # the others could only come back stale, refused by t
