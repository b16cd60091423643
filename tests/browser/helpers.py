"""What the browser tests share: where Chromium and the screenshots are, the script that
reports Content-Security-Policy violations, taking a screenshot and signing in."""

import os
import re
from pathlib import Path

from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("HARPOON_SCREENSHOTS", "/tmp/harpoon-screenshots"))

# Every document reports what the Content-Security-Policy refused, before its own scripts run.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.harpoonCspViolation(`${event.effectiveDirective} refused ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile}:${event.lineNumber} on ${event.documentURI}`);
});
"""


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base, email):
    """Sign in on the login page as the user make_user made with this email."""
    page.goto(f"{base}/admin/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r"/admin/(home)?$"))  # a salesperson starts on their home
