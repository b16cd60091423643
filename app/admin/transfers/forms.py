"""The transfer form: who takes over, which customers, what the customer reads."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from sales.transfers import MAX_MESSAGE

ALL, ACCOUNT, CHOSEN = "all", "account", "chosen"


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TransferForm(FlaskForm):
    takeover = SelectField(
        _l("Takeover"),
        choices=[],
        coerce=_int_or_none,
        validators=[DataRequired(message=_l("Choose who takes over."))],
    )
    scope = RadioField(
        _l("Customers"),
        choices=[
            SelectChoice(ALL, _l("All of their customers")),
            SelectChoice(ACCOUNT, _l("All of an account's customers")),
            SelectChoice(CHOSEN, _l("The customers I choose")),
        ],
        default=ALL,
    )
    account = SelectField(_l("Account"), choices=[], coerce=_int_or_none, default=None)
    customers = SelectMultipleField(
        _l("Customers"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=False,
    )
    message = TextAreaField(
        _l("Message to the customer"),
        filters=[_strip],
        validators=[Length(max=MAX_MESSAGE, message=_l("At most %(max)d characters."))],
    )
    confirmed = HiddenField(default="")

    def validate_account(self, field):
        if self.scope.data == ACCOUNT and not field.data:
            raise ValidationError(_l("Choose the account."))

    def validate_customers(self, field):
        if self.scope.data == CHOSEN and not field.data:
            raise ValidationError(_l("Choose at least one customer."))


def staff_choices(members, exclude_id: int) -> list[SelectChoice]:
    return [SelectChoice("", _l("Choose the takeover"))] + [
        SelectChoice(str(member.id), f"{member.name or member.userid} ({member.userid})")
        for member in members
        if member.id != exclude_id
    ]
