"""End to end on the embedded default, as `make run` starts it: no settings at all.

gunicorn serves the app; its in-process worker drains the inbox into SQLite.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from config import ENVIRONMENT_VARIABLES
from tests.helpers import free_port
from wechat import simulate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.update(
        HARPOON_INSTANCE_DIR=str(tmp_path / "instance"), HARPOON_BIND=f"127.0.0.1:{free_port()}"
    )
    return env


def flask(env, *args) -> str:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def wait_for(predicate, timeout=20.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s")


def test_make_run_path_serves_and_processes_a_signed_callback(embedded_env, tmp_path):
    flask(embedded_env, "db", "upgrade")
    output = flask(
        embedded_env, "channels", "add-oa", "--name", "demo", "--appid", "wxdemo0000000001"
    )
    token = re.search(r"Token:\s+(\S+)", output).group(1)
    aes_key = re.search(r"EncodingAESKey:\s+(\S+)", output).group(1)
    base = f"http://{embedded_env['HARPOON_BIND']}"

    log = tmp_path / "gunicorn.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "wsgi:app"],
            cwd=ROOT,
            env=embedded_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    return json.load(response)
            except OSError:
                return None

        health = wait_for(healthy)
        assert health == {"status": "ok", "database": "ok", "redis": "ok (embedded)"}

        creds = simulate.Credentials("wxdemo0000000001", token, aes_key)
        callback = simulate.oa_message(creds, simulate.oa_event("o_embedded", "subscribe"))
        request = urllib.request.Request(
            f"{base}/callbacks/wechat/1?{callback.query}", data=callback.body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == b"success"

        database = Path(embedded_env["HARPOON_INSTANCE_DIR"]) / "harpoon.db"

        def processed():
            with closing(sqlite3.connect(database)) as conn:
                return conn.execute(
                    "SELECT e.status, i.kind FROM inbound_events e "
                    "JOIN interactions i ON i.source_event_id = e.id"
                ).fetchall()

        assert wait_for(processed) == [("done", "wechat.follow")], log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_make_run_demo_shows_traffic_flowing(embedded_env, tmp_path):
    """`make run` is `flask demo`: sandbox, simulator and Harpoon, nothing installed or set;
    the printed sign-in opens the admin pages, which show the live data."""
    port = free_port()
    command = [str(BIN / "flask"), "--app", "wsgi", "demo", "--port", str(port)]
    command += ["--sandbox-port", str(free_port()), "--rate", "10", "--duration", "8"]
    out = tmp_path / "demo.out"
    with out.open("w") as stdout:
        demo = subprocess.Popen(command, cwd=ROOT, env=embedded_env, stdout=stdout, stderr=stdout)
    try:
        login = wait_for(lambda: re.search(r"sign in: (\S+) / (\S+)", out.read_text()), timeout=60)
        wait_for(lambda: "followed via" in out.read_text(), timeout=30)
        base = f"http://127.0.0.1:{port}"

        def live_contacts():  # the header and at least one contact, once the worker drained
            page = admin_page(base, *login.groups(), "/admin/contacts")
            return page if page.count("<tr") > 1 else None

        assert wait_for(live_contacts, timeout=30)
        demo.wait(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    result = subprocess.CompletedProcess(command, demo.returncode, out.read_text(), "")
    assert result.returncode == 0, result.stdout
    status = [line for line in result.stdout.splitlines() if line.startswith("callbacks ")]
    assert status, result.stdout
    delivered, refused = re.search(r"callbacks (\d+) \(refused (\d+),", status[-1]).groups()
    assert int(delivered) > 10
    assert refused == "0"
    done = int(re.search(r"done (\d+)", status[-1]).group(1))
    assert done > 0
    assert "followed via" in result.stdout
    assert "examples/post_live_minutes.py --key hk_" in result.stdout
    reads = [line for line in result.stdout.splitlines() if "content: reads " in line]
    assert reads and int(re.search(r"content: reads (\d+)", reads[-1]).group(1)) > 0
    # The demo CRM's closed deals, synced through the signed opportunity API at start.
    assert "synced 6 closed deals through the API (created 6," in result.stdout
    revenue = [line for line in result.stdout.splitlines() if "revenue: opportunities" in line]
    assert revenue and re.search(r"won 4 \(¥1,152,500\), lost 2", revenue[-1])


def admin_page(base: str, email: str, password: str, path: str) -> str:
    """Sign in the way a browser does (CSRF token from the form) and fetch a page."""
    import requests

    with requests.Session() as browser:
        form = browser.get(f"{base}/admin/login", timeout=10).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        signed_in = browser.post(
            f"{base}/admin/login",
            data={"email": email, "password": password, "csrf_token": token},
            timeout=10,
        )
        assert signed_in.url.endswith("/admin/"), signed_in.text[:500]
        page = browser.get(f"{base}{path}", timeout=10)
        assert page.status_code == 200
        return page.text
