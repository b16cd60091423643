"""The chat sidebar's panel: HTML fragments the WeCom sidebar shell loads into `#panel`.

A one-to-one chat shows the person and their account, content to send, a quick note and a
task; a customer-group chat shows the accounts present. The shell's contract:
`[data-send-card]` (JSON title/desc/link/imgUrl) goes into the chat with
`ww.sendChatMessage`, then the shell POSTs to its `data-sent-url` and reloads the panel;
`form[data-panel-form]` is posted with fetch and its answer replaces the panel (422 with
field messages); `a[data-panel-link]` loads its href into the panel.

The signed-in user's session is the admin's. A salesperson opens only their own people
(sales.ownership) and the groups one of their staff identities owns or is a member of;
marketers and admins open anyone of the workspace.
"""

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateTimeLocalField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from app.admin import db
from app.admin.access import requires, workspace_id
from app.admin.accounts.presenters import committee
from app.admin.contacts.forms import TagForm, tag_choices
from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.labels import (
    CONTACT_ROLE_LABELS,
    CONTENT_KIND_LABELS,
    SENIORITY_LABELS,
    stage_names,
    tag_label,
)
from app.admin.lookups import id_arg
from app.admin.programs.presenters import STATUS_LABELS as PROGRAM_STATUS_LABELS
from app.admin.programs.views import may_order
from app.admin.scoring.presenters import score_rule_labels
from app.extensions import harpoon
from core.jobs import Followups
from core.lanes import lane_of
from crm import directory
from crm.channels import wecom_channel
from crm.tags import TagBook, apply_tags, remove_tags
from models import Account, Contact, Content, Program, Role, Staff, TagGroup, TagSource, utcnow
from outreach.content import chat_links, link_path, share_path
from outreach.library.editing import oa_channels
from revenue import programs
from revenue.programs import ProgramRefused
from sales import sidebar
from sales.ownership import owned_contact_ids, owns_contact
from sales.tasks import add_note, create_task
from scoring.contributions import account_contributions
from scoring.engine import Scorer, lead_score_at
from scoring.ledger import points_by_rule

log = logging.getLogger(__name__)

bp = Blueprint("wecom_panel", __name__, url_prefix="/wecom/panel")

RULES_SHOWN = 5
PROGRAM_ORDERS_SHOWN = 10
CONTRIBUTORS_SHOWN = 5
NOTE_MAX = 2000
TASK_TITLE_MAX = 200
# A sent card's picture when the content has none of its own.
CARD_IMAGE = "wecom-panel-card.png"
NODE_TYPES = {
    "entry": _l("Entry"),
    "action": _l("Action"),
    "wait": _l("Waiting"),
    "condition": _l("Condition"),
    "split": _l("Split"),
    "exit": _l("Exit"),
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class NoteForm(FlaskForm):
    text = TextAreaField(
        _l("Note"),
        filters=[_strip],
        validators=[
            DataRequired(_l("Write the note first.")),
            Length(max=NOTE_MAX, message=_l("At most %(max)d characters.")),
        ],
    )


class TaskForm(FlaskForm):
    title = StringField(
        _l("Task"),
        filters=[_strip],
        validators=[
            DataRequired(_l("Say what to do.")),
            Length(max=TASK_TITLE_MAX, message=_l("At most %(max)d characters.")),
        ],
    )
    due = DateTimeLocalField(
        _l("Due"),
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired(_l("Pick a due time."))],
    )

    def due_utc(self) -> datetime:
        return self.due.data.replace(tzinfo=_zone()).astimezone(ZoneInfo("UTC"))

    def validate_due(self, field):
        if field.data is not None and self.due_utc() < utcnow() - timedelta(minutes=1):
            raise ValidationError(_l("The due time has passed: pick a later one."))


@dataclass
class Forms:
    note: NoteForm
    task: TaskForm
    tag: TagForm | None


class Refused(Exception):
    """A salesperson opened someone who is not theirs (or a group they are not in)."""

    def __init__(self, message: str | None = None):
        super().__init__(message)
        self.message = message


def _zone() -> ZoneInfo:
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


@bp.errorhandler(Refused)
def _refused(exc):
    return render_template(
        "wecom_panel/refused.html",
        message=exc.message or _("This customer is not yours: ask their owner or a marketer."),
    ), 403


@bp.errorhandler(404)
def _not_found(_exc):
    return render_template(
        "wecom_panel/refused.html", message=_("No such customer or chat in your workspace.")
    ), 404


def _person(channel_id: int, external_userid: str):
    """The channel and the person, or 404; a salesperson's refusal if not theirs."""
    ws = workspace_id()
    channel = wecom_channel(db(), ws, channel_id)
    if channel is None:
        abort(404)
    contact = sidebar.person_of(db(), ws, channel.id, external_userid)
    if contact is None:
        abort(404)
    if current_user.role == Role.SALES and not owns_contact(db(), ws, current_user.id, contact.id):
        raise Refused()
    return channel, contact


def _forms(note=None, task=None, tag=None) -> Forms:
    tag_form = tag
    if tag_form is None and current_user.role != Role.VIEWER:
        tag_form = TagForm(formdata=None)
    if tag_form is not None:
        tag_form.tag.choices = tag_choices(TagBook(db(), workspace_id()))
    return Forms(
        note or NoteForm(formdata=None),
        task
        or TaskForm(
            formdata=None,
            due=datetime.now(_zone()).replace(second=0, microsecond=0) + timedelta(days=1),
        ),
        tag_form,
    )


def _my_staff(channel_id: int) -> Staff | None:
    """The signed-in user's staff identity on the corp (their share token names it)."""
    return db().scalar(
        select(Staff)
        .where(
            Staff.workspace_id == workspace_id(),
            Staff.channel_id == channel_id,
            Staff.user_id == current_user.id,
            Staff.active.is_(True),
        )
        .order_by(Staff.id)
    )


def _send_cards(channel, contact, recommendations) -> tuple[dict, Staff | None]:
    """Each recommended item's link card: its chat link with the user's share token."""
    ws = workspace_id()
    oas = oa_channels(db(), ws)
    links = chat_links(
        db(), ws, [r.content.id for r in recommendations], oas[0].id if oas else None
    )
    staff = _my_staff(channel.id)
    image = harpoon().public_url(url_for("static", filename=CARD_IMAGE))
    cards = {}
    for item in recommendations:
        link = links[item.content.id]
        path = share_path(harpoon().signer, link, staff.id) if staff else link_path(link)
        cards[item.content.id] = {
            "card": json.dumps(
                {
                    "title": item.content.title,
                    "desc": item.content.summary or item.content.title,
                    "link": harpoon().public_url(path),
                    "imgUrl": image,
                },
                ensure_ascii=False,
            ),
            "sent_url": url_for(
                "wecom_panel.contact_sent",
                channel_id=channel.id,
                external_userid=request.view_args["external_userid"],
                content_id=item.content.id,
                nonce=secrets.token_urlsafe(9),
            ),
        }
    return cards, staff


def _panel(
    channel, contact: Contact, forms: Forms | None = None, status=200, notice=None, alert=None
):
    ws, session = workspace_id(), db()
    scorer = Scorer.load(session, ws)
    model, now = scorer.model, scorer.now
    held = directory.held_tags(session, ws, contact.id)
    interests, _role = sidebar.person_tag_names(held)
    account = session.get(Account, contact.account_id) if contact.account_id else None
    account_context = {}
    if account is not None and account.workspace_id == ws:
        account_context = {
            "standing": sidebar.standing(account),
            "mqa_checks": scorer.mqa_checks(account),
            "contributions": account_contributions(session, account, model, CONTRIBUTORS_SHOWN),
            "colleagues": sidebar.colleagues_activity(
                session, account, contact.id, sidebar.COLLEAGUES_SHOWN
            ),
            "owner": sidebar.owner_of(session, account),
            **_programs(account),
            "open_opportunities": sidebar.open_opportunities(
                session,
                account,
                sidebar.OPPORTUNITIES_SHOWN,
                seller_id=current_user.id if current_user.role == Role.SALES else None,
            ),
            **committee(
                directory.committee_members(session, account),
                directory.account_seniorities(session, account),
            ),
        }
    else:
        account = None
    recommendations = sidebar.recommended_content(session, ws, contact, model, interests)
    cards, staff = _send_cards(channel, contact, recommendations)
    session.commit()  # the chat links made on first use
    return render_template(
        "wecom_panel/contact.html",
        channel=channel,
        external_userid=request.view_args["external_userid"],
        contact=contact,
        account=account,
        held_tags=held,
        lead_score=lead_score_at(contact.score_mass, now, model.half_life_days),
        rules=points_by_rule(session, ws, contact.id, RULES_SHOWN),
        journeys=sidebar.journeys_in_progress(session, ws, contact),
        touches=sidebar.last_touches(session, ws, contact.id, sidebar.TOUCHES_SHOWN),
        reads=sidebar.reads(session, ws, contact.id, sidebar.READS_SHOWN),
        recommendations=recommendations,
        cards=cards,
        staff=staff,
        forms=forms or _forms(),
        notice=notice,
        alert=alert,
        stage_names=stage_names(model.stages),
        role_labels=CONTACT_ROLE_LABELS,
        seniority_labels=SENIORITY_LABELS,
        kind_labels=CONTENT_KIND_LABELS,
        interaction_labels=INTERACTION_LABELS,
        rule_labels=score_rule_labels(model.rules),
        node_types=NODE_TYPES,
        tag_label=tag_label,
        **account_context,
    ), status


def _programs(account: Account) -> dict:
    """The account's programs: what is ordered, and its tier's menu to tick (one tap; the
    nonce makes a retried tap order once)."""
    return {
        "programs": programs.account_programs(db(), account, PROGRAM_ORDERS_SHOWN),
        "may_order_programs": may_order(account),
        "program_nonce": secrets.token_urlsafe(9),
        "program_status_labels": PROGRAM_STATUS_LABELS,
    }


@bp.get("/<int:channel_id>/contact/<external_userid>")
@requires("contacts.view")
def contact(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    return _panel(channel, person)


def _ask_drain(person_key: str | None) -> None:
    """After the commit: a drain for the person's new touchpoint."""
    if person_key is not None:
        h = harpoon()
        h.queue.drain_requests.mark(workspace_id(), lane_of(person_key, h.settings.inbox_lanes))


@bp.post("/<int:channel_id>/contact/<external_userid>/sent")
@requires("sales.act")
def contact_sent(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    content = sidebar.live_content(db(), workspace_id(), id_arg("content_id", Content.id) or 0)
    nonce = (request.values.get("nonce") or "")[:20]
    if content is None or not nonce:
        abort(404)
    key = sidebar.record_chat_send(
        db(),
        person,
        content,
        user_id=current_user.id,
        lanes=harpoon().settings.inbox_lanes,
        nonce=nonce,
    )
    db().commit()
    _ask_drain(key)
    return _panel(channel, person, notice=_("Sent “%(title)s”.", title=content.title))


@bp.post("/<int:channel_id>/contact/<external_userid>/programs")
@requires("programs.request")
def contact_program(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    account = db().get(Account, person.account_id) if person.account_id else None
    nonce = (request.values.get("nonce") or "")[:40]
    program_id = id_arg("program_id", Program.id)
    if account is None or account.workspace_id != workspace_id() or not nonce:
        abort(404)
    if not may_order(account):
        return _panel(
            channel,
            person,
            status=403,
            alert=_("Only the account’s owner or a marketer orders programs for it."),
        )
    try:
        order = programs.request_program(
            db(),
            account.workspace_id,
            program_id=program_id or 0,
            account_id=account.id,
            user_id=current_user.id,
            nonce=nonce,
        )
    except ProgramRefused as refused:
        db().rollback()
        return _panel(channel, person, status=422, alert=_(refused.message))
    program = db().get(Program, order.program_id)
    db().commit()
    return _panel(channel, person, notice=_("Requested: %(names)s.", names=program.name))


@bp.post("/<int:channel_id>/contact/<external_userid>/note")
@requires("sales.act")
def contact_note(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    form = NoteForm()
    if not form.validate_on_submit():
        return _panel(channel, person, _forms(note=form), 422)
    add_note(
        db(),
        workspace_id=person.workspace_id,
        text=form.text.data,
        author_id=current_user.id,
        lanes=harpoon().settings.inbox_lanes,
        account_id=person.account_id,
        contact_id=person.id,
    )
    db().commit()
    _ask_drain(sidebar.person_key_of(db(), person))
    return _panel(channel, person, notice=_("Note saved."))


@bp.post("/<int:channel_id>/contact/<external_userid>/task")
@requires("sales.act")
def contact_task(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    form = TaskForm()
    if not form.validate_on_submit():
        return _panel(channel, person, _forms(task=form), 422)
    create_task(
        db(),
        workspace_id=person.workspace_id,
        title=form.title.data,
        due_at=form.due_utc(),
        account_id=person.account_id,
        contact_id=person.id,
        assignee_id=current_user.id,
        created_by=current_user.id,
    )
    db().commit()
    return _panel(channel, person, notice=_("Task added."))


@bp.post("/<int:channel_id>/contact/<external_userid>/tags")
@requires("contacts.tag")
def contact_add_tag(channel_id: int, external_userid: str):
    channel, person = _person(channel_id, external_userid)
    book = TagBook(db(), person.workspace_id)
    form = TagForm()
    form.tag.choices = tag_choices(book)
    if not form.validate_on_submit():
        return _panel(channel, person, _forms(tag=form), 422)
    tag = form.chosen(book)
    if form.new_tag.data and tag.group == TagGroup.MANUAL:
        tag.sync_wecom = True  # typed in WeCom: the salesperson means it to show in WeCom
    followups = Followups()
    apply_tags(db(), book, [person.id], [tag], source=TagSource.MANUAL, followups=followups)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return _panel(channel, person, notice=_("Tagged “%(tag)s”.", tag=tag_label(tag)))


@bp.post("/<int:channel_id>/contact/<external_userid>/tags/<int:tag_id>/remove")
@requires("contacts.tag")
def contact_remove_tag(channel_id: int, external_userid: str, tag_id: int):
    channel, person = _person(channel_id, external_userid)
    book = TagBook(db(), person.workspace_id)
    tag = book.by_id(tag_id)
    if tag is None:
        abort(404)
    followups = Followups()
    removed = remove_tags(db(), book, [person.id], [tag], followups=followups)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    notice = _("Removed “%(tag)s”.", tag=tag_label(tag)) if removed else None
    return _panel(channel, person, notice=notice)


# ---- a customer group ---------------------------------------------------------------------


@bp.get("/<int:channel_id>/group/<chat_id>")
@requires("contacts.view")
def group(channel_id: int, chat_id: str):
    ws = workspace_id()
    channel = wecom_channel(db(), ws, channel_id)
    if channel is None or len(chat_id) > 64:
        abort(404)
    h = harpoon()
    try:
        info = sidebar.group_chat(
            h.queue.connection,
            h.settings.queue_prefix,
            h.wechat.wecom(channel.app_id, channel.secret),
            channel.id,
            chat_id,
        )
    except sidebar.GroupUnavailable as exc:
        log.warning("groupchat/get refused for channel %s chat %s: %s", channel.id, chat_id, exc)
        message = (
            _("WeCom does not know this group, or it is not a customer group of your corp.")
            if exc.errcode in (40050, 701008, 90500)
            else _(
                "WeCom did not answer with the group's members (error %(code)s): try again.",
                code=exc.errcode,
            )
        )
        return render_template("wecom_panel/refused.html", message=message), 502
    if current_user.role == Role.SALES and not sidebar.in_group(
        db(), ws, channel.id, current_user.id, info
    ):
        raise Refused(_("You are not in this group: ask its owner or a marketer."))
    members = list(info.get("member_list") or [])
    view = sidebar.group_view(db(), ws, channel.id, members)
    model = Scorer.load(db(), ws).model
    return render_template(
        "wecom_panel/group.html",
        channel=channel,
        info=info,
        view=view,
        member_count=len(members),
        stage_names=stage_names(model.stages),
        role_labels=CONTACT_ROLE_LABELS,
        seniority_labels=SENIORITY_LABELS,
        own=_own_ids(view),
    )


def _own_ids(view: sidebar.GroupView) -> set[int] | None:
    """For a salesperson, which of the known people are theirs (their panel opens);
    None for anyone who may open everyone."""
    if current_user.role != Role.SALES:
        return None
    ids = [
        member.contact.id
        for rows in [*(group.members for group in view.accounts), view.without_account]
        for member in rows
    ]
    return owned_contact_ids(db(), workspace_id(), current_user.id, ids)
