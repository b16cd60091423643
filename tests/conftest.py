"""Fixtures: the same suite on PostgreSQL + Redis (TEST_DATABASE_URL / TEST_REDIS_URL)
or on SQLite + the in-process queue. Rows are built by tests/factories.py, and what the
tests share besides is in tests/helpers.py; a test module imports from those, never from
another test module (tests/test_layout.py checks)."""

import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from config import ENVIRONMENT_VARIABLES, ROOT
from handlers.registry import HANDLERS
from models import migrate
from tests.factories import make_channel, make_oa, make_people
from tests.helpers import (
    ENCRYPTION_KEY,
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    WECOM_CREDS,
    empty_tables,
    free_port,
    harpoon_of,
    settings_for,
)
from tests.oa_platform import connect_oa
from tests.webhook_receiver import Receiver
from tests.wechat.sandbox_server import SandboxServer
from wechat.sandbox.mailbox import SmtpSink

# Fuzz tests (tests/app/test_fuzz.py): the same examples on every run, none remembered
# between runs; fixtures are shared by a test's examples on purpose (one app, one database).
hypothesis_settings.register_profile(
    "harpoon",
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "thorough", parent=hypothesis_settings.get_profile("harpoon"), max_examples=2000
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "harpoon"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sandbox: the module's `app` talks to the `platform` sandbox over HTTP"
    )
    config.addinivalue_line(
        "markers", "browser: drives Chromium (tests/browser); `-m 'not browser'` leaves them out"
    )


def pytest_collection_modifyitems(items):
    browser_tests = Path(__file__).parent / "browser"
    for item in items:
        if browser_tests in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A fresh, migrated database for this run; a PostgreSQL one is dropped after."""
    if not TEST_DATABASE_URL:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'harpoon.db'}"
        migrate.upgrade(url)
        yield url
        return
    admin = make_url(TEST_DATABASE_URL)
    name = f"harpoon_test_{uuid.uuid4().hex[:10]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )
    migrate.upgrade(url)
    yield url
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build an app on the test database; tables and queues are emptied after the test."""
    apps = []

    def build(**overrides):
        app = create_app(settings_for(database_url, tmp_path, **overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    if apps:
        empty_tables(harpoon_of(apps[0]).db)
    if TEST_REDIS_URL:
        redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    for app in apps:
        harpoon_of(app).db.dispose()


@pytest.fixture(scope="module")
def platform():
    """The sandbox WeChat and WeCom on a real port, one per module."""
    server = SandboxServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def smtp():
    """A local SMTP server (the sandbox's sink); tests clear `smtp.mailbox` as they need."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def app(make_app, request):
    """The app; in a module marked `sandbox`, talking to `platform`, emptied for the test."""
    if request.node.get_closest_marker("sandbox") is None:
        return make_app()
    platform = request.getfixturevalue("platform")
    platform.reset()
    return make_app(wechat_api_url=platform.url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def oa_channel(app):
    """A safe-mode service OA; returns its id."""
    return make_oa(app)


@pytest.fixture
def wecom_channel(app):
    return make_channel(app, "wecom", WECOM_CREDS)


@pytest.fixture
def oa(app, platform, live_server):
    """A safe-mode service OA registered in the sandbox (its AppSecret OA_SECRET); its id."""
    return connect_oa(app, platform, live_server)


@pytest.fixture
def people(app):
    """make_people's contacts, accounts, tags and identities."""
    return make_people(app)


@pytest.fixture
def failing_clicks(monkeypatch):
    """Menu clicks fail in their handler, as one meeting a bug or an unreachable row would
    (the callback refuses what cannot be normalized, so no click fails on its own)."""

    def fail(session, ctx):
        raise LookupError(f"click of {ctx.event.subject} failed in its handler")

    monkeypatch.setitem(HANDLERS, "wechat.menu_click", fail)


@pytest.fixture
def gunicorn_server(app, database_url, tmp_path):
    """The test app's database and settings served by gunicorn as production runs it
    (config/gunicorn.py): its HTTP parsing, not werkzeug's."""
    settings = harpoon_of(app).settings
    bind = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        HARPOON_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        HARPOON_SECRET_KEY=settings.secret_key,
        HARPOON_INSTANCE_DIR=str(tmp_path / "gunicorn"),
        HARPOON_CALLBACK_MAX_BYTES=str(settings.callback_max_bytes),
        HARPOON_BIND=bind,
        HARPOON_WEB_THREADS="2",
    )
    log = tmp_path / "gunicorn.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{bind}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture
def live_server(app):
    """The test app on a real port (for a browser, or a sandbox that delivers callbacks)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 (allow-list it: loopback is refused otherwise)."""
    server = Receiver()
    yield server
    server.close()
