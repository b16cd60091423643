"""One workspace never touches another, over two workspaces whose ids interleave (every row
of A has a neighbour of B one id away).

Saving: each id-bearing field a document declares (core.references.DECLARED) has a case
that saves a document of A naming B's id and gets a field error at that field; a field
declared without a case fails `test_every_declared_id_field_has_a_case`, and an input of a
schema or admin form named like an id that is neither declared nor listed as naming no
workspace row fails `test_every_id_input_is_declared_or_names_no_workspace_row`.

Engines: documents of A written around the validation (straight into the database) that
name B's ids act on nothing of B — the journey of the original finding end to end through
the drain and the journey jobs, pushes, QR codes, tag rules, menus, segments, forms and
tracked links, merges, form follow-ups and group sends.
"""

import copy
import html
import importlib
import pkgutil
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal

import marshmallow
import pytest
import wtforms
from marshmallow import ValidationError
from marshmallow import fields as schema_fields
from sqlalchemy import func, select

from app import jobs
from app.jobs import run_due_journeys
from config import ROOT
from core.references import DECLARED
from crm.contacts import attach_identity, live
from crm.rule_config import rule_tag
from crm.tags import TagBook, apply_tags
from crm.touchpoints import foreign_channels
from crm.users import create_user
from demo.seed import register_tenant
from journeys import definitions
from journeys.triggers import enrol_manually
from models import (
    Account,
    Channel,
    Contact,
    ContactTag,
    Content,
    CustomerGroup,
    EmailTemplate,
    Enrolment,
    FollowUpStatus,
    Form,
    FormSubmission,
    GroupSend,
    Identity,
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
    Task,
    TrackedLink,
    TransferKind,
    User,
    Workspace,
    utcnow,
)
from outreach import content, forms, menus, pushes, segments
from outreach import materials as library
from outreach import qr_codes as qrcodes
from outreach.content import create_link
from outreach.forms import download_link
from outreach.library import editing
from outreach.posters import read_background, save_poster
from outreach.segments import Segment, contacts_query, count
from revenue.opportunities import resolve
from sales import contact_ways, join_ways
from sales.group_send import create_group_chat_send, create_group_send
from sales.transfers import create_transfer
from sync.tag_sync import ensure_remote_tags
from tests.app.admin.helpers import csrf_token, in_english, sign_in
from tests.factories import PASSWORD, make_channel, make_image, png_bytes, poster_background
from tests.helpers import OA_CREDS, OA_SECRET, WECOM_CREDS, harpoon_of, session_of
from tests.oa_platform import client_of, follow, received, settle, tenant
from wechat.sandbox import oa as sandbox_oa
from wechat.sandbox.oa import CUSTOM, MASS
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox
LIMITS = pushes.PushLimits()
# What may declare: every package of the layers contract but the platform, models and settings.
PACKAGES = tuple(
    package
    for package in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "root_packages"
    ]
    if package not in ("wechat", "models", "config")
)

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
    user: int
    contact: int
    account: int
    staff: str  # the salesperson's WeCom userid
    staff_row: int
    email_template: int


@dataclass(frozen=True)
class World:
    a: Holdings
    b: Holdings


@pytest.fixture
def world(app, platform, live_server) -> World:
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
        now = utcnow()
        corp_of = {ids[name]["workspace"]: ids[name]["wecom"] for name in ids}
        made = {
            "tag": lambda ws, n: TagBook(session, ws).get(session, TagGroup.INTEREST, f"t{n}").id,
            "segment": lambda ws, n: _added(session, SavedSegment(workspace_id=ws, name=f"s{n}")),
            "content": lambda ws, n: _added(session, Content(workspace_id=ws, title=f"c{n}")),
            "form": lambda ws, n: _added(session, Form(workspace_id=ws, title=f"f{n}")),
            "user": lambda ws, n: _added(session, _user(session, ws, n)),
            "contact": lambda ws, n: _added(
                session, Contact(workspace_id=ws, name=n, first_seen_at=now, last_seen_at=now)
            ),
            "account": lambda ws, n: _added(
                session, Account(workspace_id=ws, name=n, normalized_name=n)
            ),
            "email_template": lambda ws, n: _added(
                session, EmailTemplate(workspace_id=ws, name=f"e{n}", subject="s", body_html="b")
            ),
            "staff_row": lambda ws, n: _added(
                session,
                Staff(
                    workspace_id=ws,
                    channel_id=corp_of[ws],
                    userid=f"{n}-sales",
                    name="销售",
                ),
            ),
        }
        for field, make in made.items():
            for n in range(2):  # A, B, A, B: each id of A has B's on both sides
                for name in ("acme", "beta"):
                    ids[name][field] = make(ids[name]["workspace"], f"{name}{n}")
        for name in ("acme", "beta"):
            ids[name]["staff"] = session.get(Staff, ids[name]["staff_row"]).userid
        session.commit()
    world = World(Holdings(**ids["acme"]), Holdings(**ids["beta"]))
    for field in made:
        assert getattr(world.b, field) == getattr(world.a, field) + 1, field
    return world


def _user(session, workspace_id: int, n: str):
    workspace = session.get(Workspace, workspace_id)
    return create_user(session, workspace, f"{n}@example.com", n, PASSWORD, "marketer")


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
                "next": "mail",
            },
            {
                "id": "mail",
                "type": "action",
                "action": {"kind": "send_email", "email_template_id": h.email_template},
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


def save_journey(app, world: World, path: str, holding: str):
    """Saves A's journey with B's id at `path`: (the errors, the path they should be at)."""
    document = _put(journey_document(world.a), path, getattr(world.b, holding))
    with session_of(app) as session:
        try:
            definitions.create_journey(session, world.a.workspace, "j", "", document, None)
        except ValidationError as exc:
            return exc.messages, path
    return {}, path


def errors_of(save) -> dict:
    """The field errors a save refuses with; {} when it saved."""
    try:
        save()
    except ValidationError as exc:
        return exc.messages
    return {}


def save_qr_code(app, world: World):
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
        tag_ids = [world.a.tag, world.b.tag]
        return errors_of(
            lambda: qrcodes.update_qr_code(session, code, name="展会", tag_ids=tag_ids)
        ), "tag_ids"


def save_contact_way(app, world: World):
    data = {
        "name": "华东销售",
        "state": "east",
        "staff_userids": [world.a.staff],
        "tag_ids": [world.b.tag],
    }
    with session_of(app) as session:
        channel = session.get(Channel, world.a.wecom)
        # refused before WeCom is called: no client needed
        return errors_of(
            lambda: contact_ways.create_contact_way(session, channel, None, data)
        ), "tag_ids"


def save_segment(field: str, holding: str):
    def case(app, world: World):
        named = {field: [getattr(world.a, holding), getattr(world.b, holding)]}
        with session_of(app) as session:
            return errors_of(
                lambda: segments.save_segment(session, world.a.workspace, "s", "", named, None)
            ), field

    return case


def _click(key: str, tag_id: int) -> dict:
    return {"name": key, "type": "click", "key": key, "tag_id": tag_id}


def menu_document(tag_id: int) -> dict:
    """A menu with a tag at each place a menu names one."""
    return {
        "default": [_click("A", tag_id), {"name": "更多", "sub_button": [_click("B", tag_id)]}],
        "conditional": [
            {
                "tag_id": tag_id,
                "buttons": [
                    _click("C", tag_id),
                    {"name": "更多", "sub_button": [_click("D", tag_id)]},
                ],
            }
        ],
    }


def save_menu(path: str):
    """The check that the menu editor shows on saving and that publishing enforces."""

    def case(app, world: World):
        document = _put(menu_document(world.a.tag), path, world.b.tag)
        with session_of(app) as session:
            channel = session.get(Channel, world.a.oa)
            errors = menus.validate_menu(document, menus.menu_context(session, channel, document))
        return {position: [message] for position, message in errors.items()}, path

    return case


def save_push(field: str, holding: str):
    def case(app, world: World):
        push = Push(
            workspace_id=world.a.workspace, channel_id=world.a.oa, segment_id=world.a.segment
        )
        setattr(push, field, getattr(world.b, holding))
        with session_of(app) as session:
            return errors_of(lambda: pushes.check_push(session, push)), field

    return case


def save_email_push(app, world: World):
    push = Push(
        workspace_id=world.a.workspace,
        segment_id=world.a.segment,
        content={"type": "email", "email_template_id": world.b.email_template},
    )
    with session_of(app) as session:
        return errors_of(lambda: pushes.check_push(session, push)), "email_template_id"


def save_tag_rule(app, world: World):
    with session_of(app) as session:
        return errors_of(lambda: rule_tag(session, world.a.workspace, world.b.tag)), "tag_id"


def save_form(field: str, value_of):
    def case(app, world: World):
        values = {
            "title": "白皮书下载",
            "intro": "",
            "fields": {"phone": "required"},
            "consent_text": "",
            "thank_you": "",
            "tag_ids": [world.a.tag],
            "download_content_id": world.a.content,
            "follow_up": {},
            field: value_of(world),
        }
        with session_of(app) as session:
            return errors_of(lambda: editing.save_form(session, world.a.workspace, values)), field

    return case


def save_link(field: str, holding: str):
    def case(app, world: World):
        named = {"content_id": world.a.content, "channel_id": world.a.oa}
        if field == "form_id":
            named = {"form_id": world.a.form}
        named[field] = getattr(world.b, holding)
        with session_of(app) as session:
            return errors_of(lambda: create_link(session, world.a.workspace, **named)), field

    return case


def save_poster_target(field: str, holding: str):
    """A poster whose QR code leads to B's content item or form."""

    def case(app, world: World):
        checked = {
            "name": "海报",
            "target": "content" if field == "content_id" else "form",
            "content_id": None,
            "form_id": None,
            "qr_x": 0,
            "qr_y": 0,
            "qr_size": 100,
            "text": "",
            "text_x": 0,
            "text_y": 0,
            "text_size": 36,
            "text_color": "#333333",
            field: getattr(world.b, holding),
        }
        background = read_background(poster_background(300, 300))
        with session_of(app) as session:
            return errors_of(
                lambda: save_poster(
                    session, world.a.workspace, checked, background=background, user_id=None
                )
            ), field

    return case


def _customer_group(session, workspace_id: int, channel_id: int, chat_id: str, owner: str) -> str:
    session.add(
        CustomerGroup(
            workspace_id=workspace_id,
            channel_id=channel_id,
            chat_id=chat_id,
            name="峰会群",
            owner_userid=owner,
        )
    )
    session.flush()
    return chat_id


def save_join_way(field: str):
    """A's 群活码 naming B's tag, or B's customer group: refused before WeCom is called."""

    def case(app, world: World):
        with session_of(app) as session:
            mine = _customer_group(session, world.a.workspace, world.a.wecom, "wrA", "a")
            theirs = _customer_group(session, world.b.workspace, world.b.wecom, "wrB", "b")
            data = {
                "name": "峰会",
                "state": "summit",
                "chat_ids": [mine],
                "tag_ids": [world.a.tag],
            }
            data[field] = {"tag_ids": [world.b.tag], "chat_ids": [mine, theirs]}[field]
            channel = session.get(Channel, world.a.wecom)
            return errors_of(lambda: join_ways.create_join_way(session, channel, None, data)), field

    return case


def save_group_chat_send(app, world: World):
    """A's salesperson sending to B's customer group (even one B's staff of the same userid
    owns): refused."""
    with session_of(app) as session:
        theirs = _customer_group(session, world.b.workspace, world.b.wecom, "wrB", world.a.staff)
        return errors_of(
            lambda: create_group_chat_send(
                session,
                world.a.workspace,
                world.a.wecom,
                world.a.staff,
                "你好",
                [theirs],
                None,
            )
        ), "chat_ids"


def save_group_send(field: str):
    def case(app, world: World):
        named = {"channel_id": world.a.wecom, "staff_userid": world.a.staff}
        named[field] = {"channel_id": world.b.wecom, "staff_userid": world.b.staff}[field]
        with session_of(app) as session:
            return errors_of(
                lambda: create_group_send(
                    session,
                    world.a.workspace,
                    text="你好",
                    external_userids=["wm_x"],
                    created_by=None,
                    **named,
                )
            ), field

    return case


def save_transfer(field: str):
    def case(app, world: World):
        named = {
            "channel_id": world.a.wecom,
            "handover_userid": world.a.staff,
            "takeover_userid": world.a.staff,
        }
        named[field] = {"channel_id": world.b.wecom}.get(field, world.b.staff)
        with session_of(app) as session:
            return errors_of(
                lambda: create_transfer(
                    session,
                    world.a.workspace,
                    kind=TransferKind.IN_SERVICE,
                    external_userids=["wm_x"],
                    **named,
                )
            ), field

    return case


def save_touchpoints(app, world: World):
    """The API's batch: the second item names B's corp."""
    items = {
        0: {"kind": "email.open", "external_userid": "wm_a", "channel_id": world.a.wecom},
        1: {"kind": "email.open", "external_userid": "wm_b", "channel_id": world.b.wecom},
    }
    with session_of(app) as session:
        refused = foreign_channels(session, world.a.workspace, items)
    errors = {
        f"items.{index}.{field}": messages
        for index, item_errors in refused.items()
        for field, messages in item_errors.items()
    }
    return errors, "items.1.channel_id"


def save_opportunity_item(app, world: World):
    """A CRM's opportunity naming B's account by id."""
    values = {"name": "x", "amount": Decimal(1), "stage": "qualify", "account_id": world.b.account}
    with session_of(app) as session:
        return resolve(session, world.a.workspace, values).errors, "account_id"


def save_in_admin(document: str, field: str, holding: str, action):
    """A's marketer (pages in English) posts B's id in `field` to the page at `action(A)`;
    the declared message the page shows (given the id as %(id)s), keyed by the field."""

    def case(app, world: World):
        client = app.test_client()
        with session_of(app) as session:
            email = session.get(User, world.a.user).email
        assert sign_in(client, email).status_code == 302
        client = in_english(client)
        value = getattr(world.b, holding)
        token = csrf_token(client.get("/admin/").text)
        page = client.post(
            action(world.a), data={field: str(value), "csrf_token": token}, follow_redirects=True
        ).text
        (reference,) = [ref for ref in DECLARED[document] if ref.path == field]
        message = reference.message or reference.target.message
        shown = html.escape(message % {"id": value}) in page
        return ({field: [message]} if shown else {}), field

    return case


SAVE_CASES = {
    ("journey", "nodes.*.trigger.tag_id"): lambda app, w: save_journey(
        app, w, "nodes.0.trigger.tag_id", "tag"
    ),
    ("journey", "nodes.*.trigger.segment_id"): lambda app, w: save_journey(
        app, w, "nodes.1.trigger.segment_id", "segment"
    ),
    ("journey", "nodes.*.branches.*.condition.tag_id"): lambda app, w: save_journey(
        app, w, "nodes.2.branches.0.condition.tag_id", "tag"
    ),
    ("journey", "nodes.*.action.tag_id"): lambda app, w: save_journey(
        app, w, "nodes.3.action.tag_id", "tag"
    ),
    ("qr_code", "tag_ids"): save_qr_code,
    ("contact_way", "tag_ids"): save_contact_way,
    ("segment", "tags_all"): save_segment("tags_all", "tag"),
    ("segment", "tags_any"): save_segment("tags_any", "tag"),
    ("segment", "tags_none"): save_segment("tags_none", "tag"),
    ("segment", "channel_ids"): save_segment("channel_ids", "oa"),
    ("menu", "default.*.tag_id"): save_menu("default.0.tag_id"),
    ("menu", "default.*.sub_button.*.tag_id"): save_menu("default.1.sub_button.0.tag_id"),
    ("menu", "conditional.*.tag_id"): save_menu("conditional.0.tag_id"),
    ("menu", "conditional.*.buttons.*.tag_id"): save_menu("conditional.0.buttons.0.tag_id"),
    ("menu", "conditional.*.buttons.*.sub_button.*.tag_id"): save_menu(
        "conditional.0.buttons.1.sub_button.0.tag_id"
    ),
    ("push", "channel_id"): save_push("channel_id", "oa"),
    ("push", "segment_id"): save_push("segment_id", "segment"),
    ("push", "email_template_id"): save_email_push,
    ("journey", "nodes.*.action.email_template_id"): lambda app, w: save_journey(
        app, w, "nodes.4.action.email_template_id", "email_template"
    ),
    ("tag_rule", "tag_id"): save_tag_rule,
    ("form", "tag_ids"): save_form("tag_ids", lambda w: [w.a.tag, w.b.tag]),
    ("form", "download_content_id"): save_form("download_content_id", lambda w: w.b.content),
    ("tracked_link", "content_id"): save_link("content_id", "content"),
    ("tracked_link", "form_id"): save_link("form_id", "form"),
    ("tracked_link", "channel_id"): save_link("channel_id", "oa"),
    ("poster", "content_id"): save_poster_target("content_id", "content"),
    ("poster", "form_id"): save_poster_target("form_id", "form"),
    ("group_send", "channel_id"): save_group_send("channel_id"),
    ("group_send", "chat_ids"): save_group_chat_send,
    ("group_join_way", "tag_ids"): save_join_way("tag_ids"),
    ("group_join_way", "chat_ids"): save_join_way("chat_ids"),
    ("group_send", "staff_userid"): save_group_send("staff_userid"),
    ("transfer", "channel_id"): save_transfer("channel_id"),
    ("transfer", "handover_userid"): save_transfer("handover_userid"),
    ("transfer", "takeover_userid"): save_transfer("takeover_userid"),
    ("touchpoints", "items.*.channel_id"): save_touchpoints,
    ("opportunity", "account_id"): save_opportunity_item,
    ("account", "owner_id"): save_in_admin(
        "account", "owner_id", "user", lambda a: f"/admin/accounts/{a.account}/edit"
    ),
    ("account_contact", "contact_id"): save_in_admin(
        "account_contact",
        "contact_id",
        "contact",
        lambda a: f"/admin/accounts/{a.account}/contacts",
    ),
    ("staff", "user_id"): save_in_admin(
        "staff", "user_id", "user", lambda a: f"/admin/staff/{a.staff_row}/user"
    ),
    ("routing_rule", "user_ids"): save_in_admin(
        "routing_rule", "user_ids", "user", lambda a: "/admin/routing/rules/new"
    ),
    ("routing_settings", "manager_id"): save_in_admin(
        "routing_settings", "manager_id", "user", lambda a: "/admin/routing/settings"
    ),
    ("email_preview", "contact_id"): save_in_admin(
        "email_preview", "contact_id", "contact", lambda a: "/admin/email/preview"
    ),
}


# ---- library ----


def image_of(app, workspace: int) -> int:
    with session_of(app) as session:
        image = make_image(session, workspace, data=png_bytes(color=(workspace, 0, 0)))
        session.commit()
        return image.id


def save_article_cover(app, world: World):
    cover = image_of(app, world.b.workspace)
    with session_of(app) as session:
        raw = {"name": "a", "title": "t", "body": "b", "cover_id": cover}
        return errors_of(
            lambda: library.save_card(session, world.a.workspace, "article", raw)
        ), "cover_id"


def save_push_material(app, world: World):
    push = Push(
        workspace_id=world.a.workspace,
        channel_id=world.a.oa,
        content={"type": "image", "material_id": image_of(app, world.b.workspace)},
    )
    with session_of(app) as session:
        return errors_of(lambda: pushes.check_push(session, push)), "content.material_id"


def save_group_send_material(app, world: World):
    """B's library item attached to A's send to customers, and to A's customer groups."""
    material_id = image_of(app, world.b.workspace)
    with session_of(app) as session:
        ours = _customer_group(session, world.a.workspace, world.a.wecom, "wrA", world.a.staff)
        to_groups = errors_of(
            lambda: create_group_chat_send(
                session,
                world.a.workspace,
                world.a.wecom,
                world.a.staff,
                "你好",
                [ours],
                None,
                material_ids=[material_id],
            )
        )
        assert "material_ids" in to_groups, to_groups
        session.rollback()
        return errors_of(
            lambda: create_group_send(
                session,
                world.a.workspace,
                world.a.wecom,
                world.a.staff,
                "你好",
                ["wm_x"],
                None,
                material_ids=[material_id],
            )
        ), "material_ids"


def save_journey_material(app, world: World):
    path = "nodes.3.action"
    action = {"kind": "send_material", "material_id": image_of(app, world.b.workspace)}
    document = _put(journey_document(world.a), path, action)
    with session_of(app) as session:
        return errors_of(
            lambda: definitions.create_journey(session, world.a.workspace, "j", "", document, None)
        ), f"{path}.material_id"


SAVE_CASES.update(
    {
        ("material", "cover_id"): save_article_cover,
        ("push", "content.material_id"): save_push_material,
        ("group_send", "material_ids"): save_group_send_material,
        ("journey", "nodes.*.action.material_id"): save_journey_material,
    }
)


def declared_fields() -> set[tuple[str, str]]:
    """(document, path) of every declaration, every module imported first (a module
    declares its documents' fields when imported)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)
    return {(document, ref.path) for document, refs in DECLARED.items() for ref in refs}


def test_every_declared_id_field_has_a_case():
    declared = declared_fields()
    assert declared, "no document declares its id-bearing fields"
    assert declared - SAVE_CASES.keys() == set(), "declared id fields without a tenancy case"
    assert SAVE_CASES.keys() - declared == set(), "cases for fields nobody declares"


# ---- every id-bearing input of a schema or form is declared (or is no workspace row's id) ---

# Each input named like an id (`*_id`, `*_ids`), by "module.Class" and its dotted path
# (a list's items as "*"), and the declared field of the document it saves into.
DECLARED_INPUTS = {
    ("app.admin.accounts.forms.AccountForm", "owner_id"): ("account", "owner_id"),
    ("app.admin.accounts.forms.AttachContactForm", "contact_id"): ("account_contact", "contact_id"),
    ("app.admin.qr_codes.forms.QrCodeForm", "tag_ids"): ("qr_code", "tag_ids"),
    ("app.admin.qr_codes.forms.QrCodeEditForm", "tag_ids"): ("qr_code", "tag_ids"),
    ("app.admin.tags.forms.RuleForm", "tag_id"): ("tag_rule", "tag_id"),
    ("app.admin.wecom.forms.ContactWayForm", "tag_ids"): ("contact_way", "tag_ids"),
    ("app.admin.wecom.forms.StaffUserForm", "user_id"): ("staff", "user_id"),
    ("sales.contact_ways.ContactWayInput", "tag_ids"): ("contact_way", "tag_ids"),
    ("revenue.opportunities.OpportunitySchema", "account_id"): ("opportunity", "account_id"),
    ("crm.touchpoints.TouchpointSchema", "channel_id"): (
        "touchpoints",
        "items.*.channel_id",
    ),
    ("outreach.library.editing.FormDefinitionSchema", "tag_ids"): ("form", "tag_ids"),
    ("outreach.library.editing.FormDefinitionSchema", "download_content_id"): (
        "form",
        "download_content_id",
    ),
    ("outreach.library.editing.LinkSchema", "channel_id"): ("tracked_link", "channel_id"),
    ("outreach.qr_codes.QrCodeInput", "tag_ids"): ("qr_code", "tag_ids"),
    ("outreach.qr_codes.QrCodeChanges", "tag_ids"): ("qr_code", "tag_ids"),
    ("outreach.segments.SegmentSchema", "channel_ids"): ("segment", "channel_ids"),
    ("outreach.segments.SegmentSchema", "tags_all"): ("segment", "tags_all"),
    ("outreach.segments.SegmentSchema", "tags_any"): ("segment", "tags_any"),
    ("outreach.segments.SegmentSchema", "tags_none"): ("segment", "tags_none"),
    ("app.admin.pushes.forms.PushForm", "channel"): ("push", "channel_id"),
    ("app.admin.pushes.forms.PushForm", "audience"): ("push", "segment_id"),
    ("outreach.pushes.ContentSchema", "email_template_id"): ("push", "email_template_id"),
    ("sales.group_send.GroupSendSchema", "staff_userid"): ("group_send", "staff_userid"),
    ("sales.group_send.GroupChatSendSchema", "staff_userid"): ("group_send", "staff_userid"),
    ("sales.group_send.GroupChatSendSchema", "chat_ids"): ("group_send", "chat_ids"),
    ("sales.group_send.GroupChatSendSchema", "material_ids"): ("group_send", "material_ids"),
    ("sales.join_ways.JoinWayInput", "tag_ids"): ("group_join_way", "tag_ids"),
    ("sales.join_ways.JoinWayInput", "chat_ids"): ("group_join_way", "chat_ids"),
    ("app.admin.wecom.forms.JoinWayForm", "tag_ids"): ("group_join_way", "tag_ids"),
    ("app.admin.wecom.forms.JoinWayForm", "chat_ids"): ("group_join_way", "chat_ids"),
    ("app.admin.routing.forms.RuleForm", "user_ids"): ("routing_rule", "user_ids"),
    ("app.admin.routing.forms.SettingsForm", "manager_id"): ("routing_settings", "manager_id"),
    ("app.admin.email.forms.PreviewForm", "contact_id"): ("email_preview", "contact_id"),
    ("outreach.pushes.ContentSchema", "material_id"): ("push", "content.material_id"),
    ("sales.group_send.GroupSendSchema", "material_ids"): ("group_send", "material_ids"),
    ("outreach.materials._CardSchema", "cover_id"): ("material", "cover_id"),
    ("outreach.materials.ArticleSchema", "cover_id"): ("material", "cover_id"),
    ("outreach.materials.LinkCardSchema", "cover_id"): ("material", "cover_id"),
    ("outreach.materials.MiniprogramSchema", "cover_id"): ("material", "cover_id"),
}
# Inputs named like an id that name no row of a workspace, and why.
NOT_WORKSPACE_ROWS = {
    ("app.admin.channels.OAChannelForm", "app_id"): "WeChat's AppID of the OA being connected",
    ("app.admin.channels.WeComChannelForm", "app_id"): "WeCom's corp id being connected",
    ("app.admin.channels.WeComChannelForm", "agent_id"): "WeCom's id of the corp's app",
    ("app.admin.pushes.forms.PushForm", "media_id"): "a media id in the OA's WeChat library",
    ("app.admin.pushes.forms.PushForm", "template_id"): "a template id WeChat gave the OA",
    ("app.admin.pushes.forms.PushForm", "fallback_template_id"): "a template id WeChat gave the OA",
    ("outreach.pushes.ContentSchema", "media_id"): "a media id in the OA's WeChat library",
    ("outreach.pushes.ContentSchema", "template_id"): "a template id WeChat gave the OA",
    ("crm.touchpoints.TouchpointSchema", "external_id"): "the sender's id of the touchpoint",
    ("crm.touchpoints.TouchpointSchema", "external_userid"): "WeCom's id of a person",
    ("sales.group_send.GroupSendSchema", "external_userids"): "WeCom's ids of the customers",
    (
        "crm.imports.AccountRowSchema",
        "owner",
    ): "an email, looked up among the workspace's users",
    ("app.admin.group_sends.GroupSendForm", "audience"): "all customers, or those with a tag",
    ("scoring.forms.WeightsSchema", "seniorities.staff"): "the staff seniority level",
    ("app.admin.wecom.forms.ContactWayForm", "staff_userids"): "WeCom userids, checked against the "
    "code's own corp (test_staff_without_the_permission_or_foreign_tags_are_refused)",
    ("sales.contact_ways.ContactWayInput", "staff_userids"): "as ContactWayForm's",
    ("app.admin.wecom.forms.ContactWayForm", "backup_userids"): "WeCom userids, checked against "
    "the code's own corp like staff_userids (test_another_corps_member_cannot_be_a_backup)",
    ("sales.contact_ways.ContactWayInput", "backup_userids"): "as ContactWayForm's",
    ("outreach.email_events.ReportSchema", "message_id"): "the Message-ID header of an email",
    ("sales.join_ways.JoinWayInput", "room_base_id"): "the number WeCom starts new groups at",
    ("app.admin.wecom.forms.JoinWayForm", "room_base_id"): "as JoinWayInput's",
}
# Named like an id or like the row it picks (`tags_any`, `staff_userids`, a form's `channel`).
ID_NAME = re.compile(
    r"(_ids?|_userids?)$|^tags_|^(tag|channel|segment|audience|sender|owner|staff)s?$"
)


def _subclasses(base: type):
    for cls in base.__subclasses__():
        yield cls
        yield from _subclasses(cls)


def _schema_inputs(schema: type, at: str = ""):
    """The dotted path of each input of a marshmallow schema, through Nested and List."""
    for name, field in schema._declared_fields.items():
        yield from _field_inputs(field, f"{at}{field.data_key or name}")


def _field_inputs(field, path: str):
    yield path
    if isinstance(field, schema_fields.Nested):
        nested = field.nested if isinstance(field.nested, type) else type(field.nested)
        yield from _schema_inputs(nested, f"{path}.")
    elif isinstance(field, schema_fields.List):
        yield from _field_inputs(field.inner, f"{path}.*")


def _form_inputs(form: type):
    for name in dir(form):
        unbound = getattr(form, name, None)
        if isinstance(unbound, wtforms.fields.core.UnboundField):
            yield name


def id_inputs() -> set[tuple[str, str]]:
    """Every input named like an id of the schemas and admin forms the code defines."""
    declared_fields()  # imports every module, hence every schema and form
    found = set()
    for base, inputs in ((marshmallow.Schema, _schema_inputs), (wtforms.Form, _form_inputs)):
        for cls in _subclasses(base):
            if not cls.__module__.startswith(tuple(f"{p}." for p in PACKAGES)):
                continue
            for path in inputs(cls):
                if ID_NAME.search(path.rsplit(".", 1)[-1]):
                    found.add((f"{cls.__module__}.{cls.__qualname__}", path))
    return found


def choose_in_admin(action, data, *, follow=False):
    """A's marketer posts B's row in a form that offers only A's own: the page refuses it
    ("Not a valid choice"; `follow`: on the page the refusal redirects to) and nothing of
    B's is touched."""

    def case(app, world: World):
        client = app.test_client()
        with session_of(app) as session:
            email = session.get(User, world.a.user).email
        assert sign_in(client, email).status_code == 302
        client = in_english(client)
        token = csrf_token(client.get("/admin/").text)
        page = client.post(
            action(world.a), data={**data(world), "csrf_token": token}, follow_redirects=follow
        )
        return page.text

    return case


def reassign_to_b(app, world: World) -> str:
    """A's marketer hands A's task to B's user: refused, the task stays unassigned."""
    with session_of(app) as session:
        task = Task(workspace_id=world.a.workspace, title="call", due_at=utcnow())
        session.add(task)
        session.commit()
        task_id = task.id
    page = choose_in_admin(
        lambda a: f"/admin/tasks/{task_id}/assign",
        lambda w: {"assignee_id": str(w.b.user)},
        follow=True,
    )(app, world)
    with session_of(app) as session:
        assert session.get(Task, task_id).assignee_id is None
    return page


# Admin inputs that take only the workspace's own rows, offered as its choices.
CHOSEN_FROM_THE_WORKSPACE = {
    ("app.admin.contacts.forms.TagForm", "tag"): choose_in_admin(
        lambda a: f"/admin/contacts/{a.contact}/tags", lambda w: {"tag": str(w.b.tag)}
    ),
    ("app.admin.contacts.forms.BulkTagForm", "tag"): choose_in_admin(
        lambda a: "/admin/contacts/tags",
        lambda w: {"contact_ids": str(w.a.contact), "operation": "add", "tag": str(w.b.tag)},
    ),
    ("app.admin.group_sends.GroupSendForm", "sender"): choose_in_admin(
        lambda a: "/admin/group-sends",
        lambda w: {"sender": str(w.b.staff_row), "audience": "all", "text": "你好"},
    ),
    ("app.admin.group_sends.GroupSendForm", "tag"): choose_in_admin(
        lambda a: "/admin/group-sends",
        lambda w: {
            "sender": str(w.a.staff_row),
            "audience": "tag",
            "tag": str(w.b.tag),
            "text": "你好",
        },
    ),
    ("app.admin.tasks.forms.TaskForm", "assignee_id"): choose_in_admin(
        lambda a: f"/admin/accounts/{a.account}/tasks",
        lambda w: {"title": "call", "due_hours": "4", "assignee_id": str(w.b.user)},
        follow=True,
    ),
    ("app.admin.tasks.forms.AssignTaskForm", "assignee_id"): reassign_to_b,
}


@pytest.mark.parametrize("field", sorted(CHOSEN_FROM_THE_WORKSPACE), ids="{0[0]}:{0[1]}".format)
def test_a_form_offering_the_workspaces_rows_refuses_another_workspaces(app, world, field):
    page = CHOSEN_FROM_THE_WORKSPACE[field](app, world)
    assert "Not a valid choice." in page
    with session_of(app) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ContactTag).where(ContactTag.tag_id == world.b.tag)
            )
            == 0
        )
        assert session.scalar(select(func.count()).select_from(GroupSend)) == 0


def test_every_id_input_is_declared_or_names_no_workspace_row():
    """A new input named like an id fails here until its document declares it (and so has
    a save case above) or it is listed as naming no row of a workspace."""
    found = id_inputs()
    known = DECLARED_INPUTS.keys() | NOT_WORKSPACE_ROWS.keys() | CHOSEN_FROM_THE_WORKSPACE.keys()
    assert found - known == set()
    assert known - found == set(), "stale entries"
    assert set(DECLARED_INPUTS.values()) - declared_fields() == set()


@pytest.mark.parametrize("field", sorted(SAVE_CASES), ids="{0[0]}:{0[1]}".format)
def test_saving_a_document_naming_another_workspaces_id_is_a_field_error(app, world, field):
    errors, path = SAVE_CASES[field](app, world)
    document, declared_path = field
    (reference,) = [ref for ref in DECLARED[document] if ref.path == declared_path]
    assert errors.get(path) == [reference.message or reference.target.message], errors


def test_a_journey_naming_only_its_own_ids_saves_and_goes_live(app, world):
    with session_of(app) as session:
        journey = definitions.create_journey(
            session, world.a.workspace, "j", "", journey_document(world.a), None
        )
        assert definitions.go_live(session, journey).version == 1


def test_a_version_naming_another_workspaces_tag_never_goes_live(app, world):
    """One stored before the check (or around it) is refused when put live."""
    journey_id = _live_journey(app, world.a.workspace, journey_document(world.b), live=False)
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        definitions.go_live(session, session.get(Journey, journey_id))
    assert set(refused.value.messages) == {
        "nodes.0.trigger.tag_id",
        "nodes.1.trigger.segment_id",
        "nodes.2.branches.0.condition.tag_id",
        "nodes.3.action.tag_id",
        "nodes.4.action.email_template_id",
    }


# ---- engines: documents written around the validation act on nothing of B ---------------


def _live_journey(app, workspace_id: int, document: dict, live=True) -> int:
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
    app,
    platform,
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
    app,
    platform,
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
    app,
    platform,
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


def test_a_menu_naming_another_workspaces_tag_makes_no_oa_tag_of_it(app, world):
    """Publishing a conditional menu mirrors its tags to the OA: B's tag is not A's to mirror
    (its name would reach A's OA)."""
    with session_of(app) as session:
        channel = session.get(Channel, world.a.oa)
        assert ensure_remote_tags(session, channel, None, {world.b.tag}) == {}
        assert session.scalars(select(TagRemote)).all() == []


def test_a_segment_naming_another_workspaces_tags_and_oa_selects_nobody(
    app,
    platform,
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


def test_a_form_or_link_naming_another_workspaces_content_hands_nothing_out(app, world):
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


def test_a_merge_never_joins_contacts_of_two_workspaces(app, world):
    """An identity of A written around the pipeline to point at B's contact, and a contact
    of A "merged into" B's: attaching the identity merges nothing, and A's contact lives on
    as itself."""
    with session_of(app) as session:
        session.add(
            Identity(
                workspace_id=world.a.workspace,
                contact_id=world.b.contact,
                kind="email",
                value="li@huaxin.com",
            )
        )
        session.flush()
        book = TagBook(session, world.a.workspace)
        ours = session.get(Contact, world.a.contact)
        with pytest.raises(ValueError, match="two workspaces"):
            attach_identity(session, book, ours, "email", "li@huaxin.com")
        session.rollback()
        ours = session.get(Contact, world.a.contact)
        ours.merged_into_id = world.b.contact
        session.flush()
        assert live(session, ours).id == world.a.contact
        session.rollback()
        assert session.get(Contact, world.b.contact).merged_into_id is None


def test_a_form_follow_up_on_another_workspaces_oa_messages_nobody(app, platform, world):
    """A's submission, written to name B's OA and B's follower: the follow-up is not sent
    through B's OA (nor does its link name B's OA)."""
    follow(app, platform, "o_beta")
    with session_of(app) as session:
        form = session.get(Form, world.a.form)
        form.download_content_id = world.a.content
        form.follow_up = {"wechat": True}
        session.add(
            FormSubmission(
                workspace_id=world.a.workspace,
                form_id=world.a.form,
                nonce="n1",
                channel_id=world.b.oa,
                openid="o_beta",
                contact_id=world.a.contact,
                followup_status=FollowUpStatus.PENDING,
            )
        )
        session.commit()
    h = harpoon_of(app)
    platform_of_follow_ups = forms.FollowUpPlatform(
        oa_client=lambda channel: h.wechat.oa(channel.app_id, OA_SECRET),
        mailer=None,
        public_url=lambda path: f"https://harpoon.example{path}",
    )
    with session_of(app) as session:
        result = forms.send_follow_ups(session, world.a.workspace, platform_of_follow_ups)
        assert (result.sent, result.failed) == (0, 1)
        links = session.scalars(select(TrackedLink.channel_id)).all()
    assert received(platform, "o_beta", CUSTOM) == []
    assert world.b.oa not in links


def test_a_group_send_naming_another_workspaces_corp_is_never_handed_to_it(app, world):
    with session_of(app) as session:
        row = GroupSend(
            workspace_id=world.a.workspace,
            channel_id=world.b.wecom,
            staff_userid=world.b.staff,
            text="A 的群发",
            external_userids=["wm_beta"],
            status="queued",
        )
        session.add(row)
        session.commit()
        group_send_id = row.id
    with app.app_context():
        jobs.send_group_send(group_send_id)
        jobs.fetch_group_send_results(group_send_id)
    with session_of(app) as session:
        row = session.get(GroupSend, group_send_id)
        assert (row.status, row.msgid) == ("failed", None)
        assert row.error == "the corp is not this workspace's"


def test_a_journey_message_goes_only_through_its_workspaces_oa(app, platform, world):
    """A's contact carrying an openid identity written to name B's OA and B's follower: A's
    journey message is not sent through B's OA."""
    follow(app, platform, "o_beta")
    journey_id = _live_journey(
        app,
        world.a.workspace,
        {
            "nodes": [
                {"id": "start", "type": "entry", "trigger": {"kind": "manual"}, "next": "hi"},
                {
                    "id": "hi",
                    "type": "action",
                    "action": {"kind": "cs_message", "text": "A 的问候"},
                },
            ]
        },
    )
    with session_of(app) as session:
        session.add(
            Identity(
                workspace_id=world.a.workspace,
                contact_id=world.a.contact,
                kind="openid",
                channel_id=world.b.oa,
                value="o_beta",
                following=True,
            )
        )
        assert enrol_manually(session, journey_id, [world.a.contact], None) == 1
        session.commit()
    with app.app_context():
        run_due_journeys()
    settle(app, platform)
    assert received(platform, "o_beta", CUSTOM) == []
