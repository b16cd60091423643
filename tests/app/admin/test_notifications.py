"""Sales alerts page: the workspace's staff notifications, digests by msgid, and filters."""

import re
from datetime import timedelta

from sqlalchemy import select

from crm.channels import workspace_named
from models import Channel, NotificationStatus, Staff, StaffNotification, User, utcnow
from tests.app.admin.helpers import in_english
from tests.helpers import harpoon_of

PAGE = "/admin/notifications"


def seed(app, channel_id):
    """张三 got two alerts in one digest and has one pending; 李四's one failed."""
    now = utcnow()
    with harpoon_of(app).db.session() as session:
        ws = session.get(Channel, channel_id).workspace_id
        staff = {
            userid: Staff(workspace_id=ws, channel_id=channel_id, userid=userid, name=name)
            for userid, name in (("zhangsan", "张三"), ("lisi", "李四"))
        }
        session.add_all(staff.values())
        rows = [
            ("zhangsan", "target_added", "华信科技的李雷加了您", "sent", "msg_digest", None),
            ("zhangsan", "account_hot", "华信科技本周活跃度上升", "sent", "msg_digest", None),
            ("zhangsan", "account_hot", "云帆科技进入 MQA", "pending", None, None),
            ("lisi", "target_added", "数智科技的王芳加了您", "failed", None, "81013 user invalid"),
        ]
        for minutes, (userid, kind, text, status, msgid, error) in enumerate(rows):
            session.add(
                StaffNotification(
                    workspace_id=ws,
                    channel_id=channel_id,
                    staff_userid=userid,
                    kind=kind,
                    text=text,
                    status=status,
                    msgid=msgid,
                    error=error,
                    created_at=now - timedelta(minutes=10 - minutes),
                    sent_at=now if status == "sent" else None,
                )
            )
        session.commit()
        return {userid: member.id for userid, member in staff.items()}


def row_texts(page: str) -> list[str]:
    return re.findall(r'<td class="notification-text">([^<]*)</td>', page)


def test_lists_every_alert_newest_first_with_digests(app, signed_in, wecom_channel):
    seed(app, wecom_channel)
    page = in_english(signed_in("viewer")).get(PAGE)
    assert page.status_code == 200
    assert row_texts(page.text) == [
        "数智科技的王芳加了您",
        "云帆科技进入 MQA",
        "华信科技本周活跃度上升",
        "华信科技的李雷加了您",
    ]
    assert page.text.count('data-digest="2"') == 2 and "one digest of 2 alerts" in page.text
    assert "81013 user invalid" in page.text and "4 alerts" in page.text
    assert "张三" in page.text and "target_added" in page.text


def test_filters_by_staff_member_and_status(app, signed_in, wecom_channel):
    staff = seed(app, wecom_channel)
    client = signed_in("marketer")
    assert row_texts(client.get(f"{PAGE}?staff={staff['zhangsan']}").text) == [
        "云帆科技进入 MQA",
        "华信科技本周活跃度上升",
        "华信科技的李雷加了您",
    ]
    pending = client.get(f"{PAGE}?staff={staff['zhangsan']}&status={NotificationStatus.PENDING}")
    assert row_texts(pending.text) == ["云帆科技进入 MQA"]
    assert row_texts(client.get(f"{PAGE}?status=failed").text) == ["数智科技的王芳加了您"]
    # Unknown filters show everything rather than an error.
    assert len(row_texts(client.get(f"{PAGE}?staff=999999&status=bogus").text)) == 4


def test_a_salesperson_sees_their_own_alerts_only(app, signed_in, wecom_channel):
    staff = seed(app, wecom_channel)
    client = signed_in("sales")
    assert row_texts(client.get(PAGE).text) == []  # no staff identity of theirs yet
    with harpoon_of(app).db.session() as session:
        user_id = session.scalars(select(User.id).where(User.role == "sales")).one()
        session.get(Staff, staff["zhangsan"]).user_id = user_id
        session.commit()
    page = client.get(PAGE).text
    assert row_texts(page) == ["云帆科技进入 MQA", "华信科技本周活跃度上升", "华信科技的李雷加了您"]
    assert "李四" not in page  # neither their alerts nor them in the staff filter
    # Asking for another's alerts by the filter shows their own still.
    assert "数智科技的王芳加了您" not in client.get(f"{PAGE}?staff={staff['lisi']}").text


def test_another_workspace_sees_none_of_them(app, signed_in, wecom_channel):
    seed(app, wecom_channel)
    with harpoon_of(app).db.session() as session:
        workspace_named(session, "other")
        session.commit()
    response = signed_in("marketer", "other").get(PAGE)
    assert response.status_code == 200  # the page itself, not an error or a sign-in page
    page = response.text
    assert row_texts(page) == [] and "张三" not in page


def test_routing_alerts_show_their_kind_in_chinese(app, signed_in, wecom_channel):
    kinds = {
        "account_routed": "有客户公司分配给该员工",
        "routing_unassigned": "客户公司未能自动分配",
        "sla_escalated": "首次跟进超时",
        "sla_reassigned": "未按时首次跟进，客户公司已改派",
    }
    with harpoon_of(app).db.session() as session:
        ws = session.get(Channel, wecom_channel).workspace_id
        session.add(Staff(workspace_id=ws, channel_id=wecom_channel, userid="zhangsan"))
        session.add_all(
            StaffNotification(
                workspace_id=ws,
                channel_id=wecom_channel,
                staff_userid="zhangsan",
                kind=kind,
                text="华信科技",
                status="pending",
            )
            for kind in kinds
        )
        session.commit()
    page = signed_in("viewer").get(PAGE)
    assert page.status_code == 200
    shown = re.findall(r'<td class="kind">([^<]*)</td>', page.text)
    assert sorted(shown) == sorted(kinds.values())
