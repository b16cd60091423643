"""Contacts: who has reached the workspace's channels, and what each of them did."""

from math import ceil

from flask import abort, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from models import Account, Channel, Contact, Identity, IdentityKind, Interaction

PAGE_SIZE = 50
TIMELINE_SIZE = 100
# A search term equal to one of these finds its contact.
SEARCHABLE_KINDS = (IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID, IdentityKind.UNIONID)
INTERACTION_LABELS = {
    "wechat.follow": _l("Followed the account"),
    "wechat.unfollow": _l("Unfollowed the account"),
    "wechat.scan": _l("Scanned a QR code"),
    "wechat.menu_click": _l("Tapped a menu"),
    "wechat.menu_view": _l("Opened a menu link"),
    "wechat.menu_scan": _l("Scanned from the menu"),
    "wechat.message": _l("Sent a message"),
    "wechat.location": _l("Shared a location"),
    "wecom.contact_added": _l("Added a staff member on WeCom"),
    "wecom.contact_edited": _l("WeCom contact edited"),
    "wecom.contact_removed": _l("WeCom contact removed"),
    "wecom.transfer_failed": _l("WeCom transfer failed"),
}
# The properties worth a glance on the timeline, in display order.
PROPERTY_LABELS = {
    "key": _l("Menu key"),
    "scene": _l("Scene"),
    "content": _l("Message"),
    "title": _l("Title"),
    "url": _l("Link"),
    "label": _l("Place"),
    "recognition": _l("Voice text"),
    "result": _l("Scan result"),
    "staff_userid": _l("Staff"),
    "state": _l("Contact Me state"),
    "removed_by": _l("Removed by"),
    "fail_reason": _l("Reason"),
}


def key_properties(properties: dict) -> list[tuple[str, object]]:
    return [
        (label, properties[name]) for name, label in PROPERTY_LABELS.items() if name in properties
    ]


@bp.get("/contacts")
@requires("contacts.view")
def contacts():
    ws = workspace_id()
    q = request.args.get("q", "").strip()
    conditions = [Contact.workspace_id == ws]
    if q:
        by_identity = select(Identity.contact_id).where(
            Identity.workspace_id == ws, Identity.kind.in_(SEARCHABLE_KINDS), Identity.value == q
        )
        conditions.append(
            or_(Contact.name.icontains(q, autoescape=True), Contact.id.in_(by_identity))
        )
    total = db().scalar(select(func.count()).select_from(Contact).where(*conditions))
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = (
        db()
        .execute(
            select(Contact, Account.name)
            .outerjoin(Account, (Account.id == Contact.account_id) & (Account.workspace_id == ws))
            .where(*conditions)
            .options(selectinload(Contact.identities))
            .order_by(Contact.last_seen_at.desc(), Contact.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
        .all()
    )
    ids = [contact.id for contact, _account in rows]
    counts = dict(
        db()
        .execute(
            select(Interaction.contact_id, func.count())
            .where(Interaction.workspace_id == ws, Interaction.contact_id.in_(ids))
            .group_by(Interaction.contact_id)
        )
        .all()
    )
    # The search box asks for the table alone; a history restore needs the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "admin/contacts_table.html" if partial else "admin/contacts.html"
    response = make_response(
        render_template(
            template, rows=rows, counts=counts, q=q, page=page, pages=pages, total=total
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.get("/contacts/<int:contact_id>")
@requires("contacts.view")
def contacts_detail(contact_id: int):
    ws = workspace_id()
    contact = db().scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == ws)
    )
    if contact is None:
        abort(404)
    account = db().get(Account, contact.account_id) if contact.account_id else None
    identities = (
        db()
        .execute(
            select(Identity, Channel.name)
            .outerjoin(Channel, Channel.id == Identity.channel_id)
            .where(Identity.contact_id == contact.id, Identity.workspace_id == ws)
            .order_by(Identity.created_at, Identity.id)
        )
        .all()
    )
    total = db().scalar(
        select(func.count()).where(
            Interaction.contact_id == contact.id, Interaction.workspace_id == ws
        )
    )
    timeline = (
        db()
        .execute(
            select(Interaction, Channel.name)
            .outerjoin(Channel, Channel.id == Interaction.channel_id)
            .where(Interaction.contact_id == contact.id, Interaction.workspace_id == ws)
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(TIMELINE_SIZE)
        )
        .all()
    )
    return render_template(
        "admin/contact.html",
        contact=contact,
        account=account,
        identities=identities,
        timeline=[
            (interaction, channel_name, key_properties(interaction.properties))
            for interaction, channel_name in timeline
        ],
        total=total,
        interaction_labels=INTERACTION_LABELS,
    )
