"""Segments page: who may read and edit, every filter on the form, field messages that lose
nothing, the live preview's count and sample, edit, duplicate, and delete (refused while a
push not yet sent targets the segment)."""

import html
import re
from html.parser import HTMLParser

from sqlalchemy import select

from crm.channels import workspace_named
from models import AuditLog, Push, PushStatus, SavedSegment, Tag
from outreach.segments import Range, Segment
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import add_push, add_segment
from tests.helpers import all_of, harpoon_of

LIST = "/admin/segments"
NEW = "/admin/segments/new"
PREVIEW = "/admin/segments/preview"
HTMX = {"HX-Request": "true"}


class FormReader(HTMLParser):
    """What a browser submits from form#segment-form, its buttons aside."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.select: str | None = None
        self.values: dict = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == "segment-form"
        elif not self.inside:
            return
        elif tag == "input" and attrs.get("type") == "checkbox":
            if "checked" in attrs:
                self.values.setdefault(attrs["name"], []).append(attrs["value"])
        elif tag == "input" and attrs.get("type") == "radio":
            if "checked" in attrs:
                self.values[attrs["name"]] = attrs["value"]
        elif tag == "input":
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self.select = attrs["name"]
        elif tag == "option" and self.select and "selected" in attrs:
            self.values.setdefault(self.select, []).append(attrs["value"])

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_of(page: str) -> dict:
    reader = FormReader()
    reader.feed(page)
    assert reader.values, "no form#segment-form on the page"
    return reader.values


def errors_at(page: str, name: str) -> list[str]:
    """The messages in the error slot of the input of this dotted name."""
    slot = re.search(
        rf'<span class="errors" id="errors-{re.escape(name.replace(".", "-"))}"[^>]*>(.*?)</span>',
        page,
        re.S,
    )
    assert slot, f"no error slot for {name}"
    return [html.unescape(m) for m in re.findall(r'<small class="error"[^>]*>(.*?)<', slot[1])]


def members(page: str) -> int:
    found = re.search(r'data-members="(\d+)"', page)
    assert found, "no count on the page"
    return int(found[1])


def sample_names(page: str) -> list[str]:
    table = re.search(r'<table class="segment-sample">(.*?)</table>', page, re.S)
    if table is None:
        return []
    return re.findall(r'contacts/\d+">([^<]+)</a>', table[1])


def submit(client, path: str, changes: dict, action: str | None = None, **kwargs):
    """Fill in the form the page at `path` shows, change some inputs, post it."""
    page = client.get(path).text
    values = {**form_of(page), "csrf_token": csrf_token(page), **changes}
    return client.post(action or path, data=values, **kwargs)


def marketer(signed_in):
    return in_english(signed_in("marketer"))


def saved_segments(app) -> list[SavedSegment]:
    return all_of(app, SavedSegment)


def audits(app) -> list[AuditLog]:
    return [entry for entry in all_of(app, AuditLog) if entry.action.startswith("segment")]


# ---- who may do what -----------------------------------------------------------------------


def test_anyone_signed_in_reads_segments_only_marketers_and_admins_change_them(
    app, signed_in, people
):
    segment_id = add_segment(app, people)
    assert app.test_client().get(LIST).status_code == 302  # to the sign-in page
    for role in ("viewer", "sales"):
        client = in_english(signed_in(role))
        page = client.get(LIST).text
        assert "CIOs" in page and "New segment" not in page and "Duplicate" not in page
        detail = client.get(f"{LIST}/{segment_id}")
        assert detail.status_code == 200
        assert '<fieldset class="plain" disabled>' in detail.text
        assert ">Save</button>" not in detail.text
        assert members(detail.text) == 1  # the CIO, read-only
        assert client.get(NEW).status_code == 403
        token = csrf_token(page)
        for path in (
            NEW,
            f"{LIST}/{segment_id}",
            f"{LIST}/{segment_id}/duplicate",
            f"{LIST}/{segment_id}/delete",
        ):
            response = client.post(path, data={"csrf_token": token, "name": "x"})
            assert response.status_code == 403, path
    assert [s.name for s in saved_segments(app)] == ["CIOs"] and audits(app) == []


def test_another_workspaces_segment_is_out_of_reach(app, signed_in, people):
    client = marketer(signed_in)
    with harpoon_of(app).db.session() as session:
        theirs = SavedSegment(workspace_id=workspace_named(session, "other").id, name="Theirs")
        session.add(theirs)
        session.commit()
        theirs_id = theirs.id
    token = csrf_token(client.get(LIST).text)
    assert client.get(f"{LIST}/{theirs_id}").status_code == 404
    for path in (f"{LIST}/{theirs_id}/duplicate", f"{LIST}/{theirs_id}/delete"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    response = client.post(PREVIEW, data={"csrf_token": token, "editing": theirs_id})
    assert response.status_code == 404
    assert "Theirs" not in client.get(LIST).text


# ---- the form --------------------------------------------------------------------------------


def test_the_form_offers_every_filter_with_its_labels(app, signed_in, people):
    page = html.unescape(marketer(signed_in).get(NEW).text)
    for name in (
        "tags_all",
        "tags_any",
        "tags_none",
        "roles",
        "seniorities",
        "stages",
        "lead_score.min",
        "lead_score.max",
        "account_stages",
        "account_score.min",
        "account_score.max",
        "tiers",
        "mqa",
        "target_accounts",
        "regions",
        "industries",
        "min_employees",
        "min_acv",
        "channel_ids",
        "active_within_days",
        "inactive_for_days",
        "interactions.min",
        "interactions.within_days",
        "interactions.kinds",
    ):
        assert f'name="{name}"' in page, name
    # Tags by group; roles, seniorities, stages and kinds by their labels; the accounts'
    # regions and industries; the workspace's channels.
    assert '<optgroup label="Interest">' in page and ">价格</option>" in page
    for label in ("CIO", "C-level", "Engaged", "Tier 1", "Tapped a menu", "华东", "零售"):
        assert f"> {label}</label>" in page, label
    assert "oa wx5f3a9e0c1b2d4e6f · Official Account" in page
    assert form_of(page)["interactions.within_days"] == "30"
    # A new segment's preview counts every live contact of the workspace.
    assert members(page) == 4


def test_a_new_segment_with_mistakes_shows_each_beside_its_input_and_saves_nothing(
    app, signed_in, people
):
    client = marketer(signed_in)
    price = str(people["tags"]["价格"])
    response = submit(
        client,
        NEW,
        {
            "name": "",
            "tags_any": [price],
            "tags_none": [price, "99999"],
            "roles": ["cio", "astronaut"],
            "lead_score.min": "50",
            "lead_score.max": "10",
            "account_score.min": "-1",
            "tiers": ["4"],
            "mqa": "maybe",
            "min_employees": "1.5",
            "active_within_days": "7",
            "inactive_for_days": "30",
            "interactions.kinds": ["wechat.menu_click"],
            "interactions.within_days": "0",
        },
    )
    assert response.status_code == 400
    page = html.unescape(response.text)
    assert errors_at(page, "name") == ["Required."]
    assert errors_at(page, "tags_none") == ["Not a tag of this workspace: was it deleted?"]
    assert errors_at(page, "roles") == ["Not a known role."]
    assert errors_at(page, "lead_score.max") == ["At least the minimum."]
    assert errors_at(page, "account_score.min") == ["At least 0; empty for no minimum."]
    assert errors_at(page, "tiers") == ["Tier 1, 2 or 3."]
    assert errors_at(page, "mqa") == ["Yes, no or either."]
    assert errors_at(page, "min_employees") == ["Not a whole number."]
    assert errors_at(page, "inactive_for_days") == [
        "Fewer days than “active within”, or no one can match."
    ]
    assert errors_at(page, "interactions.within_days") == ["From 1 to 3650 days."]
    assert "Correct the marked inputs" in page and 'data-members="' not in page
    # What was typed stays, the unknown values included (shown so they can be unticked).
    values = form_of(page)
    assert values["tags_none"] == [price, "99999"] and values["lead_score.min"] == "50"
    assert values["roles"] == ["cio", "astronaut"] and "astronaut (unknown)" in page
    assert values["tiers"] == ["4"] and values["min_employees"] == "1.5"
    assert saved_segments(app) == [] and audits(app) == []

    # A tag both wanted and excluded is the one mistake left.
    response = submit(client, NEW, {"name": "Pricing", "tags_any": [price], "tags_none": [price]})
    assert errors_at(html.unescape(response.text), "tags_none") == [
        "A tag cannot be both wanted and excluded."
    ]


def test_a_new_segment_is_saved_counted_and_audited(app, signed_in, people):
    client = marketer(signed_in)
    response = submit(
        client,
        NEW,
        {
            "name": "Engaged buyers",
            "description": "for the pricing push",
            "stages": ["engaged"],
            "lead_score.min": "30",
        },
    )
    assert response.status_code == 302
    (saved,) = saved_segments(app)
    assert response.headers["Location"] == f"{LIST}/{saved.id}"
    assert (saved.name, saved.description) == ("Engaged buyers", "for the pricing push")
    assert Segment.from_document(saved.document) == Segment(
        stages=("engaged",), lead_score=Range(min=30)
    )
    assert saved.document == {"stages": ["engaged"], "lead_score": {"min": 30.0, "max": None}}
    assert saved.last_count == 2 and saved.counted_at is not None
    page = html.unescape(client.get(response.headers["Location"]).text)
    assert "Segment “Engaged buyers” saved: 2 contacts in it now." in page
    assert sorted(sample_names(page)) == ["buyer", "cio"]
    (entry,) = audits(app)
    assert (entry.action, entry.target_id) == ("segment.create", str(saved.id))
    assert entry.changes["filters"] == saved.document

    listed = html.unescape(client.get(LIST).text)
    row = re.search(rf'<tr data-segment="{saved.id}">(.*?)</tr>', listed, re.S)[1]
    assert "Engaged buyers" in row and "for the pricing push" in row
    assert re.search(r'data-count="last">2<', row) and re.search(r'data-count="pushes">0<', row)

    # The name is the workspace's: a second one of that name is refused.
    response = submit(client, NEW, {"name": "Engaged buyers"})
    assert response.status_code == 400
    assert errors_at(html.unescape(response.text), "name") == ["Another segment has this name."]
    assert len(saved_segments(app)) == 1


# ---- the live preview ------------------------------------------------------------------------


def test_the_live_preview_counts_and_samples_the_form_as_typed(app, signed_in, people):
    client = marketer(signed_in)
    page = client.get(NEW).text
    token = csrf_token(page)
    assert 'hx-post="/admin/segments/preview"' in page
    assert 'hx-trigger="change, keyup changed delay:400ms"' in page

    def preview(**changes):
        response = client.post(
            PREVIEW, data={**form_of(page), "csrf_token": token, **changes}, headers=HTMX
        )
        assert response.status_code == 200
        assert "<html" not in response.text  # the fragment alone
        return html.unescape(response.text)

    fragment = preview(roles=["cio", "engineer"])
    assert members(fragment) == 2 and sample_names(fragment) == ["cio", "eng"]
    assert "Out of 4 in the workspace" in fragment
    cio_row = re.search(r'<tr data-contact="\d+">(.*?)</tr>', fragment, re.S)[1]
    for shown in ("cio", "华信", "CIO", "80.0", "Engaged"):
        assert f">{shown}<" in cio_row.replace("\n", "").replace("  ", ""), shown
    assert f'/admin/contacts/{people["ids"]["cio"]}"' in cio_row

    tags = people["tags"]
    assert members(preview(tags_any=[str(tags["试用"]), str(tags["沉睡"])])) == 2
    assert members(preview(**{"account_score.min": "100", "tiers": ["1"]})) == 2
    assert (
        members(preview(**{"interactions.min": "2", "interactions.kinds": ["wechat.menu_click"]}))
        == 1
    )
    nobody = preview(regions=["华南"], target_accounts="yes")
    assert members(nobody) == 0 and "No contact matches these filters." in nobody

    # Mistakes come back into their inputs' slots (out of band), and clear again.
    wrong = preview(**{"lead_score.min": "50", "lead_score.max": "10"})
    assert 'data-members="' not in wrong
    slot = re.search(r'<span class="errors" id="errors-lead_score-max" hx-swap-oob="true">', wrong)
    assert slot and errors_at(wrong, "lead_score.max") == ["At least the minimum."]
    fixed = preview(**{"lead_score.min": "5", "lead_score.max": "40"})
    assert members(fixed) == 2 and errors_at(fixed, "lead_score.max") == []
    assert saved_segments(app) == []


def test_without_javascript_count_shows_the_whole_page(app, signed_in, people):
    client = marketer(signed_in)
    response = submit(client, NEW, {"name": "x", "seniorities": ["manager"]}, action=PREVIEW)
    page = html.unescape(response.text)
    assert response.status_code == 200 and "<html" in page
    assert members(page) == 1 and sample_names(page) == ["buyer"]
    assert form_of(page)["seniorities"] == ["manager"] and saved_segments(app) == []


def test_counting_a_saved_segment_keeps_its_last_count(app, signed_in, people):
    segment_id = add_segment(app, people, document={"roles": ["cio", "engineer"]})
    client = marketer(signed_in)
    page = client.get(f"{LIST}/{segment_id}").text
    (saved,) = saved_segments(app)
    assert saved.last_count == 2 and saved.counted_at is not None
    # A preview of other filters leaves it; of its own, updates it.
    token = csrf_token(page)
    values = {**form_of(page), "csrf_token": token, "editing": str(segment_id)}
    client.post(PREVIEW, data={**values, "roles": ["cio"]}, headers=HTMX)
    assert saved_segments(app)[0].last_count == 2
    with harpoon_of(app).db.session() as session:
        session.get(SavedSegment, segment_id).last_count = 7
        session.commit()
    client.post(PREVIEW, data=values, headers=HTMX)
    assert saved_segments(app)[0].last_count == 2


# ---- edit, duplicate, delete -----------------------------------------------------------------


def test_editing_a_segment_changes_its_filter_and_audits_the_difference(app, signed_in, people):
    segment_id = add_segment(app, people, description="C-suite")
    client = marketer(signed_in)
    path = f"{LIST}/{segment_id}"
    values = form_of(client.get(path).text)
    assert values["name"] == "CIOs" and values["roles"] == ["cio"]
    response = submit(
        client,
        path,
        {
            "name": "IT leaders",
            "roles": ["cio", "engineer"],
            "mqa": "yes",
            "channel_ids": [str(people["channel"])],
        },
    )
    assert response.status_code == 302
    (saved,) = saved_segments(app)
    assert saved.name == "IT leaders" and saved.description == "C-suite"
    assert Segment.from_document(saved.document) == Segment(
        roles=("cio", "engineer"), mqa=True, channel_ids=(people["channel"],)
    )
    assert saved.last_count == 1  # only the CIO follows the OA
    (entry,) = audits(app)
    assert entry.action == "segment.update"
    assert entry.changes["name"] == ["CIOs", "IT leaders"]
    assert entry.changes["filters"][0] == {"roles": ["cio"]}
    assert "description" not in entry.changes

    # A mistake keeps what was typed; the saved segment is unchanged.
    response = submit(client, path, {"name": "x" * 101, "min_acv": "lots"})
    page = html.unescape(response.text)
    assert response.status_code == 400
    assert errors_at(page, "name") == ["1 to 100 characters."]
    assert errors_at(page, "min_acv") == ["Not a number."]
    assert form_of(page)["min_acv"] == "lots"
    assert saved_segments(app)[0].name == "IT leaders"


def test_duplicating_a_segment_makes_a_renamed_copy(app, signed_in, people):
    segment_id = add_segment(app, people, description="C-suite", last_count=1)
    client = marketer(signed_in)
    token = csrf_token(client.get(LIST).text)
    first = client.post(f"{LIST}/{segment_id}/duplicate", data={"csrf_token": token})
    second = client.post(f"{LIST}/{segment_id}/duplicate", data={"csrf_token": token})
    names = {s.id: s.name for s in saved_segments(app)}
    copy_id = int(first.headers["Location"].rsplit("/", 1)[1])
    assert names[copy_id] == "CIOs (copy)"
    assert sorted(names.values()) == ["CIOs", "CIOs (copy 2)", "CIOs (copy)"]
    copy = next(s for s in saved_segments(app) if s.id == copy_id)
    assert (copy.document, copy.description, copy.last_count) == ({"roles": ["cio"]}, "C-suite", 1)
    page = html.unescape(client.get(second.headers["Location"]).text)
    assert "“CIOs (copy 2)” is a copy" in page
    assert [e.action for e in audits(app)] == ["segment.duplicate", "segment.duplicate"]
    # A copy's name stays within the 100 characters a name may have.
    long_id = add_segment(app, people, name="长" * 100)
    response = client.post(f"{LIST}/{long_id}/duplicate", data={"csrf_token": token})
    copy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert {s.id: s.name for s in saved_segments(app)}[copy_id] == "长" * 93 + " (copy)"


def test_a_segment_a_pending_push_targets_cannot_be_deleted(app, signed_in, people):
    segment_id = add_segment(app, people)
    sent = add_push(app, people, segment_id, PushStatus.SENT)
    draft = add_push(app, people, segment_id, PushStatus.DRAFT)
    client = marketer(signed_in)
    listed = client.get(LIST).text
    assert re.search(r'data-count="pushes">2<', listed) and ">In use<" in listed
    detail = html.unescape(client.get(f"{LIST}/{segment_id}").text)
    assert "1 push not sent yet targets this segment: it cannot be deleted." in detail
    token = csrf_token(listed)
    response = client.post(f"{LIST}/{segment_id}/delete", data={"csrf_token": token})
    page = html.unescape(client.get(response.headers["Location"]).text)
    assert "“CIOs” is the audience of 1 push not sent yet" in page
    assert len(saved_segments(app)) == 1 and audits(app) == []

    # Once the draft is cancelled, only the sent push used it: it keeps its report.
    with harpoon_of(app).db.session() as session:
        session.get(Push, draft).status = PushStatus.CANCELLED
        session.commit()
    detail = client.get(f"{LIST}/{segment_id}").text
    assert "Delete the segment" in html.unescape(detail)  # the confirmation
    response = client.post(f"{LIST}/{segment_id}/delete", data={"csrf_token": token})
    assert response.headers["Location"] == LIST
    assert "Segment “CIOs” deleted." in html.unescape(client.get(LIST).text)
    assert saved_segments(app) == []
    with harpoon_of(app).db.session() as session:
        assert session.scalar(select(Push.segment_id).where(Push.id == sent)) is None
    (entry,) = audits(app)
    assert (entry.action, entry.changes["name"]) == ("segment.delete", "CIOs")


def test_a_deleted_tag_shows_as_a_mistake_on_its_segment(app, signed_in, people):
    with harpoon_of(app).db.session() as session:
        gone = Tag(workspace_id=people["ws"], group="manual", name="gone")
        session.add(gone)
        session.flush()
        gone_id = gone.id
        session.delete(gone)
        session.commit()
    segment_id = add_segment(app, people, document={"tags_any": [gone_id]})
    page = html.unescape(marketer(signed_in).get(f"{LIST}/{segment_id}").text)
    assert errors_at(page, "tags_any") == ["Not a tag of this workspace: was it deleted?"]
    assert f"Tag #{gone_id}</option>" in page and form_of(page)["tags_any"] == [str(gone_id)]
