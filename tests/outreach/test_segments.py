"""Segments compile to one SQL query: every filter on its own, combined, and round-tripped
through the stored document; the admin's form checked by the schema; saved segments."""

from dataclasses import dataclass, fields, replace
from datetime import timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.forms import flat_errors, unflatten
from crm.channels import workspace_named
from models import (
    Channel,
    Contact,
    SavedSegment,
    Tag,
)
from outreach.segments import (
    InteractionCount,
    Range,
    Segment,
    SegmentChoices,
    contacts_query,
    count,
    load_named_segment,
    load_segment,
    sample,
    save_segment,
    saved_contacts_query,
    segment_form,
    segment_of,
)
from scoring.engine import save_model
from scoring.model import Model
from tests.factories import NOW, make_channel
from tests.helpers import OA_CREDS, harpoon_of


def names(app, people, segment: Segment) -> set[str]:
    by_id = {v: k for k, v in people["ids"].items()}
    query = contacts_query(segment, people["ws"], half_life_days=30, now=NOW)
    with harpoon_of(app).db.session() as session:
        ids = set(session.scalars(query))
        assert count(session, query) == len(ids)
    return {by_id[i] for i in ids}


def test_no_filter_is_every_live_contact_of_the_workspace(app, people):
    assert names(app, people, Segment()) == {"cio", "eng", "buyer", "loner"}


def test_tags_all_any_and_none(app, people):
    tags = people["tags"]
    assert names(app, people, Segment(tags_all=(tags["价格"], tags["试用"]))) == {"cio"}
    assert names(app, people, Segment(tags_any=(tags["试用"], tags["沉睡"]))) == {"cio", "loner"}
    assert names(app, people, Segment(tags_none=(tags["价格"],))) == {"buyer", "loner"}


def test_role_seniority_and_stage(app, people):
    assert names(app, people, Segment(roles=("cio", "engineer"))) == {"cio", "eng"}
    assert names(app, people, Segment(seniorities=("manager",))) == {"buyer"}
    assert names(app, people, Segment(stages=("engaged",))) == {"cio", "buyer"}


def test_lead_score_bounds_are_today_s_decayed_scores(app, people):
    assert names(app, people, Segment(lead_score=Range(30, None))) == {"cio", "buyer"}
    assert names(app, people, Segment(lead_score=Range(5, 40))) == {"eng", "buyer"}
    # A month later the same masses are worth half: 80 -> 40, 35 -> 17.5.
    later = contacts_query(
        Segment(lead_score=Range(30, None)),
        people["ws"],
        half_life_days=30,
        now=NOW + timedelta(30),
    )
    with harpoon_of(app).db.session() as session:
        assert set(session.scalars(later)) == {people["ids"]["cio"]}


def test_account_filters_leave_out_contacts_without_an_account(app, people):
    assert names(app, people, Segment(account_score=Range(100, None))) == {"cio", "eng"}
    assert names(app, people, Segment(tiers=(1,))) == {"cio", "eng"}
    assert names(app, people, Segment(mqa=False)) == {"buyer"}
    assert names(app, people, Segment(regions=("华南",))) == {"buyer"}
    assert names(app, people, Segment(industries=("制造",), min_acv=500_000)) == {"cio", "eng"}
    assert names(app, people, Segment(target_accounts=True, min_employees=5000)) == set()
    assert names(app, people, Segment(account_stages=("aware",))) == {"buyer"}


def test_channel_activity_and_interaction_counts(app, people):
    assert names(app, people, Segment(channel_ids=(people["channel"],))) == {"cio"}  # following
    assert names(app, people, Segment(active_within_days=7)) == {"cio", "buyer"}
    assert names(app, people, Segment(inactive_for_days=30)) == {"eng", "loner"}
    clicks = InteractionCount(kinds=("wechat.menu_click",), min=2, within_days=30)
    assert names(app, people, Segment(interactions=clicks)) == {"cio"}
    anything = InteractionCount(min=1, within_days=7)
    assert names(app, people, Segment(interactions=anything)) == {"cio", "buyer"}


def test_filters_combine_and_a_segment_round_trips_its_document(app, people):
    segment = Segment(
        tags_any=(people["tags"]["价格"],),
        roles=("cio", "engineer"),
        lead_score=Range(min=50),
        tiers=(1,),
        interactions=InteractionCount(kinds=("wechat.menu_click",), min=1, within_days=14),
    )
    assert names(app, people, segment) == {"cio"}
    document = segment.to_document()
    assert "tags_none" not in document  # only what the marketer set
    assert Segment.from_document(document) == segment


def test_a_sample_is_the_most_recently_active(app, people):
    query = contacts_query(Segment(), people["ws"], half_life_days=30, now=NOW)
    with harpoon_of(app).db.session() as session:
        assert [c.name for c in sample(session, query, limit=2)] == ["cio", "buyer"]
        # The query nests as a subquery (what pushes and journeys select from).
        nested = select(Contact.name).where(Contact.id.in_(query)).order_by(Contact.name)
        assert session.scalars(nested).all() == ["buyer", "cio", "eng", "loner"]


def one_filter_each(people) -> dict[str, tuple[Segment, set[str]]]:
    """Each of Segment's filters set alone, and who it leaves in."""
    tags = people["tags"]
    return {
        "tags_all": (Segment(tags_all=(tags["价格"], tags["试用"])), {"cio"}),
        "tags_any": (Segment(tags_any=(tags["试用"], tags["沉睡"])), {"cio", "loner"}),
        "tags_none": (Segment(tags_none=(tags["价格"],)), {"buyer", "loner"}),
        "roles": (Segment(roles=("procurement",)), {"buyer"}),
        "seniorities": (Segment(seniorities=("c_level", "staff")), {"cio", "eng"}),
        "stages": (Segment(stages=("aware",)), {"eng"}),
        "account_stages": (Segment(account_stages=("mqa",)), {"cio", "eng"}),
        "lead_score": (Segment(lead_score=Range(max=20)), {"eng", "loner"}),
        "account_score": (Segment(account_score=Range(max=50)), {"buyer"}),
        "tiers": (Segment(tiers=(1, 2)), {"cio", "eng"}),
        "mqa": (Segment(mqa=True), {"cio", "eng"}),
        "regions": (Segment(regions=("华东",)), {"cio", "eng"}),
        "industries": (Segment(industries=("零售",)), {"buyer"}),
        "target_accounts": (Segment(target_accounts=False), {"buyer"}),
        "min_employees": (Segment(min_employees=100), {"cio", "eng"}),
        "min_acv": (Segment(min_acv=10_000), {"cio", "eng", "buyer"}),  # inclusive
        # A WeCom customer is reachable on the corp, following or not.
        "channel_ids": (Segment(channel_ids=(people["wecom"],)), {"buyer"}),
        "active_within_days": (Segment(active_within_days=2), {"cio"}),
        "inactive_for_days": (Segment(inactive_for_days=60), {"loner"}),
        "interactions": (
            Segment(interactions=InteractionCount(("wechat.message",), 1, 7)),
            {"cio"},
        ),
    }


def test_every_filter_alone_compiles_and_selects_its_contacts(app, people):
    cases = one_filter_each(people)
    assert set(cases) == {f.name for f in fields(Segment)}  # a new filter needs its case
    for name, (segment, expected) in cases.items():
        assert names(app, people, segment) == expected, name
        assert Segment.from_document(segment.to_document()) == segment, name


def test_a_document_holds_only_what_is_set():
    assert Segment().to_document() == {}
    segment = Segment(lead_score=Range(min=10), mqa=False, min_employees=0)
    assert segment.to_document() == {
        "lead_score": {"min": 10, "max": None},
        "mqa": False,
        "min_employees": 0,
    }


# ---- the admin's form ------------------------------------------------------------------------

CHOICES = SegmentChoices(
    roles=frozenset({"cio", "cto"}),
    seniorities=frozenset({"vp", "c_level"}),
    stages=frozenset({"aware", "engaged"}),
    kinds=frozenset({"wechat.menu_click", "content.view"}),
)
NO_SUCH_ID = 2**40


@dataclass(frozen=True)
class FormWorkspace:
    """A workspace whose segment form is loaded: three tags and an OA to name."""

    session: Session
    workspace_id: int
    tags: tuple[int, int, int]
    channel: int

    def load(self, values: dict) -> Segment:
        return load_segment(self.session, self.workspace_id, unflatten(values.items()), CHOICES)

    def load_named(self, values: dict) -> tuple[str, str, Segment]:
        return load_named_segment(
            self.session, self.workspace_id, unflatten(values.items()), CHOICES
        )


@pytest.fixture
def ws_form(app):
    channel = make_channel(app, "oa", OA_CREDS)
    with harpoon_of(app).db.session() as session:
        ws = session.get(Channel, channel).workspace_id
        tags = [Tag(workspace_id=ws, group="interest", name=name) for name in ("云", "AI", "价格")]
        session.add_all(tags)
        session.commit()
        yield FormWorkspace(session, ws, tuple(tag.id for tag in tags), channel)


def errors_of(load, values: dict) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        load(values)
    return flat_errors(raised.value.messages)


def test_the_form_loads_every_filter_and_shows_it_back(ws_form):
    one, two, three = ws_form.tags
    segment = Segment(
        tags_all=(one,),
        tags_any=(two, three),
        tags_none=(),
        roles=("cio", "cto"),
        seniorities=("vp",),
        stages=("engaged",),
        account_stages=("aware",),
        lead_score=Range(10, 80.5),
        account_score=Range(min=100),
        tiers=(1, 3),
        mqa=False,
        regions=("华东",),
        industries=("制造", "零售"),
        target_accounts=True,
        min_employees=0,
        min_acv=500_000,
        channel_ids=(ws_form.channel,),
        active_within_days=90,
        inactive_for_days=14,
        interactions=InteractionCount(("content.view",), 3, 30),
    )
    values = segment_form(segment)
    assert values["mqa"] == "no" and values["target_accounts"] == "yes"
    assert values["lead_score.max"] == "80.5" and values["tiers"] == ["1", "3"]
    assert ws_form.load({**values, "csrf_token": "x"}) == segment
    # An empty form is every contact; a new form offers a 30-day interaction window.
    assert ws_form.load(segment_form(Segment())) == Segment()
    assert segment_form(Segment())["interactions.within_days"] == "30"


def test_the_form_takes_one_value_or_several_each_once(ws_form):
    one, _two, three = (str(tag) for tag in ws_form.tags)
    assert ws_form.load({"roles": "cio", "tags_any": [three, one, three, " "]}) == Segment(
        roles=("cio",), tags_any=tuple(sorted((int(one), int(three))))
    )
    assert ws_form.load({"lead_score.min": " 5 ", "lead_score.max": ""}) == Segment(
        lead_score=Range(min=5)
    )
    # Kinds without a minimum count are a mistake; a window without one is no filter.
    assert ws_form.load({"interactions.within_days": "30"}).interactions is None


def test_the_form_s_mistakes_are_keyed_by_input(ws_form):
    assert errors_of(
        ws_form.load,
        {
            "tags_all": [str(ws_form.tags[0]), "x"],
            "tags_any": [str(NO_SUCH_ID)],
            "roles": ["ceo"],
            "seniorities": ["intern"],
            "stages": ["won"],
            "account_stages": ["lost"],
            "tiers": ["0"],
            "channel_ids": [str(NO_SUCH_ID)],
            "regions": ["x" * 51],
            "industries": [str(n) for n in range(201)],
            "lead_score.min": "-5",
            "account_score.min": "200",
            "account_score.max": "100",
            "mqa": "maybe",
            "target_accounts": "1",
            "min_employees": "-1",
            "min_acv": "inf",
            "active_within_days": "3651",
            "inactive_for_days": "0",
            "interactions.kinds": ["sales.call"],
            "interactions.min": "0",
            "interactions.within_days": "x",
        },
    ) == {
        "tags_all": ["Not a list of choices."],
        "tags_any": ["Not a tag of this workspace: was it deleted?"],
        "roles": ["Not a known role."],
        "seniorities": ["Not a known seniority."],
        "stages": ["Not one of the workspace's stages."],
        "account_stages": ["Not one of the workspace's stages."],
        "tiers": ["Tier 1, 2 or 3."],
        "channel_ids": ["Not a channel of this workspace."],
        "regions": ["Each value at most 50 characters."],
        "industries": ["At most 200 choices."],
        "lead_score.min": ["At least 0; empty for no minimum."],
        "account_score.max": ["At least the minimum."],
        "mqa": ["Yes, no or either."],
        "target_accounts": ["Yes, no or either."],
        "min_employees": ["A whole number, at least 0; empty for any size."],
        "min_acv": ["Not a number."],
        "active_within_days": ["From 1 to 3650 days; empty for no limit."],
        "inactive_for_days": ["From 1 to 3650 days; empty for no limit."],
        "interactions.min": ["From 1 to 10000; empty for no interaction filter."],
        "interactions.within_days": ["Not a whole number."],
        "interactions.kinds": ["Not an interaction Harpoon records."],
    }


def test_another_workspaces_tag_or_channel_is_unknown_to_the_form(app, ws_form):
    with harpoon_of(app).db.session() as session:
        other = workspace_named(session, "other").id
        theirs = Tag(workspace_id=other, group="interest", name="云")
        session.add(theirs)
        session.commit()
        their_tag = theirs.id
    their_oa = make_channel(
        app, "oa", replace(OA_CREDS, app_id="wx0000000000000009"), workspace="other"
    )
    assert errors_of(
        ws_form.load, {"tags_all": str(their_tag), "channel_ids": [str(their_oa)]}
    ) == {
        "tags_all": ["Not a tag of this workspace: was it deleted?"],
        "channel_ids": ["Not a channel of this workspace."],
    }


def test_filters_that_leave_no_one_or_half_an_interaction_count_are_mistakes(ws_form):
    one, two, three = (str(tag) for tag in ws_form.tags)
    load = ws_form.load
    assert errors_of(load, {"tags_all": one, "tags_any": two, "tags_none": [two, three]}) == {
        "tags_none": ["A tag cannot be both wanted and excluded."]
    }
    # An unknown tag among the excluded is the mistake to fix first.
    assert errors_of(load, {"tags_any": two, "tags_none": [two, str(NO_SUCH_ID)]}) == {
        "tags_none": ["Not a tag of this workspace: was it deleted?"]
    }
    assert errors_of(load, {"active_within_days": "30", "inactive_for_days": "30"}) == {
        "inactive_for_days": ["Fewer days than “active within”, or no one can match."]
    }
    # Active within 60 days but not in the last 30: a window, not a contradiction.
    assert load({"active_within_days": "60", "inactive_for_days": "30"}).inactive_for_days == 30
    assert errors_of(load, {"interactions.kinds": "content.view"}) == {
        "interactions.min": ["How many at least: required with the kinds."]
    }
    assert errors_of(load, {"interactions.min": "2"}) == {
        "interactions.within_days": ["Required with a count."]
    }
    assert errors_of(load, {"lead_score": "high", "interactions": "many"}) == {
        "lead_score": ["Not a range."],
        "interactions": ["Not an interaction count."],
    }


def test_a_named_segment_reports_the_name_and_the_filters_at_once(ws_form):
    named = ws_form.load_named
    unknown = str(NO_SUCH_ID)
    assert errors_of(
        named, {"name": " ", "description": "x" * 301, "roles": "ceo", "tags_any": unknown}
    ) == {
        "name": ["Required."],
        "description": ["At most 300 characters."],
        "roles": ["Not a known role."],
        "tags_any": ["Not a tag of this workspace: was it deleted?"],
    }
    assert named({"name": " CIOs ", "roles": "cio"}) == ("CIOs", "", Segment(roles=("cio",)))


# ---- saved segments --------------------------------------------------------------------------


def test_a_saved_segment_is_unique_by_name_and_forgets_its_count_when_its_filter_changes(
    app, people
):
    ws = people["ws"]
    with harpoon_of(app).db.session() as session:
        saved = save_segment(session, ws, "CIOs", "", {"roles": ("cio",)}, None)
        saved.last_count, saved.counted_at = 1, NOW
        session.commit()
        with pytest.raises(ValidationError) as raised:
            save_segment(session, ws, "CIOs", "", {}, None)
        assert raised.value.messages == {"name": ["Another segment has this name."]}
        session.rollback()
        # Another workspace may use the name.
        other = workspace_named(session, "other").id
        assert save_segment(session, other, "CIOs", "", {}, None).workspace_id == other
        # A new description keeps the count; a new filter drops it.
        save_segment(session, ws, "CIOs", "C-suite", {"roles": ["cio"]}, None, saved=saved)
        assert saved.last_count == 1
        save_segment(session, ws, "CIOs", "", {"roles": ["cio", "cto"]}, None, saved=saved)
        assert (saved.last_count, saved.counted_at) == (None, None)
        session.commit()
        assert session.get(SavedSegment, saved.id).document == {"roles": ["cio", "cto"]}


def test_pushes_and_journeys_read_a_saved_segment_under_the_workspace_half_life(app, people):
    ws = people["ws"]
    segment = Segment(lead_score=Range(min=30))
    with harpoon_of(app).db.session() as session:
        saved = save_segment(session, ws, "Warm", "", segment.to_document(), None)
        session.commit()
        assert segment_of(session, saved.id, ws) == segment
        with pytest.raises(LookupError):
            segment_of(session, saved.id, workspace_named(session, "other").id)
        with pytest.raises(LookupError):
            segment_of(session, saved.id + 1, ws)

        def members(query) -> set[int]:
            return set(session.scalars(query))

        warm = {people["ids"]["cio"], people["ids"]["buyer"]}
        assert members(saved_contacts_query(session, saved, now=NOW)) == warm
        # A slower decay (60 days) makes every score mass worth more today.
        save_model(session, ws, replace(Model(), half_life_days=60), "slower decay")
        slower = members(saved_contacts_query(session, saved, now=NOW))
        assert slower == members(contacts_query(segment, ws, 60, now=NOW))
        assert slower == warm | {people["ids"]["eng"]}
