"""Seeding the demo and reporting on it: the demo workspace with its sign-in, channels and
content, the sandbox tenants that mirror the channels, the platform side (menus, channel QR
codes, staff, 联系我 codes) made through Harpoon's own clients, the API key of the example
script, and the status line `make run` prints.

The caller passes in the database, the sandbox's state and the WeChat clients; `flask demo`
(app/demo.py) runs the processes around them.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import case, delete, func, or_, select

from crm.api_keys import create_api_key, revoke_api_key
from crm.channels import (
    add_channel,
    callback_url,
    generate_aes_key,
    generate_token,
    workspace_named,
)
from crm.tags import TagBook, queue_holders_sync
from crm.users import create_user
from demo.data import (
    DEMO_GROUP,
    DEMO_GROUP_WELCOME,
    demo_contact_ways,
    demo_join_way,
    demo_links,
    demo_menu_document,
    demo_qr_codes,
    seed_demo_content,
    seed_demo_journey,
    seed_demo_outreach,
    seed_demo_routing,
    seed_demo_tagging,
)
from demo.library import seed_demo_library
from demo.programs import seed_demo_programs
from models import (
    PASSWORD_ONLY_ROLES,
    Account,
    ApiKey,
    Channel,
    ChannelKind,
    Contact,
    CustomerGroup,
    Enrolment,
    FollowUpStatus,
    FormSubmission,
    GroupJoinWay,
    GroupWelcomeTemplate,
    InboundEvent,
    Interaction,
    Opportunity,
    OpportunityStatus,
    PageView,
    QrCode,
    Role,
    RoutingAssignment,
    Staff,
    Tag,
    TagRemote,
    TagSyncItem,
    Task,
    TaskStatus,
    User,
    utcnow,
)
from outreach import menus
from outreach.qr_codes import create_qr_code, renew_qr_code
from sales.contact_ways import contact_way_for_state, create_contact_way
from sales.group_welcome import create_group_welcome, remote_content
from sales.join_ways import create_join_way, join_way_for_state
from sales.staff import sync_staff
from wechat.clients import WeChatClients
from wechat.sandbox import wecom, wecom_client, wecom_groups
from wechat.sandbox.core import OA, WECOM, Sandbox, Tenant

DEMO_WORKSPACE = "Demo"
# The demo's own sign-in, printed by `make run`; a real deployment uses `flask users create`.
DEMO_LOGIN = "demo@harpoon.local"
DEMO_PASSWORD = "harpoon-demo"
DEMO_OA_APPID = "wxdemo0000000001"
DEMO_CORP_ID = "wwdemo0000000001"
STAFF = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}
OWNER_STAFF = "zhangsan"
# The demo's salespeople, mapped to their WeCom identities by email; they sign in with the
# demo password and see their own accounts (role sales). 张三 owns the target accounts and
# is who `make run` opens the sidebar as: a salesperson, since an owner or admin never
# signs in through WeCom.
SALES_LOGINS = {
    "zhangsan": "zhangsan@harpoon.local",
    "lisi": "lisi@harpoon.local",
    "wangwu": "wangwu@harpoon.local",
}
# 张三's WeCom customer whose chat `make run` opens in the sandbox's WeCom client.
DEMO_CUSTOMER = {
    "external_userid": "wmDemoLiLei00000000000001",
    "name": "李雷",
    "corp_name": "上海华信科技有限公司",
    "position": "信息中心主任",
}
DEMO_DIGEST_MINUTES = 15
DEMO_MESSAGES_PER_DAY = 40
CONTACT_STATES = ["expo2026-booth", "webinar"]
DEMO_API_KEY = "演示：直播平台脚本"


@dataclass
class DemoChannels:
    oa: Channel
    wecom: Channel


class SeedingRefused(Exception):
    """The sandbox refused what the demo publishes on it."""


def seed_workspace(db, public_base: str) -> DemoChannels:
    """The demo workspace, its sign-in, its two channels and its content library, created
    once and reused after."""
    with db.session() as session:
        workspace = workspace_named(session, DEMO_WORKSPACE)
        owner = session.scalar(select(User).where(User.email == DEMO_LOGIN))
        if owner is None:
            owner = create_user(
                session, workspace, DEMO_LOGIN, "演示管理员", DEMO_PASSWORD, Role.OWNER
            )
            # 张三 (the target accounts' owner) gets a digest every quarter hour at most:
            # a handful of messages an hour, not one per alert.
            workspace.digest_minutes = DEMO_DIGEST_MINUTES
            workspace.staff_messages_per_day = DEMO_MESSAGES_PER_DAY
        sellers = [
            _sales_user(session, workspace, email, STAFF[userid])
            for userid, email in SALES_LOGINS.items()
        ]
        seed_demo_routing(session, workspace.id, sellers)
        found = {
            c.kind: c
            for c in session.scalars(select(Channel).where(Channel.workspace_id == workspace.id))
        }
        if ChannelKind.OA not in found:
            found[ChannelKind.OA] = add_channel(
                session,
                workspace,
                kind=ChannelKind.OA,
                name="Harpoon 演示服务号",
                app_id=DEMO_OA_APPID,
                token=generate_token(),
                aes_key=generate_aes_key(),
                secret=generate_token(),
                account_type="service",
            )
        if ChannelKind.WECOM not in found:
            found[ChannelKind.WECOM] = add_channel(
                session,
                workspace,
                kind=ChannelKind.WECOM,
                name="Harpoon 演示企业微信",
                app_id=DEMO_CORP_ID,
                token=generate_token(),
                aes_key=generate_aes_key(),
                secret=generate_token(),
                agent_id="1000002",
                agent_secret=generate_token(),
            )
        session.commit()
        seed_demo_tagging(session, workspace.id, owner.id, SALES_LOGINS[OWNER_STAFF])
        oa_id = found[ChannelKind.OA].id
        seed_demo_content(session, workspace.id, oa_id, owner.id)
        links = demo_links(session, workspace.id, public_base)
        seed_demo_outreach(session, workspace.id, oa_id, owner.id, links)
        seed_demo_library(session, workspace.id, oa_id, owner.id, links)
        seed_demo_journey(session, workspace.id, owner.id)
        seed_demo_programs(session, workspace.id, owner.id, sellers)
        return DemoChannels(found[ChannelKind.OA], found[ChannelKind.WECOM])


def _sales_user(session, workspace, email: str, name: str) -> int:
    """The demo salesperson's user: made on the first run (or when an earlier demo
    database lacks it), kept after."""
    user_id = session.scalar(
        select(User.id).where(User.workspace_id == workspace.id, User.email == email)
    )
    if user_id is None:
        user_id = create_user(session, workspace, email, name, DEMO_PASSWORD, Role.SALES).id
    return user_id


def register_tenants(state: Sandbox, channels: DemoChannels, base: str) -> None:
    for channel in (channels.oa, channels.wecom):
        register_tenant(state, channel, base)


def register_tenant(state: Sandbox, channel: Channel, base: str) -> None:
    """The sandbox knows the same credentials the channel holds, as WeChat would."""
    if channel.kind == ChannelKind.OA:
        secrets = {"app": channel.secret or ""}
    else:
        secrets = {"contact": channel.secret or "", "agent": channel.agent_secret or ""}
    state.add_tenant(
        Tenant(
            OA if channel.kind == ChannelKind.OA else WECOM,
            channel.app_id,
            secrets,
            channel.token,
            channel.aes_key or "",
            callback_url(base, channel),
            account_type=channel.account_type or "service",
            agent_id=channel.agent_id or "",
        )
    )


def seed_platform(
    state: Sandbox, clients: WeChatClients, channels: DemoChannels, db, public_base: str
) -> dict:
    """Menus, channel QR codes, staff and 联系我 codes, made through Harpoon's own clients;
    menus and QR welcomes carry the content library's tracked links under `public_base`."""
    oa_client = clients.oa(channels.oa.app_id, channels.oa.secret)
    publish_demo_menus(db, channels.oa, oa_client, public_base)
    tickets = seed_qr_codes(db, channels.oa, oa_client, public_base)
    corp = state.tenant(channels.wecom.app_id)
    for userid, name in STAFF.items():
        # Each member's email is their Harpoon user's: the staff sync links them, and 张三,
        # the owner of the target accounts, gets their alerts (MQA, surges, adds) as app
        # messages.
        email = SALES_LOGINS.get(userid, "")
        wecom.add_staff(state, corp, userid, name, email=email)
    contact_client = clients.wecom(channels.wecom.app_id, channels.wecom.secret)
    seed_contact_ways(db, channels.wecom, contact_client)
    return tickets


def publish_demo_menus(db, channel: Channel, client, public_base: str) -> None:
    """The OA's menus, published through outreach.menus as the admin page publishes them:
    the live version again on a rerun (a marketer's edits survive), else the demo's."""
    with db.session() as session:
        channel = session.get(Channel, channel.id)
        forget_oa_tags(session, channel)
        owner_id = session.scalar(select(User.id).where(User.email == DEMO_LOGIN))
        live = menus.published_of(session, channel.id)
        if live:
            document = live.document
        else:
            links = demo_links(session, channel.workspace_id, public_base)
            document = demo_menu_document(session, channel.workspace_id, links)
        version = menus.new_version(channel, document, owner_id)
        result = menus.publish(session, channel, client, version, owner_id)
        session.commit()
    if not result.ok:
        raise SeedingRefused(f"the sandbox refused the demo menus: {result.version.error}")


def forget_oa_tags(session, channel: Channel) -> None:
    """The sandbox starts empty on every run: the OA tags an earlier run made are gone, so
    they are made again and every holder of a synced tag is mirrored anew (the sweeper
    runs the sync; a follower is tagged once they follow again)."""
    session.execute(delete(TagSyncItem).where(TagSyncItem.channel_id == channel.id))
    session.execute(delete(TagRemote).where(TagRemote.channel_id == channel.id))
    book = TagBook(session, channel.workspace_id)
    synced = select(Tag).where(Tag.workspace_id == channel.workspace_id, Tag.sync_wechat)
    for tag in session.scalars(synced):
        queue_holders_sync(session, book, tag)


def open_demo_chat(state: Sandbox, channel: Channel, base: str, sandbox_url: str) -> str:
    """Harpoon's sidebar as the corp app's chat toolbar, 张三's customer 李雷 added (a
    callback Harpoon records), and the sandbox WeCom-client URL with their chat open."""
    corp = state.tenant(channel.app_id)
    with state.lock:
        wecom_client.client_state(corp).toolbar_url = f"{base}/wecom/{channel.id}/sidebar"
    customer = DEMO_CUSTOMER["external_userid"]
    if (OWNER_STAFF, customer) not in wecom.state_of(corp).follows:
        wecom.add_external_contact(
            state, corp, userid=OWNER_STAFF, state="expo2026-booth", **DEMO_CUSTOMER
        )
    query = urlencode(
        {"corp_id": channel.app_id, "userid": OWNER_STAFF, "external_userid": customer}
    )
    return f"{sandbox_url}/sandbox/wecom/client?{query}"


def seed_qr_codes(db, channel: Channel, client, public_base: str = "") -> dict[str, str]:
    """The channel QR codes the simulated followers scan, made through the same function
    as the admin page (each with its tags and welcome, which carries the demo's tracked
    links under `public_base`); on a rerun the fresh sandbox issues their tickets again.
    Returns the tickets by scene."""
    with db.session() as session:
        channel = session.get(Channel, channel.id)
        links = demo_links(session, channel.workspace_id, public_base) if public_base else {}
        tickets = {}
        for spec in demo_qr_codes(session, channel.workspace_id, links):
            code = session.scalar(
                select(QrCode).where(QrCode.channel_id == channel.id, QrCode.scene == spec["scene"])
            )
            if code is None:
                code = create_qr_code(session, channel, client, permanent=True, **spec)
            else:
                renew_qr_code(session, code, client)
            tickets[code.scene] = code.ticket
        session.commit()
        return tickets


def seed_contact_ways(db, channel: Channel, client) -> None:
    """Staff synced from WeCom, and the 联系我 codes the simulated sales hand out, made
    through the same functions as the admin page (each with its tags and welcome)."""
    with db.session() as session:
        channel = session.get(Channel, channel.id)
        sync_staff(session, channel, client)
        relink_demo_staff(session, channel)
        for spec in demo_contact_ways(session, channel.workspace_id):
            if contact_way_for_state(session, channel.id, spec["state"]) is None:
                create_contact_way(session, channel, client, spec)
        session.commit()


def seed_demo_group(db, state: Sandbox, channel: Channel, client) -> str:
    """The conference's customer group in WeCom (张三's, 李四 in it) and the 群活码 at the
    venue that fills it, made through the admin page's function; returns the code's
    config_id for the simulator's scans. The sandbox starts empty on every run: the group
    comes back under its fixed chat_id and a code from an earlier run is added again."""
    corp = state.tenant(channel.app_id)
    chat_id = DEMO_GROUP["chat_id"]
    with state.lock:
        if chat_id not in wecom_groups.groups_of(corp):
            wecom_groups.create_group(
                state,
                corp,
                owner=DEMO_GROUP["owner"],
                name=DEMO_GROUP["name"],
                notice=DEMO_GROUP["notice"],
                chat_id=chat_id,
            )
            wecom_groups.join_group(state, corp, chat_id, "lisi")
    with db.session() as session:
        channel = session.get(Channel, channel.id)
        group = session.scalar(
            select(CustomerGroup).where(
                CustomerGroup.channel_id == channel.id, CustomerGroup.chat_id == chat_id
            )
        )
        if group is None:  # as the group sync records it
            session.add(
                CustomerGroup(
                    workspace_id=channel.workspace_id,
                    channel_id=channel.id,
                    chat_id=chat_id,
                    name=DEMO_GROUP["name"],
                    owner_userid=DEMO_GROUP["owner"],
                    notice=DEMO_GROUP["notice"],
                    member_count=2,
                    created_at=utcnow(),
                )
            )
            session.flush()
        spec = demo_join_way(session, channel.workspace_id)
        way = join_way_for_state(session, channel.id, spec["state"])
        if way is None:
            way = create_join_way(session, channel, client, spec)
        elif way.deleted_at is None:
            way.chat_ids = list(spec["chat_ids"])  # rooms opened in an earlier run are gone
            renew_join_way(way, client)
        seed_group_welcome(session, channel, client)
        session.commit()
        return way.config_id


def seed_group_welcome(session, channel: Channel, client) -> None:
    """The conference group's welcome in the corp's library (added again to a fresh
    sandbox on a rerun: WeCom gives it a new template_id)."""
    template = session.scalar(
        select(GroupWelcomeTemplate).where(
            GroupWelcomeTemplate.channel_id == channel.id,
            GroupWelcomeTemplate.name == DEMO_GROUP_WELCOME["name"],
        )
    )
    if template is None:
        create_group_welcome(session, channel, client, dict(DEMO_GROUP_WELCOME), None)
        return
    values = {name: getattr(template, name) for name in DEMO_GROUP_WELCOME if name != "name"}
    answer = client.post(
        "externalcontact/group_welcome_template/add", data={**remote_content(values), "notify": 0}
    )
    template.template_id = answer["template_id"]


def renew_join_way(way: GroupJoinWay, client) -> None:
    """A code an earlier run made, added to the fresh sandbox again (a new config_id)."""
    fields = {
        "scene": 2,
        "remark": way.name[:30],
        "auto_create_room": 1 if way.auto_create_room else 0,
        "chat_id_list": list(way.chat_ids),
        "state": way.state,
    }
    if way.auto_create_room:
        fields.update(room_base_name=way.room_base_name, room_base_id=way.room_base_id)
    way.config_id = client.post("externalcontact/groupchat/add_join_way", data=fields)["config_id"]
    answer = client.post(
        "externalcontact/groupchat/get_join_way", data={"config_id": way.config_id}
    )
    way.qr_code = answer["join_way"].get("qr_code")


def relink_demo_staff(session, channel: Channel) -> None:
    """A demo database from before 张三 had a sales user links 张三 to the owner, whom
    WeCom never signs in: link each unlinked or owner-linked demo member to their own."""
    for userid, email in SALES_LOGINS.items():
        staff = session.scalar(
            select(Staff).where(Staff.channel_id == channel.id, Staff.userid == userid)
        )
        linked = session.get(User, staff.user_id) if staff and staff.user_id else None
        if staff is None or (linked is not None and linked.role not in PASSWORD_ONLY_ROLES):
            continue
        staff.user_id = session.scalar(
            select(User.id).where(User.workspace_id == channel.workspace_id, User.email == email)
        )


def issue_demo_api_key(db) -> str:
    """A key for the touchpoint API example: made anew each run (a key is shown only when
    it is made), the previous run's revoked."""
    with db.session() as session:
        workspace = workspace_named(session, DEMO_WORKSPACE)
        owner_id = session.scalar(select(User.id).where(User.email == DEMO_LOGIN))
        earlier = session.scalars(
            select(ApiKey.id).where(
                ApiKey.workspace_id == workspace.id,
                ApiKey.name == DEMO_API_KEY,
                ApiKey.revoked_at.is_(None),
            )
        ).all()
        for key_id in earlier:
            revoke_api_key(session, workspace.id, key_id)
        key = create_api_key(session, workspace.id, DEMO_API_KEY, created_by=owner_id)
        session.commit()
        return key.key


def status_line(db, state: Sandbox) -> str:
    with db.session() as session:
        by_status = dict(
            session.execute(
                select(InboundEvent.status, func.count()).group_by(InboundEvent.status)
            ).all()
        )
        contacts = session.scalar(select(func.count()).select_from(Contact))
        interactions = session.scalar(select(func.count()).select_from(Interaction))
        hottest = session.execute(
            select(Account.name, Account.score, Account.scaled_score)
            .order_by(Account.score.desc())
            .limit(1)
        ).first()
        mqa = session.scalar(select(func.count()).where(Account.mqa.is_(True)))
        routed = session.scalar(select(func.count()).select_from(RoutingAssignment))
        tasks = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        tiers = dict(
            session.execute(
                select(Account.tier, func.count())
                .where(Account.tier.is_not(None))
                .group_by(Account.tier)
            ).all()
        )
        enrolments = dict(
            session.execute(select(Enrolment.status, func.count()).group_by(Enrolment.status)).all()
        )
        mid_journey = session.scalar(select(func.count()).where(Enrolment.entered_node != "start"))
        shared = or_(
            PageView.sharer_openid.is_not(None),
            PageView.sharer_staff_id.is_not(None),
            PageView.sharer_contact_id.is_not(None),
        )
        reads, read_seconds, via_shares = session.execute(
            select(
                func.count(PageView.openid),
                func.coalesce(func.sum(PageView.recorded_seconds), 0),
                func.count(case((shared, 1))),
            )
        ).one()
        forms = dict(
            session.execute(
                select(FormSubmission.followup_status, func.count()).group_by(
                    FormSubmission.followup_status
                )
            ).all()
        )
        deals = {
            status: (count, amount or 0)
            for status, count, amount in session.execute(
                select(Opportunity.status, func.count(), func.sum(Opportunity.amount)).group_by(
                    Opportunity.status
                )
            )
        }
    with state.lock:
        finished = [d for d in state.deliveries if d.done]
        failed = sum(1 for d in finished if not d.accepted)
        pending = len(state.deliveries) - len(finished)
        corps = [wecom.state_of(t) for t in state.tenants.values() if t.kind == WECOM]
        welcomes = sum(len(corp.welcome_messages) for corp in corps)
        alerts = sum(len(corp.app_messages) for corp in corps)
    inbox = ", ".join(f"{status} {count}" for status, count in sorted(by_status.items()))
    return (
        f"callbacks {len(finished)} (refused {failed}, in flight {pending}) | "
        f"inbox: {inbox or 'empty'} | contacts {contacts} | interactions {interactions} | "
        f"welcomes {welcomes} | sales alerts {alerts}\n"
        f"  accounts: MQA {mqa}, tiers "
        + "/".join(str(tiers.get(tier, 0)) for tier in (1, 2, 3))
        + (
            f", hottest {hottest.name} {hottest.scaled_score:.0f}/100 ({hottest.score:,.0f} points)"
            if hottest and hottest.score
            else ""
        )
        + f" | routed {routed} | tasks open {tasks.get(TaskStatus.OPEN, 0)}, done "
        f"{tasks.get(TaskStatus.DONE, 0)}"
        + "\n  journeys: "
        + (", ".join(f"{status} {count}" for status, count in sorted(enrolments.items())) or "-")
        + f" (entered mid-journey {mid_journey})"
        + f"\n  content: reads {reads} ({read_seconds / 60:.1f} min read), via shares "
        f"{via_shares} | forms {sum(forms.values())} (follow-ups sent "
        f"{forms.get(FollowUpStatus.SENT, 0)}, failed {forms.get(FollowUpStatus.FAILED, 0)})"
        + "\n  revenue: opportunities "
        + ", ".join(
            f"{status} {deals.get(status, (0, 0))[0]} (¥{deals.get(status, (0, 0))[1]:,.0f})"
            for status in (OpportunityStatus.OPEN, OpportunityStatus.WON, OpportunityStatus.LOST)
        )
    )
