"""The WeCom pages' forms: a 联系我 code as the admin edits it (sales.contact_ways checks it
again for WeCom), and the admin user a staff member signs in as."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
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

from app.admin.labels import TAG_GROUP_LABELS, error_messages, tag_label
from core.references import USER, Reference, declare
from crm.tags import TagBook
from models import Staff, TagGroup
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
AUDITED_FIELDS = ("name", "state", "staff_userids", "skip_verify", "tag_ids", "welcome_text")


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
            _("Another code of this channel uses this state.") if e == STATE_TAKEN else e
            for e in error_messages(errors)
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
