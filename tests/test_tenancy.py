"""One workspace never touches another, over two workspaces whose ids interleave (every row
of A has a neighbour of B one id away).

Saving: each id-bearing field a document declares (core.references.DECLARED) has a case
that saves a document of A naming B's id and gets a field error at that field; a field
declared without a case fails `test_every_declared_id_field_has_a_case`.

Engines: documents of A written around the validation (straight into the database) that
name B's ids act on nothing of B — the journey of the original finding end to end through
the drain and the journey jobs, pushes, QR codes, tag rules, forms and tracked links.
"""

import copy
from dataclasses import dataclass

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

import app as _app  # noqa: F401  (every domain module, hence every declaration)
from app.demo import register_tenant
from app.jobs import run_due_journeys
from core.references import DECLARED
from handlers import contact_ways
from handlers.tag_sync import ensure_remote_tags
from handlers.tags import TagBook, apply_tags
from journeys import definitions
from models import (
    Channel,
    Contact,
    ContactTag,
    Content,
    Enrolment,
    Form,
    Journey,
    JourneyStatus,
    JourneyVersion,
    Push,
    PushRecipient,
    PushStatus,
    QrCode,
    RuleKind,
    SavedSegment,
    Staff,
    TagGroup,
    TagRemote,
    TagRule,
    TagSource,
    TrackedLink,
    Workspace,
)
from outreach import content, pushes, qrcodes
from outreach.forms import download_link
from outreach.segments import Segment, contacts_query, count
from tests.conftest import OA_CREDS, WECOM_CREDS, harpoon_of, make_channel
from tests.handlers.test_identity_and_tags import platform  # noqa: F401
from tests.outreach.test_pushes import (  # noqa: F401
    LIMITS,
    OA_SECRET,
    app,
    client_of,
    follow,
    received,
    settle,
    tenant,
)
from wechat.sandbox import oa as sandbox_oa
from wechat.sandbox.oa import CUSTOM, MASS
from wechat.simulate import Credentials

A_OA = Credentials(app_id="wx0a0a0a0a0a0a0a0a", token=OA_CREDS.token, aes_key=OA_CREDS.aes_key)
A_WECOM = Credentials(
    app_id="ww0a0a0a0a0a0a0a0a", token=WECOM_CREDS.token, aes_key=WECOM_CREDS.aes_key
)


@dataclass(frozen=True)
class Holdings:
    """One workspace's rows, each created next to the other workspace's."""

    workspace: int
    oa: int
    wecom: int
    tag: int
    segment: int
    content: int
    form: int
    staff: str


@dataclass(frozen=True)
class World:
    a: Holdings
    b: Holdings


def session_of(app):  # noqa: F811
    return harpoon_of(app).db.session()


@pytest.fixture
def world(app, platform, live_server) -> World:  # noqa: F811
    """A and B, rows made alternately; both OAs are the sandbox's."""
    a_oa = make_channel(app, "oa", A_OA, workspace="acme", account_type="service", secret=OA_SECRET)
    b_oa = make_channel(
        app, "oa", OA_CREDS, workspace="beta", account_type="service", secret=OA_SECRET
    )
    a_wecom = make_channel(app, "wecom", A_WECOM, workspace="acme")
    b_wecom = make_channel(app, "wecom", WECOM_CREDS, workspace="beta")
    with session_of(app) as session:
        for oa in (a_oa, b_oa):
            register_tenant(platform.state, session.get(Channel, oa), live_server)
        ids = {}
        for name, oa, wecom in (("acme", a_oa, a_wecom), ("beta", b_oa, b_wecom)):
            ids[name] = {
                "workspace": session.scalar(select(Workspace.id).where(Workspace.name == name)),
                "oa": oa,
                "wecom": wecom,
            }
        made = {
            "tag": lambda ws, n: TagBook(session, ws).get(session, TagGroup.INTEREST, f"t{n}").id,
            "segment": lambda ws, n: _added(session, SavedSegment(workspace_id=ws, name=f"s{n}")),
            "content": lambda ws, n: _added(session, Content(workspace_id=ws, title=f"c{n}")),
            "form": lambda ws, n: _added(session, Form(workspace_id=ws, title=f"f{n}")),
        }
        for field, make in made.items():
            for n in range(2):  # A, B, A, B: each id of A has B's on both sides
                for name in ("acme", "beta"):
                    ids[name][field] = make(ids[name]["workspace"], f"{name}{n}")
        for name in ("acme", "beta"):
            session.add(
                Staff(
                    workspace_id=ids[name]["workspace"],
                    channel_id=ids[name]["wecom"],
                    userid=f"{name}-sales",
                    name="销售",
                )
            )
            ids[name]["staff"] = f"{name}-sales"
        session.commit()
    world = World(Holdings(**ids["acme"]), Holdings(**ids["beta"]))
    assert world.b.tag == world.a.tag + 1 and world.b.segment == world.a.segment + 1
    return world


def _added(session, row) -> int:
    session.add(row)
    session.flush()
    return row.id


# ---- saving: one case per declared id-bearing field ---------------------------------------


def journey_document(h: Holdings) -> dict:
    """A journey naming each kind of id the document may hold, all of `h`."""
    return {
        "nodes": [
            {
                "id": "tagged",
                "type": "entry",
                "trigger": {"kind": "tag_added", "tag_id": h.tag},
                "next": "check",
            },
            {
                "id": "joined",
                "type": "entry",
                "trigger": {"kind": "segment_entered", "segment_id": h.segment},
                "next": "check",
            },
            {
                "id": "check",
                "type": "branch",
                "branches": [{"condition": {"kind": "has_tag", "tag_id": h.tag}, "next": "tag"}],
                "otherwise": "done",
            },
            {
                "id": "tag",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": h.tag},
                "next": "done",
            },
            {"id": "done", "type": "exit"},
        ]
    }


def _put(document: dict, path: str, value) -> dict:
    document = copy.deepcopy(document)
    *parents, last = path.split(".")
    at = document
    for part in parents:
        at = at[int(part)] if isinstance(at, list) else at[part]
    at[last] = value
    return document


def save_journey(app, world: World, path: str, holding: str):  # noqa: F811
    """Saves A's journey with B's id at `path`: (the errors, the path they should be at)."""
    document = _put(journey_document(world.a), path, getattr(world.b, holding))
    with session_of(app) as session:
        try:
            definitions.create_journey(session, world.a.workspace, "j", "", document, None)
        except ValidationError as exc:
            return exc.messages, path
    return {}, path


def save_qr_code(app, world: World):  # noqa: F811
    with session_of(app) as session:
        code = QrCode(
            workspace_id=world.a.workspace,
            channel_id=world.a.oa,
            name="展会",
            scene="1",
            ticket="t",
        )
        session.add(code)
        session.flush()
        try:
            qrcodes.update_qr_code(session, code, name="展会", tag_ids=[world.a.tag, world.b.tag])
        except ValidationError as exc:
            return exc.messages, "tag_ids"
    return {}, "tag_ids"


def save_contact_way(app, world: World):  # noqa: F811
    data = {
        "name": "华东销售",
        "state": "east",
        "staff_userids": [world.a.staff],
        "tag_ids": [world.b.tag],
    }
    with session_of(app) as session:
        channel = session.get(Channel, world.a.wecom)
        try:  # refused before WeCom is called: no client needed
            contact_ways.create_contact_way(session, channel, None, data)
        except ValidationError as exc:
            return exc.messages, "tag_ids"
    return {}, "tag_ids"


SAVE_CASES = {
    ("journey", "nodes.*.trigger.tag_id"): lambda app, w: save_journey(  # noqa: F811
        app, w, "nodes.0.trigger.tag_id", "tag"
    ),
    ("journey", "nodes.*.trigger.segment_id"): lambda app, w: save_journey(  # noqa: F811
        app, w, "nodes.1.trigger.segment_id", "segment"
    ),
    ("journey", "nodes.*.branches.*.condition.tag_id"): lambda app, w: save_journey(  # noqa: F811
        app, w, "nodes.2.branches.0.condition.tag_id", "tag"
    ),
    ("journey", "nodes.*.action.tag_id"): lambda app, w: save_journey(  # noqa: F811
        app, w, "nodes.3.action.tag_id", "tag"
    ),
    ("qr_code", "tag_ids"): save_qr_code,
    ("contact_way", "tag_ids"): save_contact_way,
}


def test_every_declared_id_field_has_a_case():
    declared = {(document, ref.path) for document, refs in DECLARED.items() for ref in refs}
    assert declared, "no document declares its id-bearing fields"
    assert declared - SAVE_CASES.keys() == set(), "declared id fields without a tenancy case"
    assert SAVE_CASES.keys() - declared == set(), "cases for fields nobody declares"


@pytest.mark.parametrize("field", sorted(SAVE_CASES), ids="{0[0]}:{0[1]}".format)
def test_saving_a_document_naming_another_workspaces_id_is_a_field_error(app, world, field):  # noqa: F811
    errors, path = SAVE_CASES[field](app, world)
    document, declared_path = field
    (reference,) = [ref for ref in DECLARED[document] if ref.path == declared_path]
    assert errors.get(path) == [reference.message or reference.target.message], errors


def test_a_journey_naming_only_its_own_ids_saves_and_goes_live(app, world):  # noqa: F811
    with session_of(app) as session:
        journey = definitions.create_journey(
            session, world.a.workspace, "j", "", journey_document(world.a), None
        )
        assert definitions.go_live(session, journey).version == 1


def test_a_version_naming_another_workspaces_tag_never_goes_live(app, world):  # noqa: F811
    """One stored before the check (or around it) is refused when put live."""
    journey_id = _live_journey(app, world.a.workspace, journey_document(world.b), live=False)
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        definitions.go_live(session, session.get(Journey, journey_id))
    assert set(refused.value.messages) == {
        "nodes.0.trigger.tag_id",
        "nodes.1.trigger.segment_id",
        "nodes.2.branches.0.condition.tag_id",
        "nodes.3.action.tag_id",
    }


# ---- engines: documents written around the validation act on nothing of B ---------------


def _live_journey(app, workspace_id: int, document: dict, live=True) -> int:  # noqa: F811
    with session_of(app) as session:
        journey = Journey(
            workspace_id=workspace_id,
            name="around the editor",
            status=JourneyStatus.LIVE if live else JourneyStatus.DRAFT,
            live_version=1 if live else None,
        )
        session.add(journey)
        session.flush()
        session.add(JourneyVersion(journey_id=journey.id, version=1, document=document))
        session.commit()
        return journey.id


def test_a_journey_triggered_by_another_workspaces_tag_never_enrols_its_contacts(
    app,  # noqa: F811
    platform,  # noqa: F811
    world,
):
    """The finding: A's live journey on B's tag moved B's contact to "customer" and messaged
    B's follower through B's OA when B tagged them. Now B's tagging, through the drain and
    the journey jobs, leaves B's contact untouched and A's journey empty."""
    _live_journey(
        app,
        world.a.workspace,
        {
            "nodes": [
                {
                    "id": "start",
                    "type": "entry",
                    "trigger": {"kind": "tag_added", "tag_id": world.b.tag},
                    "next": "stage",
                },
                {
                    "id": "stage",
                    "type": "action",
                    "action": {"kind": "set_stage", "stage": "customer"},
                    "next": "hello",
                },
                {
                    "id": "hello",
                    "type": "action",
                    "action": {"kind": "cs_message", "text": "来自 A 的问候"},
                },
            ]
        },
    )
    with session_of(app) as session:
        session.add(
            TagRule(
                workspace_id=world.b.workspace,
                kind=RuleKind.KEYWORD,
                name="vip",
                tag_id=world.b.tag,
                config={"match": "contains", "pattern": "vip"},
            )
        )
        session.commit()
    ids = follow(app, platform, "o_beta")
    sandbox_oa.send_text(platform.state, tenant(platform), "o_beta", "我是 vip 客户")
    settle(app, platform)
    with app.app_context():
        run_due_journeys()
    settle(app, platform)
    with session_of(app) as session:
        contact = session.get(Contact, ids["o_beta"])
        assert contact.workspace_id == world.b.workspace
        held = set(
            session.scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == contact.id))
        )
        assert world.b.tag in held  # B's own rule did tag them
        assert contact.stage != "customer"
        assert session.scalars(select(Enrolment)).all() == []
    assert received(platform, "o_beta", CUSTOM) == []


def test_a_push_on_another_workspaces_oa_or_segment_reaches_nobody(
    app,  # noqa: F811
    platform,  # noqa: F811
    world,
):
    ids = follow(app, platform, "o_beta")
    with session_of(app) as session:
        segment = session.get(SavedSegment, world.b.segment)
        segment.document = {}  # everyone of B
        push_ids = []
        for fields in (
            {"channel_id": world.b.oa},
            {"channel_id": world.a.oa, "segment_id": world.b.segment},
        ):
            push = Push(
                workspace_id=world.a.workspace,
                name="around the form",
                content={"type": "text", "text": "A 的推送"},
                status=PushStatus.SCHEDULED,
                **fields,
            )
            session.add(push)
            session.flush()
            push_ids.append(push.id)
        session.commit()
    with session_of(app) as session:
        for push_id in push_ids:
            status = pushes.run_push(session, push_id, client_of(app), LIMITS, 10**6)
            assert status == PushStatus.FAILED
        assert (
            session.scalars(
                select(PushRecipient).where(PushRecipient.contact_id == ids["o_beta"])
            ).all()
            == []
        )
    assert received(platform, "o_beta", MASS) == []


def test_a_qr_code_and_a_tag_rule_naming_another_workspaces_tag_tag_nobody_with_it(
    app,  # noqa: F811
    platform,  # noqa: F811
    world,
):
    """A's code and keyword rule, rewritten to name B's tag, through the sandbox and the
    drain: A's follower gets none of B's tags, and B's tag stays unheld."""
    a_client = harpoon_of(app).wechat.oa(A_OA.app_id, OA_SECRET)
    with session_of(app) as session:
        channel = session.get(Channel, world.a.oa)
        code = qrcodes.create_qr_code(
            session, channel, a_client, name="展会", permanent=True, tag_ids=[world.a.tag]
        )
        code.tag_ids = [world.b.tag]
        session.add(
            TagRule(
                workspace_id=world.a.workspace,
                kind=RuleKind.KEYWORD,
                name="vip",
                tag_id=world.b.tag,
                config={"match": "contains", "pattern": "vip"},
            )
        )
        session.commit()
        ticket = code.ticket
    a_tenant = platform.state.tenant(A_OA.app_id)
    sandbox_oa.follow(platform.state, a_tenant, "o_acme", ticket=ticket)
    settle(app, platform)
    sandbox_oa.send_text(platform.state, a_tenant, "o_acme", "我是 vip 客户")
    settle(app, platform)
    with session_of(app) as session:
        held = session.execute(select(ContactTag.workspace_id, ContactTag.tag_id)).all()
        follower = session.scalar(select(Contact).where(Contact.workspace_id == world.a.workspace))
    assert follower is not None  # the drain did handle A's follow and message
    assert (world.b.workspace, world.b.tag) not in held
    assert all(tag_id != world.b.tag for _ws, tag_id in held)


def test_a_menu_naming_another_workspaces_tag_makes_no_oa_tag_of_it(app, world):  # noqa: F811
    """Publishing a conditional menu mirrors its tags to the OA: B's tag is not A's to mirror
    (its name would reach A's OA)."""
    with session_of(app) as session:
        channel = session.get(Channel, world.a.oa)
        assert ensure_remote_tags(session, channel, None, {world.b.tag}) == {}
        assert session.scalars(select(TagRemote)).all() == []


def test_a_segment_naming_another_workspaces_tags_and_oa_selects_nobody(
    app,  # noqa: F811
    platform,  # noqa: F811
    world,
):
    ids = follow(app, platform, "o_beta")
    with session_of(app) as session:
        book = TagBook(session, world.b.workspace)
        apply_tags(
            session, book, [ids["o_beta"]], [book.by_id(world.b.tag)], source=TagSource.MANUAL
        )
        session.commit()
        theirs = Segment(tags_any=(world.b.tag,), channel_ids=(world.b.oa,))
        assert count(session, contacts_query(theirs, world.b.workspace, None)) == 1
        assert count(session, contacts_query(theirs, world.a.workspace, None)) == 0


def test_a_form_or_link_naming_another_workspaces_content_hands_nothing_out(app, world):  # noqa: F811
    with session_of(app) as session:
        form = Form(
            workspace_id=world.a.workspace, title="白皮书下载", download_content_id=world.b.content
        )
        session.add(form)
        session.flush()
        assert download_link(session, form, None) is None
        assert session.scalars(select(TrackedLink)).all() == []
        for code, target in (
            ("theirs-content", {"content_id": world.b.content}),
            ("theirs-form", {"form_id": world.b.form}),
        ):
            link = TrackedLink(workspace_id=world.a.workspace, code=code, **target)
            session.add(link)
            session.flush()
            assert content.target_of(session, link.code) is None
