"""The OA sandbox for tests whose code calls the OA API over HTTP and whose followers the
sandbox plays (see tests/wecom_platform.py for WeCom): the OA connected to it, Harpoon's
client of it, following, what followers received, and opening links in WeChat's browser.

The module's `app` talks to the `platform` fixture when the module is marked `sandbox`."""

from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from demo.seed import register_tenant
from models import Channel, Identity, IdentityKind
from tests.factories import make_channel
from tests.helpers import NO_CALLBACKS, OA_CREDS, OA_SECRET, harpoon_of, run_jobs, session_of
from wechat.sandbox import oa as sandbox_oa
from wechat.sandbox.oa import MASS, state_of

WECHAT = {"User-Agent": "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.50 NetType/WIFI"}


def connect_oa(app, platform, callback_base: str = NO_CALLBACKS) -> int:
    """A safe-mode service OA the sandbox knows, delivering callbacks to `callback_base`
    (nowhere unless told); returns its id."""
    channel_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), callback_base)
    return channel_id


def client_of(app):
    """Harpoon's client of the OA."""
    return harpoon_of(app).wechat.oa(OA_CREDS.app_id, OA_SECRET)


def tenant(platform):
    """The OA as the sandbox holds it."""
    return platform.state.tenant(OA_CREDS.app_id)


def sandbox_codes(platform) -> dict[str, sandbox_oa.QrCode]:
    """The OA's QR codes as WeChat holds them, by ticket."""
    with platform.state.lock:
        return dict(state_of(tenant(platform)).qrcodes)


def settle(app, platform):
    """Every callback answered and every job run, until none is left."""
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def follow(app, platform, *openids):
    """People follow the OA and Harpoon settles; their contact ids by openid."""
    for openid in openids:
        sandbox_oa.follow(platform.state, tenant(platform), openid)
    settle(app, platform)
    with session_of(app) as session:
        rows = session.execute(
            select(Identity.value, Identity.contact_id).where(
                Identity.kind == IdentityKind.OPENID, Identity.value.in_(openids)
            )
        ).all()
    return dict(rows)


def received(platform, openid, kind=MASS):
    """What the follower received from the OA, of this kind (mass sends unless told)."""
    follower = state_of(tenant(platform)).followers[openid]
    return [r for r in follower.received if r.kind == kind]


def local(url: str) -> str:
    """The path and query of a URL of the app, for its test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def open_in_wechat(client, platform, path: str, openid: str, *, code_sink=None):
    """Open a link as WeChat's browser does: our redirect to the platform's authorize page
    (the sandbox is told who reads; WeChat knows), its redirect back with a code."""
    answer = client.get(path, headers=WECHAT)
    if answer.status_code == 302 and answer.location.startswith(platform.url):
        authorize = answer.location.split("#")[0] + f"&openid={openid}"
        back = requests.get(authorize, allow_redirects=False, timeout=5)
        assert back.status_code == 302, back.text
        if code_sink is not None:
            code_sink.append(back.headers["Location"])
        answer = client.get(local(back.headers["Location"]), headers=WECHAT)
    return answer
