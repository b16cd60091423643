"""Contacts: who has reached the workspace's channels, what each did, their tags and account."""

from math import ceil

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.auth import safe_path
from app.admin.labels import (
    ACCOUNT_SOURCE_LABELS,
    ADD_WAY_LABELS,
    CODE_GROUPS,
    CONTACT_ROLE_LABELS,
    LINK_MEDIUM_LABELS,
    SENIORITY_LABELS,
    TAG_GROUP_LABELS,
    TAG_SOURCE_LABELS,
    stage_names,
    tag_label,
)
from app.admin.stages import StageForm, ledger, move_stage, scoring_context, stage_form
from app.extensions import harpoon
from core.jobs import Followups
from crm.accounts import account_named, assign_account
from crm.tags import MAX_TAG_NAME, TagBook, apply_tags, contact_tags, remove_tags
from models import (
    Account,
    AccountSource,
    Channel,
    Contact,
    ContactTag,
    ContactWay,
    FollowRelation,
    Identity,
    IdentityKind,
    Interaction,
    ScoreEntry,
    Staff,
    Tag,
    TagGroup,
    TagSource,
    utcnow,
)
from sales.notify import notify_owners
from scoring.engine import Scorer, lead_score_at, load_model

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
    # Recorded by content, forms, email, live streams, events and sales (scored too).
    "content.view": _l("Viewed content"),
    "content.read": _l("Read content"),
    "content.like": _l("Liked content"),
    "content.share": _l("Shared content"),
    "content.comment": _l("Commented on content"),
    "form.submit": _l("Submitted a form"),
    "email.open": _l("Opened an email"),
    "email.click": _l("Clicked a link in an email"),
    "email.unsubscribe": _l("Unsubscribed from email"),
    "email.bounce": _l("An email to them bounced"),
    "live.join": _l("Joined a live stream"),
    "live.leave": _l("Left a live stream"),
    "live.watch": _l("Watched a live stream"),
    "event.register": _l("Registered for an event"),
    "event.checkin": _l("Checked in at an event"),
    "webinar.register": _l("Registered for a webinar"),
    "webinar.attend": _l("Attended a webinar"),
    "sales.meeting": _l("Met sales"),
    "sales.call": _l("Had a call with sales"),
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
    "medium": _l("Placed in"),
    "topics": _l("Topics"),
    "products": _l("Products"),
    "campaign": _l("Campaign"),
}
# Properties holding a code, shown by its label.
PROPERTY_VALUE_LABELS = {"medium": LINK_MEDIUM_LABELS}


def key_properties(properties: dict) -> list[tuple[str, object]]:
    return [
        (label, _property_value(name, properties[name]))
        for name, label in PROPERTY_LABELS.items()
        if name in properties
    ]


def _property_value(name: str, value):
    if isinstance(value, list):  # topics, products
        return "、".join(str(item) for item in value)
    labels = PROPERTY_VALUE_LABELS.get(name, {})
    return str(labels[value]) if isinstance(value, str) and value in labels else value


@bp.get("/contacts")
@requires("contacts.view")
def contacts():
    return _contacts_page()


def _contacts_page(bulk_form: "BulkTagForm | None" = None, selected: frozenset[int] = frozenset()):
    """The list, filtered by the query string (the bulk form posts it back unchanged)."""
    ws = workspace_id()
    q = request.args.get("q", "").strip()
    tag_id = request.args.get("tag", type=int)
    # A merged contact lives on in the one it was merged into.
    conditions = [Contact.workspace_id == ws, Contact.merged_into_id.is_(None)]
    if q:
        by_identity = select(Identity.contact_id).where(
            Identity.workspace_id == ws, Identity.kind.in_(SEARCHABLE_KINDS), Identity.value == q
        )
        conditions.append(
            or_(Contact.name.icontains(q, autoescape=True), Contact.id.in_(by_identity))
        )
    if tag_id:
        conditions.append(
            Contact.id.in_(
                select(ContactTag.contact_id).where(
                    ContactTag.workspace_id == ws, ContactTag.tag_id == tag_id
                )
            )
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
    book = TagBook(db(), ws)
    if bulk_form is None and can("contacts.tag"):
        bulk_form = BulkTagForm(formdata=None)
    if bulk_form is not None:
        bulk_form.tag.choices = tag_choices(book)
    # The search box asks for the table alone; a history restore needs the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "admin/contacts_table.html" if partial else "admin/contacts.html"
    response = make_response(
        render_template(
            template,
            rows=rows,
            counts=counts,
            q=q,
            page=page,
            pages=pages,
            total=total,
            tags=contact_tags(db(), ids),
            tag_id=tag_id,
            tag_filter=tag_filter_options(book),
            bulk_form=bulk_form,
            selected=selected,
            **LABELS,
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.get("/contacts/<int:contact_id>")
@requires("contacts.view")
def contacts_detail(contact_id: int):
    contact = db().scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id())
    )
    if contact is None:
        abort(404)
    if contact.merged_into_id is not None:
        return redirect(url_for("admin.contacts_detail", contact_id=contact.merged_into_id))
    return _contact_page(contact)


def _contact_page(
    contact: Contact,
    tag_form: "TagForm | None" = None,
    account_form: "AccountNameForm | None" = None,
    stage_form: StageForm | None = None,
):
    ws = workspace_id()
    model = load_model(db(), ws)
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
        identities=identities,
        timeline=[
            (interaction, channel_name, key_properties(interaction.properties))
            for interaction, channel_name in timeline
        ],
        interaction_labels=INTERACTION_LABELS,
        wecom_relations=_wecom_relations(contact),
        add_way_labels=ADD_WAY_LABELS,
        lead_score=lead_score_at(contact.score_mass, utcnow(), model.half_life_days),
        ledger=ledger(ws, ScoreEntry.contact_id == contact.id),
        **scoring_context(model, "contact", contact, stage_form),
        **_profile_context(contact, tag_form, account_form),
    )


def _wecom_relations(contact: Contact) -> list[tuple]:
    """The contact's WeCom relations across staff: (relation, staff name, 联系我 code name)."""
    return (
        db()
        .execute(
            select(FollowRelation, Staff.name, ContactWay.name)
            .outerjoin(
                Staff,
                (Staff.channel_id == FollowRelation.channel_id)
                & (Staff.userid == FollowRelation.staff_userid),
            )
            .outerjoin(ContactWay, ContactWay.id == FollowRelation.contact_way_id)
            .where(
                FollowRelation.contact_id == contact.id,
                FollowRelation.workspace_id == contact.workspace_id,
            )
            .order_by(FollowRelation.added_at.desc(), FollowRelation.id.desc())
        )
        .all()
    )


def _profile_context(
    contact: Contact,
    tag_form: "TagForm | None" = None,
    account_form: "AccountNameForm | None" = None,
) -> dict:
    """What the contact's two top cards show: its fields and account, and its tags."""
    ws = workspace_id()
    total = db().scalar(
        select(func.count()).where(
            Interaction.contact_id == contact.id, Interaction.workspace_id == ws
        )
    )
    if account_form is None and can("accounts.manage"):
        account_form = AccountNameForm(formdata=None)
    return {
        "contact": contact,
        "account": db().get(Account, contact.account_id) if contact.account_id else None,
        "total": total,
        "account_form": account_form,
        "account_names": _account_names(ws) if account_form is not None else [],
        **_tags_context(contact, tag_form),
        **LABELS,
    }


# Tags and the account, edited by hand: the list's bulk form and the contact page's forms.

LABELS = {
    "role_labels": CONTACT_ROLE_LABELS,
    "seniority_labels": SENIORITY_LABELS,
    "group_labels": TAG_GROUP_LABELS,
    "tag_source_labels": TAG_SOURCE_LABELS,
    "account_source_labels": ACCOUNT_SOURCE_LABELS,
    "tag_label": tag_label,
}
# Role and seniority tags are offered by their codes even before anyone holds one.
MAX_BULK = 500
ACCOUNT_NAME_HINTS = 500


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class TagForm(FlaskForm):
    """An existing tag (or a role / seniority code), or the name of a new manual tag."""

    tag = SelectField(_l("Tag"), choices=[], default="")
    new_tag = StringField(
        _l("Or a new manual tag"),
        filters=[_strip],
        validators=[Optional(), Length(max=MAX_TAG_NAME)],
    )

    def validate_tag(self, field):
        if field.data and self.new_tag.data:
            raise ValidationError(_l("Pick a tag or type a new one, not both."))
        if not field.data and not self.new_tag.data:
            raise ValidationError(_l("Pick a tag or type a new one."))

    def chosen(self, book: TagBook, *, create: bool = True) -> Tag | None:
        """The tag meant; created on first use unless `create` is False (then None)."""
        if self.new_tag.data:
            group, name = TagGroup.MANUAL, self.new_tag.data
        elif self.tag.data.isdigit():
            return book.by_id(int(self.tag.data))
        else:
            group, _sep, name = self.tag.data.partition(":")
        if create:
            return book.get(db(), group, name)
        return next((tag for tag in book.in_group(group) if tag.name == name), None)


class BulkTagForm(TagForm):
    operation = SelectField(
        _l("Action"),
        choices=[
            SelectChoice("add", _l("Add the tag")),
            SelectChoice("remove", _l("Remove the tag")),
        ],
        default="add",
    )

    def validate_new_tag(self, field):
        if self.operation.data == "remove":
            raise ValidationError(_l("Only an existing tag can be removed."))


class AccountNameForm(FlaskForm):
    account_name = StringField(
        _l("Account"), filters=[_strip], validators=[DataRequired(), Length(max=200)]
    )


def tag_choices(book: TagBook) -> list[SelectChoice]:
    """The workspace's tags by group, role and seniority codes first in their own order."""
    choices = [SelectChoice("", _("Choose a tag"))]
    for group in TagGroup:
        tags = {tag.name: tag for tag in book.in_group(group)}
        codes = CODE_GROUPS.get(group, {})
        options = [
            (str(tags[code].id) if code in tags else f"{group}:{code}", str(label))
            for code, label in codes.items()
        ]
        options += sorted(
            ((str(tag.id), tag.name) for name, tag in tags.items() if name not in codes),
            key=lambda option: option[1].casefold(),
        )
        optgroup = str(TAG_GROUP_LABELS[group])
        choices += [SelectChoice(value, label, optgroup=optgroup) for value, label in options]
    return choices


def tag_filter_options(book: TagBook) -> list[tuple[str, list[tuple[int, str]]]]:
    """The tags that exist, by group, for the list's filter."""
    groups = []
    for group in TagGroup:
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        if tags:
            groups.append((TAG_GROUP_LABELS[group], [(tag.id, tag_label(tag)) for tag in tags]))
    return groups


def _live_contact_or_404(contact_id: int) -> Contact:
    """A contact of the workspace that was not merged into another."""
    contact = db().scalar(
        select(Contact).where(
            Contact.id == contact_id,
            Contact.workspace_id == workspace_id(),
            Contact.merged_into_id.is_(None),
        )
    )
    if contact is None:
        abort(404)
    return contact


def _tags_context(contact: Contact, tag_form: TagForm | None) -> dict:
    held = db().execute(
        select(Tag, ContactTag.source)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact.id, Tag.workspace_id == contact.workspace_id)
        .order_by(Tag.group, Tag.name)
    )
    if tag_form is None and can("contacts.tag"):
        tag_form = TagForm(formdata=None)
    if tag_form is not None:
        tag_form.tag.choices = tag_choices(TagBook(db(), contact.workspace_id))
    return {"held_tags": held.all(), "tag_form": tag_form}


def _account_names(ws: int) -> list[str]:
    """Suggestions for the account field: target accounts first."""
    return list(
        db().scalars(
            select(Account.name)
            .where(Account.workspace_id == ws)
            .order_by(Account.is_target.desc(), Account.name)
            .limit(ACCOUNT_NAME_HINTS)
        )
    )


def _tag_audit(tag: Tag, **changes) -> dict:
    return {"tag": f"{tag.group}:{tag.name}", **changes}


def _list_args() -> dict:
    return {name: value for name in ("q", "tag", "page") if (value := request.args.get(name))}


@bp.post("/contacts/tags")
@requires("contacts.tag")
def contacts_bulk_tag():
    ws = workspace_id()
    book = TagBook(db(), ws)
    form = BulkTagForm()
    form.tag.choices = tag_choices(book)
    requested = set(request.form.getlist("contact_ids", type=int))
    contact_ids = list(
        db().scalars(
            select(Contact.id).where(
                Contact.workspace_id == ws,
                Contact.merged_into_id.is_(None),
                Contact.id.in_(list(requested)[: MAX_BULK + 1]),
            )
        )
    )
    valid = form.validate_on_submit()
    if not contact_ids:
        flash(_("Select at least one contact."), "error")
    elif len(contact_ids) > MAX_BULK:
        flash(_("At most %(max)s contacts at a time.", max=MAX_BULK), "error")
    elif valid:
        adding = form.operation.data == "add"
        tag = form.chosen(book, create=adding)
        followups = Followups()
        if adding:
            changed = apply_tags(
                db(), book, contact_ids, [tag], source=TagSource.MANUAL, followups=followups
            )
            message = ngettext(
                "Tagged %(num)s contact with “%(tag)s”.",
                "Tagged %(num)s contacts with “%(tag)s”.",
                len(contact_ids),
                tag=tag_label(tag),
            )
        else:
            changed = remove_tags(db(), book, contact_ids, [tag], followups=followups) if tag else 0
            message = ngettext(
                "Removed the tag from %(num)s contact.",
                "Removed the tag from %(num)s contacts.",
                changed,
            )
        if tag is not None:
            audit(
                db(),
                f"contacts.tag_{form.operation.data}",
                "tag",
                tag.id,
                _tag_audit(tag, contacts=len(contact_ids), changed=changed),
            )
        db().commit()
        harpoon().queue.enqueue_followups(followups.jobs)
        flash(message, "success")
        return redirect(url_for("admin.contacts", **_list_args()))
    return _contacts_page(bulk_form=form, selected=frozenset(requested))


def _after_tag_change(contact: Contact, tag_form: TagForm | None = None):
    """htmx swaps the profile cards in place; a plain form goes back to the page."""
    if request.headers.get("HX-Request"):
        return render_template("admin/contact_profile.html", **_profile_context(contact, tag_form))
    if tag_form is not None:
        return _contact_page(contact, tag_form=tag_form)
    return redirect(url_for("admin.contacts_detail", contact_id=contact.id))


@bp.post("/contacts/<int:contact_id>/tags")
@requires("contacts.tag")
def contacts_add_tag(contact_id: int):
    contact = _live_contact_or_404(contact_id)
    book = TagBook(db(), contact.workspace_id)
    form = TagForm()
    form.tag.choices = tag_choices(book)
    if not form.validate_on_submit():
        return _after_tag_change(contact, form)
    tag = form.chosen(book)
    followups = Followups()
    apply_tags(db(), book, [contact.id], [tag], source=TagSource.MANUAL, followups=followups)
    audit(db(), "contact.tag_add", "contact", contact.id, _tag_audit(tag))
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return _after_tag_change(contact)


@bp.post("/contacts/<int:contact_id>/tags/<int:tag_id>/remove")
@requires("contacts.tag")
def contacts_remove_tag(contact_id: int, tag_id: int):
    contact = _live_contact_or_404(contact_id)
    book = TagBook(db(), contact.workspace_id)
    tag = book.by_id(tag_id)
    if tag is None:
        abort(404)
    followups = Followups()
    if remove_tags(db(), book, [contact.id], [tag], followups=followups):
        audit(db(), "contact.tag_remove", "contact", contact.id, _tag_audit(tag))
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return _after_tag_change(contact)


def assign_account_manually(contact: Contact, account: Account) -> None:
    """A person's hand-picked account: it wins over every automatic source, now and later."""
    before = contact.account_id
    followups = Followups()
    assign_account(
        db(),
        TagBook(db(), contact.workspace_id),
        contact,
        source=AccountSource.MANUAL,
        account=account,
        followups=followups,
    )
    audit(
        db(),
        "contact.assign_account",
        "contact",
        contact.id,
        {"account_id": [before, account.id], "account": account.name},
    )
    _rejudge(contact.workspace_id, followups, before, account.id)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)


def _rejudge(workspace_id: int, followups: Followups, *account_ids: int | None) -> None:
    """The accounts a person left or joined: their scores, tiers and MQA at once (an
    owner hears of an MQA this makes, as from the drain)."""
    db().flush()
    scorer = Scorer.load(db(), workspace_id)
    result = scorer.refresh_accounts([i for i in account_ids if i is not None])
    notify_owners(db(), result.alerts, followups)


def detach_account(contact: Contact) -> None:
    before = contact.account_id
    contact.account_id = None
    # Manual, with no account: the weaker automatic sources may not attach the person again.
    contact.account_source = AccountSource.MANUAL
    db().execute(
        update(Interaction)
        .where(
            Interaction.contact_id == contact.id, Interaction.workspace_id == contact.workspace_id
        )
        .values(account_id=None)
        .execution_options(synchronize_session=False)
    )
    audit(db(), "contact.detach_account", "contact", contact.id, {"account_id": [before, None]})
    followups = Followups()
    _rejudge(contact.workspace_id, followups, before)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)


@bp.post("/contacts/<int:contact_id>/account")
@requires("accounts.manage")
def contacts_assign_account(contact_id: int):
    contact = _live_contact_or_404(contact_id)
    form = AccountNameForm()
    if form.validate_on_submit():
        account = account_named(db(), contact.workspace_id, form.account_name.data)
        if account is None:
            form.account_name.errors.append(_("Enter a company name."))
        else:
            assign_account_manually(contact, account)
            flash(_("Assigned to %(account)s.", account=account.name), "success")
            return redirect(url_for("admin.contacts_detail", contact_id=contact.id))
    return _contact_page(contact, account_form=form)


@bp.post("/contacts/<int:contact_id>/account/detach")
@requires("accounts.manage")
def contacts_detach_account(contact_id: int):
    contact = _live_contact_or_404(contact_id)
    if contact.account_id is not None:
        detach_account(contact)
        flash(_("Detached from the account."), "success")
    back = request.form.get("next")
    if not safe_path(back, "/admin/"):
        back = url_for("admin.contacts_detail", contact_id=contact.id)
    return redirect(back)


@bp.post("/contacts/<int:contact_id>/stage")
@requires("stages.move")
def contacts_move_stage(contact_id: int):
    contact = _live_contact_or_404(contact_id)
    model = load_model(db(), contact.workspace_id)
    form = stage_form(model, contact.stage, StageForm())
    if not form.validate_on_submit():
        return _contact_page(contact, stage_form=form)
    names = stage_names(model.stages)
    label = contact.name or f"#{contact.id}"
    if move_stage(contact, form):
        db().commit()
        flash(
            _("Moved %(name)s to %(stage)s.", name=label, stage=names[form.stage.data]), "success"
        )
    else:
        flash(_("%(name)s is at %(stage)s already.", name=label, stage=names[contact.stage]))
    return redirect(url_for("admin.contacts_detail", contact_id=contact.id))
