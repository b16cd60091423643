"""The scoring page's "what predicts wins" tab: a clear message with no outcomes, the
comparisons and fitted weights with them, and a fit previewed then adopted as a version."""

import html

from models import ScoringModel
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import won_and_lost_accounts
from tests.helpers import all_of

PAGE = "/admin/scoring?tab=wins"


def test_with_no_outcomes_the_tab_says_so_and_nothing_can_be_adopted(app, signed_in):
    client = signed_in("marketer")
    chinese = client.get(PAGE)
    assert chinese.status_code == 200
    assert "成交结果还不够" in chinese.text
    page = in_english(client).get(PAGE).text
    assert "Not enough outcomes yet: 0 won, 0 lost." in page
    assert 'data-action="adopt"' not in page
    token = csrf_token(page)
    for action in ("preview", "adopt"):
        response = client.post(f"/admin/scoring/wins/{action}", data={"csrf_token": token})
        assert response.status_code == 302
    assert all_of(app, ScoringModel) == []
    assert client.post("/admin/scoring/wins/nope", data={"csrf_token": token}).status_code == 404


def test_sales_may_not_see_or_adopt_it(signed_in):
    client = signed_in("sales")
    assert client.get(PAGE).status_code == 403
    token = csrf_token(client.get("/admin/").text)
    assert client.post("/admin/scoring/wins/adopt", data={"csrf_token": token}).status_code == 403


def test_the_fit_is_previewed_then_adopted_as_a_new_version(app, signed_in):
    outcomes = won_and_lost_accounts(app)
    client = in_english(signed_in("marketer"))
    page = html.unescape(client.get(PAGE).text)
    assert f'data-wins="won">{len(outcomes["won"])}<' in page
    assert f'data-wins="lost">{len(outcomes["lost"])}<' in page
    demo = page[page.index('data-signal="rule:menu_demo"') :][:2000]
    assert 'data-significant="yes"' in demo  # booking a demo predicts the wins here
    assert 'data-suggestion="menu_demo"' in page and 'data-suggestion="content_view"' in page
    token = csrf_token(page)
    preview = client.post("/admin/scoring/wins/preview", data={"csrf_token": token})
    assert preview.status_code == 200
    assert 'id="scoring-preview"' in preview.text and 'data-impact="mean"' in preview.text
    assert all_of(app, ScoringModel) == []  # a preview saves nothing
    adopted = client.post("/admin/scoring/wins/adopt", data={"csrf_token": token})
    assert adopted.status_code == 302
    [version] = all_of(app, ScoringModel)
    won, lost = len(outcomes["won"]), len(outcomes["lost"])
    assert version.note == f"Weights fitted on {won} won and {lost} lost deals"
    rules = {rule["key"]: rule["points"] for rule in version.document["rules"]}
    assert rules["menu_demo"] != 15  # the shipped points moved with the fit
