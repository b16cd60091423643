"""Journeys across merges, against the sandbox: a new WeCom customer's steps wait (bounded)
for the enrichment that may say they are someone known; a merge moves enrolments (one
journey, one enrolment per person) and the runner acts on the survivor with their whole
history. The sandbox shows exactly the messages sent."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.jobs import Job
from crm.contacts import attach_identity
from crm.tags import TagBook
from demo.seed import register_tenant
from journeys import delivery, reactions, runner
from journeys.reactions import Touch
from models import (
    Channel,
    Contact,
    Enrolment,
    EnrolmentStatus,
    FollowRelation,
    Identity,
    Interaction,
    OutboxItem,
    OutboxStatus,
    Step,
    Workspace,
    utcnow,
)
from tests.factories import make_channel, make_journey, make_staff
from tests.helpers import OA_CREDS, OA_SECRET, WECOM_CREDS, harpoon_of, run_jobs, session_of
from tests.oa_platform import client_of, received
from wechat.sandbox import oa, wecom
from wechat.sandbox.core import Fault
from wechat.sandbox.oa import CUSTOM

pytestmark = pytest.mark.sandbox

CONTACT_SECRET = "contact-secret"
LINK = "今晚 8 点直播：https://live.example.com/abc"


@pytest.fixture
def channels(app, platform, live_server):
    oa_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret=CONTACT_SECRET)
    with harpoon_of(app).db.session() as session:
        for channel_id in (oa_id, wecom_id):
            register_tenant(platform.state, session.get(Channel, channel_id), live_server)
    wecom.add_staff(platform.state, corp(platform), "zhangsan", "张三")
    make_staff(app, "张三", "zhangsan")
    return oa_id, wecom_id


def corp(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def link_journey() -> dict:
    """Add our WeCom -> the salesperson sends the live link, unless they watched."""
    return {
        "reentry": "once",
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
                "action": {"kind": "wecom_group_task", "text": LINK},
                "skip_if": {"event": {"kind": "live.watch"}, "since": "ever"},
            },
        ],
    }


def follower(app, platform, openid: str, unionid: str) -> int:
    """Someone follows the OA; enrichment learns their unionid. Their contact id."""
    oa.follow(platform.state, platform.state.tenant(OA_CREDS.app_id), openid, unionid=unionid)
    settle(app, platform)
    with session_of(app) as session:
        return session.scalar(select(Identity.contact_id).where(Identity.value == openid))


def watched(app, contact_id: int) -> None:
    with session_of(app) as session:
        session.add(
            Interaction(
                workspace_id=session.scalar(select(Workspace.id)),
                contact_id=contact_id,
                kind="live.watch",
                properties={"minutes": "40"},
                occurred_at=utcnow(),
            )
        )
        session.commit()


def salesperson_added_before_enrichment(app, platform, external_userid: str, unionid: str):
    """They add 张三 on WeCom; the drain enrols them and the journey runs, but WeCom's
    externalcontact/get fails for now (enrichment has not said who they are)."""
    platform.state.add_fault(Fault("/wecom/cgi-bin/externalcontact/get", errcode=-1, times=50))
    wecom.add_external_contact(
        platform.state,
        corp(platform),
        userid="zhangsan",
        external_userid=external_userid,
        name="李雷",
        unionid=unionid,
    )
    settle(app, platform)


def enrichment_answers(app, platform, wecom_id: int) -> None:
    with platform.state.lock:
        platform.state.faults.clear()
    harpoon_of(app).queue.enqueue_followups({(Job.ENRICH_EXTERNAL_CONTACTS, wecom_id)})
    settle(app, platform)


def link_sends(platform) -> list:
    return list(wecom.state_of(corp(platform)).msg_templates.values())


def the_enrolment(app) -> Enrolment:
    with session_of(app) as session:
        (enrolment,) = session.scalars(select(Enrolment)).all()
        return enrolment


def link_step(app) -> Step | None:
    with session_of(app) as session:
        return session.scalar(select(Step).where(Step.node_id == "send_link"))


def test_a_watcher_who_adds_a_salesperson_gets_no_link_when_the_merge_lands_in_the_wait(
    app, platform, channels
):
    _, wecom_id = channels
    make_journey(app, "live link", document=link_journey())
    fang = follower(app, platform, "o_fang", "u_fang")
    watched(app, fang)

    salesperson_added_before_enrichment(app, platform, "wm_fang", "u_fang")
    held = the_enrolment(app)
    assert held.awaits_enrichment and held.contact_id != fang  # the new WeCom contact
    assert link_step(app) is None and link_sends(platform) == []

    enrichment_answers(app, platform, wecom_id)  # the unionid merge; the journey runs at once
    enrolment = the_enrolment(app)
    assert (enrolment.contact_id, enrolment.status) == (fang, EnrolmentStatus.COMPLETED)
    step = link_step(app)
    assert (step.outcome, step.detail) == ("skipped", {"because": "live.watch ever"})
    assert link_sends(platform) == []


def test_a_merged_oa_follower_gets_exactly_one_link_from_their_salesperson(app, platform, channels):
    _, wecom_id = channels
    make_journey(app, "live link", document=link_journey())
    li = follower(app, platform, "o_li", "u_li")
    salesperson_added_before_enrichment(app, platform, "wm_li", "u_li")
    enrichment_answers(app, platform, wecom_id)

    (sent,) = link_sends(platform)
    assert (sent.sender, sent.external_userids) == ("zhangsan", ["wm_li"])
    assert sent.text["content"] == LINK
    step = link_step(app)
    assert step.outcome == "done" and step.detail["contact_id"] == li
    with session_of(app) as session:
        assert session.scalar(select(FollowRelation.contact_id)) == li


def test_after_the_wait_the_step_acts_on_whoever_the_contact_is_then(app, platform, channels):
    make_journey(app, "live link", document=link_journey())
    salesperson_added_before_enrichment(app, platform, "wm_wang", "u_wang")
    assert link_sends(platform) == []
    wait = timedelta(seconds=harpoon_of(app).settings.journey_enrichment_wait_seconds)
    later = utcnow() + wait + timedelta(seconds=1)
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        result = runner.run_due(session, workspace_id, now=lambda: later, enrichment_wait=wait)
    assert result.sent == 1
    harpoon_of(app).queue.enqueue_followups(result.followups.jobs)
    settle(app, platform)  # the group send's own job
    (sent,) = link_sends(platform)
    assert sent.external_userids == ["wm_wang"]
    assert not the_enrolment(app).awaits_enrichment


def cs_link_journey() -> dict:
    """Register for the live stream -> an hour later, the link by service message."""
    return {
        "reentry": "once",
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "live.register"}},
                "next": "later",
            },
            {"id": "later", "type": "wait", "wait": {"minutes": 60}, "next": "send_link"},
            {"id": "send_link", "type": "action", "action": {"kind": "cs_message", "text": LINK}},
        ],
    }


def registers(app, contact_id: int, at) -> None:
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        row = Interaction(
            workspace_id=workspace_id, contact_id=contact_id, kind="live.register", occurred_at=at
        )
        session.add(row)
        session.flush()
        touch = Touch(row.id, contact_id, None, "live.register", {}, at)
        reactions.on_interactions(session, workspace_id, [touch], now=at)
        session.commit()


def test_two_enrolments_of_one_person_become_one_and_send_one_link(app, platform, channels):
    make_journey(app, "live link", document=cs_link_journey())
    follower_id = follower(app, platform, "o_zhao", "u_zhao")
    with session_of(app) as session:
        phone_only = Contact(workspace_id=session.scalar(select(Workspace.id)), name="赵")
        session.add(phone_only)
        session.add(
            Identity(
                workspace_id=phone_only.workspace_id,
                contact=phone_only,
                kind="phone",
                value="13800138000",
            )
        )
        session.commit()
        phone_id = phone_only.id
    now = utcnow()
    registers(app, follower_id, now)  # on WeChat
    registers(app, phone_id, now)  # on the web form, by phone
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        runner.run_due(session, workspace_id, now=lambda: now)  # both wait an hour
        follower_row = session.get(Contact, follower_id)
        book = TagBook(session, workspace_id)
        attach_identity(session, book, follower_row, "phone", "13800138000")  # one person
        session.commit()

    later = now + timedelta(minutes=61)
    with session_of(app) as session:
        runner.run_due(session, workspace_id, now=lambda: later)
        platform_ = delivery.Platform(oa_client=lambda channel: client_of(app))
        assert delivery.deliver_due(session, workspace_id, platform_, now=lambda: later).sent == 1
        rows = session.scalars(select(Enrolment).order_by(Enrolment.id)).all()
        assert [(e.contact_id, e.status) for e in rows] == [
            (follower_id, EnrolmentStatus.COMPLETED),
            (follower_id, EnrolmentStatus.EXITED),
        ]
        merged = session.scalar(select(Step).where(Step.outcome == "merged"))
        assert merged.enrolment_id == rows[1].id and merged.detail["into"] == follower_id
    assert [m.content["content"] for m in received(platform, "o_zhao", CUSTOM)] == [LINK]


def link_then_wait_journey(*, reminder: bool = False) -> dict:
    """Register -> the link (at once, or after an hour) -> a day's wait -> the end; with
    `reminder`, a second message an hour after the link."""
    nodes = [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "live.register"}},
            "next": "send_link" if reminder else "later",
        },
        {"id": "later", "type": "wait", "wait": {"minutes": 60}, "next": "send_link"},
        {
            "id": "send_link",
            "type": "action",
            "action": {"kind": "cs_message", "text": LINK},
            "next": "mid" if reminder else "after",
        },
        {"id": "mid", "type": "wait", "wait": {"minutes": 60}, "next": "remind"},
        {
            "id": "remind",
            "type": "action",
            "action": {"kind": "cs_message", "text": "提醒：" + LINK},
            "next": "after",
        },
        {"id": "after", "type": "wait", "wait": {"minutes": 1440}, "next": "done"},
        {"id": "done", "type": "exit"},
    ]
    if reminder:
        nodes = [node for node in nodes if node["id"] != "later"]
    else:
        nodes = [node for node in nodes if node["id"] not in ("mid", "remind")]
    return {"reentry": "once", "nodes": nodes}


def walk_and_send(app, at) -> None:
    """The runner, then the sender, at `at`."""
    with session_of(app) as session:
        workspace_id = session.scalar(select(Workspace.id))
        runner.run_due(session, workspace_id, now=lambda: at)
        platform_ = delivery.Platform(oa_client=lambda channel: client_of(app))
        delivery.deliver_due(session, workspace_id, platform_, now=lambda: at)


def one_person(app, keep_id: int, drop_id: int, phone: str) -> None:
    """`drop` gives a phone number that `keep` gives too: the two contacts merge."""
    with session_of(app) as session:
        book = TagBook(session, session.get(Contact, keep_id).workspace_id)
        attach_identity(session, book, session.get(Contact, drop_id), "phone", phone)
        session.commit()
        kept = attach_identity(session, book, session.get(Contact, keep_id), "phone", phone)
        session.commit()
        assert kept.id == keep_id and session.get(Contact, drop_id).merged_into_id == keep_id


def test_a_merge_keeps_the_enrolment_further_along_and_its_queued_link_goes_out_once(
    app, platform, channels
):
    make_journey(app, "live link", document=link_then_wait_journey())
    with session_of(app) as session:  # known by phone first: the contact that is kept
        phone_only = Contact(workspace_id=session.scalar(select(Workspace.id)), name="钱")
        session.add(phone_only)
        session.commit()
        keep_id = phone_only.id
    drop_id = follower(app, platform, "o_qian", "u_qian")
    assert keep_id < drop_id
    now = utcnow()
    registers(app, drop_id, now)
    walk_and_send(app, now)
    registers(app, keep_id, now + timedelta(minutes=30))
    walk_and_send(app, now + timedelta(minutes=30))
    with session_of(app) as session:  # the follower's link is queued, not yet sent
        workspace_id = session.scalar(select(Workspace.id))
        runner.run_due(session, workspace_id, now=lambda: now + timedelta(minutes=61))
    assert received(platform, "o_qian", CUSTOM) == []

    one_person(app, keep_id, drop_id, "13900139000")
    walk_and_send(app, now + timedelta(minutes=91))  # the kept contact's wait is over too

    assert [m.content["content"] for m in received(platform, "o_qian", CUSTOM)] == [LINK]
    with session_of(app) as session:
        rows = session.scalars(select(Enrolment).order_by(Enrolment.id)).all()
        assert [(e.contact_id, e.status, e.node_id) for e in rows] == [
            (keep_id, EnrolmentStatus.ACTIVE, "after"),  # the follower's, further along
            (keep_id, EnrolmentStatus.EXITED, "later"),
        ]
        merged = session.scalar(select(Step).where(Step.outcome == "merged"))
        assert merged.enrolment_id == rows[1].id and merged.detail["into"] == keep_id


def test_the_exited_enrolments_unsent_message_is_failed_never_delivered(app, platform, channels):
    make_journey(app, "live link", document=link_then_wait_journey(reminder=True))
    keep_id = follower(app, platform, "o_sun", "u_sun")
    drop_id = follower(app, platform, "o_sun_2", "u_sun_2")  # the same person, it turns out
    now = utcnow()
    registers(app, keep_id, now)
    walk_and_send(app, now)
    walk_and_send(app, now + timedelta(minutes=61))  # link and reminder out: further along
    later = now + timedelta(minutes=70)
    registers(app, drop_id, later)
    with session_of(app) as session:  # the second one's link is queued, not yet sent
        workspace_id = session.scalar(select(Workspace.id))
        runner.run_due(session, workspace_id, now=lambda: later)

    one_person(app, keep_id, drop_id, "13700137000")
    walk_and_send(app, later + timedelta(minutes=61))

    assert received(platform, "o_sun_2", CUSTOM) == []
    assert [m.content["content"] for m in received(platform, "o_sun", CUSTOM)] == [
        LINK,
        "提醒：" + LINK,
    ]
    with session_of(app) as session:
        (row,) = session.scalars(
            select(OutboxItem).where(OutboxItem.status != OutboxStatus.SENT)
        ).all()
        assert (row.status, row.last_error) == (
            OutboxStatus.FAILED,
            f"merged into contact {keep_id}",
        )
        step = session.get(Step, row.step_id)
        assert step.outcome == "failed" and step.detail["error"] == row.last_error
        assert step.detail["message"] is False
        exited = session.get(Enrolment, step.enrolment_id)
        assert exited.status == EnrolmentStatus.EXITED
