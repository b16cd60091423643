"""Journeys in a real browser: the editor shows each node type's and kind's fields only,
and the journey page draws the version as a graph with its counts per node."""

import copy
import re

from playwright.sync_api import expect

from models import Contact
from tests.browser.helpers import SCREENSHOTS, screenshot, sign_in
from tests.factories import LIVE_THEN_WECOM, enrol, log_step, make_journey, make_user, workspace_id
from tests.helpers import harpoon_of


def with_a_branch() -> dict:
    """The live-stream journey, where a nudge first asks whether the lead is hot."""
    document = copy.deepcopy(LIVE_THEN_WECOM)
    document["nodes"][3]["next"] = "hot"
    document["nodes"].insert(
        4,
        {
            "id": "hot",
            "type": "branch",
            "branches": [
                {
                    "condition": {"kind": "score_at_least", "of": "lead", "at_least": 50},
                    "next": "follow_up",
                }
            ],
            "otherwise": "done",
        },
    )
    return document


def test_the_journey_page_draws_the_graph_with_counts(app, live_server, page):
    make_user(app, "marketer")
    journey_id = make_journey(app, document=with_a_branch())
    ws = workspace_id(app)
    with harpoon_of(app).db.session() as session:
        contacts = [Contact(workspace_id=ws, name=f"联系人{n}") for n in range(6)]
        session.add_all(contacts)
        session.commit()
        people = [contact.id for contact in contacts]
    # Six people: two waiting for the live stream, one nudged and hot, three done.
    paths = [
        ("wait_watch", "waiting", ["start", "send_link", "wait_watch"]),
        ("wait_watch", "waiting", ["start", "send_link", "wait_watch"]),
        ("follow_up", "active", ["start", "send_link", "wait_watch", "nudge", "hot"]),
        ("done", "completed", ["start", "send_link", "wait_watch", "follow_up", "done"]),
        ("done", "completed", ["start", "wait_watch", "nudge", "hot", "done"]),
        ("done", "goal", ["start", "send_link"]),
    ]
    for contact_id, (node, status, passed) in zip(people, paths, strict=True):
        because = {"trigger": LIVE_THEN_WECOM["nodes"][0]["trigger"], "kind": "wecom.contact_added"}
        enrolment = enrol(
            app, journey_id, node, status, contact_id=contact_id, entered_because=because
        )
        log_step(app, enrolment, "start", "entered", 1)
        for visit, passed_node in enumerate(passed, start=2):
            outcome = "waiting" if passed_node == node and status == "waiting" else "done"
            log_step(app, enrolment, passed_node, outcome, visit)
        if "send_link" not in passed:
            log_step(app, enrolment, "send_link", "skipped", 9)

    sign_in(page, live_server, "marketer@acme.example")
    page.goto(f"{live_server}/admin/journeys/{journey_id}")
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#journey-graph canvas")).to_have_count(1)
    expect(page.locator("tr[data-node=send_link] td[data-count=entered]")).to_have_text("6")
    expect(page.locator("tr[data-node=send_link] td[data-count=skipped]")).to_have_text("1")
    expect(page.locator("tr[data-node=wait_watch] td[data-count=current]")).to_have_text("2")
    expect(page.locator("[data-total=open]")).to_have_text("3")
    screenshot(page, "journey")
    page.locator("#graph").screenshot(path=str(SCREENSHOTS / "journey-graph.png"))

    page.goto(f"{live_server}/admin/journeys")
    expect(page.locator(f"#journey-{journey_id} td[data-count=open]")).to_have_text("3")
    screenshot(page, "journeys")

    page.goto(f"{live_server}/admin/contacts/{people[4]}")
    card = page.locator("#contact-journeys")
    expect(card).to_contain_text("直播跟进")
    expect(card.locator("li[data-outcome=skipped]")).to_have_count(1)
    card.screenshot(path=str(SCREENSHOTS / "contact-journeys.png"))


def test_the_editor_shows_the_fields_of_each_type_and_kind(app, live_server, page):
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")
    page.goto(f"{live_server}/admin/journeys/new")
    welcome = page.locator("#node-1")
    text = welcome.locator("textarea[name='nodes.1.action.text']")
    expect(text).to_be_visible()
    expect(welcome.locator("input[name='nodes.1.wait.minutes']")).to_be_hidden()
    welcome.locator("select[name='nodes.1.action.kind']").select_option("add_tag")
    expect(text).to_be_hidden()
    expect(welcome.locator("select[name='nodes.1.action.tag_id']")).to_be_visible()
    welcome.locator("select[name='nodes.1.type']").select_option("wait")
    expect(welcome.locator("input[name='nodes.1.wait.minutes']")).to_be_visible()
    welcome.locator("select[name='nodes.1.wait_mode']").select_option("event")
    expect(welcome.locator("select[name='nodes.1.timeout_next']")).to_be_visible()
    expect(welcome.locator("input[name='nodes.1.wait.minutes']")).to_be_hidden()
    welcome.locator("select[name='nodes.1.type']").select_option("action")
    welcome.locator("select[name='nodes.1.action.kind']").select_option("cs_message")

    page.fill("input[name=name]", "关注欢迎")
    page.click("button[value='add_node:branch']")
    page.wait_for_selector("#node-3")
    expect(page.locator("input[name=name]")).to_have_value("关注欢迎")
    expect(page.locator("input[name='nodes.3.id']")).to_have_value("branch_1")
    page.click("form .form-actions button.primary")  # the welcome's text is empty
    expect(page.locator("#journey-problems")).to_be_visible()
    expect(page.locator("[data-error-for='nodes.1.action.text']")).to_be_visible()
    expect(page.locator("[data-error-for='nodes.3.branches.0.condition.tag_id']")).to_be_visible()
    page.locator("[data-error-for='nodes.1.action.text']").scroll_into_view_if_needed()
    screenshot(page, "journey-editor")

    page.fill("textarea[name='nodes.1.action.text']", "欢迎关注！")
    page.click("button[value='remove:3']")
    page.click("form .form-actions button.primary")
    page.wait_for_url(re.compile(r"/admin/journeys/\d+"))
    expect(page.locator(".flash.success")).to_be_visible()
