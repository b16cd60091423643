"""Group sends to customer groups against the sandbox: only the groups the sender owns,
recorded before the call, handed to WeCom once by the job, and each group's result (sent
or not) fetched after the owner confirms."""

import pytest
from marshmallow import ValidationError

from core.jobs import Job
from models import Channel, GroupSend, Staff
from sales.group_send import (
    GROUP,
    NOT_SENT,
    SENT,
    GroupSendStatus,
    create_group_chat_send,
    owned_groups,
    send_group_send,
)
from tests.factories import make_synced_group
from tests.helpers import harpoon_of, run_jobs, session_of
from tests.wecom_platform import connect_corp, corp, wecom_client
from wechat.sandbox import wecom, wecom_groups

TEXT = "峰会明天上午 9 点开始，签到处在一楼大厅。"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    channel_id = connect_corp(app, platform)
    with session_of(app) as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
            wecom.add_staff(platform.state, corp(platform), userid, name)
            session.add(
                Staff(workspace_id=workspace_id, channel_id=channel_id, userid=userid, name=name)
            )
        session.commit()
    return channel_id


def group(app, platform, channel_id, name, owner="zhangsan") -> str:
    with platform.state.lock:
        made = wecom_groups.create_group(platform.state, corp(platform), owner=owner, name=name)
    make_synced_group(app, channel_id, made.chat_id, name, owner_userid=owner)
    return made.chat_id


def create(app, channel_id, chat_ids, staff="zhangsan"):
    with session_of(app) as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        new = create_group_chat_send(session, workspace_id, channel_id, staff, TEXT, chat_ids, None)
        session.commit()
        return new.group_send.id, new.not_customers


def stored(app, group_send_id) -> GroupSend:
    with session_of(app) as session:
        return session.get(GroupSend, group_send_id)


def test_a_send_to_the_senders_groups_and_its_results(app, platform, channel_id):
    summit = group(app, platform, channel_id, "2026 数字化峰会交流群")
    vip = group(app, platform, channel_id, "峰会 VIP 群")
    theirs = group(app, platform, channel_id, "李四的群", owner="lisi")
    with session_of(app) as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        assert owned_groups(session, workspace_id, channel_id, "zhangsan") == [summit, vip]

    group_send_id, left_out = create(app, channel_id, [summit, vip, theirs])
    assert left_out == [theirs]
    queued = stored(app, group_send_id)
    assert (queued.status, queued.chat_type, queued.chat_ids) == (
        GroupSendStatus.QUEUED,
        GROUP,
        [summit, vip],
    )
    assert queued.msgid is None  # recorded before WeCom is called

    harpoon_of(app).queue.enqueue(Job.SEND_GROUP_SEND, group_send_id)
    run_jobs(app)
    sent = stored(app, group_send_id)
    assert sent.status == GroupSendStatus.SENT and sent.msgid
    with platform.state.lock:
        template = wecom.state_of(corp(platform)).msg_templates[sent.msgid]
        assert (template.chat_type, template.chat_ids, template.sender) == (
            "group",
            [summit, vip],
            "zhangsan",
        )
        assert template.text == {"content": TEXT}

    harpoon_of(app).queue.enqueue(Job.FETCH_GROUP_SEND_RESULTS, group_send_id)
    run_jobs(app)
    assert stored(app, group_send_id).results == {summit: NOT_SENT, vip: NOT_SENT}

    with platform.state.lock:  # 张三 hands the VIP group to 李四 before confirming
        wecom_groups.groups_of(corp(platform))[vip].owner = "lisi"
    wecom.confirm_msg_template(platform.state, corp(platform), sent.msgid)
    harpoon_of(app).queue.enqueue(Job.FETCH_GROUP_SEND_RESULTS, group_send_id)
    run_jobs(app)
    done = stored(app, group_send_id)
    assert done.status == GroupSendStatus.CONFIRMED
    assert done.results[summit] == SENT
    assert done.results[vip] != SENT


def test_a_send_is_handed_to_wecom_once(app, platform, channel_id):
    summit = group(app, platform, channel_id, "2026 数字化峰会交流群")
    group_send_id, _ = create(app, channel_id, [summit])
    client = wecom_client(app, channel_id)
    for _attempt in range(2):
        with session_of(app) as session:
            send_group_send(session, session.get(GroupSend, group_send_id), client)
    with platform.state.lock:
        assert len(wecom.state_of(corp(platform)).msg_templates) == 1


def test_groups_the_sender_does_not_own_are_refused(app, platform, channel_id):
    theirs = group(app, platform, channel_id, "李四的群", owner="lisi")
    with pytest.raises(ValidationError) as refused:
        create(app, channel_id, [theirs])
    assert refused.value.messages == {
        "chat_ids": ["None of them is a live group this staff member owns."]
    }
    with pytest.raises(ValidationError) as unknown:
        create(app, channel_id, ["wrNotOurs"])
    assert unknown.value.messages == {"chat_ids": ["Not customer groups of this workspace."]}
    with pytest.raises(ValidationError) as empty:
        create(app, channel_id, [])
    assert "chat_ids" in empty.value.messages
