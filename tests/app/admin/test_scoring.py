"""Scoring page: each section of the model saved as a new version with the job that brings
the scores in line, field messages for bad input, a preview that counts tier and MQA moves
and leaves the database as it was, and restoring a version."""

import html
import re
from dataclasses import asdict, replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from core.jobs import Job
from crm.channels import workspace_named
from models import (
    Account,
    AccountSnapshot,
    AuditLog,
    Contact,
    Interaction,
    ScoreEntry,
    ScoringModel,
    StageChange,
    User,
    utcnow,
)
from scoring import preview as scoring_preview
from scoring.engine import Scorer, load_model, save_model
from scoring.model import PRESETS, Model, MqaRule, Stage, TierRule
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import committee_accounts, workspace_id
from tests.helpers import all_of, harpoon_of, queued_jobs, run_jobs

PAGE = "/admin/scoring"

# ---- helpers -----------------------------------------------------------------------------


class FormReader(HTMLParser):
    """What a browser submits from the page's form#scoring-form, buttons aside."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.select: str | None = None
        self.values: dict = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == "scoring-form"
        elif not self.inside or (tag != "option" and "name" not in attrs):
            return
        elif tag == "input" and attrs.get("type") in ("checkbox", "radio"):
            if "checked" in attrs and attrs["type"] == "checkbox":
                self.values.setdefault(attrs["name"], []).append(attrs["value"])
            elif "checked" in attrs:
                self.values[attrs["name"]] = attrs["value"]
        elif tag == "input" and attrs.get("type") != "submit":
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self.select = attrs["name"]
        elif (
            tag == "option"
            and self.select
            and (self.select not in self.values or "selected" in attrs)
        ):
            self.values[self.select] = attrs["value"]

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_of(page: str) -> dict:
    reader = FormReader()
    reader.feed(page)
    assert reader.values, "no form#scoring-form on the page"
    return reader.values


def errors_at(page: str, name: str) -> list[str]:
    """The messages shown with the input or select of this dotted name."""
    input_id = "f-" + name.replace(".", "-")
    for block in re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S):
        if f'id="{input_id}"' in block:
            return [
                html.unescape(e) for e in re.findall(r'<small class="error"[^>]*>(.*?)<', block)
            ]
    raise AssertionError(f"no input {name} on the page")


def post(client, path, data, headers=None):
    """POST with the CSRF token of the Scoring page (a form's own token comes with it)."""
    data = {"csrf_token": csrf_token(client.get(PAGE).text), **data}
    return client.post(path, data=data, headers=headers)


def submit(client, page_path, action, changes=None, **kwargs):
    """Fill in the form the page shows, change some inputs, and post it to `action`."""
    values = form_of(client.get(page_path).text)
    return client.post(action, data={**values, **(changes or {})}, **kwargs)


def versions(app, ws=None) -> list[ScoringModel]:
    return all_of(app, ScoringModel, ScoringModel.version)


def latest_model(app) -> Model:
    with harpoon_of(app).db.session() as session:
        return load_model(session, workspace_id(app))


def audits(app) -> list[AuditLog]:
    return [entry for entry in all_of(app, AuditLog) if entry.action.startswith("scoring")]


def page_after(client, response) -> str:
    assert response.status_code == 302, response.text
    return html.unescape(client.get(response.headers["Location"]).text)


# ---- the page ----------------------------------------------------------------------------


def test_a_marketer_opens_every_tab_and_form(signed_in):
    client = signed_in("marketer")
    for tab in ("rules", "weights", "mqa", "tiers", "stages", "history"):
        page = client.get(f"{PAGE}?tab={tab}")
        assert page.status_code == 200, tab
        assert f'href="{PAGE}"' in page.text  # the navigation's entry
    for path in ("rules/new", "rules/message/edit", "mqa/new", "mqa/0/edit"):
        assert client.get(f"{PAGE}/{path}").status_code == 200, path
    assert client.get(f"{PAGE}/rules/nope/edit").status_code == 404
    assert client.get(f"{PAGE}/mqa/5/edit").status_code == 404
    english = in_english(client).get(PAGE).text
    assert "The shipped model is in force" in english
    for key in ("follow", "menu_pricing", "meeting"):
        assert f'id="rule-{key}"' in english


@pytest.mark.parametrize("role", ["sales", "viewer"])
def test_sales_and_viewers_may_not_open_it(signed_in, app, role):
    client = signed_in(role)
    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}/rules/new").status_code == 403
    token = csrf_token(client.get("/admin/").text)
    for path in ("weights", "preview/weights", "history/0/restore", "rules/message/delete"):
        assert client.post(f"{PAGE}/{path}", data={"csrf_token": token}).status_code == 403
    assert f'href="{PAGE}"' not in client.get("/admin/").text
    assert versions(app) == []


# ---- saving each section -----------------------------------------------------------------


def test_a_new_rule_is_a_new_version_and_rescores_history(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = submit(
        client,
        f"{PAGE}/rules/new",
        f"{PAGE}/rules/new",
        {
            "key": "webinar",
            "kind": "live.watch",
            "where.0.property": "topic",
            "where.0.match": "contains",
            "where.0.value": "cloud",
            "points": "8",
            "per_minute": "1",
            "per_day": "2",
            "signal": "engagement",
        },
    )
    assert response.headers["Location"] == f"{PAGE}?tab=rules#rule-webinar"
    shown = page_after(client, response)
    assert "Version 1 saved (Rule webinar added)" in shown and 'id="rule-webinar"' in shown

    [version] = versions(app)
    marketer = all_of(app, User)[0]
    assert (version.version, version.note, version.created_by) == (
        1,
        "Rule webinar added",
        marketer.id,
    )
    assert version.document["rules"][-1] == {
        "key": "webinar",
        "kind": "live.watch",
        "points": 8.0,
        "where": {"topic": "contains:cloud"},
        "per_minute": 1.0,
        "per_day": 2,
        "per_contact": None,
        "max_points": None,
        "signal": "engagement",
    }
    assert version.document["rules"][:-1] == list(Model().to_document()["rules"])
    assert queued_jobs(app, "low") == [(Job.RESCORE_WORKSPACE, (workspace_id(app),))]
    [entry] = audits(app)
    assert (entry.action, entry.target_id) == ("scoring_model.save", "1")
    assert entry.changes["rules.webinar"][0] is None
    assert entry.changes["note"] == "Rule webinar added"


def test_editing_a_rule_rescores_the_ledger_and_deleting_one_too(app, signed_in):
    ws = workspace_id(app)
    with harpoon_of(app).db.session() as session:
        person = Contact(workspace_id=ws)
        session.add(person)
        session.flush()
        session.add(
            Interaction(
                workspace_id=ws,
                contact_id=person.id,
                kind="wechat.message",
                properties={},
                occurred_at=utcnow() - timedelta(hours=1),
            )
        )
        session.commit()
        Scorer.load(session, ws).rescore_history()
        session.commit()
    client = in_english(signed_in("marketer"))
    edit = f"{PAGE}/rules/message/edit"
    response = submit(client, edit, edit, {"points": "50", "per_day": "", "key": "renamed"})
    assert "Rule message edited: points, daily cap" in page_after(client, response)
    rule = latest_model(app).rule("message")
    assert (rule.points, rule.per_day, rule.signal) == (50, None, "engagement")
    assert latest_model(app).rule("renamed") is None  # a rule keeps its key
    assert queued_jobs(app, "low") == [(Job.RESCORE_WORKSPACE, (ws,))]
    run_jobs(app)
    points = all_of(app, ScoreEntry)
    assert [(entry.rule_key, entry.points) for entry in points] == [("message", 50)]

    response = post(client, f"{PAGE}/rules/message/delete", {})
    assert "Rule message deleted" in page_after(client, response)
    assert latest_model(app).rule("message") is None
    assert [v.version for v in versions(app)] == [1, 2]
    assert queued_jobs(app, "low") == [(Job.RESCORE_WORKSPACE, (ws,))]
    assert post(client, f"{PAGE}/rules/message/delete", {}).status_code == 404


def test_the_bottom_up_preset_saves_its_weights_and_refreshes_the_accounts(app, signed_in):
    client = in_english(signed_in("marketer"))
    weights = f"{PAGE}?tab=weights"
    values = form_of(client.get(weights).text)
    assert values["preset"] == "top_down" and values["roles.cio"] == "2"
    # What the page's script does when the preset is picked: its weights fill the inputs.
    filled = post(client, f"{PAGE}/weights", {**values, "preset": "bottom_up", "action": "fill"})
    assert filled.status_code == 200 and versions(app) == []
    values = form_of(filled.text)
    assert (values["roles.engineer"], values["seniorities.staff"]) == ("2", "1.3")

    response = client.post(f"{PAGE}/weights", data=values)
    assert "Weights: Bottom-up preset, role weights, seniority weights" in page_after(
        client, response
    )
    model = latest_model(app)
    assert (model.preset, model.weights) == ("bottom_up", PRESETS["bottom_up"])
    assert queued_jobs(app, "low") == [(Job.REFRESH_WORKSPACE_SCORES, (workspace_id(app),))]

    # The lead half-life: the ledger's weights depend on it, so history is rescored.
    response = submit(client, weights, f"{PAGE}/weights", {"half_life_days": ""})
    assert "Weights: lead score half-life" in page_after(client, response)
    assert latest_model(app).half_life_days is None
    assert queued_jobs(app, "low")[-1] == (Job.RESCORE_WORKSPACE, (workspace_id(app),))


def test_mqa_rules_are_added_edited_and_deleted(app, signed_in):
    client = in_english(signed_in("marketer"))
    changes = {
        "name": "Board interest",
        "window_days": "30",
        "min_roles": "2",
        "senior_level": "c_level",
        "senior_count": "1",
        "senior_minutes": "20",
        "min_account_score": "50",
        "tiers": ["1", "2"],
    }
    response = submit(client, f"{PAGE}/mqa/new", f"{PAGE}/mqa/new", changes)
    assert "MQA rule “Board interest” added" in page_after(client, response)
    assert latest_model(app).mqa_rules == (
        MqaRule(),
        MqaRule("Board interest", 30, 2, "c_level", 1, 20.0, 50.0, (1, 2)),
    )
    edit = f"{PAGE}/mqa/1/edit"
    values = form_of(client.get(edit).text)
    assert values["tiers"] == ["1", "2"] and values["senior_level"] == "c_level"
    submit(client, edit, edit, {"min_account_score": "", "tiers": []})
    assert latest_model(app).mqa_rules[1] == MqaRule("Board interest", 30, 2, "c_level", 1, 20.0)
    post(client, f"{PAGE}/mqa/0/delete", {})
    assert [rule.name for rule in latest_model(app).mqa_rules] == ["Board interest"]
    assert [v.note for v in versions(app)] == [
        "MQA rule “Board interest” added",
        "MQA rule “Board interest” edited",
        "MQA rule “Buying committee engaged” deleted",
    ]
    # Three saves before the job ran: one refresh (it re-reads the latest model anyway).
    assert queued_jobs(app, "low") == [(Job.REFRESH_WORKSPACE_SCORES, (workspace_id(app),))]
    run_jobs(app)
    post(client, f"{PAGE}/mqa/0/delete", {})
    assert queued_jobs(app, "low") == [
        (Job.REFRESH_WORKSPACE_SCORES, (workspace_id(app),))
    ]  # a later save asks again


def test_tiers_fit_and_signal_windows_are_saved_together(app, signed_in):
    client = in_english(signed_in("marketer"))
    tiers = f"{PAGE}?tab=tiers"
    values = form_of(client.get(tiers).text)
    assert (values["tiers.0.tier"], values["tiers.0.intent"]) == ("1", "required")
    response = submit(
        client,
        tiers,
        f"{PAGE}/tiers",
        {
            "tiers.1.tier": "",  # tier 2 no longer used
            "tiers.2.min_fit": "40",
            "tiers.2.engagement": "absent",
            "fit.industries": "制造，金融、 能源",
            "fit.min_employees": "500",
            "signals.intent_days": "14",
        },
    )
    assert "Tiers and fit: tier rules, fit criteria, signal windows" in page_after(client, response)
    model = latest_model(app)
    assert model.tiers == (
        TierRule(1, min_fit=70, min_acv=500_000, intent=True, engagement=True),
        TierRule(3, min_fit=40, engagement=False),
    )
    assert (model.fit.industries, model.fit.min_employees) == (("制造", "金融", "能源"), 500)
    assert model.signals.intent_days == 14
    assert queued_jobs(app, "low") == [(Job.REFRESH_WORKSPACE_SCORES, (workspace_id(app),))]
    # The unused row shows as such; the form reads the saved model back.
    values = form_of(client.get(tiers).text)
    assert (values["tiers.1.tier"], values["fit.industries"]) == ("", "制造, 金融, 能源")


def test_stages_are_renamed_added_moved_and_deleted_then_saved(app, signed_in):
    client = in_english(signed_in("marketer"))
    stages = f"{PAGE}?tab=stages"
    values = form_of(client.get(stages).text)
    assert values["stages.7.key"] == "expansion"
    page = post(client, f"{PAGE}/stages", {**values, "action": "add"})
    values = form_of(page.text)
    assert (values["stages.8.key"], values["stages.8.name"]) == ("", "")
    assert 'name="stages.8.key" type="text" value="" maxlength' in page.text  # a new key
    assert 'name="stages.0.key" type="text" value="target" readonly' in page.text
    values.update({"stages.8.key": "trial", "stages.8.name": "Trial", "stages.6.name": "客户"})
    values = form_of(post(client, f"{PAGE}/stages", {**values, "action": "up-8"}).text)
    values = form_of(post(client, f"{PAGE}/stages", {**values, "action": "delete-8"}).text)
    assert versions(app) == []  # rearranging saves nothing

    response = client.post(f"{PAGE}/stages", data={**values, "surge.factor": "3"})
    assert "Stages and surge: stages, surge" in page_after(client, response)
    model = latest_model(app)
    assert [stage.key for stage in model.stages] == [
        "target",
        "aware",
        "engaged",
        "mqa",
        "meeting",
        "opportunity",
        "customer",
        "trial",
    ]
    assert model.stages[6] == Stage("customer", "客户")
    assert model.surge.factor == 3
    assert queued_jobs(app, "low") == [(Job.REFRESH_WORKSPACE_SCORES, (workspace_id(app),))]


def test_saving_what_is_in_force_saves_no_version(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = submit(client, f"{PAGE}?tab=tiers", f"{PAGE}/tiers")
    assert "Nothing changed: no new version was saved." in page_after(client, response)
    assert versions(app) == [] and queued_jobs(app, "low") == [] and audits(app) == []


# ---- bad input ---------------------------------------------------------------------------


def test_a_rule_with_mistakes_shows_them_by_field_and_saves_nothing(app, signed_in):
    client = in_english(signed_in("marketer"))
    new = f"{PAGE}/rules/new"
    page = submit(
        client,
        new,
        new,
        {
            "key": "message",
            "kind": "wechat.telepathy",
            "points": "lots",
            "per_day": "-1",
            "per_contact": "1.5",
            "max_points": "0",
            "where.0.value": "PRICING",
        },
    )
    assert page.status_code == 200
    assert errors_at(page.text, "key") == ["Another rule has this key."]
    assert errors_at(page.text, "kind") == ["Not an interaction Harpoon records."]
    assert errors_at(page.text, "points") == ["Not a number."]
    assert errors_at(page.text, "per_day") == ["A whole number, at least 1; empty for no cap."]
    assert errors_at(page.text, "per_contact") == ["Not a whole number."]
    assert errors_at(page.text, "max_points") == ["More than 0; empty for no cap."]
    assert errors_at(page.text, "where.0.property") == [
        "Name the property this value is compared with."
    ]
    assert form_of(page.text)["where.0.value"] == "PRICING"  # as typed
    bad_key = submit(client, new, new, {"key": "Web Inar", "kind": "live.watch", "points": "1"})
    assert errors_at(bad_key.text, "key") == [
        "Lower-case letters, digits and _, starting with a letter."
    ]
    assert versions(app) == [] and queued_jobs(app, "low") == []


def test_weights_tiers_and_stages_with_mistakes_save_nothing(app, signed_in):
    client = in_english(signed_in("marketer"))
    page = submit(
        client,
        f"{PAGE}?tab=weights",
        f"{PAGE}/weights",
        {"roles.ceo": "11", "recency_half_life_days": "0", "breadth_bonus": "-1"},
    )
    assert errors_at(page.text, "roles.ceo") == ["From 0 to 10."]
    assert errors_at(page.text, "recency_half_life_days") == ["More than 0 days."]
    assert errors_at(page.text, "breadth_bonus") == ["From 0 to 1000."]

    page = submit(
        client,
        f"{PAGE}?tab=tiers",
        f"{PAGE}/tiers",
        {"tiers.2.tier": "1", "tiers.1.min_fit": "101", "signals.intent_days": "0"},
    )
    assert errors_at(page.text, "tiers.2.tier") == ["This tier has a rule already."]
    assert errors_at(page.text, "tiers.0.tier") == []
    assert errors_at(page.text, "tiers.1.min_fit") == ["From 0 to 100."]
    assert errors_at(page.text, "signals.intent_days") == ["From 1 to 365 days."]

    # Delete the MQA stage, while the MQA stage rule still points at it.
    values = form_of(client.get(f"{PAGE}?tab=stages").text)
    page = post(client, f"{PAGE}/stages", {**values, "action": "delete-3"})
    assert "mqa (not a stage)" in html.unescape(page.text)
    page = client.post(f"{PAGE}/stages", data={**form_of(page.text), "stages.2.key": "aware"})
    assert errors_at(page.text, "stage_rules.mqa") == [
        "Not one of the stages: pick another, or none."
    ]
    assert errors_at(page.text, "stages.2.key") == ["Another stage has this key."]
    assert errors_at(page.text, "stage_rules.aware") == []
    one = {"stages.0.key": "target", "stages.0.name": "Target"}
    page = post(client, f"{PAGE}/stages", {**one, "surge.factor": "0.5"})
    assert "From 2 to 20 stages: a funnel has a start and an end." in page.text
    assert errors_at(page.text, "surge.factor") == ["At least 1."]
    assert errors_at(page.text, "surge.min_points") == ["Required."]
    assert versions(app) == [] and queued_jobs(app, "low") == [] and audits(app) == []


# ---- preview -----------------------------------------------------------------------------


def database_state(app) -> dict:
    with harpoon_of(app).db.session() as session:
        return {
            "accounts": session.execute(
                select(
                    Account.id,
                    Account.tier,
                    Account.mqa,
                    Account.score,
                    Account.fit,
                    Account.stage,
                    Account.scored_at,
                ).order_by(Account.id)
            ).all(),
            "contacts": session.execute(
                select(Contact.id, Contact.lead_score, Contact.score_mass).order_by(Contact.id)
            ).all(),
            **{
                model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (ScoreEntry, StageChange, AccountSnapshot, ScoringModel, AuditLog)
            },
        }


def impact_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-impact="(\w+)"[^>]*>([^<]*)<', page))


def test_the_preview_counts_tier_and_mqa_moves_and_leaves_the_database_as_it_was(app, signed_in):
    ids = committee_accounts(app)
    tiers = {name: tier for name, tier in zip(ids, (2, None, 3), strict=True)}
    with harpoon_of(app).db.session() as session:
        stored = {a.name: (a.tier, a.mqa) for a in session.scalars(select(Account))}
    assert stored == {name: (tier, name == "甲公司") for name, tier in tiers.items()}
    before = database_state(app)
    client = in_english(signed_in("marketer"))
    htmx = {"HX-Request": "true"}

    # Tier 2 now needs an ACV (甲 drops to tier 3); tier 3 any fit (乙 gets one).
    page = submit(
        client,
        f"{PAGE}?tab=tiers",
        f"{PAGE}/preview/tiers",
        {"tiers.1.min_acv": "1", "tiers.2.min_fit": "0"},
        headers=htmx,
    )
    assert page.status_code == 200 and "<html" not in page.text  # the form alone
    assert page.text.lstrip().startswith("<form")
    counts = impact_of(page.text)
    assert (counts["tier_up"], counts["tier_down"], counts["mqa_in"], counts["mqa_out"]) == (
        "1",
        "1",
        "0",
        "0",
    )
    examples = re.findall(r'data-example="([^"]+)"', page.text)
    assert sorted(examples) == ["乙公司", "甲公司"]
    assert "Every account was judged again under the proposed model" in page.text
    assert form_of(page.text)["tiers.1.min_acv"] == "1"  # the form as typed, to save next

    # Two roles are enough, but a senior needs 100 minutes: 丙 enters, 甲 (90) leaves.
    page = submit(
        client,
        f"{PAGE}/mqa/0/edit",
        f"{PAGE}/preview/mqa",
        {"min_roles": "2", "senior_minutes": "100"},
        headers=htmx,
    )
    counts = impact_of(page.text)
    assert (counts["tier_up"], counts["tier_down"], counts["mqa_in"], counts["mqa_out"]) == (
        "0",
        "0",
        "1",
        "1",
    )
    assert sorted(re.findall(r'data-example="([^"]+)"', page.text)) == ["丙公司", "甲公司"]
    assert database_state(app) == before
    assert queued_jobs(app, "low") == []


def test_previewing_a_rule_change_rescores_history_and_rolls_it_back(app, signed_in):
    committee_accounts(app)
    before = database_state(app)
    client = in_english(signed_in("marketer"))
    page = submit(
        client,
        f"{PAGE}/rules/message/edit",
        f"{PAGE}/preview/rule",
        {"points": "100"},
        headers={"HX-Request": "true"},
    )
    assert "Every contact was rescored from their history" in page.text
    mean_before, mean_after = (
        float(x) for x in html.unescape(impact_of(page.text)["mean"]).split(" → ")
    )
    assert mean_after > mean_before > 0
    assert database_state(app) == before


def test_a_preview_without_javascript_is_the_page_and_shows_mistakes(app, signed_in):
    committee_accounts(app)
    client = in_english(signed_in("marketer"))
    page = submit(client, f"{PAGE}?tab=weights", f"{PAGE}/preview/weights", {"preset": "bottom_up"})
    assert "<html" in page.text and "If you save this" in page.text
    assert impact_of(page.text)["mqa_out"] == "0"
    page = submit(client, f"{PAGE}?tab=weights", f"{PAGE}/preview/weights", {"roles.cio": "-2"})
    assert errors_at(page.text, "roles.cio") == ["From 0 to 10."]
    assert "If you save this" not in page.text
    assert client.post(f"{PAGE}/preview/everything", data=form_of(page.text)).status_code == 404
    assert versions(app) == []


def test_a_preview_with_no_accounts_says_so(signed_in):
    client = in_english(signed_in("marketer"))
    page = submit(client, f"{PAGE}?tab=stages", f"{PAGE}/preview/stages", {"surge.factor": "4"})
    assert "There is no account yet: nothing to compare." in page.text


# ---- history -----------------------------------------------------------------------------


def test_restoring_a_version_saves_it_again_as_the_newest(app, signed_in):
    client = in_english(signed_in("marketer"))
    ws = workspace_id(app)
    bottom_up = replace(Model(), preset="bottom_up", weights=PRESETS["bottom_up"])
    with harpoon_of(app).db.session() as session:
        save_model(session, ws, bottom_up, "Weights: Bottom-up preset")
        save_model(session, ws, replace(bottom_up, half_life_days=None), "no decay")
        session.commit()
    history = client.get(f"{PAGE}?tab=history").text
    assert re.search(r'data-version="2">\s*<td class="num nowrap"><span class="badge ok">', history)
    assert f'action="{PAGE}/history/2/restore"' not in history  # in force already
    assert "Weights: Bottom-up preset" in history and "no decay" in history

    response = post(client, f"{PAGE}/history/1/restore", {})
    assert "Version 3 saved (Restored version 1)" in page_after(client, response)
    assert [v.version for v in versions(app)] == [1, 2, 3]
    assert versions(app)[2].document == versions(app)[0].document
    assert queued_jobs(app, "low") == [(Job.RESCORE_WORKSPACE, (ws,))]  # the half-life came back

    response = post(client, f"{PAGE}/history/0/restore", {})
    assert "Version 4 saved (Restored the shipped model)" in page_after(client, response)
    assert latest_model(app) == Model()
    assert queued_jobs(app, "low")[-1] == (
        Job.REFRESH_WORKSPACE_SCORES,
        (ws,),
    )  # the same rules and half-life as version 3
    assert post(client, f"{PAGE}/history/9/restore", {}).status_code == 404
    assert [entry.changes["note"] for entry in audits(app)] == [
        "Restored version 1",
        "Restored the shipped model",
    ]


def test_versions_belong_to_their_workspace(app, signed_in):
    with harpoon_of(app).db.session() as session:
        other = workspace_named(session, "globex").id
        save_model(session, other, replace(Model(), half_life_days=7), "globex's")
        session.commit()
    client = in_english(signed_in("marketer"))
    page = client.get(f"{PAGE}?tab=history").text
    assert "globex's" not in page and "The shipped model is in force" in page
    assert post(client, f"{PAGE}/history/1/restore", {}).status_code == 404
    assert asdict(latest_model(app)) == asdict(Model())


def test_a_large_workspace_is_previewed_on_an_even_sample(app, signed_in, monkeypatch):
    monkeypatch.setattr(scoring_preview, "PREVIEW_SAMPLE", 2)
    committee_accounts(app)  # three accounts
    before = database_state(app)
    client = in_english(signed_in("marketer"))
    for url, preview, data in (
        (f"{PAGE}?tab=tiers", "tiers", {"tiers.1.min_acv": "1", "tiers.2.min_fit": "0"}),
        (f"{PAGE}/rules/message/edit", "rule", {"points": "100"}),  # a rescore, sampled
    ):
        headers = {"HX-Request": "true"}
        page = submit(client, url, f"{PAGE}/preview/{preview}", data, headers=headers)
        assert "Out of an even sample of 2 of the 3 accounts:" in page.text
        assert len(re.findall(r'data-example="([^"]+)"', page.text)) <= 2
    assert database_state(app) == before
