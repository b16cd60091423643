"""A WeCom corp registered in the sandbox, with 张三 (a sales user's staff identity) and 李四."""

import pytest

from demo.seed import register_tenant
from models import Channel, Staff
from tests.factories import make_channel, make_user
from tests.helpers import WECOM_CREDS, harpoon_of
from wechat.sandbox import wecom

AGENT_SECRET, AGENT_ID = "agent-secret", "1000002"


@pytest.fixture
def corp(app, platform, live_server):
    """The corp's channel id; 张三 signs in as the sales user "sales@acme.example"."""
    channel_id = make_channel(
        app,
        "wecom",
        WECOM_CREDS,
        secret="contact-secret",
        agent_id=AGENT_ID,
        agent_secret=AGENT_SECRET,
    )
    zhangsan = make_user(app, role="sales")
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), live_server)
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        tenant = platform.state.tenant(WECOM_CREDS.app_id)
        for userid, name, user_id in (("zhangsan", "张三", zhangsan), ("lisi", "李四", None)):
            wecom.add_staff(platform.state, tenant, userid, name)
            session.add(
                Staff(
                    workspace_id=workspace_id,
                    channel_id=channel_id,
                    userid=userid,
                    name=name,
                    user_id=user_id,
                )
            )
        session.commit()
    return channel_id
