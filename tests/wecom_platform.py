"""The WeCom sandbox for tests whose code calls the WeCom API over HTTP (mark the module
`sandbox`: its `app` then talks to the `platform` fixture, emptied for each test).

API calls trigger no callbacks (as on the real platform), so these tests need no
live server; a test that plays people in the WeCom client (add_external_contact)
registers the corp with `live_server` as the callback base instead.
"""

from sqlalchemy import select

from demo.seed import register_tenant
from models import Channel, Staff
from tests.factories import make_channel
from tests.helpers import NO_CALLBACKS, WECOM_CREDS, harpoon_of
from wechat.sandbox import wecom
from wechat.sandbox.core import Fault
from wechat.simulate import Credentials

CONTACT_SECRET = "contact-secret"
AGENT_SECRET = "agent-secret"


def connect_corp(
    app,
    platform,
    creds: Credentials = WECOM_CREDS,
    *,
    workspace: str = "acme",
    callback_base: str = NO_CALLBACKS,
) -> int:
    """A WeCom channel in `workspace` whose corp the sandbox knows; returns its id."""
    channel_id = make_channel(
        app,
        "wecom",
        creds,
        workspace=workspace,
        secret=CONTACT_SECRET,
        agent_id="1000002",
        agent_secret=AGENT_SECRET,
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), callback_base)
    return channel_id


def corp(platform, creds: Credentials = WECOM_CREDS):
    return platform.state.tenant(creds.app_id)


def set_customer_contact(platform, userid, allowed: bool, *, creds=WECOM_CREDS) -> None:
    """An administrator grants or withdraws a member's customer-contact permission."""
    with platform.state.lock:
        wecom.state_of(corp(platform, creds)).staff[userid].customer_contact = allowed


def contact_ways_in_wecom(platform, *, creds=WECOM_CREDS) -> dict[str, wecom.ContactWay]:
    """The corp's 联系我 codes as WeCom holds them, by config_id."""
    with platform.state.lock:
        return dict(wecom.state_of(corp(platform, creds)).contact_ways)


def fail_next(platform, endpoint: str, errcode: int, times: int = 1) -> None:
    """WeCom answers the next call(s) to `endpoint` (e.g. "externalcontact/add_contact_way")
    with `errcode`."""
    platform.state.add_fault(Fault(f"/wecom/cgi-bin/{endpoint}", errcode=errcode, times=times))


def api_calls(platform, *, creds=WECOM_CREDS) -> int:
    """How many API calls the corp received in the last minute (token fetches aside)."""
    with platform.state.lock:
        return len(wecom.state_of(corp(platform, creds)).calls.minute.times)


def wecom_client(app, channel_id: int):
    """Harpoon's customer-contact client for the channel, as the jobs build it."""
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, channel_id)
        return harpoon_of(app).wechat.wecom(channel.app_id, channel.secret)


def sync_staff_now(app, channel_id: int):
    """Run the staff sync in-process, as the job does."""
    from sales.staff import sync_staff

    client = wecom_client(app, channel_id)
    with harpoon_of(app).db.session() as session:
        return sync_staff(session, session.get(Channel, channel_id), client)


def staff_of(app, channel_id: int) -> dict[str, Staff]:
    with harpoon_of(app).db.session() as session:
        rows = session.scalars(select(Staff).where(Staff.channel_id == channel_id))
        return {staff.userid: staff for staff in rows}
