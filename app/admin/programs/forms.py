"""The programs pages' forms: a menu item, and the steps of an order (approve, reject,
execute with the cost, cancel); amounts are decimals, never floats."""

from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from core.days import FIRST_USABLE
from models import Program, ProgramKind
from revenue.programs import MAX_MONEY

REQUIRED = _l("Required.")


def _text(value):
    return (value.strip() or None) if isinstance(value, str) else value


class MoneyField(StringField):
    """CNY as typed ("12000", "12,000.50", "¥800"), kept as a Decimal to the fen."""

    def process_formdata(self, valuelist):
        self.data = None
        raw = (valuelist[0] if valuelist else "").strip().replace(",", "").replace("，", "")
        raw = raw.removeprefix("¥").removeprefix("￥").strip()
        if not raw:
            return
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount.as_tuple().exponent < -2:
            raise ValueError(_l("An amount in yuan such as 12000 or 12000.50."))
        self.data = amount

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else f"{self.data:f}"


class DayField(StringField):
    """A day as a date input posts it (2026-05-20)."""

    def process_formdata(self, valuelist):
        self.data = None
        raw = (valuelist[0] if valuelist else "").strip()
        if not raw:
            return
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ValueError(_l("A date such as 2026-05-20.")) from None
        if day < FIRST_USABLE:  # a later one is refused as in the future
            raise ValueError(_l("A date between 2000 and 2100."))
        self.data = day

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return self.data.isoformat() if self.data else ""


def _amount(_form, field):
    if field.data is None:
        return
    if field.data < 0:
        raise ValidationError(_l("At least 0."))
    if field.data > MAX_MONEY:
        raise ValidationError(_l("Too large."))


KIND_CHOICES = [
    SelectChoice(ProgramKind.EVENT_INVITE.value, _l("Closed-door event invitation")),
    SelectChoice(ProgramKind.CUSTOM_CONTENT.value, _l("Custom content")),
    SelectChoice(ProgramKind.GIFT.value, _l("Gift mailing")),
    SelectChoice(ProgramKind.EXECUTIVE_VISIT.value, _l("Executive visit")),
    SelectChoice(ProgramKind.ADS.value, _l("Targeted ads")),
    SelectChoice(ProgramKind.OTHER.value, _l("Other")),
]


class ProgramForm(FlaskForm):
    tier = SelectField(
        _l("Tier"), coerce=int, choices=[], validators=[InputRequired(message=REQUIRED)]
    )
    name = StringField(
        _l("Program name"),
        filters=[_text],
        # DataRequired: "   " is posted (InputRequired passes) but filtered to nothing.
        validators=[DataRequired(message=REQUIRED), Length(max=100)],
    )
    kind = SelectField(_l("Kind"), choices=KIND_CHOICES)
    description = TextAreaField(
        _l("What it is"), filters=[_text], validators=[Optional(), Length(max=500)]
    )
    budget = MoneyField(_l("Budget (CNY)"), validators=[InputRequired(message=REQUIRED), _amount])
    unit_cost = MoneyField(_l("Expected cost per account (CNY)"), validators=[_amount])
    active = BooleanField(_l("Sales may order it"), default=True)

    def values(self) -> dict:
        return {
            "tier": self.tier.data,
            "name": self.name.data,
            "kind": self.kind.data,
            "description": self.description.data,
            "budget": self.budget.data,
            "unit_cost": self.unit_cost.data,
            "active": self.active.data,
        }

    def fill(self, program: Program) -> None:
        for name in ("tier", "name", "kind", "description", "budget", "unit_cost", "active"):
            getattr(self, name).data = getattr(program, name)


class ApproveForm(FlaskForm):
    note = StringField(_l("Order note"), filters=[_text], validators=[Optional(), Length(max=300)])
    over_budget_reason = StringField(
        _l("Reason to approve past the budget"),
        filters=[_text],
        validators=[Optional(), Length(max=150)],
    )


class RejectForm(FlaskForm):
    note = StringField(
        _l("Why not"),
        filters=[_text],
        validators=[InputRequired(message=_l("Give a reason.")), Length(max=300)],
    )


class ExecuteForm(FlaskForm):
    cost = MoneyField(
        _l("Cost (CNY)"),
        validators=[InputRequired(message=_l("Record what it cost.")), _amount],
    )
    executed_on = DayField(_l("Done on"), validators=[InputRequired(message=REQUIRED)])
    note = StringField(_l("Order note"), filters=[_text], validators=[Optional(), Length(max=300)])


class CancelForm(FlaskForm):
    note = StringField(_l("Order note"), filters=[_text], validators=[Optional(), Length(max=300)])
