"""Fixtures: the same suite on PostgreSQL + Redis (TEST_DATABASE_URL / TEST_REDIS_URL)
or on SQLite + the in-process queue."""

import os
import socket
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
from cryptography.fernet import Fernet
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from app.extensions import harpoon
from config import ENVIRONMENT_VARIABLES, ROOT
from crm.channels import add_channel, workspace_named
from demo.seed import register_tenant
from handlers.registry import HANDLERS
from models import Base, Channel, migrate
from tests.webhook_receiver import Receiver
from tests.wechat.sandbox_server import SandboxServer
from wechat.simulate import Credentials

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

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
ENCRYPTION_KEY = Fernet.generate_key().decode()
OA_SECRET = "oa-app-secret"  # the AppSecret of the sandbox's OA (`oa`)


BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sandbox: the module's `app` talks to the `platform` sandbox over HTTP"
    )
    config.addinivalue_line(
        "markers", "browser: drives Chromium (tests/browser); `-m 'not browser'` leaves them out"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if BROWSER_TESTS in item.path.parents:
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


def settings_for(database_url, tmp_path, **overrides):
    return {
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "instance_dir": tmp_path / "instance",
        "encryption_keys": (ENCRYPTION_KEY,),
        "secret_key": "test-secret-key",
        "sweep_grace_seconds": 0,
        **overrides,
    }


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
        _empty_tables(harpoon_of(apps[0]).db)
    if TEST_REDIS_URL:
        redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    for app in apps:
        harpoon_of(app).db.dispose()


def harpoon_of(app):
    with app.app_context():
        return harpoon()


def _empty_tables(db):
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="module")
def platform():
    """The sandbox WeChat and WeCom on a real port, one per module."""
    server = SandboxServer()
    yield server
    server.close()


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


OA_CREDS = Credentials(
    app_id="wx5f3a9e0c1b2d4e6f",
    token="harpoontoken",
    aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
)
WECOM_CREDS = Credentials(
    app_id="ww1a2b3c4d5e6f7a8b",
    token="wecomtoken",
    aes_key="ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut",
)


@pytest.fixture
def oa_channel(app):
    """A safe-mode service OA; returns its id."""
    return make_channel(app, "oa", OA_CREDS, message_mode="safe", account_type="service")


@pytest.fixture
def wecom_channel(app):
    return make_channel(app, "wecom", WECOM_CREDS)


@pytest.fixture
def oa(app, platform, live_server):
    """A safe-mode service OA registered in the sandbox (its AppSecret OA_SECRET); its id."""
    channel_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), live_server)
    return channel_id


def make_channel(app, kind, creds, *, workspace="acme", **fields):
    with harpoon_of(app).db.session() as session:
        channel = add_channel(
            session,
            workspace_named(session, workspace),
            kind=kind,
            name=f"{kind} {creds.app_id}",
            app_id=creds.app_id,
            token=creds.token,
            aes_key=creds.aes_key,
            **fields,
        )
        session.commit()
        return channel.id


@pytest.fixture
def failing_clicks(monkeypatch):
    """Menu clicks fail in their handler, as one meeting a bug or an unreachable row would
    (the callback refuses what cannot be normalized, so no click fails on its own)."""

    def fail(session, ctx):
        raise LookupError(f"click of {ctx.event.subject} failed in its handler")

    monkeypatch.setitem(HANDLERS, "wechat.menu_click", fail)


def run_jobs(app):
    """Send pending drain requests, then run every queued job with a real RQ SimpleWorker."""
    queue = harpoon_of(app).queue
    queue.drain_requests.flush()
    return queue.worker(app).work(burst=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
