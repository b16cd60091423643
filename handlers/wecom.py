"""What Harpoon does with each WeCom customer-contact event."""

from sqlalchemy.orm import Session

from core.jobs import Job
from crm.relations import follow_relation
from crm.rules import source_tags
from crm.tags import apply_tags
from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from models import Contact, ContactWay, FollowRelation, Identity, IdentityKind, TagSource
from sales.contact_way_rotation import is_managed
from sales.contact_ways import contact_way_for_state
from sales.notify import notify_staff
from sales.transfers import mark_failed_by_callback
from sales.welcome import record_welcome


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
    event = ctx.event
    identity = external_contact(session, ctx)
    contact = identity.contact
    properties = dict(event.properties)
    properties.pop("welcome_code", None)  # single-use and short-lived: not history
    if event.staff_userid:
        properties["staff_userid"] = event.staff_userid
    record_interaction(session, ctx, contact, properties=properties)
    ctx.batch.touch(contact.id, event.kind)
    way = contact_way_for_state(session, ctx.channel_id, event.properties.get("state"))
    if event.staff_userid:
        relation = _update_relation(session, ctx, contact, way)
        if relation is not None and relation.removed_by == "customer":
            _tell_staff_they_lost(session, ctx, contact, relation)
    if event.kind in ("wecom.contact_added", "wecom.contact_edited"):
        # externalcontact/get (name, company, position, unionid, remarks, tags) in a job.
        identity.enriched_at = None
        ctx.batch.followups.add(Job.ENRICH_EXTERNAL_CONTACTS, ctx.channel_id)
    if event.kind == "wecom.transfer_failed":
        # The customer refused the takeover, or the takeover is full: the item is final.
        mark_failed_by_callback(
            session,
            ctx.workspace_id,
            ctx.channel_id,
            event.staff_userid,
            event.subject,
            event.properties.get("fail_reason"),
        )
    if event.kind == "wecom.contact_added":
        _welcome(session, ctx, contact, way)
        if way is not None and is_managed(way):
            # The next scan goes to whoever's turn it is now: the code is re-pointed in a job.
            ctx.batch.followups.add(Job.ROTATE_CONTACT_WAY, way.id)
        book, followups = ctx.batch.tags(session), ctx.batch.followups
        state = event.properties.get("state")
        if way is not None and way.tag_ids:
            tags = [tag for t in way.tag_ids if (tag := book.by_id(t)) is not None]
            apply_tags(
                session, book, [contact.id], tags, source=TagSource.RULE, followups=followups
            )
        source_tags(session, book, ctx.batch.rules(session), contact.id, state, followups)


def _welcome(session: Session, ctx: EventContext, contact: Contact, way: ContactWay | None):
    """Record the welcome this add allows; the high-priority job sends it within 20 s."""
    code = ctx.event.properties.get("welcome_code")
    if not code:
        return  # they chatted before: WeCom gives no code, and no welcome is due
    recorded = record_welcome(
        session,
        workspace_id=ctx.workspace_id,
        channel_id=ctx.channel_id,
        contact_id=contact.id,
        contact_way_id=way.id if way else None,
        external_userid=ctx.event.subject,
        staff_userid=ctx.event.staff_userid or "",
        welcome_code=code,
        added_at=ctx.event.occurred_at,
        received_at=ctx.received_at,
    )
    if recorded:
        ctx.batch.followups.add(Job.SEND_WELCOMES, ctx.channel_id)


def _tell_staff_they_lost(
    session: Session, ctx: EventContext, contact: Contact, relation: FollowRelation
) -> None:
    notify_staff(
        session,
        workspace_id=ctx.workspace_id,
        channel_id=ctx.channel_id,
        staff_userid=relation.staff_userid,
        kind="customer_lost",
        text=f"客户 {contact.name or relation.external_userid} 已将你删除（流失）。",
        dedupe_key=f"lost:{ctx.inbound_event_id}",
        followups=ctx.batch.followups,
    )


def _update_relation(
    session: Session, ctx: EventContext, contact: Contact, way: ContactWay | None
) -> FollowRelation | None:
    """The staff member's relation with the customer: opened by an add, closed by a delete
    (kept as history, with who ended it)."""
    event = ctx.event
    relation = follow_relation(
        session,
        workspace_id=ctx.workspace_id,
        channel_id=ctx.channel_id,
        external_userid=event.subject,
        staff_userid=event.staff_userid,
        contact_id=contact.id,
        # Nothing known to close or edit yet: enrichment fills it in.
        create=event.kind == "wecom.contact_added",
    )
    if relation is None:
        return None
    if event.kind == "wecom.contact_added":
        if relation.added_at is None or event.occurred_at >= relation.added_at:
            relation.added_at = event.occurred_at
            relation.removed_at = relation.removed_by = None
            relation.state = event.properties.get("state") or relation.state
            relation.contact_way_id = way.id if way else relation.contact_way_id
    elif event.kind == "wecom.contact_removed" and (
        relation.added_at is None or event.occurred_at >= relation.added_at
    ):
        relation.removed_at = event.occurred_at
        by_transfer = event.properties.get("source") == "DELETE_BY_TRANSFER"
        relation.removed_by = "transfer" if by_transfer else event.properties.get("removed_by")
    return relation


@handles("wecom.corp_tags_changed")
def on_corp_tags_changed(session: Session, ctx: EventContext) -> None:
    """Someone edited corp tags in the WeCom console: re-read the list in a job."""
    ctx.batch.followups.add(Job.PULL_CORP_TAGS, ctx.channel_id)
