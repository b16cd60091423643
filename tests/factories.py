"""The rows the tests start from, built in one place: workspaces, users and keys, channels,
contacts and accounts, tags and rules, content, links and forms, journeys, segments and
pushes, the WeCom side of selling, and what people do on the sandbox platform.

Each builder commits and returns the new row's id (or what its docstring says), with
defaults a test changes by keyword. They write rows directly, as the pipeline or a page
would have; a test that means to exercise the pipeline posts callbacks instead."""

import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crm.accounts import account_named
from crm.activity import note_activity
from crm.api_keys import create_api_key
from crm.channels import add_channel, workspace_named
from crm.companies import normalize_company
from crm.tags import TagBook, apply_tags
from crm.users import create_user
from journeys.definitions import create_journey, go_live
from journeys.webhooks import rotate_secret
from models import (
    Account,
    AccountEvent,
    AccountSnapshot,
    Channel,
    Contact,
    ContactTag,
    ContactWay,
    Content,
    ContentKind,
    EmailTemplate,
    Enrolment,
    FollowRelation,
    Form,
    FormSubmission,
    GroupSend,
    Identity,
    IdentityKind,
    Interaction,
    Journey,
    JourneyStatus,
    JourneyVersion,
    LinkMedium,
    PageView,
    Push,
    PushStatus,
    QrCode,
    SavedSegment,
    Staff,
    StageChange,
    Step,
    Tag,
    TagGroup,
    TagRule,
    TagSource,
    Task,
    TaskSource,
    TaskStatus,
    TrackedLink,
    User,
    WelcomeMessage,
    Workspace,
    utcnow,
)
from outreach.content import create_link
from outreach.qr_codes import create_qr_code
from outreach.segments import Segment
from revenue.opportunities import resolve, save_opportunity
from sales.routing import save_rule
from scoring.engine import Scorer, decay_factor
from scoring.stages import reached
from tests.helpers import OA_CREDS, OA_SECRET, WECOM_CREDS, all_of, harpoon_of, session_of
from wechat.sandbox import oa as sandbox_oa
from wechat.sandbox import wecom

PASSWORD = "correct horse battery"  # every user make_user makes signs in with it
NOW = utcnow()  # make_people's "now": its people were last seen and scored around it

# ---- workspaces, users, API keys ---------------------------------------------------------


def workspace_id(app, name="acme") -> int:
    """The id of the workspace named `name`, made when new."""
    with session_of(app) as session:
        ws = workspace_named(session, name).id
        session.commit()
        return ws


def make_user(app, role="marketer", workspace="acme", email=None, *, active=True) -> int:
    """A user of the role, signing in as `email` (role@workspace.example) with PASSWORD."""
    with session_of(app) as session:
        user = create_user(
            session,
            workspace_named(session, workspace),
            email or f"{role}@{workspace}.example",
            f"{role.title()} User",
            PASSWORD,
            role,
        )
        user.active = active
        session.commit()
        return user.id


def new_key(app, *, require_signature=False, workspace="acme"):
    """An API key of the workspace, as created (its secret values readable once)."""
    with session_of(app) as session:
        ws = workspace_named(session, workspace)
        key = create_api_key(session, ws.id, "直播平台", require_signature=require_signature)
        session.commit()
        return key


# ---- channels ------------------------------------------------------------------------------


def make_channel(app, kind, creds, *, workspace="acme", **fields) -> int:
    with session_of(app) as session:
        channel = add_channel(
            session,
            workspace_named(session, workspace),
            kind=kind,
            name=f"{kind} {creds.app_id}",
            app_id=creds.app_id,
            token=creds.token,
            aes_key=creds.aes_key,
            **fields,
        )
        session.commit()
        return channel.id


def make_oa(app) -> int:
    """A safe-mode service OA (unknown to the sandbox)."""
    return make_channel(app, "oa", OA_CREDS, message_mode="safe", account_type="service")


# ---- contacts and accounts -----------------------------------------------------------------


def make_account(app, name, *, workspace="acme", **fields) -> int:
    with session_of(app) as session:
        account = Account(
            workspace_id=workspace_named(session, workspace).id,
            name=name,
            normalized_name=normalize_company(name),
            **fields,
        )
        session.add(account)
        session.commit()
        return account.id


def make_contact(app, name, *, workspace="acme", minutes_ago=0, **fields) -> int:
    """A contact first and last seen `minutes_ago` minutes back."""
    with session_of(app) as session:
        seen = utcnow() - timedelta(minutes=minutes_ago)
        contact = Contact(
            workspace_id=workspace_named(session, workspace).id,
            name=name,
            first_seen_at=seen,
            last_seen_at=seen,
            **fields,
        )
        session.add(contact)
        session.commit()
        return contact.id


def add_contact(
    app,
    tag_ids=(),
    *,
    workspace="acme",
    openid=None,
    external_userid=None,
    channel_id=None,
    **fields,
):
    """A contact holding these tags (manual), followed from `channel_id` as `openid`, or a
    customer of the WeCom corp `channel_id` as `external_userid`."""
    with session_of(app) as session:
        ws = workspace_named(session, workspace)
        contact = Contact(workspace_id=ws.id, **fields)
        session.add(contact)
        session.flush()
        for tag_id in tag_ids:
            session.add(
                ContactTag(
                    contact_id=contact.id, tag_id=tag_id, workspace_id=ws.id, source="manual"
                )
            )
        for kind, value in (
            (IdentityKind.OPENID, openid),
            (IdentityKind.EXTERNAL_USERID, external_userid),
        ):
            if value:
                session.add(
                    Identity(
                        workspace_id=ws.id,
                        contact_id=contact.id,
                        kind=kind,
                        channel_id=channel_id,
                        value=value,
                    )
                )
        session.commit()
        return contact.id


def add_contacts(app, count, *, workspace="acme", name="Lead"):
    """`count` contacts, the first seen most recently; returns their ids in that order."""
    now = utcnow()
    with session_of(app) as session:
        ws = workspace_named(session, workspace)
        contacts = [
            Contact(
                workspace_id=ws.id,
                name=f"{name} {n}",
                first_seen_at=now - timedelta(days=1),
                last_seen_at=now - timedelta(minutes=n),
            )
            for n in range(count)
        ]
        session.add_all(contacts)
        session.commit()
        return [c.id for c in contacts]


def add_identity(app, contact_id, kind, value, *, channel_id=None) -> int:
    """One more identity of the contact (a phone, an email, an openid of `channel_id`)."""
    with session_of(app) as session:
        identity = Identity(
            workspace_id=session.get(Contact, contact_id).workspace_id,
            contact_id=contact_id,
            kind=kind,
            channel_id=channel_id,
            value=value,
        )
        session.add(identity)
        session.commit()
        return identity.id


def make_staff(app, name: str, userid: str, *, active=True, user_id=None) -> int:
    """A staff member of the acme workspace's WeCom corp (connected on first use)."""
    corps = [channel.id for channel in all_of(app, Channel) if channel.kind == "wecom"]
    channel_id = corps[0] if corps else make_channel(app, "wecom", WECOM_CREDS)
    with session_of(app) as session:
        staff = Staff(
            workspace_id=workspace_id(app),
            channel_id=channel_id,
            userid=userid,
            name=name,
            active=active,
            user_id=user_id,
        )
        session.add(staff)
        session.commit()
        return staff.id


def make_people(app) -> dict:
    """Four live contacts in two accounts and none, a merged one and one of another
    workspace, with tags, identities and interactions."""
    channel_id = make_channel(app, "oa", OA_CREDS)
    wecom_id = make_channel(app, "wecom", WECOM_CREDS)
    with session_of(app) as session:
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
        session.add(
            Identity(
                workspace_id=ws,
                contact_id=people["buyer"].id,
                kind=IdentityKind.EXTERNAL_USERID,
                channel_id=wecom_id,
                value="wm_buyer",
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
            "wecom": wecom_id,
            "tags": tags,
            "ids": {name: c.id for name, c in people.items()},
        }


def committee_accounts(app) -> dict[str, int]:
    """Three accounts, scored under the shipped model:
    甲: a target; CIO (VP, 90 minutes live), engineer and procurement engaged, pricing read:
        tier 2 (intent, no ACV for tier 1), MQA (three roles, a VP with 60+ minutes).
    乙: not a target, an engineer's form: no tier, no MQA.
    丙: a target; CIO (VP, 120 minutes) and an engineer: tier 3, no MQA (two roles)."""
    ws = workspace_id(app)
    now = utcnow()
    ids = {}
    with session_of(app) as session:

        def company(name, **fields):
            row = Account(workspace_id=ws, name=name, normalized_name=name, **fields)
            session.add(row)
            session.flush()
            ids[name] = row.id
            return row

        def person(account, role, seniority, *touches):
            row = Contact(workspace_id=ws, account_id=account.id, role=role, seniority=seniority)
            session.add(row)
            session.flush()
            for kind, days, minutes, properties in touches:
                session.add(
                    Interaction(
                        workspace_id=ws,
                        contact_id=row.id,
                        account_id=account.id,
                        kind=kind,
                        properties=properties,
                        engagement_minutes=minutes,
                        occurred_at=now - timedelta(days=days),
                    )
                )

        first = company("甲公司", is_target=True)
        person(
            first,
            "cio",
            "vp",
            ("live.watch", 10, 90, {}),
            ("content.view", 1, 0, {"topics": ["pricing"]}),
        )
        person(first, "engineer", "staff", ("wechat.message", 5, 0, {}))
        person(first, "procurement", "staff", ("wechat.message", 5, 0, {}))
        second = company("乙公司")
        person(second, "engineer", "staff", ("form.submit", 3, 0, {}))
        third = company("丙公司", is_target=True)
        person(third, "cio", "vp", ("live.watch", 10, 120, {}))
        person(third, "engineer", "staff", ("wechat.message", 5, 0, {}))
        session.flush()
        Scorer.load(session, ws).rescore_history()
        session.commit()
    return ids


def touches(app, channel_id, rows_: list[tuple]) -> int:
    """Interactions (kind, scene, person, when) through the channel, each person a contact
    made on first mention; returns the workspace id."""
    with session_of(app) as session:
        ws = session.get(Channel, channel_id).workspace_id
        people: dict[str, int] = {}
        for kind, scene, person, when in rows_:
            if person not in people:
                contact = Contact(workspace_id=ws, name=person)
                session.add(contact)
                session.flush()
                people[person] = contact.id
            session.add(
                Interaction(
                    workspace_id=ws,
                    contact_id=people[person],
                    channel_id=channel_id,
                    kind=kind,
                    properties={"scene": scene},
                    occurred_at=when,
                )
            )
        session.commit()
        return ws


# ---- tags and rules ------------------------------------------------------------------------


def add_tag(app, group, name, *, workspace="acme", **fields) -> int:
    with session_of(app) as session:
        ws = workspace_named(session, workspace)
        tag = Tag(workspace_id=ws.id, group=group, name=name, **fields)
        session.add(tag)
        session.commit()
        return tag.id


def tag_ids(app, *names: str) -> list[int]:
    """Tags "group:name" of the acme workspace, created when new."""
    with session_of(app) as session:
        ws = workspace_named(session, "acme").id
        book = TagBook(session, ws)
        ids = [book.get(session, *name.split(":", 1)).id for name in names]
        session.commit()
        return ids


def add_rule(
    app, tag=None, *, workspace="acme", kind="keyword", name=None, config=None, **fields
) -> int:
    """A tag rule applying `tag`: a tag's id, or "group:name" (made when new); unless told,
    a keyword rule on messages containing 报价."""
    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        if isinstance(tag, str):
            tag = TagBook(session, ws).get(session, *tag.split(":", 1)).id
        rule = TagRule(
            workspace_id=ws,
            tag_id=tag,
            kind=kind,
            name=name or f"{kind} rule",
            config=config if config is not None else {"match": "contains", "pattern": "报价"},
            **fields,
        )
        session.add(rule)
        session.commit()
        return rule.id


# ---- content, tracked links, forms ---------------------------------------------------------


def make_content(app, workspace="acme", **values) -> int:
    """A content item (a white paper unless told)."""
    values = {"title": "2026 制造业数字化白皮书", "url": "https://example.com/wp", **values}
    with session_of(app) as session:
        content = Content(workspace_id=workspace_named(session, workspace).id, **values)
        session.add(content)
        session.commit()
        return content.id


def make_link(app, *, content_id=None, form_id=None, channel_id=None, medium="menu", label=""):
    """A tracked link; returns (id, code)."""
    with session_of(app) as session:
        target = session.get(Content, content_id) if content_id else None
        ws = target.workspace_id if target else workspace_id(app)
        link = create_link(
            session,
            ws,
            content_id=content_id,
            form_id=form_id,
            channel_id=channel_id,
            medium=medium,
            label=label,
        )
        session.commit()
        return link.id, link.code


def make_content_with_link(
    app, channel_id, *, url="https://example.com/pricing", body=None, topics=None
) -> tuple[int, str]:
    """A pricing article at `url` (or, with a body, a hosted page) and its tracked link in
    the channel's menu; returns (content id, link code)."""
    content_id = make_content(
        app,
        kind=ContentKind.PAGE if body else ContentKind.ARTICLE,
        title="价格方案",
        url=None if body else url,
        body=body,
        topics=topics if topics is not None else ["pricing"],
        products=["harpoon"],
    )
    _, code = make_link(app, content_id=content_id, channel_id=channel_id, medium=LinkMedium.MENU)
    return content_id, code


def view(app, link_id: int, *, contact_id=None, days_ago: float = 0, **fields) -> int:
    """A page view through a link, `days_ago` days back."""
    with session_of(app) as session:
        link = session.get(TrackedLink, link_id)
        row = PageView(
            workspace_id=link.workspace_id,
            link_id=link.id,
            content_id=link.content_id,
            form_id=link.form_id,
            channel_id=link.channel_id,
            contact_id=contact_id,
            openid=f"o_{contact_id}" if contact_id else None,
            started_at=utcnow() - timedelta(days=days_ago),
            **fields,
        )
        session.add(row)
        session.commit()
        return row.id


def make_form(app, workspace="acme", **values) -> int:
    """A form asking for a name and a phone (a demo's booking unless told)."""
    values = {
        "title": "预约演示",
        "fields": {"name": "required", "phone": "required"},
        "consent_text": "我同意",
        **values,
    }
    with session_of(app) as session:
        form = Form(workspace_id=workspace_id(app, workspace), **values)
        session.add(form)
        session.commit()
        return form.id


def make_form_with_link(app, channel_id, **overrides) -> str:
    """A registration form handing out a white paper, tagging its fillers and following up
    by WeChat and email, with its QR code's tracked link; returns the link's code."""
    paper = make_content(app, kind="download", title="AI 白皮书", url="https://x.cn/ai.pdf")
    tag = add_tag(app, TagGroup.INTEREST, "AI 白皮书")
    form_id = make_form(
        app,
        title="领取 AI 白皮书",
        fields={
            "name": "required",
            "company": "required",
            "title": "required",
            "phone": "required",
            "email": "optional",
        },
        consent_text="我同意接收产品资讯",
        tag_ids=[tag],
        download_content_id=paper,
        follow_up={"wechat": True, "email": True, "message": "感谢报名，白皮书在这里"},
        **overrides,
    )
    _, code = make_link(app, form_id=form_id, channel_id=channel_id, medium=LinkMedium.QR)
    return code


def make_submission(app, form_id: int, nonce: str, **fields) -> int:
    """A submission of the form, as the hosted form records one."""
    with session_of(app) as session:
        row = FormSubmission(workspace_id=workspace_id(app), form_id=form_id, nonce=nonce, **fields)
        session.add(row)
        session.commit()
        return row.id


# ---- journeys ------------------------------------------------------------------------------

# "Add our WeCom, then get the live-stream link" — and whoever watches the live stream
# first enters at the follow-up, skipping the link.
LIVE_THEN_WECOM = {
    "scope": "contact",
    "reentry": "once",
    "goals": [{"kind": "sales.meeting"}],
    "nodes": [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "wecom.contact_added"}},
            "next": "send_link",
        },
        {
            "id": "send_link",
            "type": "action",
            "action": {"kind": "wecom_message", "text": "直播链接：https://live.example/1"},
            "skip_if": {"event": {"kind": "live.watch"}, "since": "ever"},
            "next": "wait_watch",
        },
        {
            "id": "wait_watch",
            "type": "wait",
            "wait": {"event": {"kind": "live.watch"}, "timeout_minutes": 2880},
            "next": "follow_up",
            "timeout_next": "nudge",
        },
        {
            "id": "nudge",
            "type": "action",
            "action": {"kind": "notify_owner", "text": "客户未观看直播，请跟进"},
            "next": "done",
        },
        {
            "id": "follow_up",
            "type": "action",
            "trigger": {"kind": "interaction", "event": {"kind": "live.watch"}},
            "action": {"kind": "add_tag", "tag_id": 7},
            "next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}


def with_own_tag(session, ws: int, document: dict) -> dict:
    """The document, its follow-up tagging with a tag of the workspace."""
    tag = session.scalar(select(Tag).where(Tag.workspace_id == ws, Tag.name == "看过直播"))
    if tag is None:
        tag = Tag(workspace_id=ws, group="behavior", name="看过直播")
        session.add(tag)
        session.flush()
    document = copy.deepcopy(document)
    for node in document["nodes"]:
        if node["id"] == "follow_up":
            node["action"]["tag_id"] = tag.id
    return document


def make_journey(app, name="直播跟进", live=True, document=None) -> int:
    """The acme workspace's journey (LIVE_THEN_WECOM unless told), put live unless told."""
    with session_of(app) as session:
        ws = workspace_named(session, "acme").id
        document = with_own_tag(session, ws, document or LIVE_THEN_WECOM)
        journey = create_journey(session, ws, name, "WeCom, then the live stream", document, None)
        if live:
            go_live(session, journey)
        session.commit()
        return journey.id


def enrol(app, journey_id, node, status="active", version=1, contact_id=None, **fields):
    """An enrolment in the journey, at `node`."""
    with session_of(app) as session:
        journey = session.get(Journey, journey_id)
        enrolment = Enrolment(
            workspace_id=journey.workspace_id,
            journey_id=journey_id,
            version=version,
            contact_id=contact_id,
            node_id=node,
            status=status,
            entered_node=fields.pop("entered_node", "start"),
            next_run_at=utcnow(),
            **fields,
        )
        session.add(enrolment)
        session.commit()
        return enrolment.id


def log_step(app, enrolment_id, node, outcome, visit, detail=None):
    """A step of the enrolment, logged as the runner logs one."""
    with session_of(app) as session:
        enrolment = session.get(Enrolment, enrolment_id)
        session.add(
            Step(
                enrolment_id=enrolment_id,
                journey_id=enrolment.journey_id,
                version=enrolment.version,
                node_id=node,
                visit=visit,
                outcome=outcome,
                detail=detail or {},
            )
        )
        session.commit()


def webhook_journey(app, workspace_id: int, url: str) -> int:
    """A live journey posting a webhook to `url` for each form submitted."""
    document = {
        "scope": "contact",
        "reentry": "always",
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "form.submit"}},
                "next": "call",
            },
            {"id": "call", "type": "action", "action": {"kind": "webhook", "url": url}},
        ],
    }
    with session_of(app) as session:
        journey = Journey(
            workspace_id=workspace_id, name="crm", status=JourneyStatus.LIVE, live_version=1
        )
        session.add(journey)
        session.flush()
        session.add(JourneyVersion(journey_id=journey.id, version=1, document=document))
        session.commit()
        return journey.id


def with_secret(app, workspace_id: int) -> str:
    """The workspace's new webhook signing secret."""
    with session_of(app) as session:
        new = rotate_secret(session, workspace_id)
        session.commit()
        return new.secret


# ---- segments, pushes, QR codes ------------------------------------------------------------

PUSH_TEXT = {"type": "text", "text": "华东区 CIO 闭门会本周五举行，欢迎报名。"}


def tag_segment(app, contact_ids, name="vip", *, synced=False) -> int:
    """A segment of one manual tag held by these contacts (mirrored to the OA: synced)."""
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        book = TagBook(session, workspace_id)
        tag = book.get(session, TagGroup.MANUAL, name)
        tag.sync_wechat = synced
        apply_tags(session, book, contact_ids, [tag], source=TagSource.MANUAL)
        segment = SavedSegment(
            workspace_id=workspace_id,
            name=name,
            document=Segment(tags_any=(tag.id,)).to_document(),
        )
        session.add(segment)
        session.commit()
        return segment.id


def add_segment(app, people, name="CIOs", document=None, **extra) -> int:
    """A saved segment of make_people's workspace (its CIOs unless told)."""
    with session_of(app) as session:
        row = SavedSegment(
            workspace_id=people["ws"], name=name, document=document or {"roles": ["cio"]}, **extra
        )
        session.add(row)
        session.commit()
        return row.id


def add_push(app, people, segment_id, status) -> int:
    """A push of make_people's OA to the segment, in this status."""
    with session_of(app) as session:
        push = Push(
            workspace_id=people["ws"],
            channel_id=people["channel"],
            name=f"push {status}",
            content={"type": "text", "text": "hi"},
            segment_id=segment_id,
            status=status,
        )
        session.add(push)
        session.commit()
        return push.id


def make_push(app, channel_id, segment_id=None, content=PUSH_TEXT, **fields) -> int:
    """A push of the channel (scheduled unless told)."""
    with session_of(app) as session:
        push = Push(
            workspace_id=session.get(Channel, channel_id).workspace_id,
            channel_id=channel_id,
            name="CIO 闭门会",
            content=content,
            segment_id=segment_id,
            **{"status": PushStatus.SCHEDULED, **fields},
        )
        session.add(push)
        session.commit()
        return push.id


def make_qr_code(app, channel_id, **values) -> QrCode:
    """A channel QR code made through the OA's API (permanent unless told); the detached
    row."""
    values = {"name": "2026 展会", "permanent": True, **values}
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        client = harpoon_of(app).wechat.oa(channel.app_id, OA_SECRET)
        code = create_qr_code(session, channel, client, **values)
        session.commit()
        session.refresh(code)
        session.expunge(code)
        return code


# ---- the WeCom side of selling -------------------------------------------------------------

WELCOME = "{name}您好，我是{staff}，为您准备了{last_read}。"


def add_way(app, channel_id, state="expo-booth", *, tag=None, welcome=WELCOME) -> int:
    """A 联系我 code of 张三's, tagging with `tag` ("group:name") when given."""
    with session_of(app) as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        tag_ids = [TagBook(session, workspace_id).get(session, *tag.split(":")).id] if tag else []
        way = ContactWay(
            workspace_id=workspace_id,
            channel_id=channel_id,
            name="展会展台",
            state=state,
            staff_userids=["zhangsan"],
            tag_ids=tag_ids,
            welcome_text=welcome,
        )
        session.add(way)
        session.commit()
        return way.id


def add_relation(app, channel_id, *, staff_userid, external_userid, name, way=None, **fields):
    """A customer in a salesperson's contacts, as the callback pipeline records one."""
    with session_of(app) as session:
        workspace = workspace_named(session, "acme")
        contact = Contact(workspace_id=workspace.id, name=name)
        if fields.pop("account", None):
            contact.account_id = account_named(session, workspace.id, "华信科技").id
        session.add(contact)
        session.flush()
        session.add(
            FollowRelation(
                workspace_id=workspace.id,
                channel_id=channel_id,
                contact_id=contact.id,
                external_userid=external_userid,
                staff_userid=staff_userid,
                state=way.state if way else None,
                contact_way_id=way.id if way else None,
                added_at=fields.pop("added_at", utcnow()),
                **fields,
            )
        )
        session.commit()
        return contact.id


def add_welcomes(app, channel_id, rows) -> dict[str, int]:
    """张三's welcome messages, rows: (external_userid, status, received hours ago, seconds
    late, error); returns the contact ids by external_userid."""
    contacts = {}
    with session_of(app) as session:
        ws = session.get(Channel, channel_id).workspace_id
        session.add(Staff(workspace_id=ws, channel_id=channel_id, userid="zhangsan", name="张三"))
        for external_userid, status, hours_ago, late, error in rows:
            contact = Contact(workspace_id=ws, name=f"客户{external_userid}")
            session.add(contact)
            session.flush()
            contacts[external_userid] = contact.id
            received = utcnow() - timedelta(hours=hours_ago)
            session.add(
                WelcomeMessage(
                    workspace_id=ws,
                    channel_id=channel_id,
                    contact_id=contact.id,
                    external_userid=external_userid,
                    staff_userid="zhangsan",
                    welcome_code=f"code-{external_userid}",
                    status=status,
                    error=error,
                    added_at=received - timedelta(seconds=late),
                    received_at=received,
                )
            )
        session.commit()
    return contacts


def add_group_send(app, channel_id, **fields) -> int:
    """A group send by 张三 of the corp."""
    with session_of(app) as session:
        group_send = GroupSend(
            workspace_id=session.get(Channel, channel_id).workspace_id,
            channel_id=channel_id,
            staff_userid="zhangsan",
            **{"text": "本周五下午两点，华东区 CIO 闭门会，欢迎报名。", **fields},
        )
        session.add(group_send)
        session.commit()
        return group_send.id


# ---- the sales home: tasks, snapshots, stage moves, owner events, reading ----------------


def make_task(
    app,
    title="给李总打电话",
    *,
    due_at=None,
    due_in=timedelta(hours=4),
    workspace="acme",
    status=TaskStatus.OPEN,
    source=TaskSource.MANUAL,
    **fields,
) -> int:
    """A task of the workspace due at `due_at` (or `due_in` from now); assignee_id,
    account_id, contact_id... by keyword."""
    with session_of(app) as session:
        task = Task(
            workspace_id=workspace_named(session, workspace).id,
            title=title,
            due_at=due_at or utcnow() + due_in,
            status=status,
            source=source,
            **fields,
        )
        session.add(task)
        session.commit()
        return task.id


def make_snapshot(app, account_id, day, score, **fields) -> int:
    """The account's end-of-day snapshot of `day` (a date) at `score`."""
    with session_of(app) as session:
        account = session.get(Account, account_id)
        row = AccountSnapshot(
            workspace_id=account.workspace_id, account_id=account_id, day=day, score=score, **fields
        )
        session.add(row)
        session.commit()
        return row.id


def make_stage_change(app, account_id, from_stage, to_stage, *, at, reason="销售确认") -> int:
    """The account moved between stages at `at` (the account's stage is set too)."""
    with session_of(app) as session:
        account = session.get(Account, account_id)
        account.stage = to_stage
        account.stages_reached = reached(account.stages_reached, to_stage)
        row = StageChange(
            workspace_id=account.workspace_id,
            subject="account",
            subject_id=account_id,
            from_stage=from_stage,
            to_stage=to_stage,
            reason=reason,
            changed_at=at,
        )
        session.add(row)
        session.commit()
        return row.id


def make_account_event(app, account_id, kind, text, *, at, user_id=None) -> int:
    """An entry on the account's sales timeline at `at`."""
    with session_of(app) as session:
        account = session.get(Account, account_id)
        row = AccountEvent(
            workspace_id=account.workspace_id,
            account_id=account_id,
            kind=kind,
            text=text,
            user_id=user_id,
            created_at=at,
        )
        session.add(row)
        session.commit()
        return row.id


def make_reading(app, contact_id, title, minutes, *, at, kind="content.read") -> int:
    """The contact read the content titled `title` for `minutes` at `at` (an interaction)."""
    with session_of(app) as session:
        contact = session.get(Contact, contact_id)
        row = Interaction(
            workspace_id=contact.workspace_id,
            contact_id=contact_id,
            account_id=contact.account_id,
            kind=kind,
            properties={"title": title},
            engagement_minutes=minutes,
            occurred_at=at,
        )
        session.add(row)
        session.commit()
        return row.id


def home_scenario(app, now, *, workspace="acme") -> dict:
    """A salesperson's day as of `now` (a UTC time; "yesterday" in Asia/Shanghai), for the
    sales home. 张三 (sales) owns:
      云帆科技: entered MQA 2 hours ago, score 62 (61 yesterday);
      数智集团: surging ×3.2 (a weekly surge), score 75 (75 yesterday);
      远景能源: 李总, its CIO, first seen an hour ago; a marketer seen then too (no
        committee role);
      华信科技: score 90 (80 yesterday), moved from engaged to meeting 50 minutes ago;
      东方物流: quiet (40, 40 yesterday), routed to 张三 three hours ago.
    李四 (sales) owns 北辰制造, which entered MQA an hour ago and moved stage. Tasks: 张三's
    overdue call, a follow-up due in the last minute of today, one tomorrow, one done; 李四's
    due today. Reading today: 王工 of 华信科技 (two articles), 赵总 of 北辰制造 (李四's);
    王工 read yesterday too. Returns the ids by name (users, accounts, contacts, tasks)."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    yesterday = local.date() - timedelta(days=1)
    end_of_today = datetime.combine(
        local.date() + timedelta(days=1), datetime.min.time(), tzinfo=local.tzinfo
    )
    ids = {
        "zhangsan": make_user(app, "sales", workspace, email=f"zhangsan@{workspace}.example"),
        "lisi": make_user(app, "sales", workspace, email=f"lisi@{workspace}.example"),
    }
    with session_of(app) as session:
        for key, name in (("zhangsan", "张三"), ("lisi", "李四")):
            session.get(User, ids[key]).name = name
        session.commit()
    mine = ids["zhangsan"]
    accounts = {
        "云帆科技": dict(score=62, mqa=True, mqa_since=now - timedelta(hours=2), stage="mqa"),
        "数智集团": dict(score=75, surging=True, surge_ratio=3.2, tier=1, stage="engaged"),
        "远景能源": dict(score=30, stage="aware"),
        "华信科技": dict(score=90, tier=2, stage="engaged"),
        "东方物流": dict(score=40, stage="aware"),
    }
    for name, fields in accounts.items():
        ids[name] = make_account(app, name, workspace=workspace, owner_id=mine, **fields)
    ids["北辰制造"] = make_account(
        app,
        "北辰制造",
        workspace=workspace,
        owner_id=ids["lisi"],
        score=80,
        mqa=True,
        mqa_since=now - timedelta(hours=1),
    )
    for name, score in (
        ("云帆科技", 61),
        ("数智集团", 75),
        ("远景能源", 30),
        ("华信科技", 80),
        ("东方物流", 40),
    ):
        make_snapshot(app, ids[name], yesterday, score)
    make_stage_change(app, ids["华信科技"], "engaged", "meeting", at=now - timedelta(minutes=50))
    make_stage_change(app, ids["华信科技"], "aware", "engaged", at=now - timedelta(days=3))
    make_stage_change(app, ids["北辰制造"], "engaged", "mqa", at=now - timedelta(hours=1))
    make_account_event(
        app, ids["东方物流"], "routed", "按区域（华东）分配给张三", at=now - timedelta(hours=3)
    )
    people = (
        ("李总", "远景能源", "CIO", "cio", timedelta(hours=1)),
        ("小陈", "远景能源", "市场专员", "marketing", timedelta(hours=1)),
        ("王工", "华信科技", "IT 经理", "it_manager", timedelta(days=30)),
        ("赵总", "北辰制造", "CTO", "cto", timedelta(days=30)),
    )
    for name, account, title, role, ago in people:
        seen = now - ago
        with session_of(app) as session:
            contact = Contact(
                workspace_id=workspace_named(session, workspace).id,
                name=name,
                title=title,
                role=role,
                account_id=ids[account],
                first_seen_at=seen,
                last_seen_at=seen,
            )
            session.add(contact)
            session.commit()
            ids[name] = contact.id
    start_of_today = end_of_today - timedelta(days=1)

    def today(ago):  # `ago` back, but today still (just after midnight: at midnight)
        return max(now - ago, start_of_today)

    make_reading(app, ids["王工"], "制造业数字化白皮书", 3.5, at=today(timedelta(minutes=30)))
    make_reading(
        app,
        ids["王工"],
        "制造业数字化白皮书",
        0,
        at=today(timedelta(minutes=34)),
        kind="content.view",
    )
    make_reading(app, ids["王工"], "MES 选型指南", 2.0, at=today(timedelta(minutes=10)))
    make_reading(app, ids["王工"], "旧文章", 9.0, at=start_of_today - timedelta(hours=1))
    make_reading(app, ids["赵总"], "价格说明", 4.0, at=today(timedelta(minutes=20)))
    for key, title, assignee, due, extra in (
        (
            "overdue",
            "给华信科技王工回电话",
            mine,
            now - timedelta(days=1),
            {"account_id": ids["华信科技"], "contact_id": ids["王工"]},
        ),
        (
            "today",
            "跟进云帆科技的 MQA",
            mine,
            end_of_today - timedelta(minutes=1),
            {"account_id": ids["云帆科技"]},
        ),
        ("tomorrow", "准备数智集团方案", mine, end_of_today + timedelta(hours=10), {}),
        ("done", "已完成的任务", mine, now - timedelta(hours=5), {"status": TaskStatus.DONE}),
        (
            "theirs",
            "李四的任务",
            ids["lisi"],
            now - timedelta(hours=1),
            {"account_id": ids["北辰制造"]},
        ),
    ):
        ids[f"task:{key}"] = make_task(
            app, title, assignee_id=assignee, due_at=due, workspace=workspace, **extra
        )
    return ids


# ---- people on the sandbox platform --------------------------------------------------------


def add_staff(platform, userid, name, *, creds=WECOM_CREDS, email="", customer_contact=True):
    """A member joins the corp in WeCom (Harpoon learns of them by syncing)."""
    return wecom.add_staff(
        platform.state,
        platform.state.tenant(creds.app_id),
        userid,
        name,
        email=email,
        customer_contact=customer_contact,
    )


def add_followers(platform, count, *, app_id=OA_CREDS.app_id):
    """`count` people follow the OA in the sandbox: o_0000, o_0001, ..."""
    tenant = platform.state.tenant(app_id)
    for n in range(count):
        sandbox_oa.follow(platform.state, tenant, f"o_{n:04d}")


def add_customer(sandbox_state, corp, external_userid, userid="alice", **kwargs):
    """A customer adds the staff member `userid` in WeCom (named after their id)."""
    kwargs.setdefault("name", external_userid.upper())
    return wecom.add_external_contact(
        sandbox_state, corp, userid=userid, external_userid=external_userid, **kwargs
    )


def add_corp_tags(api, token, tags, **group):
    """Corp tags of these names, added through the WeCom API; its answer."""
    payload = {**group, "tag": [{"name": name} for name in tags]}
    return api.post(
        "/wecom/cgi-bin/externalcontact/add_corp_tag",
        query_string={"access_token": token},
        json=payload,
    ).json


def add_template(wx, short_id="TM00015"):
    """A template from the library, added through the OA API; its answer."""
    return wx.post("template/api_add_template", {"template_id_short": short_id})


def put_customers_in_account(app, channel_id, account_id, external_userids) -> list[int]:
    """The WeCom customers (contacts known by their external_userid) join the account;
    their contact ids."""
    with session_of(app) as session:
        contacts = session.scalars(
            select(Contact)
            .join(Identity, Identity.contact_id == Contact.id)
            .where(
                Identity.kind == IdentityKind.EXTERNAL_USERID,
                Identity.channel_id == channel_id,
                Identity.value.in_(list(external_userids)),
            )
        ).all()
        for contact in contacts:
            contact.account_id = account_id
        session.commit()
        return [contact.id for contact in contacts]


# ---- routing -------------------------------------------------------------------------------


def make_salesperson(app, name: str, userid: str, *, role="sales", workspace="acme") -> int:
    """A user named `name` who is also WeCom staff `userid` (so notifications reach them)."""
    with session_of(app) as session:
        user = create_user(
            session,
            workspace_named(session, workspace),
            f"{userid}@{workspace}.example",
            name,
            PASSWORD,
            role,
        )
        session.commit()
        user_id = user.id
    if workspace == "acme":
        make_staff(app, name, userid, user_id=user_id)
    return user_id


def make_routing_rule(app, name: str, user_ids: list[int], *, workspace="acme", **fields) -> int:
    """A routing rule (round-robin, no cap, any territory unless given), last in order."""
    with session_of(app) as session:
        values = {
            "name": name,
            "enabled": True,
            "regions": [],
            "industries": [],
            "tiers": [],
            "user_ids": user_ids,
            "method": "round_robin",
            "capacity": None,
            **fields,
        }
        rule = save_rule(session, workspace_named(session, workspace).id, values)
        session.commit()
        return rule.id


def make_customer(
    app, channel_id, external_userid, name, *, staff_userid=None, workspace="acme", **fields
) -> int:
    """A WeCom customer of the corp `channel_id`: a contact with that external_userid,
    in `staff_userid`'s contacts when given."""
    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        contact = Contact(workspace_id=ws, name=name, **fields)
        session.add(contact)
        session.flush()
        session.add(
            Identity(
                workspace_id=ws,
                contact_id=contact.id,
                kind=IdentityKind.EXTERNAL_USERID,
                channel_id=channel_id,
                value=external_userid,
            )
        )
        if staff_userid is not None:
            session.add(
                FollowRelation(
                    workspace_id=ws,
                    channel_id=channel_id,
                    contact_id=contact.id,
                    external_userid=external_userid,
                    staff_userid=staff_userid,
                    added_at=utcnow(),
                )
            )
        session.commit()
        return contact.id


# ---- sales: tasks and digests --------------------------------------------------------------


def mqa_committee(app, name="华信科技", *, owner_id=None, **fields) -> tuple[int, list[int]]:
    """A target account whose committee meets the shipped MQA rule (a VP who watched 90
    minutes, two more roles): (account id, its interactions' ids), not scored yet."""
    with session_of(app) as session:
        ws = workspace_named(session, "acme").id
        account = Account(
            workspace_id=ws,
            name=name,
            normalized_name=normalize_company(name),
            owner_id=owner_id,
            is_target=True,
            **fields,
        )
        session.add(account)
        session.flush()
        ids = []
        for role, seniority, kind, minutes in (
            ("cio", "vp", "live.watch", 90),
            ("engineer", "staff", "wechat.message", 0),
            ("procurement", "staff", "wechat.message", 0),
        ):
            person = Contact(workspace_id=ws, account_id=account.id, role=role, seniority=seniority)
            session.add(person)
            session.flush()
            touch = Interaction(
                workspace_id=ws,
                contact_id=person.id,
                account_id=account.id,
                kind=kind,
                properties={},
                engagement_minutes=minutes,
                occurred_at=utcnow() - timedelta(days=1),
            )
            session.add(touch)
            session.flush()
            ids.append(touch.id)
        session.commit()
        return account.id, ids


# ---- revenue ---------------------------------------------------------------------------------


def make_opportunity(
    app,
    account_id: int,
    *,
    workspace="acme",
    external_id=None,
    source="crm",
    name="年度订阅",
    amount="100000",
    stage="qualify",
    **values,
) -> int:
    """An opportunity saved as the CRM API would save it (history and account stage too)."""
    from decimal import Decimal

    values = {"name": name, "amount": Decimal(amount), "stage": stage, **values}
    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        resolved = resolve(session, ws, {**values, "account_id": account_id})
        assert not resolved.errors, resolved.errors
        saved = save_opportunity(
            session, ws, values, resolved, source=source, external_id=external_id
        )
        session.commit()
        return saved.opportunity.id


# ---- prog ----------------------------------------------------------------------------------


def make_program(
    app,
    name="闭门会邀请",
    *,
    tier=1,
    workspace="acme",
    kind="event_invite",
    budget="10000",
    unit_cost="2000",
    active=True,
    **fields,
) -> int:
    """A menu item of a tier's programs."""
    from decimal import Decimal

    from models import Program

    with session_of(app) as session:
        program = Program(
            workspace_id=workspace_named(session, workspace).id,
            tier=tier,
            name=name,
            kind=kind,
            budget=Decimal(budget),
            unit_cost=Decimal(unit_cost) if unit_cost is not None else None,
            active=active,
            **fields,
        )
        session.add(program)
        session.commit()
        return program.id


def make_program_order(
    app, program_id: int, account_id: int, *, workspace="acme", user_id=None, status=None
) -> int:
    """An order requested as a salesperson ticks it; `status` "approved" or "executed"
    takes it on through marketing (executed costs the program's unit cost, today)."""
    from revenue import programs

    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        order = programs.request_program(
            session, ws, program_id=program_id, account_id=account_id, user_id=user_id
        )
        if status in ("approved", "executed"):
            programs.approve(session, order, user_id=None, over_budget_reason="测试")
        if status == "executed":
            program = session.get(programs.Program, program_id)
            programs.execute(
                session, order, user_id=None, cost=program.unit_cost, executed_at=utcnow()
            )
        session.commit()
        return order.id


# ---- kpi ----


def make_interaction(
    app, contact_id, kind, *, at, workspace=None, channel_id=None, **properties
) -> int:
    """An interaction of the contact (on its account; in its workspace unless told) of
    `kind` at `at`, with the account's activity kept as the drain keeps it."""
    with session_of(app) as session:
        contact = session.get(Contact, contact_id)
        ws = workspace_named(session, workspace).id if workspace else contact.workspace_id
        row = Interaction(
            workspace_id=ws,
            contact_id=contact_id,
            account_id=contact.account_id,
            channel_id=channel_id,
            kind=kind,
            properties=properties,
            occurred_at=at,
        )
        session.add(row)
        session.flush()
        note_activity(session, ws, [(contact.account_id, at)])
        session.commit()
        return row.id


# ---- attr ----


def make_push_sent(app, push_id, contact_id, *, at, status="sent") -> None:
    """The push reached the contact at `at`."""
    from models import PushRecipient

    with session_of(app) as session:
        session.add(
            PushRecipient(
                push_id=push_id, contact_id=contact_id, mechanism="cs", status=status, sent_at=at
            )
        )
        session.commit()


def make_journey_step(app, journey_id, contact_id, *, at, detail, outcome="done") -> int:
    """A step of the journey logged for the contact at `at` (its own enrolment)."""
    with session_of(app) as session:
        journey = session.get(Journey, journey_id)
        enrolment = Enrolment(
            workspace_id=journey.workspace_id,
            journey_id=journey_id,
            version=1,
            contact_id=contact_id,
            node_id="n1",
            entered_node="n1",
            status="completed",
        )
        session.add(enrolment)
        session.flush()
        step = Step(
            enrolment_id=enrolment.id,
            journey_id=journey_id,
            version=1,
            node_id="n1",
            outcome=outcome,
            detail=detail,
            at=at,
        )
        session.add(step)
        session.commit()
        return step.id


def make_executed_program(
    app, account_id, *, workspace="acme", name="高管拜访", status="executed", at=None
) -> tuple[int, int]:
    """A tier program and one order of it for the account: (program id, order id)."""
    from decimal import Decimal

    from models import Program, ProgramOrder

    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        program = Program(workspace_id=ws, tier=1, name=name, kind="executive_visit", budget=0)
        session.add(program)
        session.flush()
        order = ProgramOrder(
            workspace_id=ws,
            program_id=program.id,
            account_id=account_id,
            status=status,
            executed_at=at,
            cost=Decimal("5000"),
        )
        session.add(order)
        session.commit()
        return program.id, order.id


# ---- score -----------------------------------------------------------------------------------


def won_and_lost_accounts(app, count: int = 30, workspace="acme") -> dict[str, list[int]]:
    """`count` target accounts, each a VP CIO who read content 30 days ago; two in three
    also booked a demo. Each has a closed opportunity opened 10 days ago: those that booked
    win unless their number is a multiple of 4, the rest lose. Scored for real."""
    from decimal import Decimal

    from models import Account, Contact, Interaction, Opportunity, utcnow

    now = utcnow()
    won, lost = [], []
    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        interactions = []
        for n in range(count):
            name = f"结果客户{n}"
            account = Account(workspace_id=ws, name=name, normalized_name=name, is_target=True)
            session.add(account)
            session.flush()
            person = Contact(workspace_id=ws, account_id=account.id, role="cio", seniority="vp")
            session.add(person)
            session.flush()
            touches = [("content.view", {"topics": ["方案"]})]
            if n % 3:
                touches.append(("wechat.menu_click", {"key": "BOOK_DEMO"}))
            for kind, properties in touches:
                row = Interaction(
                    workspace_id=ws,
                    contact_id=person.id,
                    account_id=account.id,
                    kind=kind,
                    properties=properties,
                    occurred_at=now - timedelta(days=30 + n % 5),
                )
                session.add(row)
                interactions.append(row)
            wins = bool(n % 3 and n % 4)
            session.add(
                Opportunity(
                    workspace_id=ws,
                    account_id=account.id,
                    name="年度订阅",
                    amount=Decimal("100000"),
                    stage="qualify",
                    probability=100 if wins else 0,
                    status="won" if wins else "lost",
                    source="crm",
                    opened_at=now - timedelta(days=10),
                    closed_at=now - timedelta(days=1),
                )
            )
            (won if wins else lost).append(account.id)
        session.flush()
        Scorer.load(session, ws).score_interaction_ids([row.id for row in interactions])
        session.commit()
    return {"won": won, "lost": lost}


SCORING_NOW = datetime(2026, 11, 22, 4, tzinfo=ZoneInfo("UTC"))  # 12:00 in Shanghai


def scoring_account(db, workspace_id: int, name: str | None = None, **fields):
    """An account in the scoring tests' session (named 公司N when no name is given)."""
    from sqlalchemy import func

    from models import Account

    name = name or f"公司{db.scalar(select(func.count()).select_from(Account)) + 1}"
    row = Account(workspace_id=workspace_id, name=name, normalized_name=name, **fields)
    db.add(row)
    db.flush()
    return row


def scoring_contact(db, workspace_id: int, account=None, role=None, seniority=None):
    from models import Contact

    row = Contact(
        workspace_id=workspace_id,
        account_id=account.id if account else None,
        role=role,
        seniority=seniority,
    )
    db.add(row)
    db.flush()
    return row


def scoring_act(db, person, kind: str, *, days_ago=0.0, minutes=0.0, **properties):
    """An interaction of `person`, `days_ago` before SCORING_NOW."""
    from models import Interaction

    row = Interaction(
        workspace_id=person.workspace_id,
        contact_id=person.id,
        account_id=person.account_id,
        kind=kind,
        properties=properties,
        engagement_minutes=minutes,
        occurred_at=SCORING_NOW - timedelta(days=days_ago),
    )
    db.add(row)
    db.flush()
    return row


def score_them(db, workspace_id: int, interactions, now=SCORING_NOW, model=None):
    """Score these interactions as of `now` (under `model` instead of the saved one)."""
    scorer = Scorer.load(db, workspace_id, now)
    if model is not None:
        scorer.model = model
    result = scorer.score_interaction_ids([i.id for i in interactions])
    db.expire_all()
    return result


# ---- ways ----


def add_contact_way_in_wecom(app, channel_id, **settings) -> int:
    """A 联系我 code created in the sandbox's WeCom and stored, as the admin form saves one
    (state "expo", 张三, 李四 and 王五 unless `settings` say otherwise)."""
    from sales.contact_ways import create_contact_way

    data = {
        "name": "展会活码",
        "state": "expo",
        "staff_userids": ["zhangsan", "lisi", "wangwu"],
        "skip_verify": True,
        "tag_ids": [],
        **settings,
    }
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        client = harpoon_of(app).wechat.wecom(channel.app_id, channel.secret)
        way = create_contact_way(session, channel, client, data)
        session.commit()
        return way.id


# ---- posters ----


def poster_background(width=750, height=1334, *, fmt="PNG", color=(250, 236, 214)) -> bytes:
    """A plain design of that size (a warm poster colour), as an upload's bytes."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=fmt)
    return out.getvalue()


# ---- library ----


def png_bytes(width: int = 64, height: int = 36, color=(24, 119, 242)) -> bytes:
    """A real PNG image, drawn by Pillow."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def make_poster(app, *, workspace="acme", content_id=None, form_id=None, **values) -> int:
    """A poster of a content item (made when none is given), its QR box at 255,900 (240
    px) and "{name} 邀请您" at 80,820, saved as the editor saves it."""
    from outreach.posters import load_poster, read_background, save_poster

    if content_id is None and form_id is None and values.get("target") != "contact_way":
        content_id = make_content(app, workspace)
    target = values.pop("target", "form" if form_id else "content")
    background = read_background(values.pop("background", None) or poster_background())
    inputs = {
        "name": "年度大会邀请",
        "target": target,
        "content_id": str(content_id or ""),
        "form_id": str(form_id or ""),
        "qr_x": "255",
        "qr_y": "900",
        "qr_size": "240",
        "text": "{name} 邀请您",
        "text_x": "80",
        "text_y": "820",
        "text_size": "40",
        "text_color": "#333333",
        **{key: str(value) for key, value in values.items()},
    }
    with session_of(app) as session:
        ws = workspace_named(session, workspace).id
        checked = load_poster(inputs, background.width, background.height)
        poster = save_poster(session, ws, checked, background=background, user_id=None)
        session.commit()
        return poster.id


# ---- groups ----


def make_customer_group(app, channel_id, name, members=(), *, owner="zhangsan", **fields) -> int:
    """A WeCom customer group of the corp `channel_id`, owned by `owner`, with `members`:
    (userid, contact id or None, member_type) each, present since an hour ago."""
    from models import CustomerGroup, CustomerGroupMember

    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        joined = utcnow() - timedelta(hours=1)
        group = CustomerGroup(
            workspace_id=channel.workspace_id,
            channel_id=channel_id,
            chat_id=f"wr{name.encode().hex()[:20]}",
            name=name,
            owner_userid=owner,
            member_count=len(members),
            external_count=sum(kind == 2 for _u, _c, kind in members),
            activity_at=joined,
            **fields,
        )
        session.add(group)
        session.flush()
        for userid, contact_id, kind in members:
            session.add(
                CustomerGroupMember(
                    workspace_id=channel.workspace_id,
                    group_id=group.id,
                    userid=userid,
                    member_type=kind,
                    contact_id=contact_id,
                    join_scene=3,
                    joined_at=joined,
                )
            )
        session.commit()
        return group.id


# ---- joinway ----


def make_synced_group(
    app, channel_id, chat_id, name="2026 数字化峰会交流群", *, owner_userid="zhangsan", **fields
) -> int:
    """A customer group of the corp, as the group sync records one."""
    from models import CustomerGroup

    with session_of(app) as session:
        group = CustomerGroup(
            workspace_id=session.get(Channel, channel_id).workspace_id,
            channel_id=channel_id,
            chat_id=chat_id,
            name=name,
            owner_userid=owner_userid,
            **{"member_count": 1, "created_at": utcnow(), **fields},
        )
        session.add(group)
        session.commit()
        return group.id


# ---- mweb ----


def make_email_template(app, *, workspace="acme", name="邀请函", **fields) -> int:
    """An email template of the workspace (subject and body over the person's variables)."""
    from models import EmailTemplate

    with session_of(app) as session:
        row = EmailTemplate(
            workspace_id=workspace_named(session, workspace).id,
            name=name,
            subject=fields.pop("subject", "{{ name }}，您好"),
            body_html=fields.pop(
                "body_html", '<p>{{ company }}</p><a href="https://example.com/a">看看</a>'
            ),
            **fields,
        )
        session.add(row)
        session.commit()
        return row.id


def make_email_message(app, contact_id: int, to: str | None, **fields):
    """A sent email to the contact, with its tracking token; returns the row."""
    from models import Contact, EmailMessage, EmailStatus
    from outreach.emails import new_token

    with session_of(app) as session:
        contact = session.get(Contact, contact_id)
        row = EmailMessage(
            workspace_id=contact.workspace_id,
            idempotency_key=fields.pop("idempotency_key", f"test:{new_token()}"),
            token=fields.pop("token", new_token()),
            contact_id=contact_id,
            to_address=to,
            subject=fields.pop("subject", "新品发布会邀请"),
            status=fields.pop("status", EmailStatus.SENT),
            sent_at=fields.pop("sent_at", utcnow()),
            **fields,
        )
        session.add(row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
        return row


def make_image(db, workspace_id: int, name: str = "封面", data: bytes | None = None):
    """A library image of the workspace (flushed)."""
    from outreach import materials

    return materials.save_image(
        db, workspace_id, name=name, filename=f"{name}.png", data=data or png_bytes()
    )


def make_article(db, workspace_id: int, cover_id: int, **values):
    """A library article with its cover (flushed)."""
    from outreach import materials

    raw = {
        "name": "ABM 实战",
        "title": "ABM 实战：找准采购委员会",
        "author": "市场部",
        "digest": "三步找准 B2B 采购委员会",
        "body": "第一段。\n\n第二段 <b>不是标签</b>。",
        "url": "https://example.com/abm",
        "cover_id": cover_id,
        **values,
    }
    return materials.save_card(db, workspace_id, "article", raw)


def make_card(db, workspace_id: int, kind: str, cover_id: int | None = None, **values):
    """A library link card or mini-program card (flushed)."""
    from outreach import materials

    raw = {"name": kind, "title": f"{kind} 标题", "cover_id": cover_id, **values}
    if kind == "link":
        raw.setdefault("url", "https://example.com/link")
    else:
        raw.setdefault("appid", "wx1234567890abcdef")
        raw.setdefault("page_path", "pages/index/index")
    return materials.save_card(db, workspace_id, kind, raw)


def make_group_member(
    app, group_id, userid, *, state=None, joined_at=None, contact_id=None, **fields
) -> int:
    """A customer in the group (joined by QR code through `state`, when given)."""
    from models import CustomerGroup, CustomerGroupMember, GroupMemberType

    with session_of(app) as session:
        member = CustomerGroupMember(
            workspace_id=session.get(CustomerGroup, group_id).workspace_id,
            group_id=group_id,
            userid=userid,
            member_type=GroupMemberType.EXTERNAL,
            contact_id=contact_id,
            state=state,
            join_scene=3 if state else 1,
            joined_at=joined_at or utcnow(),
            **fields,
        )
        session.add(member)
        session.commit()
        return member.id


def make_join_way(app, channel_id, chat_ids, state="summit2026", **fields) -> int:
    """A 群活码 row, as sales.join_ways stores one after WeCom accepted it."""
    from models import GroupJoinWay

    with session_of(app) as session:
        way = GroupJoinWay(
            workspace_id=session.get(Channel, channel_id).workspace_id,
            channel_id=channel_id,
            chat_ids=list(chat_ids),
            state=state,
            **{"name": "2026 数字化峰会", "config_id": f"cfg-{state}", **fields},
        )
        session.add(way)
        session.commit()
        return way.id


# ---- mengine ----

EMAIL_SUBJECT = "{{ name }}，{{ company }} 的云迁移白皮书"
EMAIL_BODY = (
    "<p>{{ name }} 您好：</p><p>{{ owner }} 为您准备了"
    '<a href="https://harpoon.example/wp">白皮书</a>。</p>'
)


def add_email_template(app, workspace="acme", **values) -> int:
    """An email template of the workspace (the white paper's, unless told)."""
    with session_of(app) as session:
        template = EmailTemplate(
            workspace_id=workspace_named(session, workspace).id,
            **{"name": "白皮书", "subject": EMAIL_SUBJECT, "body_html": EMAIL_BODY, **values},
        )
        session.add(template)
        session.commit()
        return template.id


def add_emailed_contact(app, name, address=None, *, workspace="acme", **fields) -> int:
    """A contact with this email address (none when None)."""
    contact_id = make_contact(app, name, workspace=workspace, **fields)
    if address:
        add_identity(app, contact_id, IdentityKind.EMAIL, address)
    return contact_id
