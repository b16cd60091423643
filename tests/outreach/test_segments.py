"""Segments compile to one SQL query: every filter on its own, combined, and round-tripped
through the stored document."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.channels import workspace_named
from models import (
    Account,
    Channel,
    Contact,
    ContactTag,
    Identity,
    IdentityKind,
    Interaction,
    Tag,
    utcnow,
)
from outreach.segments import InteractionCount, Range, Segment, contacts_query, count, sample
from scoring.engine import decay_factor
from tests.conftest import OA_CREDS, harpoon_of, make_channel

NOW = utcnow()


@pytest.fixture
def people(app):
    """Five contacts in two accounts and none, with tags, identities and interactions."""
    channel_id = make_channel(app, "oa", OA_CREDS)
    with harpoon_of(app).db.session() as session:
        ws = session.get(Channel, channel_id).workspace_id
        other_ws = workspace_named(session, "other").id
        big = Account(
            workspace_id=ws,
            name="华信",
            normalized_name="华信",
            is_target=True,
            industry="制造",
            region="华东",
            employees=3000,
            acv=800_000,
            score=300,
            tier=1,
            mqa=True,
            stage="mqa",
        )
        small = Account(
            workspace_id=ws,
            name="小店",
            normalized_name="小店",
            industry="零售",
            region="华南",
            employees=20,
            acv=10_000,
            score=20,
            tier=None,
            stage="aware",
        )
        session.add_all([big, small])
        session.flush()
        factor = decay_factor(NOW, 30)

        def person(name, account, role, seniority, lead, stage, days_idle, **extra):
            contact = Contact(
                workspace_id=extra.pop("workspace_id", ws),
                name=name,
                account_id=account.id if account else None,
                role=role,
                seniority=seniority,
                score_mass=lead / factor,
                lead_score=lead,
                stage=stage,
                last_seen_at=NOW - timedelta(days=days_idle),
                **extra,
            )
            session.add(contact)
            session.flush()
            return contact

        people = {
            "cio": person("cio", big, "cio", "c_level", 80, "engaged", 1),
            "eng": person("eng", big, "engineer", "staff", 10, "aware", 40),
            "buyer": person("buyer", small, "procurement", "manager", 35, "engaged", 3),
            "loner": person("loner", None, None, None, 0, None, 90),
            "merged": person("merged", big, "cio", "c_level", 80, "engaged", 1),
            "stranger": person("stranger", None, "cio", "c_level", 80, "engaged", 1),
        }
        people["merged"].merged_into_id = people["cio"].id
        people["stranger"].workspace_id = other_ws
        tags = {}
        for name in ("价格", "试用", "沉睡"):
            tag = Tag(workspace_id=ws, group="interest", name=name)
            session.add(tag)
            session.flush()
            tags[name] = tag.id
        for who, names in {"cio": ["价格", "试用"], "eng": ["价格"], "loner": ["沉睡"]}.items():
            for name in names:
                session.add(
                    ContactTag(
                        contact_id=people[who].id, tag_id=tags[name], workspace_id=ws, source="rule"
                    )
                )
        for who, following in (("cio", True), ("eng", False)):
            session.add(
                Identity(
                    workspace_id=ws,
                    contact_id=people[who].id,
                    kind=IdentityKind.OPENID,
                    channel_id=channel_id,
                    value=f"o_{who}",
                    following=following,
                )
            )
        for who, kind, days_ago in (
            ("cio", "wechat.menu_click", 1),
            ("cio", "wechat.menu_click", 2),
            ("cio", "wechat.message", 3),
            ("eng", "wechat.menu_click", 40),
            ("buyer", "wechat.menu_click", 5),
        ):
            session.add(
                Interaction(
                    workspace_id=ws,
                    contact_id=people[who].id,
                    kind=kind,
                    occurred_at=NOW - timedelta(days=days_ago),
                )
            )
        session.commit()
        return {
            "ws": ws,
            "channel": channel_id,
            "tags": tags,
            "ids": {name: c.id for name, c in people.items()},
        }


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
