"""The WeCom pages' forms: a 联系我 code as the admin edits it (sales.contact_ways checks it
again for WeCom), and the admin user a staff member signs in as."""

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin.labels import TAG_GROUP_LABELS, error_messages, tag_label, translated_messages
from app.admin.wecom.presenters import ROTATION_LABELS, WEEKDAYS_SHORT
from core.references import USER, Reference, declare
from crm.tags import TagBook
from models import Staff, TagGroup
from sales import group_welcome, join_ways
from sales.contact_way_rotation import ALL, NOBODY, parse_time
from sales.contact_ways import (
    MAX_NAME,
    MAX_STAFF,
    MAX_STATE,
    MAX_WELCOME,
    STATE_TAKEN,
    WELCOME_PLACEHOLDERS,
    unknown_placeholders,
)

STAFF_USER_REFERENCES = declare("staff", Reference("user_id", USER))
AUDITED_FIELDS = (
    "name",
    "state",
    "staff_userids",
    "skip_verify",
    "tag_ids",
    "welcome_text",
    "rotation",
    "daily_cap",
    "backup_userids",
    "schedule",
    "auto_accept",
)
TIME_FORMAT = Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", message=_l("Use a 24-hour time such as 09:00."))
TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
WINDOW = re.compile(r"^(\d\d:\d\d)\s*[-–~至]\s*(\d\d:\d\d)$")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def placeholder_list(names) -> str:
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
    rotation = SelectField(
        _l("Rotation"),
        choices=[SelectChoice(key, label) for key, label in ROTATION_LABELS.items()],
        default=ALL,
        validate_choice=True,
    )
    daily_cap = IntegerField(
        _l("Daily cap per member"),
        validators=[
            Optional(),
            NumberRange(min=1, max=10_000, message=_l("From 1 to 10000 adds a day.")),
        ],
    )
    backup_userids = SelectMultipleField(
        _l("Backup staff"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    schedule_days = SelectMultipleField(
        _l("Working days"),
        choices=[SelectChoice(n, label) for n, label in enumerate(WEEKDAYS_SHORT)],
        coerce=int,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    schedule_start = StringField(_l("From"), filters=[_strip], validators=[Optional(), TIME_FORMAT])
    schedule_end = StringField(_l("To"), filters=[_strip], validators=[Optional(), TIME_FORMAT])
    auto_accept = StringField(_l("Auto-accept windows"), filters=[_strip])
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
        self.backup_userids.choices = list(self.staff_userids.choices)
        self.tag_ids.choices = _tag_choices(book)
        way = kwargs.get("obj")
        if way is not None and not self.is_submitted():
            schedule = way.schedule or {}
            self.schedule_days.data = schedule.get("days", [])
            self.schedule_start.data = schedule.get("start", "")
            self.schedule_end.data = schedule.get("end", "")
            self.auto_accept.data = ", ".join(
                f"{w['start']}-{w['end']}" for w in way.auto_accept or []
            )

    def validate_backup_userids(self, field):
        chosen = [self._staff[userid] for userid in field.data if userid in self._staff]
        inactive = [member.name for member in chosen if not member.active]
        if inactive:
            raise ValidationError(
                _(
                    "%(names)s no longer has the customer-contact permission.",
                    names=", ".join(inactive),
                )
            )
        both = [self._staff[u].name for u in field.data if u in (self.staff_userids.data or [])]
        if both:
            raise ValidationError(
                _("Backup staff cannot also be regular members: %(names)s.", names=", ".join(both))
            )
        if (self.daily_cap.data or self._schedule_given()) and not field.data:
            raise ValidationError(
                _(
                    "A daily cap or a schedule needs backup staff: "
                    "WeCom cannot point a code at nobody."
                )
            )

    def _schedule_given(self) -> bool:
        return bool(self.schedule_days.data or self.schedule_start.data or self.schedule_end.data)

    def validate_schedule_days(self, field):
        if self._schedule_given() and not field.data:
            raise ValidationError(_("Choose at least one weekday."))

    def validate_schedule_start(self, field):
        if self._schedule_given() and not field.data:
            raise ValidationError(_("Required."))

    def validate_schedule_end(self, field):
        if self._schedule_given() and not field.data:
            raise ValidationError(_("Required."))
        start = self.schedule_start
        valid = field.data and start.data and not start.errors and TIME_PATTERN.match(field.data)
        if valid and field.data <= start.data:
            raise ValidationError(_("The start must be before the end."))

    def validate_auto_accept(self, field):
        self._windows = []
        for part in filter(
            None, (p.strip() for p in re.split(r"[,，;；\s]+(?=\d)", field.data or ""))
        ):
            match = WINDOW.match(part)
            if not match or not all(TIME_PATTERN.match(t) for t in match.groups()):
                raise ValidationError(
                    _("Write windows as 09:00-12:00, separated by commas: %(part)s", part=part)
                )
            start, end = match.groups()
            if parse_time(start) >= parse_time(end):
                raise ValidationError(_("%(part)s: the start must be before the end.", part=part))
            self._windows.append({"start": start, "end": end})
        if len(self._windows) > 4:
            raise ValidationError(_("At most 4 windows."))

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
                    unknown=placeholder_list(unknown),
                    allowed=placeholder_list(WELCOME_PLACEHOLDERS),
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
            "rotation": self.rotation.data,
            "daily_cap": self.daily_cap.data,
            "backup_userids": self.backup_userids.data,
            "schedule": {
                "days": self.schedule_days.data,
                "start": self.schedule_start.data,
                "end": self.schedule_end.data,
            }
            if self._schedule_given()
            else None,
            "auto_accept": getattr(self, "_windows", None) or None,
        }


def _tag_choices(book: TagBook) -> list[SelectChoice]:
    choices = []
    for group in TagGroup:
        optgroup = str(TAG_GROUP_LABELS[group])
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        choices += [SelectChoice(tag.id, tag_label(tag), optgroup=optgroup) for tag in tags]
    return choices


def show_input_errors(form: ContactWayForm, messages: dict) -> None:
    """sales.contact_ways' refusals, on the fields they concern."""
    for name, errors in messages.items():
        shown = [
            _("Another code of this channel uses this state.")
            if e == STATE_TAKEN
            else _("Nobody may receive adds now: choose active staff or backup staff.")
            if e == NOBODY
            else shown_message
            for e, shown_message in zip(
                error_messages(errors), translated_messages(errors), strict=True
            )
        ]
        if name in form:
            form[name].errors = [*form[name].errors, *shown]
        else:
            form.form_errors.extend(shown)


def _optional_id(value) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class StaffUserForm(FlaskForm):
    user_id = SelectField(_l("Admin user"), coerce=_optional_id, choices=[])


def user_choices(users: list) -> list[SelectChoice]:
    """`users`: (id, name, email) rows, as sales.staff.mappable_users reads them."""
    return [SelectChoice("", _("Not mapped"))] + [
        SelectChoice(user_id, f"{name} <{email}>") for user_id, name, email in users
    ]


# --- 群活码 and group welcome messages ----------------------------------------------------

JOIN_WAY_AUDITED_FIELDS = (
    "name",
    "state",
    "chat_ids",
    "auto_create_room",
    "room_base_name",
    "room_base_id",
    "tag_ids",
)


class JoinWayForm(FlaskForm):
    """A 群活码 as the admin edits it; sales.join_ways checks it again for WeCom."""

    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=join_ways.MAX_NAME)]
    )
    state = StringField(
        _l("State"),
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=join_ways.MAX_STATE),
            Regexp(r"^\S+$", message=_l("No spaces.")),
        ],
    )
    chat_ids = SelectMultipleField(
        _l("Groups"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    auto_create_room = BooleanField(_l("Open a new group when they are full"), default=True)
    room_base_name = StringField(
        _l("New groups' name"),
        filters=[_strip],
        validators=[Optional(), Length(max=join_ways.MAX_ROOM_BASE_NAME)],
    )
    room_base_id = IntegerField(
        _l("First new group's number"),
        validators=[Optional(), NumberRange(min=1, max=100_000)],
    )
    tag_ids = SelectMultipleField(_l("Tags"), choices=[], coerce=int)

    def __init__(self, *args, groups: list, book: TagBook, **kwargs):
        super().__init__(*args, **kwargs)
        self.chat_ids.choices = [
            SelectChoice(
                group.chat_id,
                _("%(name)s (%(count)s people)", name=group.name, count=group.member_count),
            )
            for group in groups
        ]
        self.tag_ids.choices = _tag_choices(book)

    def validate_chat_ids(self, field):
        if not field.data:
            raise ValidationError(_("Choose at least one group."))
        if len(field.data) > join_ways.MAX_CHATS:
            raise ValidationError(_("At most %(max)s groups.", max=join_ways.MAX_CHATS))

    def values(self) -> dict:
        return {
            "name": self.name.data,
            "state": self.state.data,
            "chat_ids": self.chat_ids.data,
            "auto_create_room": self.auto_create_room.data,
            "room_base_name": self.room_base_name.data or None,
            "room_base_id": self.room_base_id.data,
            "tag_ids": self.tag_ids.data,
        }


def show_join_way_errors(form: JoinWayForm, messages: dict) -> None:
    """sales.join_ways' refusals, on the fields they concern, in the user's language."""
    for name, errors in messages.items():
        shown = [
            _("Another join code of this channel uses this state.")
            if english == join_ways.STATE_TAKEN
            else translated
            for english, translated in zip(
                error_messages(errors), translated_messages(errors), strict=True
            )
        ]
        if name in form:
            form[name].errors = [*form[name].errors, *shown]
        else:
            form.form_errors.extend(shown)


class GroupWelcomeForm(FlaskForm):
    """A group welcome message: text, and optionally a link card."""

    name = StringField(
        _l("Name"),
        filters=[_strip],
        validators=[DataRequired(), Length(max=group_welcome.MAX_NAME)],
    )
    text = TextAreaField(
        _l("Message"),
        filters=[_strip],
        validators=[Optional(), Length(max=group_welcome.MAX_TEXT)],
    )
    link_title = StringField(
        _l("Link title"),
        filters=[_strip],
        validators=[Optional(), Length(max=group_welcome.MAX_LINK_TITLE)],
    )
    link_url = StringField(
        _l("Link URL"),
        filters=[_strip],
        validators=[
            Optional(),
            Length(max=group_welcome.MAX_LINK_URL),
            Regexp(r"^https?://\S+$", message=_l("A web address starting with https://.")),
        ],
    )
    link_desc = StringField(
        _l("Link description"),
        filters=[_strip],
        validators=[Optional(), Length(max=group_welcome.MAX_LINK_DESC)],
    )

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and not self.text.data and not self.link_url.data:
            self.text.errors = [_("Write a message or add a link.")]
            return False
        if valid and bool(self.link_title.data) != bool(self.link_url.data):
            self.link_title.errors = [_("A link needs both a title and a URL.")]
            return False
        return valid

    def values(self) -> dict:
        return {
            "name": self.name.data,
            "text": self.text.data or "",
            "link_title": self.link_title.data or None,
            "link_url": self.link_url.data or None,
            "link_desc": self.link_desc.data or None,
        }
