"""What Harpoon does with each WeCom customer-contact event."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from handlers.rules import source_tags
from models import Contact, FollowRelation, Identity, IdentityKind

ENRICH_EXTERNAL_CONTACTS = "enrich_external_contacts"
PULL_CORP_TAGS = "pull_corp_tags"


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
    if event.staff_userid:
        _update_relation(session, ctx, contact)
    if event.kind in ("wecom.contact_added", "wecom.contact_edited"):
        # externalcontact/get (name, company, position, unionid, remarks, tags) in a job.
        identity.enriched_at = None
        ctx.batch.followups.add(ENRICH_EXTERNAL_CONTACTS, ctx.channel_id)
    if event.kind == "wecom.contact_added":
        book = ctx.batch.tags(session)
        state = event.properties.get("state")
        source_tags(session, book, ctx.batch.rules(session), contact.id, state, ctx.batch.followups)


def _update_relation(session: Session, ctx: EventContext, contact: Contact) -> None:
    """The staff member's relation with the customer: opened by an add, closed by a delete."""
    event = ctx.event
    relation = session.scalars(
        select(FollowRelation).where(
            FollowRelation.channel_id == ctx.channel_id,
            FollowRelation.external_userid == event.subject,
            FollowRelation.staff_userid == event.staff_userid,
        )
    ).one_or_none()
    if relation is None:
        if event.kind != "wecom.contact_added":
            return  # nothing known to close or edit yet; enrichment fills it in
        relation = FollowRelation(
            workspace_id=ctx.workspace_id,
            channel_id=ctx.channel_id,
            contact_id=contact.id,
            external_userid=event.subject,
            staff_userid=event.staff_userid,
        )
        session.add(relation)
    if event.kind == "wecom.contact_added":
        if relation.added_at is None or event.occurred_at >= relation.added_at:
            relation.added_at = event.occurred_at
            relation.removed_at = None
            relation.state = event.properties.get("state") or relation.state
    elif event.kind == "wecom.contact_removed" and (
        relation.added_at is None or event.occurred_at >= relation.added_at
    ):
        relation.removed_at = event.occurred_at


@handles("wecom.corp_tags_changed")
def on_corp_tags_changed(session: Session, ctx: EventContext) -> None:
    """Someone edited corp tags in the WeCom console: re-read the list in a job."""
    ctx.batch.followups.add(PULL_CORP_TAGS, ctx.channel_id)
