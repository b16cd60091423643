"""An OA on the sandbox with followers Harpoon knows, for the menu tests.

Plain functions for a test module's fixtures (see tests/wecom_platform.py): the
sandbox delivers its callbacks to `live_server`, so following, tagging and tag sync
go through Harpoon's real pipeline.
"""

from sqlalchemy import select

from core.jobs import Followups
from crm.tags import TagBook, apply_tags
from demo.seed import register_tenant
from models import Channel, Identity, IdentityKind, TagSource
from tests.conftest import OA_CREDS, harpoon_of, make_channel, run_jobs
from wechat.sandbox import oa

OA_SECRET = "oa-app-secret"


def connect_oa(app, platform, callback_base: str) -> int:
    """A service OA the sandbox knows, delivering callbacks to `callback_base`."""
    channel_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), callback_base)
    return channel_id


def oa_tenant(platform):
    return platform.state.tenant(OA_CREDS.app_id)


def oa_client(app):
    return harpoon_of(app).wechat.oa(OA_CREDS.app_id, OA_SECRET)


def settle(app, platform):
    """Every callback answered and every job (drains, enrichment, tag sync) run."""
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def follow(app, platform, *openids: str) -> None:
    for openid in openids:
        oa.follow(platform.state, oa_tenant(platform), openid)
    settle(app, platform)


def workspace_of(app, channel_id: int) -> int:
    with harpoon_of(app).db.session() as session:
        return session.get(Channel, channel_id).workspace_id


def tag(app, channel_id: int, group: str, name: str) -> int:
    workspace_id = workspace_of(app, channel_id)
    with harpoon_of(app).db.session() as session:
        tag_id = TagBook(session, workspace_id).get(session, group, name).id
        session.commit()
        return tag_id


def tag_followers(app, channel_id: int, tag_id: int, *openids: str) -> None:
    """Tag the followers in Harpoon, as a rule or a marketer would (synced tags mirror)."""
    followups = Followups()
    workspace_id = workspace_of(app, channel_id)
    with harpoon_of(app).db.session() as session:
        contact_ids = session.scalars(
            select(Identity.contact_id).where(
                Identity.channel_id == channel_id,
                Identity.kind == IdentityKind.OPENID,
                Identity.value.in_(openids),
            )
        ).all()
        book = TagBook(session, workspace_id)
        apply_tags(
            session,
            book,
            contact_ids,
            [book.by_id(tag_id)],
            source=TagSource.MANUAL,
            followups=followups,
        )
        session.commit()
    harpoon_of(app).queue.enqueue_followups(followups.jobs)


def wechat_tags_of(platform, openid: str) -> set[str]:
    state = oa.state_of(oa_tenant(platform))
    return {state.tags[t].name for t in state.followers[openid].tagid_list}
