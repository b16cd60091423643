"""Browser tests: Playwright driving Debian's Chromium against a live Harpoon server."""

from pathlib import Path

import pytest

from tests.browser.helpers import CHROMIUM, REPORT_CSP_VIOLATIONS


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
