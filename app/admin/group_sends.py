"""Group sends: a salesperson's message to their WeCom customers or to the customer groups
they own, and who received it."""

import logging

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from redis.exceptions import RedisError
from sqlalchemy import select
from wtforms import RadioField, SelectChoice, SelectField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.contacts.presenters import tag_filter_options
from app.admin.labels import translated_messages
from app.admin.lookups import paginate, paginate_list, scoped_or_404
from app.admin.materials.presenters import kind_label
from app.extensions import harpoon
from core.jobs import Job
from crm.channels import channel_names
from crm.tags import TagBook
from models import (
    Channel,
    Contact,
    ContactTag,
    CustomerGroup,
    FollowRelation,
    GroupSend,
    Role,
    Staff,
    User,
)
from outreach import materials
from sales.group_send import (
    ATTACHABLE,
    GROUP,
    MAX_ATTACHMENTS,
    MAX_TEXT,
    MONTHLY_LIMIT,
    NOT_A_FRIEND,
    NOT_SENT,
    SENT,
    GroupSendStatus,
    create_group_chat_send,
    create_group_send,
    owned_groups,
    result_counts,
    targets,
)
from sales.staff import staff_names

log = logging.getLogger(__name__)

PAGE_SIZE = 50
RECIPIENTS_PAGE_SIZE = 100
EXCERPT_CHARS = 60
STATUS_LABELS = {
    GroupSendStatus.QUEUED: _l("Queued"),
    GroupSendStatus.SENT: _l("Waiting for the sender to confirm"),
    GroupSendStatus.CONFIRMED: _l("Confirmed"),
    GroupSendStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    GroupSendStatus.SENT: "warn",
    GroupSendStatus.CONFIRMED: "ok",
    GroupSendStatus.FAILED: "error",
}
# One recipient's status, WeCom's codes; "refused" is the fail_list at submission.
RESULT_LABELS = {
    NOT_SENT: _l("Not sent yet"),
    SENT: _l("Sent"),
    NOT_A_FRIEND: _l("No longer a customer"),
    MONTHLY_LIMIT: _l("Monthly limit reached"),
    "refused": _l("Refused by WeCom"),
}
# A customer group's status: WeCom's codes, 2 when the sender no longer owns the group.
GROUP_RESULT_LABELS = {
    NOT_SENT: _l("Not sent yet"),
    SENT: _l("Sent"),
    NOT_A_FRIEND: _l("Not sent: the sender no longer owns the group"),
    MONTHLY_LIMIT: _l("Monthly limit reached"),
    "refused": _l("Refused by WeCom"),
}
RESULT_BADGES = {
    NOT_SENT: "warn",
    SENT: "ok",
    NOT_A_FRIEND: "error",
    MONTHLY_LIMIT: "error",
    "refused": "error",
}
# Where each of create_group_send's error keys shows on the form.
ERROR_FIELDS = {
    "channel_id": "sender",
    "staff_userid": "sender",
    "text": "text",
    "external_userids": "audience",
    "material_ids": "attachments",
    "chat_ids": "audience",
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class GroupSendForm(FlaskForm):
    sender = SelectField(
        _l("Sender"), choices=[], validators=[DataRequired(message=_l("Choose who sends it."))]
    )
    audience = RadioField(
        _l("Recipients"),
        choices=[
            SelectChoice("all", _l("All of the sender's customers")),
            SelectChoice("tag", _l("The sender's customers with a tag")),
            SelectChoice("groups", _l("The customer groups the sender owns")),
        ],
        default="all",
    )
    tag = SelectField(_l("Tag"), choices=[], default="")
    text = TextAreaField(
        _l("Message"),
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=MAX_TEXT, message=_l("At most %(max)d characters.")),
        ],
    )

    attachments = SelectMultipleField(_l("Attachments from the library"), choices=[], coerce=int)

    def validate_tag(self, field):
        if self.audience.data == "tag" and not field.data:
            raise ValidationError(_l("Choose the tag."))

    def validate_attachments(self, field):
        if len(field.data or []) > MAX_ATTACHMENTS:
            raise ValidationError(_l("At most 9 attachments."))


def _senders() -> list[Staff]:
    """Who may send from this user: sales only as the staff member linked to them."""
    query = (
        select(Staff)
        .join(Channel, Channel.id == Staff.channel_id)
        .where(Staff.workspace_id == workspace_id(), Staff.active.is_(True))
        .order_by(Channel.name, Staff.name, Staff.userid)
    )
    if current_user.role == Role.SALES:
        query = query.where(Staff.user_id == current_user.id)
    return list(db().scalars(query))


def _form(**kwargs) -> GroupSendForm:
    form = GroupSendForm(**kwargs)
    names = channel_names(db(), workspace_id())
    form.sender.choices = [SelectChoice("", _("Choose the sender"))] + [
        SelectChoice(
            str(staff.id),
            f"{staff.name or staff.userid} ({staff.userid})",
            optgroup=names[staff.channel_id],
        )
        for staff in _senders()
    ]
    form.tag.choices = [SelectChoice("", _("Choose a tag"))] + [
        SelectChoice(str(tag_id), label, optgroup=str(group_label))
        for group_label, options in tag_filter_options(TagBook(db(), workspace_id()))
        for tag_id, label in options
    ]
    form.attachments.choices = [
        SelectChoice(material.id, f"{kind_label(material.kind)}：{material.name}")
        for material in materials.choices(db(), workspace_id(), ATTACHABLE)
    ]
    return form


def _recipients(staff: Staff, tag_id: int | None) -> list[str]:
    """The staff member's customers now, optionally only those holding the tag."""
    query = select(FollowRelation.external_userid).where(
        FollowRelation.workspace_id == workspace_id(),
        FollowRelation.channel_id == staff.channel_id,
        FollowRelation.staff_userid == staff.userid,
        FollowRelation.removed_at.is_(None),
    )
    if tag_id is not None:
        query = query.where(
            FollowRelation.contact_id.in_(
                select(ContactTag.contact_id).where(
                    ContactTag.workspace_id == workspace_id(), ContactTag.tag_id == tag_id
                )
            )
        )
    return list(db().scalars(query.order_by(FollowRelation.id)))


@bp.get("/group-sends")
@requires("contacts.view")
def group_sends():
    form = _form(formdata=None) if can("group_send.create") else None
    return _list_page(form)


@bp.post("/group-sends")
@requires("group_send.create")
def group_sends_create():
    form = _form()
    if not form.validate_on_submit():
        return _list_page(form), 400
    staff = db().get(Staff, int(form.sender.data))
    tag_id = int(form.tag.data) if form.audience.data == "tag" else None
    to_groups = form.audience.data == "groups"
    if to_groups:
        recipients = owned_groups(db(), workspace_id(), staff.channel_id, staff.userid)
    else:
        recipients = _recipients(staff, tag_id)
    if not recipients:
        form.audience.errors.append(
            _("The sender owns no customer group.")
            if to_groups
            else _("None of the sender's customers match.")
        )
        return _list_page(form), 400
    create = create_group_chat_send if to_groups else create_group_send
    try:
        new = create(
            db(),
            workspace_id(),
            staff.channel_id,
            staff.userid,
            form.text.data,
            recipients,
            current_user.id,
            material_ids=form.attachments.data or [],
        )
    except SchemaError as exc:
        db().rollback()
        for key, messages in exc.messages.items():
            form[ERROR_FIELDS.get(key, "text")].errors.extend(translated_messages(messages))
        return _list_page(form), 400
    group_send = new.group_send
    audit(
        db(),
        "group_send.create",
        "group_send",
        group_send.id,
        {
            "staff_userid": group_send.staff_userid,
            "chat_type": group_send.chat_type,
            "recipients": len(targets(group_send)),
            "tag_id": tag_id,
            "material_ids": group_send.material_ids,
        },
    )
    db().commit()
    if new.not_customers:
        flash(
            ngettext(
                "%(num)d chosen customer is no longer the sender's and was left out.",
                "%(num)d chosen customers are no longer the sender's and were left out.",
                len(new.not_customers),
            ),
            "error",
        )
    queued = _enqueue(Job.SEND_GROUP_SEND, group_send.id)
    if queued and to_groups:
        flash(
            ngettext(
                "The message goes to %(num)d customer group once %(name)s confirms it in WeCom.",
                "The message goes to %(num)d customer groups once %(name)s confirms it in WeCom.",
                len(group_send.chat_ids),
                name=staff.name or staff.userid,
            ),
            "success",
        )
    elif queued:
        flash(
            ngettext(
                "The message goes to %(num)d customer once %(name)s confirms it in WeCom.",
                "The message goes to %(num)d customers once %(name)s confirms it in WeCom.",
                len(group_send.external_userids),
                name=staff.name or staff.userid,
            ),
            "success",
        )
    else:
        flash(_("The job queue is unreachable: the message is sent once it is back."), "error")
    return redirect(url_for("admin.group_sends_detail", group_send_id=group_send.id))


@bp.get("/group-sends/<int:group_send_id>")
@requires("contacts.view")
def group_sends_detail(group_send_id: int):
    group_send = scoped_or_404(GroupSend, group_send_id)
    listed = paginate_list(targets(group_send), RECIPIENTS_PAGE_SIZE)
    shown = listed.rows
    if group_send.chat_type == GROUP:
        return _group_chat_send_page(group_send, listed)
    contacts = {
        external_userid: (contact_id, name)
        for external_userid, contact_id, name in db().execute(
            select(FollowRelation.external_userid, Contact.id, Contact.name)
            .join(Contact, Contact.id == FollowRelation.contact_id)
            .where(
                FollowRelation.workspace_id == workspace_id(),
                FollowRelation.channel_id == group_send.channel_id,
                FollowRelation.staff_userid == group_send.staff_userid,
                FollowRelation.external_userid.in_(shown),
            )
        )
    }
    refused = set(group_send.fail_list or [])
    results = group_send.results or {}
    recipients = [
        (
            external_userid,
            contacts.get(external_userid),
            "refused" if external_userid in refused else results.get(external_userid),
        )
        for external_userid in shown
    ]
    return render_template(
        "admin/group_send.html",
        group_send=group_send,
        sender=_staff_names(workspace_id()).get(
            (group_send.channel_id, group_send.staff_userid), group_send.staff_userid
        ),
        channel=db().get(Channel, group_send.channel_id),
        created_by=db().get(User, group_send.created_by) if group_send.created_by else None,
        counts=_counts(group_send),
        recipients=recipients,
        page=listed.page,
        pages=listed.pages,
        **_labels(),
    )


def _group_chat_send_page(group_send: GroupSend, listed):
    """A send to customer groups: each group with its result."""
    names = dict(
        db()
        .execute(
            select(CustomerGroup.chat_id, CustomerGroup.name).where(
                CustomerGroup.workspace_id == workspace_id(),
                CustomerGroup.channel_id == group_send.channel_id,
                CustomerGroup.chat_id.in_(listed.rows),
            )
        )
        .all()
    )
    refused = set(group_send.fail_list or [])
    results = group_send.results or {}
    recipients = [
        (chat_id, names.get(chat_id), "refused" if chat_id in refused else results.get(chat_id))
        for chat_id in listed.rows
    ]
    return render_template(
        "admin/group_send.html",
        group_send=group_send,
        sender=_staff_names(workspace_id()).get(
            (group_send.channel_id, group_send.staff_userid), group_send.staff_userid
        ),
        channel=db().get(Channel, group_send.channel_id),
        created_by=db().get(User, group_send.created_by) if group_send.created_by else None,
        counts=_counts(group_send),
        recipients=recipients,
        page=listed.page,
        pages=listed.pages,
        **{**_labels(), "result_labels": GROUP_RESULT_LABELS},
    )


@bp.post("/group-sends/<int:group_send_id>/refresh")
@requires("group_send.create")
def group_sends_refresh(group_send_id: int):
    group_send = scoped_or_404(GroupSend, group_send_id)
    if not group_send.msgid:
        flash(_("WeCom does not have this message yet: there are no results to fetch."), "error")
    elif _enqueue(Job.FETCH_GROUP_SEND_RESULTS, group_send.id):
        flash(_("Fetching the results from WeCom: reload the page in a moment."), "success")
    else:
        flash(_("The job queue is unreachable: try again later."), "error")
    return redirect(url_for("admin.group_sends_detail", group_send_id=group_send.id))


def _list_page(form: GroupSendForm | None):
    ws = workspace_id()
    listed = paginate(
        select(GroupSend, User.name)
        .outerjoin(User, User.id == GroupSend.created_by)
        .where(GroupSend.workspace_id == ws)
        .order_by(GroupSend.created_at.desc(), GroupSend.id.desc()),
        PAGE_SIZE,
    )
    staff_names = _staff_names(ws)
    return render_template(
        "admin/group_sends.html",
        rows=[
            (
                group_send,
                staff_names.get((group_send.channel_id, group_send.staff_userid)),
                created_by,
                _counts(group_send),
            )
            for group_send, created_by in listed.rows
        ],
        form=form,
        page=listed.page,
        pages=listed.pages,
        excerpt_chars=EXCERPT_CHARS,
        **_labels(),
    )


def _counts(group_send: GroupSend) -> dict[str, int]:
    """The recipients by outcome, as the pages name them."""
    counts = result_counts(group_send)
    return {
        "waiting": counts[NOT_SENT],
        "sent": counts[SENT],
        "not_a_friend": counts[NOT_A_FRIEND],
        "limit": counts[MONTHLY_LIMIT],
        "refused": len(group_send.fail_list or []),
    }


def _labels() -> dict:
    return {
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "result_labels": RESULT_LABELS,
        "result_badges": RESULT_BADGES,
    }


def _staff_names(ws: int) -> dict[tuple[int, str], str]:
    return {key: name or key[1] for key, name in staff_names(db(), ws).items()}


def _enqueue(job: Job, group_send_id: int) -> bool:
    """False when Redis is down: the periodic refresh picks the send up later. No job id:
    a failed job keeps its id for a day, and both jobs are safe to repeat."""
    try:
        harpoon().queue.enqueue(job, group_send_id)
    except RedisError as exc:
        log.warning("%s for group send %s could not be queued: %s", job, group_send_id, exc)
        return False
    return True
