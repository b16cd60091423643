"""Touchpoints that arrive without a WeChat callback.

The web's (a tracked link opened, reading time, a like, a share, a form submitted)
and the API's (email opens and clicks, live-stream minutes, offline events,
webinars, meetings a CRM logged) enter the same durable inbox as callbacks, as
JSON, and the drain records them like any other interaction: the person is found
by any identity they name (openid, unionid, external_userid, phone, email),
enriched by what they state (title -> role, company -> account), and scored and
fed to journeys with the rest of the batch.
"""

from datetime import timedelta

from sqlalchemy.orm import Session

from core.jobs import Job
from core.references import scoped_get
from crm.accounts import assign_account
from crm.contacts import attach_identity, find_identity, live, set_title
from crm.tags import apply_tags
from crm.touchpoints import CHANNEL_BOUND, KINDS, creatable, identity_keys
from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from models import (
    AccountSource,
    Contact,
    EmailMessage,
    Form,
    FormSubmission,
    IdentityKind,
    PageView,
    TagSource,
    TrackedLink,
)


@handles(*KINDS)
def on_touchpoint(session: Session, ctx: EventContext) -> None:
    event = ctx.event
    contact = _messaged(session, ctx) or person_of(session, ctx)
    if contact is None:
        raise ValueError("the touchpoint names no identity that can make a contact")
    contact = _enrich(session, ctx, contact, event.details.get("person") or {})
    if event.occurred_at > contact.last_seen_at:
        contact.last_seen_at = event.occurred_at
    record_interaction(
        session, ctx, contact, engagement_minutes=event.details.get("minutes") or 0.0
    )
    ctx.batch.touch(contact.id, event.kind)
    refs = event.details.get("refs") or {}
    if refs.get("view_id") and event.kind == "content.view":
        _link_view(session, ctx, contact, refs["view_id"])
    if refs.get("submission_id"):
        _link_submission(session, ctx, contact, refs["submission_id"])


def _messaged(session: Session, ctx: EventContext) -> Contact | None:
    """The contact an email was sent to, for what happened to that email (opened,
    clicked, unsubscribed, bounced): the message names them, whoever else has the address."""
    refs = ctx.event.details.get("refs") or {}
    message = scoped_get(session, EmailMessage, refs.get("email_message_id"), ctx.workspace_id)
    if message is None:
        return None
    contact = scoped_get(session, Contact, message.contact_id, ctx.workspace_id)
    return live(session, contact) if contact is not None else None


def person_of(session: Session, ctx: EventContext) -> Contact | None:
    """The contact the touchpoint names: the first known identity's, else a new one made
    from the strongest identity that can stand alone; every other identity joins it."""
    keys = identity_keys(ctx.event)
    known = next(((key, found) for key in keys if (found := ctx.identities.known(*key))), None)
    if known is not None:
        first, identity = known
        contact = live(session, identity.contact)
    else:
        first = creatable(keys)
        if first is None:
            return None
        identity = ctx.identities.resolve(session, *first, ctx.event.occurred_at)
        contact = live(session, identity.contact)
    if first[0] == IdentityKind.OPENID and identity.enriched_at is None:
        ctx.batch.followups.add(Job.ENRICH_FOLLOWERS, first[1])  # user/info: unionid, following
    for key in keys:
        if key != first and not (key[0] in CHANNEL_BOUND and key[1] is None):
            kind, channel_id, value = key
            contact = attach_identity(
                session,
                ctx.batch.tags(session),
                contact,
                kind,
                value,
                channel_id=channel_id,
                followups=ctx.batch.followups,
            )
    return contact


def _enrich(session: Session, ctx: EventContext, contact: Contact, person: dict) -> Contact:
    """What the person stated: name, title (-> role and seniority), company (-> account);
    without a company, an email at a company domain names the account."""
    batch = ctx.batch
    book, followups = batch.tags(session), batch.followups
    if person.get("name"):
        contact.name = person["name"][: Contact.__table__.c.name.type.length]
    if person.get("title"):
        set_title(
            session,
            book,
            batch.titles(session),
            contact,
            person["title"],
            followups=followups,
            later=batch.title_tags,
        )
    if person.get("company"):
        assign_account(
            session,
            book,
            contact,
            source=AccountSource.FORM,
            company=person["company"],
            followups=followups,
            known_accounts=batch.accounts,
            later=batch.account_moves,
        )
    else:
        email = (ctx.event.details.get("identity") or {}).get("email")
        if email:
            assign_account(
                session,
                book,
                contact,
                source=AccountSource.EMAIL,
                email=email,
                followups=followups,
                later=batch.account_moves,
            )
    return contact


def _link_view(session: Session, ctx: EventContext, contact: Contact, view_id: int) -> None:
    """The view's reader, whether it made them known (a lead for its sharer), and the
    sharing reader's contact."""
    view = session.get(PageView, view_id)
    if view is None or view.workspace_id != ctx.workspace_id:
        return
    view.contact_id = contact.id
    view.new_lead = contact.first_seen_at >= ctx.event.occurred_at - timedelta(seconds=1)
    if view.sharer_openid and view.sharer_contact_id is None:
        view.sharer_contact_id = _sharing_contact(session, view, contact)


def _sharing_contact(session: Session, view: PageView, reader: Contact) -> int | None:
    """The contact of the reader who shared the link (by their openid on the link's OA);
    None when unknown yet, or when it is the reader themselves."""
    channel_id = session.get(TrackedLink, view.link_id).channel_id
    sharer = find_identity(
        session, view.workspace_id, IdentityKind.OPENID, channel_id, view.sharer_openid
    )
    if sharer is None or sharer.contact_id == reader.id:
        return None
    return live(session, sharer.contact).id


def _link_submission(
    session: Session, ctx: EventContext, contact: Contact, submission_id: int
) -> None:
    """The submission's contact, the form's tags, and its follow-up after the commit."""
    submission = session.get(FormSubmission, submission_id)
    if submission is None or submission.workspace_id != ctx.workspace_id:
        return
    submission.contact_id = contact.id
    view = session.get(PageView, submission.page_view_id) if submission.page_view_id else None
    if view is not None and view.sharer_openid and submission.sharer_contact_id is None:
        submission.sharer_contact_id = _sharing_contact(session, view, contact)
    form = scoped_get(session, Form, submission.form_id, ctx.workspace_id)
    book = ctx.batch.tags(session)
    tags = [tag for tag in map(book.by_id, form.tag_ids if form else []) if tag is not None]
    if tags:
        apply_tags(
            session, book, [contact.id], tags, source=TagSource.RULE, followups=ctx.batch.followups
        )
    if submission.followup_status == "pending":
        ctx.batch.followups.add(Job.SEND_FORM_FOLLOWUPS, ctx.workspace_id)
