"""Contacts, identities and tags end to end against the sandbox: callbacks -> drain ->
enrichment, merges, accounts, rules and tags -> sync back to WeChat and WeCom."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from crm.contacts import merge_contacts
from crm.tags import TagBook
from demo.seed import register_tenant
from models import (
    Account,
    Channel,
    Contact,
    ContactMerge,
    FollowRelation,
    Identity,
    Interaction,
    RuleKind,
    SyncStatus,
    Tag,
    TagRemote,
    TagSyncItem,
    utcnow,
)
from tests.factories import add_rule, make_channel
from tests.helpers import (
    OA_CREDS,
    OA_SECRET,
    WECOM_CREDS,
    harpoon_of,
    run_jobs,
    session_of,
    tag_names,
)
from wechat.callbacks import parse_xml
from wechat.sandbox import oa, wecom
from wechat.sandbox.core import Fault

CONTACT_SECRET = "contact-secret"
pytestmark = pytest.mark.sandbox


@pytest.fixture
def channels(app, platform, live_server):
    oa_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret=CONTACT_SECRET)
    with harpoon_of(app).db.session() as session:
        for channel_id in (oa_id, wecom_id):
            register_tenant(platform.state, session.get(Channel, channel_id), live_server)
    wecom.add_staff(platform.state, wecom_tenant(platform), "zhangsan", "张三")
    return oa_id, wecom_id


def oa_tenant(platform):
    return platform.state.tenant(OA_CREDS.app_id)


def wecom_tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    """Every callback answered, every job (drains, enrichment, sync) run."""
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def live_contacts(session):
    return session.scalars(select(Contact).where(Contact.merged_into_id.is_(None))).all()


def qr_ticket(app, scene: str) -> str:
    client = harpoon_of(app).wechat.oa(OA_CREDS.app_id, OA_SECRET)
    return client.qrcode.create(
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
    )["ticket"]


def test_follower_and_wecom_customer_merge_by_unionid(app, platform, channels):
    oa.follow(
        platform.state, oa_tenant(platform), "o_li", unionid="u_li", ticket=qr_ticket(app, "expo")
    )
    settle(app, platform)
    wecom.add_external_contact(
        platform.state,
        wecom_tenant(platform),
        userid="zhangsan",
        external_userid="wm_li",
        name="李雷",
        corp_name="上海华信科技有限公司",
        position="信息中心主任",
        unionid="u_li",
        state="booth-7",
    )
    settle(app, platform)

    with session_of(app) as session:
        (li,) = live_contacts(session)
        kinds = {(i.kind, i.value) for i in session.scalars(select(Identity))}
        assert kinds == {
            ("openid", "o_li"),
            ("unionid", "u_li"),
            ("external_userid", "wm_li"),
        }
        assert {i.contact_id for i in session.scalars(select(Identity))} == {li.id}
        assert {i.contact_id for i in session.scalars(select(Interaction))} == {li.id}
        (merge,) = session.scalars(select(ContactMerge))
        assert (merge.kept_contact_id, merge.reason) == (li.id, "unionid:u_li")
        assert (li.name, li.title, li.role, li.seniority) == (
            "李雷",
            "信息中心主任",
            "cio",
            "director",
        )
        account = session.get(Account, li.account_id)
        assert account.name == "上海华信科技有限公司" and li.account_source == "wecom"
        assert {"source:expo", "source:booth-7", "role:cio", "seniority:director"} <= tag_names(
            session, li.id
        )
        (relation,) = session.scalars(select(FollowRelation))
        assert (relation.contact_id, relation.staff_userid, relation.state) == (
            li.id,
            "zhangsan",
            "booth-7",
        )
        # Merging again changes nothing.
        dropped = session.get(Contact, merge.merged_contact_id)
        merge_contacts(session, TagBook(session, li.workspace_id), li, dropped, reason="again")
        session.commit()
        assert len(session.scalars(select(ContactMerge)).all()) == 1


def test_keyword_rule_tags_and_replies_inside_the_callback(app, client, platform, channels):
    from tests.helpers import post_oa
    from wechat import simulate
    from wechat.callbacks import aes_key_bytes

    add_rule(
        app,
        "interest:pricing",
        kind=RuleKind.KEYWORD,
        config={"match": "contains", "pattern": "报价"},
        reply="报价单稍后发您，也可回复“联系销售”。",
    )
    oa_id, _ = channels
    response = post_oa(client, oa_id, simulate.oa_text("o_wang", "请问报价多少？", 990001))
    encrypted = parse_xml(response.data)["Encrypt"]
    from wechatpy.crypto import PrpCrypto

    reply = parse_xml(
        PrpCrypto(aes_key_bytes(OA_CREDS.aes_key)).decrypt(encrypted, OA_CREDS.app_id)
    )
    assert (reply["ToUserName"], reply["MsgType"]) == ("o_wang", "text")
    assert reply["Content"] == "报价单稍后发您，也可回复“联系销售”。"
    # No rule matches: the plain answer.
    assert post_oa(client, oa_id, simulate.oa_text("o_wang", "你好", 990002)).data == b"success"
    run_jobs(app)
    with session_of(app) as session:
        (wang,) = live_contacts(session)
        assert "interest:pricing" in tag_names(session, wang.id)


def test_self_identification_by_menu_and_by_message(app, platform, channels):
    add_rule(app, "role:procurement", kind=RuleKind.MENU, config={"key": "IAM_PROCUREMENT"})
    add_rule(
        app,
        kind=RuleKind.PROFILE,
        config={
            "pattern": r"我是(?P<title>[^，,]{2,20})(?:[，,]\s*来自(?P<company>[^，,。]{2,40}))?"
        },
    )
    tenant = oa_tenant(platform)
    for openid in ("o_a", "o_b", "o_c"):
        oa.follow(platform.state, tenant, openid)
    oa.click(platform.state, tenant, "o_a", "IAM_PROCUREMENT")
    oa.send_text(platform.state, tenant, "o_b", "我是信息中心主任，来自北京中科软件股份有限公司")
    oa.send_text(platform.state, tenant, "o_c", "我是张三")
    settle(app, platform)
    with session_of(app) as session:
        by_openid = {
            i.value: session.get(Contact, i.contact_id)
            for i in session.scalars(select(Identity).where(Identity.kind == "openid"))
        }
        assert by_openid["o_a"].role == "procurement"
        b = by_openid["o_b"]
        assert (b.title, b.role, b.seniority, b.account_source) == (
            "信息中心主任",
            "cio",
            "director",
            "self",
        )
        assert session.get(Account, b.account_id).normalized_name == "北京中科软件"
        # "张三" is a name, not a title: nothing recorded.
        assert by_openid["o_c"].title is None and by_openid["o_c"].role is None


def test_behavior_rule_counts_within_the_window(app, platform, channels):
    add_rule(
        app,
        "interest:pricing",
        kind=RuleKind.BEHAVIOR,
        config={
            "kinds": ["wechat.menu_click"],
            "property": "key",
            "value": "PRICING",
            "match": "equals",
            "min_count": 3,
            "days": 30,
        },
    )
    tenant = oa_tenant(platform)
    oa.follow(platform.state, tenant, "o_keen")
    oa.follow(platform.state, tenant, "o_mild")
    for key in ("PRICING", "PRICING", "PRICING"):
        oa.click(platform.state, tenant, "o_keen", key)
        oa.click(platform.state, tenant, "o_mild", "CASES")
        platform.state.advance(1)  # WeChat dedupes one follower's same click in one second
    oa.click(platform.state, tenant, "o_mild", "PRICING")
    settle(app, platform)
    with session_of(app) as session:
        tagged = {
            i.value: "interest:pricing" in tag_names(session, i.contact_id)
            for i in session.scalars(select(Identity).where(Identity.kind == "openid"))
        }
    assert tagged == {"o_keen": True, "o_mild": False}


def test_inactivity_tag_applied_daily_and_removed_on_the_next_interaction(app, platform, channels):
    from crm.rules import tag_inactive

    add_rule(app, "lifecycle:dormant", kind=RuleKind.INACTIVITY, config={"days": 60})
    tenant = oa_tenant(platform)
    oa.follow(platform.state, tenant, "o_sleepy")
    settle(app, platform)
    with session_of(app) as session:
        (sleepy,) = live_contacts(session)
        session.execute(update(Contact).values(last_seen_at=utcnow() - timedelta(days=61)))
        assert tag_inactive(session, sleepy.workspace_id) == 1
        session.commit()
        assert "lifecycle:dormant" in tag_names(session, sleepy.id)
    oa.send_text(platform.state, tenant, "o_sleepy", "我回来了")
    settle(app, platform)
    with session_of(app) as session:
        assert "lifecycle:dormant" not in tag_names(session, sleepy.id)


def synced_tag(app, group, name, *, wechat=False, wecom_=False) -> int:
    with session_of(app) as session:
        workspace_id = session.scalar(select(Channel.workspace_id).limit(1))
        tag = TagBook(session, workspace_id).get(session, group, name)
        tag.sync_wechat, tag.sync_wecom = wechat, wecom_
        session.commit()
        return tag.id


def tag_contacts_by_hand(app, tag_id, openids=None):
    from crm.tags import Followups, apply_tags

    with session_of(app) as session:
        query = select(Identity.contact_id).where(Identity.kind == "openid")
        if openids is not None:
            query = query.where(Identity.value.in_(openids))
        contact_ids = session.scalars(query).all()
        tag = session.get(Tag, tag_id)
        book = TagBook(session, tag.workspace_id)
        followups = Followups()
        apply_tags(
            session, book, contact_ids, [book.by_id(tag_id)], source="manual", followups=followups
        )
        session.commit()
    harpoon_of(app).queue.enqueue_followups(followups.jobs)


def sandbox_tag_members(platform, tag_name):
    state = oa.state_of(oa_tenant(platform))
    tag_id = next(t.id for t in state.tags.values() if t.name == tag_name)
    return {f.openid for f in state.followers.values() if tag_id in f.tagid_list}


def test_oa_tag_sync_in_batches_of_50(app, platform, channels):
    tenant = oa_tenant(platform)
    openids = [f"o_{n:03d}" for n in range(120)]
    for openid in openids:
        oa.follow(platform.state, tenant, openid)
    settle(app, platform)
    tag_id = synced_tag(app, "industry", "制造", wechat=True)
    tag_contacts_by_hand(app, tag_id)
    settle(app, platform)
    assert sandbox_tag_members(platform, "制造") == set(openids)
    with session_of(app) as session:
        statuses = session.scalars(select(TagSyncItem.status)).all()
        assert statuses == [SyncStatus.DONE] * 120


def test_oa_limits_100_tags_per_account_and_20_per_follower(app, platform, channels):
    tenant = oa_tenant(platform)
    oa.follow(platform.state, tenant, "o_full")
    oa.follow(platform.state, tenant, "o_free")
    settle(app, platform)
    state = oa.state_of(tenant)
    with platform.state.lock:  # 99 tags made by hand in the console; o_full carries 20
        for n in range(99):
            tag = oa.Tag(state.next_tag_id, f"console-{n}")
            state.tags[tag.id] = tag
            state.next_tag_id += 1
        state.followers["o_full"].tagid_list = [t.id for t in list(state.tags.values())[-20:]]
    first = synced_tag(app, "interest", "AI", wechat=True)
    second = synced_tag(app, "interest", "云", wechat=True)
    tag_contacts_by_hand(app, first)
    tag_contacts_by_hand(app, second)
    settle(app, platform)
    with session_of(app) as session:
        remotes = {r.tag_id: r for r in session.scalars(select(TagRemote))}
        statuses = {
            (item.subject, item.tag_id): (item.status, item.error)
            for item in session.scalars(select(TagSyncItem))
        }
    created = [t for t in (first, second) if remotes[t].status == "ok"]
    assert len(created) == 1  # the 100th tag fits, the 101st does not
    limited = ({first, second} - set(created)).pop()
    assert remotes[limited].status == "limit" and "45056" in remotes[limited].error
    assert statuses[("o_free", created[0])][0] == SyncStatus.DONE
    status, error = statuses[("o_full", created[0])]
    assert status == SyncStatus.OVER_LIMIT and "20" in error
    assert statuses[("o_free", limited)][0] == SyncStatus.FAILED


def test_failed_sync_is_retried(app, platform, channels):
    tenant = oa_tenant(platform)
    oa.follow(platform.state, tenant, "o_retry")
    settle(app, platform)
    tag_id = synced_tag(app, "interest", "retry", wechat=True)
    platform.state.faults.append(
        Fault("/oa/cgi-bin/tags/members/batchtagging", errcode=-1, times=20)
    )
    tag_contacts_by_hand(app, tag_id)
    settle(app, platform)
    with session_of(app) as session:
        (item,) = session.scalars(select(TagSyncItem))
        assert item.status == SyncStatus.FAILED and "-1" in item.error and item.attempts == 1
        session.execute(update(TagSyncItem).values(next_attempt_at=utcnow()))
        session.commit()
    platform.state.faults.clear()
    harpoon_of(app).queue.enqueue_followups({("sync_tags", channels[0])})
    settle(app, platform)
    with session_of(app) as session:
        (item,) = session.scalars(select(TagSyncItem))
        assert item.status == SyncStatus.DONE
    assert sandbox_tag_members(platform, "retry") == {"o_retry"}


def test_wecom_corp_tags_both_ways(app, platform, channels):
    tenant = wecom_tenant(platform)
    wecom.add_external_contact(
        platform.state, tenant, userid="zhangsan", external_userid="wm_x", name="韩梅梅"
    )
    settle(app, platform)
    # Harpoon -> WeCom: a synced tag becomes a corp tag on the salesperson's relation.
    tag_id = synced_tag(app, "interest", "大模型", wecom_=True)
    with session_of(app) as session:
        contact_id = session.scalar(select(Identity.contact_id).where(Identity.value == "wm_x"))
    from crm.tags import Followups, apply_tags

    with session_of(app) as session:
        book = TagBook(session, session.get(Tag, tag_id).workspace_id)
        followups = Followups()
        apply_tags(
            session, book, [contact_id], [book.by_id(tag_id)], source="manual", followups=followups
        )
        session.commit()
    harpoon_of(app).queue.enqueue_followups(followups.jobs)
    settle(app, platform)
    state = wecom.state_of(tenant)
    with session_of(app) as session:
        remote_id = session.scalar(select(TagRemote.remote_id).where(TagRemote.tag_id == tag_id))
    assert state.follows[("zhangsan", "wm_x")].tag_ids == [remote_id]
    # WeCom -> Harpoon: a tag made in the console, then set by the salesperson.
    console_tag = wecom.create_corp_tag_in_console(
        platform.state, tenant, group_name="客户等级", name="重点客户"
    )
    settle(app, platform)
    wecom.edit_external_contact(
        platform.state, tenant, userid="zhangsan", external_userid="wm_x", tag_ids=[console_tag]
    )
    settle(app, platform)
    with session_of(app) as session:
        names = tag_names(session, contact_id)
    assert "manual:重点客户" in names


def test_console_tags_reported_by_user_info_count_toward_the_20(app, platform, channels):
    tenant = oa_tenant(platform)
    state = oa.state_of(tenant)
    oa.follow(platform.state, tenant, "o_busy")
    with platform.state.lock:  # 20 tags set by hand in the OA console, before enrichment
        console = []
        for n in range(20):
            tag = oa.Tag(state.next_tag_id, f"console-{n}")
            state.tags[tag.id] = tag
            state.next_tag_id += 1
            console.append(tag.id)
        state.followers["o_busy"].tagid_list = console
    settle(app, platform)
    tag_id = synced_tag(app, "interest", "busy", wechat=True)
    # Had Harpoon called batchtagging, this fault would have failed the item instead.
    platform.state.faults.append(
        Fault("/oa/cgi-bin/tags/members/batchtagging", errcode=40003, times=10)
    )
    tag_contacts_by_hand(app, tag_id)
    settle(app, platform)
    with session_of(app) as session:
        (item,) = session.scalars(select(TagSyncItem))
    assert item.status == SyncStatus.OVER_LIMIT


def test_records_that_reach_a_merged_contact_late_are_moved_by_the_sweeper(app, platform, channels):
    oa.follow(platform.state, oa_tenant(platform), "o_late", unionid="u_late")
    settle(app, platform)
    wecom.add_external_contact(
        platform.state,
        wecom_tenant(platform),
        userid="zhangsan",
        external_userid="wm_late",
        name="迟到",
        unionid="u_late",
    )
    settle(app, platform)
    with session_of(app) as session:
        (merge,) = session.scalars(select(ContactMerge))
        # A drain that loaded the identity just before the merge committed wrote this.
        session.add(
            Interaction(
                workspace_id=merge.workspace_id,
                contact_id=merge.merged_contact_id,
                kind="wechat.message",
                occurred_at=utcnow(),
            )
        )
        session.commit()
    harpoon_of(app).queue.enqueue_sweep()
    settle(app, platform)
    with session_of(app) as session:
        owners = set(session.scalars(select(Interaction.contact_id)))
    assert owners == {merge.kept_contact_id}
