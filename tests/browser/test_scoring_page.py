"""The Scoring page in a real browser: its tabs, the bottom-up preset filling the weights,
a preview of what it does to the accounts, then saving it."""

import re

from playwright.sync_api import expect

from crm.channels import workspace_named
from scoring.engine import load_model
from scoring.model import DEFAULT_RULES, PRESETS
from tests.browser.helpers import screenshot, sign_in
from tests.factories import committee_accounts, make_user
from tests.helpers import harpoon_of


def test_a_marketer_previews_and_saves_the_bottom_up_preset(app, live_server, page):
    committee_accounts(app)
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")
    page.select_option("header select[name=locale]", "en")
    page.wait_for_load_state()

    page.click("nav.sidebar a[href='/admin/scoring']")
    expect(page.locator("main")).to_contain_text("The shipped model is in force")
    expect(page.locator("table.score-rules tbody tr")).to_have_count(len(DEFAULT_RULES))
    screenshot(page, "scoring_rules")

    for tab in ("mqa", "tiers", "stages"):
        page.click(f"nav.tabs [data-tab={tab}]")
        expect(page.locator(f"nav.tabs [data-tab={tab}][aria-current=page]")).to_be_visible()
        screenshot(page, f"scoring_{tab}")
    page.goto(f"{live_server}/admin/scoring/rules/menu_pricing/edit")
    expect(page.locator("input[name='where.0.value']")).to_have_value("PRICING")
    screenshot(page, "scoring_rule_form")

    page.goto(f"{live_server}/admin/scoring")
    page.click("nav.tabs [data-tab=weights]")
    engineer = page.locator("input[name='roles.engineer']")
    expect(engineer).to_have_value("0.8")
    page.check("input[name=preset][value=bottom_up]")
    expect(engineer).to_have_value("2")
    expect(page.locator("input[name='seniorities.staff']")).to_have_value("1.3")
    expect(page.locator("input[name='roles.ceo']")).to_have_value("0.8")

    page.click("#scoring-form [data-action=preview]")
    preview = page.locator("#scoring-preview")
    expect(preview).to_contain_text("If you save this")
    expect(preview.locator("[data-impact=mean]")).to_contain_text("→")
    expect(page.locator("input[name=preset][value=bottom_up]")).to_be_checked()  # as typed
    screenshot(page, "scoring_preview")

    page.click("#scoring-form button.primary")
    page.wait_for_url(re.compile(r"/admin/scoring\?tab=weights$"))
    expect(page.locator(".flash.success")).to_contain_text("Weights: Bottom-up preset")
    expect(page.locator(".in-force")).to_contain_text("Version 1 is in force")
    screenshot(page, "scoring_saved")
    with harpoon_of(app).db.session() as session:
        model = load_model(session, workspace_named(session, "acme").id)
    assert (model.preset, model.weights) == ("bottom_up", PRESETS["bottom_up"])

    # A mistake shows under its input; nothing more is saved.
    page.fill("input[name='recency_half_life_days']", "0")
    page.click("#scoring-form button.primary")
    expect(page.locator(".field.has-error .error")).to_have_text(["More than 0 days."])
    screenshot(page, "scoring_error")

    page.click("nav.tabs [data-tab=history]")
    expect(page.locator("table.versions tbody tr")).to_have_count(1)
    expect(page.locator("table.versions")).to_contain_text("Marketer User")
    screenshot(page, "scoring_history")
