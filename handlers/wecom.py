"""What Harpoon does with each WeCom customer-contact event."""

from sqlalchemy.orm import Session

from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from models import Identity, IdentityKind


def external_contact(session: Session, ctx: EventContext) -> Identity:
    """The customer's external_userid identity in this corp."""
    return ctx.identities.resolve(
        session,
        IdentityKind.EXTERNAL_USERID,
        ctx.channel_id,
        ctx.event.subject,
        ctx.event.occurred_at,
    )


@handles(
    "wecom.contact_added",
    "wecom.contact_edited",
    "wecom.contact_removed",
    "wecom.transfer_failed",
)
def on_contact_change(session: Session, ctx: EventContext) -> None:
    identity = external_contact(session, ctx)
    properties = dict(ctx.event.properties)
    properties.pop("welcome_code", None)  # single-use and short-lived: not history
    if ctx.event.staff_userid:
        properties["staff_userid"] = ctx.event.staff_userid
    record_interaction(session, ctx, identity.contact, properties=properties)
