"""Names marketers and followers choose never run as script: the demo workspace, with a
value that would run if it reached markup unescaped planted in every such name, then every
admin and readers' page rendered and every chart point and node hovered so its tooltip's
HTML is built. Any run of the planted script (a binding call, a window flag, a dialog)
fails the test; a refusal by the Content-Security-Policy fails it too (the page fixture)."""

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import String, select, update
from sqlalchemy.orm import make_transient

from demo.data import ARTICLE_LINKS, demo_links
from demo.seed import (
    CONTACT_STATES,
    DEMO_CORP_ID,
    DEMO_LOGIN,
    DEMO_OA_APPID,
    DEMO_PASSWORD,
    STAFF,
    issue_demo_api_key,
    register_tenants,
    seed_demo_group,
    seed_platform,
    seed_workspace,
)
from models import (
    Account,
    AccountEvent,
    AccountImport,
    ApiKey,
    Channel,
    ChannelKind,
    Contact,
    ContactWay,
    Content,
    CustomerGroup,
    CustomerGroupMember,
    EmailMessage,
    EmailSuppression,
    EmailTemplate,
    FollowRelation,
    Form,
    GroupJoinWay,
    GroupSend,
    GroupWelcomeTemplate,
    InboundEvent,
    Journey,
    JourneyVersion,
    Material,
    MenuStatus,
    MenuVersion,
    Opportunity,
    OpportunityImport,
    PageView,
    PipelineStage,
    Program,
    ProgramOrder,
    Push,
    PushStatus,
    QrCode,
    RoutingRule,
    SalesNote,
    SavedSegment,
    ScoringModel,
    Staff,
    StaffNotification,
    StageChange,
    Tag,
    TagRule,
    Task,
    TitleSynonym,
    TrackedLink,
    Transfer,
    TransferKind,
    User,
    WelcomeMessage,
    Workspace,
    utcnow,
)
from outreach import menus, posters
from revenue.imports import run_opportunity_import
from revenue.opportunities import resolve, save_opportunity
from sales.tasks import add_note, create_task
from sales.transfers import create_transfer
from scoring.engine import load_model
from tests.browser.helpers import screenshot
from tests.factories import poster_background
from tests.helpers import harpoon_of, run_jobs
from wechat import simulate
from wechat.clients import WeChatClients
from wechat.sandbox import wecom_groups
from wechat.sandbox.simulator import Simulator
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox

# Every marketer- or follower-editable text column, by model.
PLANTED_COLUMNS = {
    Account: ("name",),
    AccountImport: ("filename",),
    Opportunity: ("name", "lost_reason"),
    OpportunityImport: ("filename",),
    PipelineStage: ("name",),
    ApiKey: ("name",),
    Channel: ("name",),
    Contact: ("name", "company", "title"),
    CustomerGroup: ("name", "notice"),
    CustomerGroupMember: ("name",),
    Content: ("title", "summary", "body"),
    ContactWay: ("name", "welcome_text"),
    FollowRelation: ("remark", "description", "remark_corp_name"),
    Form: ("title", "intro", "consent_text", "thank_you"),
    GroupSend: ("text",),
    GroupJoinWay: ("name", "room_base_name"),
    GroupWelcomeTemplate: ("name", "text", "link_title", "link_desc"),
    Journey: ("name", "description"),
    JourneyVersion: ("note",),
    Material: ("name", "title", "digest", "url"),
    MenuVersion: ("note",),
    Program: ("name", "description"),
    ProgramOrder: ("note",),
    Push: ("name",),
    QrCode: ("name", "welcome_reply"),
    SavedSegment: ("name", "description"),
    RoutingRule: ("name",),
    SalesNote: ("text",),
    AccountEvent: ("text",),
    Task: ("title",),
    ScoringModel: ("note",),
    Staff: ("name",),
    StaffNotification: ("text",),
    StageChange: ("reason",),
    Tag: ("name", "description"),
    TagRule: ("name", "reply"),
    TitleSynonym: ("phrase",),
    TrackedLink: ("label",),
    User: ("name",),
    WelcomeMessage: ("text",),
    Workspace: ("name",),
}
# Names inside documents: menu buttons, push content, segment and scoring parts, node texts.
PLANTED_DOCUMENT_KEYS = frozenset({"name", "title", "description", "text", "label"})
PLANTED_DOCUMENTS = {
    MenuVersion: "document",
    Push: "content",
    SavedSegment: "document",
    JourneyVersion: "document",
    ScoringModel: "document",
}
# Endpoints that are no page: files, images, JSON, callbacks and the OAuth return.
NOT_PAGES = {
    "static",
    "admin.static",
    "admin.vendor",
    "admin.dashboard_series",
    "admin.dashboard_abm",
    "admin.imports_template",
    "admin.imports_errors_csv",
    "admin.opportunities_import_template",
    "admin.qr_codes_image",
    # Posters' images and their zip (the pages showing them are crawled).
    "admin.posters_preview",
    "admin.posters_background",
    "admin.posters_staff_png",
    "admin.posters_staff_zip",
    "wecom_app.my_poster_png",
    "admin.materials_file",
    "admin.join_ways_qr",
    "api.openapi",
    "api.find_contacts",
    "api.get_opportunity",
    "callbacks.wechat",
    "callbacks.wecom",
    "health.healthz",
    "public.oauth_return",
    # WeCom's member sign-in: redirects to the platform and back.
    "wecom_app.signin",
    "wecom_app.oauth_return",
    # An email's open pixel (a GIF) and tracked click (a redirect).
    "email_links.opened",
    "email_links.clicked",
}
MAX_URLS_PER_ENDPOINT = 4


@dataclass
class Planted:
    values: dict[int, str] = field(default_factory=dict)  # number -> where

    def value(self, where: str, room: int | None = None) -> str:
        """A value that runs script wherever it lands unescaped: as markup, inside an
        attribute, or in an ECharts tooltip built as HTML; short where the column is."""
        n = len(self.values) + 1
        self.values[n] = where
        full = (
            f"\"'><img src=x onerror=xss({n})><script>xssFlag={n}</script><svg onload=alert({n})>"
        )
        if room is None or room >= len(full):
            return full
        short = f'"><img src=x onerror=xss({n})>'
        assert len(short) <= room, f"{where} holds {room} characters only"
        return short


def seed_demo(app, platform, base: str) -> str:
    """The demo workspace with a few minutes of simulated followers and sales; returns the
    chat id of a customer group of the demo's customers."""
    db = harpoon_of(app).db
    channels = seed_workspace(db, base)
    register_tenants(platform.state, channels, base)
    clients = WeChatClients(platform.url, harpoon_of(app).wechat.store)
    tickets = seed_platform(platform.state, clients, channels, db, base)
    contact_client = clients.wecom(channels.wecom.app_id, channels.wecom.secret)
    join_way = seed_demo_group(db, platform.state, channels.wecom, contact_client)
    issue_demo_api_key(db)
    with db.session() as session:
        links = demo_links(session, channels.oa.workspace_id, base)
        workspace_id = channels.oa.workspace_id
        session.add_all(
            [
                GroupSend(
                    workspace_id=workspace_id,
                    channel_id=channels.wecom.id,
                    staff_userid=next(iter(STAFF)),
                    text="群发",
                    external_userids=[],
                ),
                TitleSynonym(workspace_id=workspace_id, phrase="首席信息官", role="cio"),
            ]
        )
        session.commit()
    simulator = Simulator(
        platform.state,
        platform.state.tenant(DEMO_OA_APPID),
        platform.state.tenant(DEMO_CORP_ID),
        seed=7,
        population_size=12,
        staff=list(STAFF),
        contact_states=CONTACT_STATES,
        tickets=tickets,
        join_ways=[join_way],
        harpoon_url=base,
        articles=[links[key] for key in ARTICLE_LINKS if key in links],
    )
    for _ in range(80):
        simulator.step()
    run_jobs(app)
    return sales_work(app, platform, channels.wecom)


def opportunities(app, workspace_id: int, account_id: int) -> None:
    """A lost opportunity on the account (its history and stage moves) and an imported file
    with a created and a rejected line."""
    with harpoon_of(app).db.session() as session:
        values = {"name": "年度订阅", "amount": Decimal("100000"), "stage": "solution"}
        resolved = resolve(session, workspace_id, {**values, "account_id": account_id})
        saved = save_opportunity(session, workspace_id, values, resolved, source="crm")
        lost = {"stage": "lost", "lost_reason": "预算取消"}
        resolved = resolve(session, workspace_id, lost, saved.opportunity)
        save_opportunity(
            session, workspace_id, lost, resolved, source="admin", existing=saved.opportunity
        )
        account_name = session.get(Account, account_id).name
        job = OpportunityImport(
            workspace_id=workspace_id,
            filename="商机.csv",
            content=f"外部编号,商机名称,客户名称,金额,阶段\nX-1,增购,{account_name},5000,qualify\n"
            f"X-2,坏行,{account_name},很多,qualify\n".encode(),
        )
        session.add(job)
        session.commit()
        run_opportunity_import(session, job.id)


def sales_work(app, platform, corp: Channel) -> str:
    """What sales leave behind: a task, a note (on an account's timeline), a transfer of a
    customer, and a customer group of customers in the sandbox."""
    with harpoon_of(app).db.session() as session:
        customers = session.execute(
            select(FollowRelation.staff_userid, FollowRelation.external_userid, Contact.id)
            .join(Contact, Contact.id == FollowRelation.contact_id)
            .order_by(FollowRelation.id)
        ).all()
        assert customers, "the demo's sales added no customer"
        staff_userid, external_userid, contact_id = customers[0]
        account_id = session.scalars(select(Account.id).order_by(Account.id)).first()
        create_task(
            session,
            workspace_id=corp.workspace_id,
            title="回电",
            due_at=utcnow(),
            account_id=account_id,
            contact_id=contact_id,
        )
        add_note(
            session,
            workspace_id=corp.workspace_id,
            text="关注数据安全",
            author_id=None,
            lanes=1,
            account_id=account_id,
            contact_id=contact_id,
        )
        create_transfer(
            session,
            corp.workspace_id,
            channel_id=corp.id,
            handover_userid=staff_userid,
            takeover_userid=next(userid for userid in STAFF if userid != staff_userid),
            kind=TransferKind.IN_SERVICE,
            external_userids=[external_userid],
        )
        session.commit()
    opportunities(app, corp.workspace_id, account_id)
    tenant = platform.state.tenant(DEMO_CORP_ID)
    group = wecom_groups.create_group(platform.state, tenant, owner=staff_userid, name="客户群")
    for _, external_userid, _ in customers[:3]:
        wecom_groups.join_group(platform.state, tenant, group.chat_id, external_userid)
    platform.state.wait_for_deliveries()  # Harpoon hears of the group and reads it
    while run_jobs(app):
        platform.state.wait_for_deliveries()
    return group.chat_id


def plant_draft_push(session) -> None:
    """A copy of the demo's push as a draft: only a draft has an edit page."""
    push = session.scalars(select(Push)).first()
    session.expunge(push)
    make_transient(push)
    push.id, push.status = None, PushStatus.DRAFT
    session.add(push)
    session.flush()


def plant_everywhere(app) -> Planted:
    planted = Planted()
    with harpoon_of(app).db.session() as session:
        plant_draft_push(session)
        published = session.scalars(select(MenuVersion)).first()
        menu = copy.deepcopy(published.document)
        for model, columns in PLANTED_COLUMNS.items():
            rows = session.scalars(select(model)).all()
            assert rows, f"the demo has no {model.__tablename__} to plant in"
            for row in rows:
                for column in columns:
                    kind = model.__table__.c[column].type
                    room = kind.length if isinstance(kind, String) else None
                    where = f"{model.__tablename__}.{column} #{row.id}"
                    setattr(row, column, planted.value(where, room))
        for model, column in PLANTED_DOCUMENTS.items():
            for row in session.scalars(select(model)):
                where = f"{model.__tablename__}.{column} #{row.id}"
                setattr(row, column, plant_in_document(getattr(row, column), planted, where))
        plant_in_draft_menu(session, published.channel_id, menu, planted)
        plant_in_stages(session, planted)
        plant_journey_nodes(session, planted)
        plant_email(session, planted)
        session.commit()
    return planted


def plant_poster(app, planted: Planted) -> None:
    """A poster of the demo's first content item, its name and text line planted (the text
    is drawn into images only, but its input shows it)."""
    with harpoon_of(app).db.session() as session:
        content = session.scalars(select(Content).order_by(Content.id)).first()
        inputs = {
            **posters.poster_form(),
            "name": planted.value("posters.name", 100),
            "content_id": str(content.id),
            "qr_x": "20",
            "qr_y": "20",
            "text": planted.value("posters.text", 100),
            "text_x": "10",
            "text_y": "300",
        }
        background = posters.read_background(poster_background(400, 600))
        checked = posters.load_poster(inputs, background.width, background.height)
        posters.save_poster(
            session, content.workspace_id, checked, background=background, user_id=None
        )
        session.commit()


def plant_email(session, planted: Planted) -> None:
    """An email template (its preview frame too), a sent email (its unsubscribe page) and
    a suppression, named with planted values."""
    contact = session.scalars(select(Contact).order_by(Contact.id)).first()
    template = EmailTemplate(
        workspace_id=contact.workspace_id,
        name=planted.value("email_templates.name", 100),
        subject=planted.value("email_templates.subject", 200),
        body_html=planted.value("email_templates.body_html"),
    )
    session.add(template)
    session.flush()
    message = EmailMessage(
        workspace_id=contact.workspace_id,
        idempotency_key="escaping",
        token="escaping-token-1",
        contact_id=contact.id,
        template_id=template.id,
        to_address="a@" + planted.value("email_messages.to_address", 300),
        subject=planted.value("email_messages.subject", 200),
        status="sent",
    )
    session.add(message)
    session.flush()
    session.add(
        EmailSuppression(
            workspace_id=contact.workspace_id,
            address=planted.value("email_suppressions.address", 320),
            reason="bounced",
            detail=planted.value("email_suppressions.detail", 300),
            message_id=message.id,
        )
    )


def followers_say(app, planted: Planted, followers: int = 3) -> None:
    """Followers send the OA planted text: the inbox and their timelines show it."""
    with harpoon_of(app).db.session() as session:
        oa = session.scalars(select(Channel).where(Channel.kind == ChannelKind.OA)).one()
        creds = Credentials(oa.app_id, oa.token, oa.aes_key)
    client = app.test_client()
    for n in range(followers):
        text = planted.value(f"follower o_planted_{n}'s message")
        callback = simulate.oa_message(creds, simulate.oa_text(f"o_planted_{n}", text, 9100 + n))
        answer = client.post(callback.path(f"/callbacks/wechat/{oa.id}"), data=callback.body)
        assert answer.status_code == 200, answer.text
    run_jobs(app)


def plant_in_document(document, planted: Planted, where: str):
    if isinstance(document, dict):
        return {
            key: planted.value(f"{where} {key}")
            if key in PLANTED_DOCUMENT_KEYS and isinstance(value, str)
            else plant_in_document(value, planted, where)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [plant_in_document(item, planted, where) for item in document]
    return document


def plant_in_draft_menu(session, channel_id: int, document: dict, planted: Planted) -> None:
    """A draft of the live menus, sub-buttons' names planted: the draft's review before
    publishing exists for a draft WeChat would take only (a sub-button's name holds 60
    bytes, a top-level one's 16: too few for script)."""

    def plant(value, where: str):
        if isinstance(value, dict):
            return {
                key: [
                    {**button, "name": planted.value(f"{where} sub-button", 60)} for button in item
                ]
                if key == "sub_button"
                else plant(item, where)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [plant(item, where) for item in value]
        return value

    channel = session.get(Channel, channel_id)
    session.add(menus.new_version(channel, plant(document, "draft menu"), None))


def plant_in_stages(session, planted: Planted) -> None:
    """Stage names: the dashboard's funnel shows them in an HTML tooltip."""
    newest = session.scalars(select(ScoringModel).order_by(ScoringModel.version.desc())).first()
    stages = load_model(session, newest.workspace_id).stages
    newest.document = {
        **newest.document,
        "stages": [
            {"key": stage.key, "name": planted.value(f"stage {stage.key}")} for stage in stages
        ],
    }


def plant_journey_nodes(session, planted: Planted) -> None:
    """The demo journey again, each node's id (the graph's label and tooltip) planted."""
    demo = session.scalars(select(JourneyVersion)).first()
    document = copy.deepcopy(demo.document)
    renamed = {
        node["id"]: planted.value(f"journey node {node['id']}", 40) for node in document["nodes"]
    }

    def rename(value):
        if isinstance(value, dict):
            return {key: rename(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rename(item) for item in value]
        return renamed.get(value, value) if isinstance(value, str) else value

    source = session.get(Journey, demo.journey_id)
    journey = Journey(
        workspace_id=source.workspace_id,
        name=planted.value("journey (planted nodes) name"),
        description="",
        status=source.status,
        live_version=1,
        created_by=source.created_by,
    )
    session.add(journey)
    session.flush()
    session.add(
        JourneyVersion(journey_id=journey.id, version=1, document=rename(document), note="")
    )


@dataclass
class Watch:
    """What planted script did: calls of the `xss` binding, dialogs, window flags."""

    calls: list = field(default_factory=list)
    dialogs: list = field(default_factory=list)
    flags: list = field(default_factory=list)

    def executions(self) -> list:
        return self.calls + self.dialogs + self.flags


HOVER_EVERY_POINT = """
() => {
  let hovered = 0;
  for (const element of document.querySelectorAll("[_echarts_instance_]")) {
    const chart = echarts.getInstanceByDom(element);
    chart.getOption().series.forEach((series, seriesIndex) => {
      const points = (series.data || []).length;
      for (let dataIndex = 0; dataIndex < points; dataIndex++) {
        chart.dispatchAction({type: "showTip", seriesIndex, dataIndex});
        hovered += 1;
      }
      for (let dataIndex = 0; dataIndex < (series.links || []).length; dataIndex++) {
        chart.dispatchAction({type: "showTip", seriesIndex, dataIndex, dataType: "edge"});
        hovered += 1;
      }
    });
  }
  return hovered;
}
"""


def render(page, url: str, watch: Watch) -> int:
    """Open the page, let its charts draw, hover them; returns the points hovered."""
    response = page.goto(url)
    assert response.status < 500, f"{url} answered {response.status}"
    page.wait_for_load_state("networkidle")
    hovered = 0
    if page.locator(".chart").count():
        page.wait_for_selector("body[data-charts-ready='1']", timeout=15000)
        hovered = page.evaluate(HOVER_EVERY_POINT)
        for chart in page.locator("[_echarts_instance_]").all():
            box = chart.bounding_box()
            for fraction in (0.2, 0.4, 0.5, 0.6, 0.8):  # a real pointer across the middle
                page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
                hovered += 1
        page.wait_for_timeout(100)  # a tooltip's markup is set asynchronously
    flag = page.evaluate("window.xssFlag")
    if flag is not None:
        watch.flags.append((url, flag))
    return hovered


def crawl(page, base: str, start: list[str], watch: Watch, app) -> tuple[set, set, int]:
    """Every same-origin page reachable by links from `start`, a few per endpoint."""
    adapter = app.url_map.bind("127.0.0.1")
    queue, seen, per_endpoint, rendered, hovered = list(start), set(), {}, set(), 0
    endpoints = set()
    while queue:
        url = queue.pop(0)
        parts = urlsplit(url)
        if url in seen or parts.netloc != urlsplit(base).netloc:
            continue
        seen.add(url)
        try:
            endpoint, _ = adapter.match(parts.path, method="GET")
        except Exception:
            continue
        if endpoint in NOT_PAGES or per_endpoint.get(endpoint, 0) >= MAX_URLS_PER_ENDPOINT:
            continue
        head = page.request.get(url, max_redirects=0)
        if head.status >= 300 or not head.headers.get("content-type", "").startswith("text/html"):
            continue
        per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
        hovered += render(page, url, watch)
        rendered.add(url)
        endpoints.add(endpoint)
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            queue.append(urljoin(url, href).split("#")[0])
    return rendered, endpoints, hovered


def unlinked_pages(app, base: str, chats: list[str]) -> list[str]:
    """Pages no link leads to: an import's row (htmx polls it), a journey's migration, a
    draft menu's review before publishing (a button posts there); the planted
    messages' inbox events (the inbox links only those pending or failed); the WeCom chat
    sidebar and its panels (opened beside a chat, `chats` the sandbox's customer groups);
    a transfer's page."""
    with harpoon_of(app).db.session() as session:
        events = session.scalars(
            select(InboundEvent.id).order_by(InboundEvent.id.desc()).limit(3)
        ).all()
        imports = session.scalars(select(AccountImport.id)).all()
        journeys = session.scalars(select(Journey.id)).all()
        drafts = session.scalars(
            select(MenuVersion.channel_id).where(MenuVersion.status == MenuStatus.DRAFT)
        ).all()
        corps = session.scalars(select(Channel.id).where(Channel.kind == ChannelKind.WECOM)).all()
        customers = session.execute(
            select(FollowRelation.channel_id, FollowRelation.external_userid).limit(3)
        ).all()
        transfers = session.scalars(select(Transfer.id)).all()
    return (
        [f"{base}/wecom/{id}/sidebar" for id in corps]
        + [f"{base}/wecom/{id}/posters" for id in corps]
        + [f"{base}/wecom/panel/{corp}/contact/{external}" for corp, external in customers]
        + [f"{base}/wecom/panel/{corp}/group/{chat}" for corp in corps for chat in chats]
        + [f"{base}/admin/transfers/{id}" for id in transfers]
        + [f"{base}/admin/inbox/{id}" for id in events]
        + [f"{base}/admin/accounts/import/{id}/row" for id in imports]
        + [f"{base}/admin/journeys/{id}/migrate" for id in journeys]
        + [f"{base}/admin/menus/{id}/publish" for id in drafts]
        + [f"{base}/e/escaping-token-1/u"]
    )


def readers_pages(page, app, base: str) -> list[str]:
    """Every tracked link Harpoon answers itself: hosted pages and forms (an article
    elsewhere is a redirect away)."""
    with harpoon_of(app).db.session() as session:
        codes = session.scalars(select(TrackedLink.code)).all()
    hosted = [
        f"{base}/t/{code}"
        for code in codes
        if page.request.get(f"{base}/t/{code}", max_redirects=0)
        .headers.get("location", "")
        .startswith("/p/")
    ]
    assert hosted, "the demo hosts no page"
    return hosted


def shared_by_staff(app) -> None:
    """Every view a staff member's share: its page shows their card (name, 联系我 code)."""
    with harpoon_of(app).db.session() as session:
        staff = session.scalars(select(Staff)).first()
        session.execute(update(PageView).values(sharer_staff_id=staff.id))
        session.commit()


def test_no_planted_name_runs_as_script_on_any_page_or_chart(app, platform, live_server, page):
    chat = seed_demo(app, platform, live_server)
    planted = plant_everywhere(app)
    plant_poster(app, planted)
    followers_say(app, planted)
    watch = Watch()
    page.context.expose_binding("xss", lambda _source, n: watch.calls.append(n))
    page.on("dialog", lambda dialog: (watch.dialogs.append(dialog.message), dialog.dismiss()))

    rendered, endpoints, hovered = {f"{live_server}/admin/login"}, {"admin.login"}, 0
    hovered += render(page, f"{live_server}/admin/login", watch)
    page.fill("input[name=email]", DEMO_LOGIN)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r"/admin/$"))

    pages = [
        f"{live_server}{rule.rule}"
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and rule.endpoint not in NOT_PAGES
    ]
    crawled, reached, crawl_hovered = crawl(
        page, live_server, pages + unlinked_pages(app, live_server, [chat]), watch, app
    )
    rendered |= crawled
    endpoints |= reached
    hovered += crawl_hovered

    readers = readers_pages(page, app, live_server)
    landed = []
    for url in readers:
        hovered += render(page, url, watch)
        rendered.add(url)
        landed.append(page.url)
        endpoints |= {"public.open_link", "public.page"}
        if page.locator("form button.primary").count():  # a form: its thank-you page too
            page.click("form button.primary")
            page.wait_for_load_state("networkidle")
    shared_by_staff(app)
    for url in landed:
        render(page, url, watch)
        assert page.locator("[data-testid=sharer-card]").count() == 1
    with harpoon_of(app).db.session() as session:
        journey_id = session.scalars(select(Journey.id).order_by(Journey.id.desc())).first()
    # For a person to look at: planted names shown as text in tooltips and on a phone.
    for path, chart, name in (
        ("/admin/", "#funnel-chart", "escaping-dashboard-tooltip"),
        (f"/admin/journeys/{journey_id}", "#journey-graph", "escaping-journey-tooltip"),
    ):
        page.goto(f"{live_server}{path}")
        page.wait_for_selector("body[data-charts-ready='1']")
        page.eval_on_selector(
            chart,
            "element => echarts.getInstanceByDom(element)"
            ".dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 1})",
        )
        screenshot(page, name)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(landed[-1])
    screenshot(page, "escaping-reader-phone")

    gets = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and rule.endpoint not in NOT_PAGES
    }
    print(
        f"\nplanted {len(planted.values)} values; rendered {len(rendered)} pages "
        f"({len(endpoints)} of {len(gets)} GET endpoints, {len(readers)} readers' links); "
        f"hovered {hovered} chart points; executions {len(watch.executions())}"
    )
    assert not watch.executions(), [
        (execution, planted.values.get(execution if isinstance(execution, int) else 0))
        for execution in watch.executions()
    ]
    assert len(rendered) > 60 and hovered > 50
    missing = sorted(gets - endpoints)
    assert not missing, f"pages never rendered: {missing}"
