"""WeCom sales pages: 联系我 codes with their adds, and the staff who receive them.

A code lives in WeCom and in Harpoon: sales.contact_ways changes both, WeCom
first, so a refusal leaves nothing behind. Staff come from a sync job; the
admin maps each one to the user they sign in as, which links them to accounts.
"""

from datetime import timedelta
from math import ceil

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError as InputError
from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from wtforms import (
    BooleanField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin import bp, db
from app.admin.access import audit, ids_of_workspace, requires, workspace_id
from app.admin.dashboard import last_days, local_day
from app.admin.labels import ADD_WAY_LABELS, TAG_GROUP_LABELS, error_messages, tag_label
from app.extensions import harpoon
from core.jobs import Job
from core.references import USER, Reference, declare
from crm.tags import TagBook
from models import (
    Account,
    Channel,
    ChannelKind,
    Contact,
    ContactWay,
    FollowRelation,
    Staff,
    TagGroup,
    User,
    utcnow,
)
from sales.contact_ways import (
    MAX_NAME,
    MAX_STAFF,
    MAX_STATE,
    MAX_WELCOME,
    STATE_TAKEN,
    WELCOME_PLACEHOLDERS,
    create_contact_way,
    delete_contact_way,
    unknown_placeholders,
    update_contact_way,
)
from sales.staff import staff_accounts
from wechat.clients import WeChatApiError

ADDS_DAYS = 30
STAFF_USER_REFERENCES = declare("staff", Reference("user_id", USER))
CUSTOMERS_PAGE_SIZE = 50
# What WeCom's refusals of a code mean for the person filling in the form.
WECOM_REFUSALS = {
    40003: _l("WeCom does not know a chosen staff member: sync the staff and choose again."),
    84074: _l(
        "A chosen staff member lacks the customer-contact permission: "
        "sync the staff and choose again."
    ),
    41041: _l("A code reaches at most %(max)s staff members.", max=MAX_STAFF),
    48002: _l("The channel's secret is not the customer-contact secret."),
}
AUDITED_FIELDS = ("name", "state", "staff_userids", "skip_verify", "tag_ids", "welcome_text")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _placeholder_list(names) -> str:
    return ", ".join(f"{{{name}}}" for name in names)


class ContactWayForm(FlaskForm):
    """The code as the admin edits it; sales.contact_ways checks it again for WeCom."""

    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=MAX_NAME)]
    )
    state = StringField(
        _l("State"),
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=MAX_STATE),
            Regexp(r"^\S+$", message=_l("No spaces.")),
        ],
    )
    staff_userids = SelectMultipleField(
        _l("Staff"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    skip_verify = BooleanField(_l("Customers add without verification"), default=True)
    tag_ids = SelectMultipleField(_l("Tags"), choices=[], coerce=int)
    welcome_text = TextAreaField(
        _l("Welcome message"),
        filters=[_strip],
        validators=[Optional(), Length(max=MAX_WELCOME)],
    )

    def __init__(self, *args, staff: list[Staff], book: TagBook, **kwargs):
        super().__init__(*args, **kwargs)
        self._staff = {member.userid: member for member in staff}
        self.staff_userids.choices = [
            SelectChoice(
                member.userid,
                member.name if member.active else _("%(name)s (inactive)", name=member.name),
            )
            for member in staff
        ]
        self.tag_ids.choices = _tag_choices(book)

    def validate_staff_userids(self, field):
        # Checked here, not by DataRequired: its `required` would mark every checkbox required.
        if not field.data:
            raise ValidationError(_("Choose at least one staff member."))
        if len(field.data) > MAX_STAFF:
            raise ValidationError(_("At most %(max)s staff members.", max=MAX_STAFF))
        chosen = [self._staff[userid] for userid in field.data if userid in self._staff]
        inactive = [member.name for member in chosen if not member.active]
        if inactive:
            raise ValidationError(
                _(
                    "%(names)s no longer has the customer-contact permission.",
                    names=", ".join(inactive),
                )
            )

    def validate_welcome_text(self, field):
        unknown = unknown_placeholders(field.data or "")
        if unknown:
            raise ValidationError(
                _(
                    "Unknown placeholder %(unknown)s: use only %(allowed)s.",
                    unknown=_placeholder_list(unknown),
                    allowed=_placeholder_list(WELCOME_PLACEHOLDERS),
                )
            )

    def values(self) -> dict:
        return {
            "name": self.name.data,
            "state": self.state.data,
            "staff_userids": self.staff_userids.data,
            "skip_verify": self.skip_verify.data,
            "tag_ids": self.tag_ids.data,
            "welcome_text": self.welcome_text.data or None,
        }


def _tag_choices(book: TagBook) -> list[SelectChoice]:
    choices = []
    for group in TagGroup:
        optgroup = str(TAG_GROUP_LABELS[group])
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        choices += [SelectChoice(tag.id, tag_label(tag), optgroup=optgroup) for tag in tags]
    return choices


def _optional_id(value) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class StaffUserForm(FlaskForm):
    user_id = SelectField(_l("Admin user"), coerce=_optional_id, choices=[])


# --- 联系我 codes -------------------------------------------------------------


def _wecom_channels(ws: int) -> list[Channel]:
    return list(
        db().scalars(
            select(Channel)
            .where(Channel.workspace_id == ws, Channel.kind == ChannelKind.WECOM)
            .order_by(Channel.created_at, Channel.id)
        )
    )


def _wecom_channel_or_404(channel_id: int) -> Channel:
    channel = db().scalar(
        select(Channel).where(
            Channel.id == channel_id,
            Channel.workspace_id == workspace_id(),
            Channel.kind == ChannelKind.WECOM,
        )
    )
    if channel is None:
        abort(404)
    return channel


def _live_way_or_404(way_id: int) -> ContactWay:
    way = db().scalar(
        select(ContactWay).where(
            ContactWay.id == way_id,
            ContactWay.workspace_id == workspace_id(),
            ContactWay.deleted_at.is_(None),
        )
    )
    if way is None:
        abort(404)
    return way


def _client(channel: Channel):
    return harpoon().wechat.wecom(channel.app_id, channel.secret)


def _staff_names(ws: int) -> dict[tuple[int, str], str]:
    rows = db().execute(
        select(Staff.channel_id, Staff.userid, Staff.name).where(Staff.workspace_id == ws)
    )
    return {(channel_id, userid): name for channel_id, userid, name in rows}


def _adds(ws: int, ways: list[ContactWay]) -> tuple[dict, dict, dict]:
    """Adds per code: in the last ADDS_DAYS days, in all, and the chart's daily series."""
    since = utcnow() - timedelta(days=ADDS_DAYS)
    by_way = (FollowRelation.workspace_id == ws, FollowRelation.contact_way_id.is_not(None))
    total = dict(
        db()
        .execute(
            select(FollowRelation.contact_way_id, func.count())
            .where(*by_way)
            .group_by(FollowRelation.contact_way_id)
        )
        .all()
    )
    tz = g.get("workspace_timezone") or "Asia/Shanghai"
    days = last_days(ADDS_DAYS, tz)
    day = local_day(FollowRelation.added_at, tz)
    daily: dict[int, dict[str, int]] = {}
    for way_id, on, count in db().execute(
        select(FollowRelation.contact_way_id, day, func.count())
        .where(*by_way, FollowRelation.added_at >= since - timedelta(days=1))
        .group_by(FollowRelation.contact_way_id, day)
    ):
        if on in days:
            daily.setdefault(way_id, {})[on] = count
    recent = {way_id: sum(counts.values()) for way_id, counts in daily.items()}
    chart = {
        "days": days,
        "series": [
            {"name": way.name, "counts": [daily.get(way.id, {}).get(d, 0) for d in days]}
            for way in ways
            if way.deleted_at is None or way.id in daily
        ],
    }
    return recent, total, chart


@bp.get("/contact-ways")
@requires("channels.view")
def contact_ways():
    ws = workspace_id()
    channels = _wecom_channels(ws)
    ways = list(
        db().scalars(
            select(ContactWay)
            .where(ContactWay.workspace_id == ws)
            .order_by(ContactWay.deleted_at.is_not(None), ContactWay.created_at, ContactWay.id)
        )
    )
    recent, total, chart = _adds(ws, ways)
    return render_template(
        "admin/contact_ways.html",
        channels=channels,
        channel_names={channel.id: channel.name for channel in channels},
        ways=ways,
        staff_names=_staff_names(ws),
        book=TagBook(db(), ws),
        recent=recent,
        total=total,
        chart=chart,
        adds_days=ADDS_DAYS,
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
    )


def _form_for(channel: Channel, way: ContactWay | None) -> ContactWayForm:
    """The form with this channel's staff (active ones, and whoever the code has now)."""
    current = way.staff_userids if way else []
    staff = db().scalars(
        select(Staff)
        .where(
            Staff.channel_id == channel.id,
            Staff.active.is_(True) | Staff.userid.in_(current),
        )
        .order_by(Staff.name, Staff.userid)
    )
    return ContactWayForm(obj=way, staff=list(staff), book=TagBook(db(), channel.workspace_id))


def _show_input_errors(form: ContactWayForm, messages: dict) -> None:
    """sales.contact_ways' refusals, on the fields they concern."""
    for name, errors in messages.items():
        shown = [
            _("Another code of this channel uses this state.") if e == STATE_TAKEN else e
            for e in error_messages(errors)
        ]
        if name in form:
            form[name].errors = [*form[name].errors, *shown]
        else:
            form.form_errors.extend(shown)


def _wecom_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeCom could not be reached, so nothing changed. Try again in a moment.")
    reason = WECOM_REFUSALS.get(exc.errcode) or exc.errmsg
    return _("WeCom refused the change (%(code)s): %(reason)s", code=exc.errcode, reason=reason)


def _save(channel: Channel, way: ContactWay | None):
    """The new/edit form: GET shows it, POST saves it in WeCom and here or shows why not."""
    form = _form_for(channel, way)
    if form.validate_on_submit():
        before = {name: getattr(way, name) for name in AUDITED_FIELDS} if way else {}
        try:
            if way is None:
                way = create_contact_way(db(), channel, _client(channel), form.values())
                replaced = False
            else:
                replaced = update_contact_way(db(), way, _client(channel), form.values())
        except InputError as exc:
            db().rollback()
            _show_input_errors(form, exc.messages)
        except WeChatApiError as exc:
            db().rollback()
            form.form_errors.append(_wecom_refusal(exc))
        else:
            after = {name: getattr(way, name) for name in AUDITED_FIELDS}
            if before:
                changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
                action = "contact_way.update"
            else:
                changes = {**after, "channel_id": channel.id}
                action = "contact_way.create"
            if replaced:
                changes["config_id"] = "replaced"
            if changes:
                audit(db(), action, "contact_way", way.id, changes)
            db().commit()
            flash(_("Contact Me code %(name)s saved.", name=way.name), "success")
            if replaced:
                flash(
                    _(
                        "WeCom cannot switch a code between one and several staff members, "
                        "so it has a new QR code: replace the old one wherever it is printed."
                    ),
                    "error",
                )
            return redirect(url_for("admin.contact_ways"))
    return render_template(
        "admin/contact_way_form.html",
        form=form,
        channel=channel,
        way=way,
        placeholders=_placeholder_list(WELCOME_PLACEHOLDERS),
        max_staff=MAX_STAFF,
    )


@bp.route("/contact-ways/new/<int:channel_id>", methods=["GET", "POST"])
@requires("wecom.manage")
def contact_ways_new(channel_id: int):
    return _save(_wecom_channel_or_404(channel_id), None)


@bp.route("/contact-ways/<int:way_id>/edit", methods=["GET", "POST"])
@requires("wecom.manage")
def contact_ways_edit(way_id: int):
    way = _live_way_or_404(way_id)
    return _save(_wecom_channel_or_404(way.channel_id), way)


@bp.post("/contact-ways/<int:way_id>/delete")
@requires("wecom.manage")
def contact_ways_delete(way_id: int):
    way = _live_way_or_404(way_id)
    channel = _wecom_channel_or_404(way.channel_id)
    try:
        delete_contact_way(db(), way, _client(channel))
    except WeChatApiError as exc:
        db().rollback()
        flash(_wecom_refusal(exc), "error")
    else:
        audit(
            db(),
            "contact_way.delete",
            "contact_way",
            way.id,
            {"name": way.name, "state": way.state},
        )
        db().commit()
        flash(_("Contact Me code %(name)s deleted.", name=way.name), "success")
    return redirect(url_for("admin.contact_ways"))


# --- staff ------------------------------------------------------------------


def _counts_by_staff(ws: int, *conditions) -> dict[tuple[int, str], int]:
    rows = db().execute(
        select(FollowRelation.channel_id, FollowRelation.staff_userid, func.count())
        .where(FollowRelation.workspace_id == ws, *conditions)
        .group_by(FollowRelation.channel_id, FollowRelation.staff_userid)
    )
    return {(channel_id, userid): count for channel_id, userid, count in rows}


def _user_choices(ws: int) -> list[SelectChoice]:
    """Active users, and deactivated ones some staff member is still mapped to."""
    mapped = select(Staff.user_id).where(Staff.workspace_id == ws, Staff.user_id.is_not(None))
    users = db().execute(
        select(User.id, User.name, User.email)
        .where(User.workspace_id == ws, User.active.is_(True) | User.id.in_(mapped))
        .order_by(User.name, User.id)
    )
    return [SelectChoice("", _("Not mapped"))] + [
        SelectChoice(user_id, f"{name} <{email}>") for user_id, name, email in users
    ]


@bp.get("/staff")
@requires("contacts.view")
def staff():
    ws = workspace_id()
    channels = _wecom_channels(ws)
    members = db().execute(
        select(Staff, User.name)
        .outerjoin(User, (User.id == Staff.user_id) & (User.workspace_id == ws))
        .where(Staff.workspace_id == ws)
        .order_by(Staff.active.desc(), Staff.name, Staff.userid)
    )
    by_channel: dict[int, list] = {channel.id: [] for channel in channels}
    for member, user_name in members:
        by_channel.setdefault(member.channel_id, []).append((member, user_name))
    owned = dict(
        db()
        .execute(
            select(Account.owner_id, func.count())
            .where(Account.workspace_id == ws, Account.owner_id.is_not(None))
            .group_by(Account.owner_id)
        )
        .all()
    )
    return render_template(
        "admin/staff.html",
        channels=channels,
        by_channel=by_channel,
        customers=_counts_by_staff(ws, FollowRelation.removed_at.is_(None)),
        lost=_counts_by_staff(ws, FollowRelation.removed_by == "customer"),
        owned=owned,
        user_choices=_user_choices(ws),
    )


def _staff_or_404(staff_id: int) -> Staff:
    member = db().scalar(
        select(Staff).where(Staff.id == staff_id, Staff.workspace_id == workspace_id())
    )
    if member is None:
        abort(404)
    return member


@bp.post("/staff/sync/<int:channel_id>")
@requires("wecom.manage")
def staff_sync(channel_id: int):
    channel = _wecom_channel_or_404(channel_id)
    harpoon().queue.enqueue(Job.SYNC_STAFF, channel.id, job_id=f"sync_staff-{channel.id}")
    flash(
        _("Syncing the staff of %(name)s: reload the page in a moment.", name=channel.name),
        "success",
    )
    return redirect(url_for("admin.staff"))


@bp.post("/staff/<int:staff_id>/user")
@requires("wecom.manage")
def staff_map_user(staff_id: int):
    member = _staff_or_404(staff_id)
    form = StaffUserForm()
    form.user_id.choices = _user_choices(member.workspace_id)
    valid = form.validate_on_submit()
    if not ids_of_workspace(db(), form, STAFF_USER_REFERENCES):
        flash(_(USER.message), "error")
        return redirect(url_for("admin.staff"))
    if not valid:
        flash(_("Choose a user of this workspace."), "error")
        return redirect(url_for("admin.staff"))
    before = member.user_id
    if form.user_id.data != before:
        member.user_id = form.user_id.data
        audit(
            db(),
            "staff.map_user",
            "staff",
            member.id,
            {"userid": member.userid, "user_id": [before, member.user_id]},
        )
        db().commit()
    flash(_("%(name)s's admin user saved.", name=member.name), "success")
    return redirect(url_for("admin.staff"))


@bp.get("/staff/<int:staff_id>")
@requires("contacts.view")
def staff_detail(staff_id: int):
    member = _staff_or_404(staff_id)
    ws = member.workspace_id
    relations = (
        FollowRelation.workspace_id == ws,
        FollowRelation.channel_id == member.channel_id,
        FollowRelation.staff_userid == member.userid,
    )
    total = db().scalar(select(func.count()).select_from(FollowRelation).where(*relations))
    pages = max(1, ceil(total / CUSTOMERS_PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    customer_account = aliased(Account)
    customers = db().execute(
        select(FollowRelation, Contact, customer_account, ContactWay.name)
        .join(Contact, (Contact.id == FollowRelation.contact_id) & (Contact.workspace_id == ws))
        .outerjoin(
            customer_account,
            (customer_account.id == Contact.account_id) & (customer_account.workspace_id == ws),
        )
        .outerjoin(ContactWay, ContactWay.id == FollowRelation.contact_way_id)
        .where(*relations)
        .order_by(FollowRelation.added_at.desc().nulls_last(), FollowRelation.id.desc())
        .limit(CUSTOMERS_PAGE_SIZE)
        .offset((page - 1) * CUSTOMERS_PAGE_SIZE)
    )
    return render_template(
        "admin/staff_detail.html",
        member=member,
        channel=db().get(Channel, member.channel_id),
        user=db().get(User, member.user_id) if member.user_id else None,
        customers=customers.all(),
        total=total,
        page=page,
        pages=pages,
        accounts=staff_accounts(db(), member),
        add_way_labels=ADD_WAY_LABELS,
    )
