"""What the platform reports about Harpoon's pushes: MASSSENDJOBFINISH per mass send,
TEMPLATESENDJOBFINISH per template message. Reports, not a person's touch: no contact
is resolved and no interaction recorded."""

import logging

from sqlalchemy.orm import Session

from handlers.registry import EventContext, handles
from outreach.pushes import record_mass_finished, record_template_finished

log = logging.getLogger(__name__)


@handles("wechat.mass_send_finished")
def on_mass_send_finished(session: Session, ctx: EventContext) -> None:
    props = ctx.event.properties
    push_id = record_mass_finished(
        session, ctx.channel_id, int(props["msg_id"]), props, ctx.event.occurred_at
    )
    if push_id is None:  # a send made in the OA's console, or by another tool
        log.info("channel %s: mass send %s is not a Harpoon push", ctx.channel_id, props["msg_id"])


@handles("wechat.template_send_finished")
def on_template_send_finished(session: Session, ctx: EventContext) -> None:
    props = ctx.event.properties
    record_template_finished(
        session, ctx.channel_id, int(props["msg_id"]), str(props.get("status", ""))
    )
