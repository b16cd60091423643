"""What Harpoon does with each Official Account event and message."""

from sqlalchemy.orm import Session

from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from models import Identity, IdentityKind


def follower(session: Session, ctx: EventContext) -> Identity:
    """The follower's openid identity on this OA (a new contact on first sight)."""
    return ctx.identities.resolve(
        session,
        IdentityKind.OPENID,
        ctx.channel_id,
        ctx.event.subject,
        ctx.event.occurred_at,
    )


@handles("wechat.unfollow")
def on_unfollow(session: Session, ctx: EventContext) -> None:
    identity = follower(session, ctx)
    identity.set_following(False, ctx.event.occurred_at)
    record_interaction(session, ctx, identity.contact)


@handles(
    "wechat.follow",
    "wechat.scan",
    "wechat.menu_click",
    "wechat.menu_view",
    "wechat.menu_scan",
    "wechat.message",
    "wechat.location",
)
def on_touch(session: Session, ctx: EventContext) -> None:
    """Following, or acting as only a follower can: scan, tap, message, share location."""
    identity = follower(session, ctx)
    identity.set_following(True, ctx.event.occurred_at)
    record_interaction(session, ctx, identity.contact)
