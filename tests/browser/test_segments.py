"""The segment editor in a real browser: the count and the sample follow each edit, a
mistake shows beside its input and clears, and the segment is saved with its count."""

import re

from playwright.sync_api import expect

from models import SavedSegment
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_people, make_user
from tests.helpers import all_of


def test_a_marketer_builds_a_segment_watching_its_live_count(app, live_server, page):
    people = make_people(app)
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")
    page.select_option("header select[name=locale]", "en")
    page.wait_for_load_state()

    page.click("nav.sidebar a[href='/admin/segments']")
    expect(page.locator("main")).to_contain_text("No segments yet.")
    page.click("text=New segment")
    count = page.locator("#segment-members")
    expect(count).to_have_text("4")  # every live contact of the workspace

    page.check("input[name=roles][value=cio]")
    expect(count).to_have_text("1")
    page.check("input[name=roles][value=engineer]")
    expect(count).to_have_text("2")
    expect(page.locator("table.segment-sample tbody tr")).to_have_count(2)

    # Typing counts too, once the marketer pauses.
    page.fill("input[name='lead_score.min']", "50")
    page.locator("input[name='lead_score.min']").press("End")  # a keyup, as typing makes
    expect(count).to_have_text("1")
    expect(page.locator("table.segment-sample")).to_contain_text("华信")

    page.fill("input[name='lead_score.max']", "10")
    page.locator("input[name='lead_score.max']").press("End")
    expect(page.locator("#errors-lead_score-max")).to_have_text("At least the minimum.")
    expect(page.locator("#segment-preview")).to_contain_text("Correct the marked inputs")
    screenshot(page, "segment_error")
    page.fill("input[name='lead_score.max']", "100")
    page.locator("input[name='lead_score.max']").press("End")
    expect(count).to_have_text("1")
    expect(page.locator("#errors-lead_score-max")).to_have_text("")

    page.select_option("select[name=tags_any]", [str(people["tags"]["试用"])])
    page.check("input[name=mqa][value=yes]")
    expect(count).to_have_text("1")
    page.fill("input[name=name]", "Hot CIOs")
    screenshot(page, "segment_editor")

    page.click("#segment-form button.primary")
    page.wait_for_url(re.compile(r"/admin/segments/\d+$"))
    expect(page.locator(".flash.success")).to_contain_text(
        "Segment “Hot CIOs” saved: 1 contact in it now."
    )
    expect(page.locator(".segment-manage [data-action=delete]")).to_be_visible()
    screenshot(page, "segment_saved")
    (saved,) = all_of(app, SavedSegment)
    assert saved.last_count == 1
    assert saved.document["roles"] == ["cio", "engineer"] and saved.document["mqa"] is True

    page.click("a:text('‹ Segments')")
    expect(page.locator(f"tr[data-segment='{saved.id}'] [data-count=last]")).to_have_text("1")
    screenshot(page, "segments_list")
