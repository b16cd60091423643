"""Browser tests: Playwright driving Debian's Chromium against a live Harpoon server."""

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.browser.helpers import CHROMIUM, REPORT_CSP_VIOLATIONS
from tests.helpers import free_port


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page that fails its test on any CSP violation, seen as an event or on the console."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    violations = []
    context.expose_binding("harpoonCspViolation", lambda _source, text: violations.append(text))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    yield page
    context.close()
    assert not violations, "the Content-Security-Policy refused:\n" + "\n".join(violations)


@pytest.fixture
def wecom_harpoon(make_app, platform):
    """Harpoon on a real port, talking to the sandbox, its public URL that port: the
    sandbox's WeCom client frames its chat sidebar. (app, base URL)."""
    platform.reset()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(wechat_api_url=platform.url, public_base_url=base)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, base
    server.shutdown()
    server.server_close()


@pytest.fixture
def phone(browser):
    """A 375x812 phone page in Chinese, failing its test on any CSP violation."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN")
    violations = []
    context.expose_binding("harpoonCspViolation", lambda _source, text: violations.append(text))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    yield page
    context.close()
    assert not violations, "the Content-Security-Policy refused:\n" + "\n".join(violations)
