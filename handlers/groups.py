"""WeCom customer groups: a group's change marks it for groupchat/get (after the commit),
and each customer's join or leave, written to the inbox by that refresh, becomes an
interaction of the person it names (found by external_userid, else unionid, else made)."""

from sqlalchemy.orm import Session

from core.jobs import Job
from crm.touchpoints import GROUP_JOIN, RECORDED_KINDS
from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from handlers.touchpoints import person_of
from sales.groups import link_member, note_group_event
from sales.join_ways import tag_group_join


@handles("wecom.group_changed")
def on_group_changed(session: Session, ctx: EventContext) -> None:
    event = ctx.event
    properties = event.properties
    change_type = properties.get("change_type") or ""
    note_group_event(
        session,
        workspace_id=ctx.workspace_id,
        channel_id=ctx.channel_id,
        chat_id=properties["chat_id"],
        change_type=change_type,
        update_detail=properties.get("update_detail"),
        quit_scene=properties.get("quit_scene"),
        at=event.occurred_at,
    )
    if change_type != "dismiss":
        ctx.batch.followups.add(Job.REFRESH_CUSTOMER_GROUPS, ctx.channel_id)


@handles(*RECORDED_KINDS)
def on_group_membership(session: Session, ctx: EventContext) -> None:
    event = ctx.event
    contact = person_of(session, ctx)
    if contact is None:
        raise ValueError("the group member names no identity that can make a contact")
    name = (event.details.get("person") or {}).get("name")
    if name and not contact.name:
        contact.name = name[:100]
    if event.occurred_at > contact.last_seen_at:
        contact.last_seen_at = event.occurred_at
    record_interaction(session, ctx, contact)
    ctx.batch.touch(contact.id, event.kind)
    if event.kind == GROUP_JOIN:  # through a 群活码: its tags go on the person
        state = event.properties.get("state")
        tag_group_join(
            session, ctx.batch.tags(session), ctx.channel_id, state, contact.id, ctx.batch.followups
        )
    refs = event.details.get("refs") or {}
    if refs.get("group_id") and refs.get("userid"):
        link_member(session, ctx.workspace_id, int(refs["group_id"]), refs["userid"], contact.id)
