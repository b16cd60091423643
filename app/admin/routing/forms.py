"""The routing page's forms: one rule, and the workspace's SLA settings."""

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from models import BreachAction, RoutingMethod, RoutingRule, RoutingSettings

HOUR = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_TERRITORY = 20  # regions or industries a rule names
# "华东, 华南、华北": commas (ASCII or Chinese), 、 or new lines separate the values.
SEPARATORS = re.compile(r"[,，、;；\n]+")


def split_values(text: str | None) -> list[str]:
    seen: list[str] = []
    for part in SEPARATORS.split(text or ""):
        value = part.strip()[:50]
        if value and value not in seen:
            seen.append(value)
    return seen


def _optional_id(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _territory(_form, field):
    if len(split_values(field.data)) > MAX_TERRITORY:
        raise ValidationError(_l("At most %(max)s values.", max=MAX_TERRITORY))


class RuleForm(FlaskForm):
    name = StringField(_l("Rule name"), validators=[InputRequired(), Length(max=100)])
    regions = StringField(_l("Regions"), validators=[Optional(), Length(max=1000), _territory])
    industries = StringField(
        _l("Industries"), validators=[Optional(), Length(max=1000), _territory]
    )
    tiers = SelectMultipleField(
        _l("Tiers"),
        coerce=int,
        choices=[SelectChoice(str(tier), _l("Tier %(tier)s", tier=tier)) for tier in (1, 2, 3)],
    )
    # Any id is taken here and checked against the workspace's users on save.
    user_ids = SelectMultipleField(
        _l("Eligible salespeople"), coerce=int, choices=[], validate_choice=False
    )
    method = SelectField(
        _l("Method"),
        choices=[
            SelectChoice(RoutingMethod.ROUND_ROBIN.value, _l("Round-robin")),
            SelectChoice(RoutingMethod.LEAST_LOADED.value, _l("Least loaded")),
        ],
    )
    capacity = IntegerField(
        _l("Capacity per person"), validators=[Optional(), NumberRange(min=1, max=10_000)]
    )
    enabled = BooleanField(_l("Enabled"), default=True)

    def validate_user_ids(self, field):
        if not field.data:
            raise ValidationError(_l("Choose at least one salesperson."))

    def values(self) -> dict:
        return {
            "name": self.name.data.strip(),
            "enabled": self.enabled.data,
            "regions": split_values(self.regions.data),
            "industries": split_values(self.industries.data),
            "tiers": sorted(set(self.tiers.data or [])),
            "user_ids": list(dict.fromkeys(self.user_ids.data or [])),
            "method": self.method.data,
            "capacity": self.capacity.data,
        }

    def fill(self, rule: RoutingRule) -> None:
        self.name.data, self.enabled.data = rule.name, rule.enabled
        self.regions.data = "、".join(rule.regions)
        self.industries.data = "、".join(rule.industries)
        self.tiers.data, self.user_ids.data = list(rule.tiers), list(rule.user_ids)
        self.method.data, self.capacity.data = rule.method, rule.capacity


WEEKDAYS = [
    SelectChoice("1", _l("Monday")),
    SelectChoice("2", _l("Tuesday")),
    SelectChoice("3", _l("Wednesday")),
    SelectChoice("4", _l("Thursday")),
    SelectChoice("5", _l("Friday")),
    SelectChoice("6", _l("Saturday")),
    SelectChoice("7", _l("Sunday")),
]


SETTINGS_FIELDS = (
    "sla_hours",
    "work_start",
    "work_end",
    "work_days",
    "timezone",
    "breach_action",
    "manager_id",
)


class HoursField(FloatField):
    """Hours as a person writes them: 4, not 4.0; 1.5 stays."""

    def _value(self) -> str:
        if not self.raw_data and isinstance(self.data, float) and self.data.is_integer():
            return str(int(self.data))
        return super()._value()


class SettingsForm(FlaskForm):
    sla_hours = HoursField(
        _l("First touch within (working hours)"),
        validators=[InputRequired(), NumberRange(min=0.5, max=200)],
    )
    work_start = StringField(_l("Working hours start"), validators=[InputRequired()])
    work_end = StringField(_l("Working hours end"), validators=[InputRequired()])
    work_days = SelectMultipleField(_l("Working days"), coerce=int, choices=WEEKDAYS)
    timezone = StringField(_l("Time zone"), validators=[InputRequired(), Length(max=64)])
    breach_action = SelectField(
        _l("On a breach"),
        choices=[
            SelectChoice(BreachAction.ESCALATE.value, _l("Escalate to the manager and the owner")),
            SelectChoice(
                BreachAction.REASSIGN.value, _l("Reassign once to the rule's next salesperson")
            ),
        ],
    )
    # Any id is taken here and checked against the workspace's users on save.
    manager_id = SelectField(
        _l("Manager told of breaches"), coerce=_optional_id, choices=[], validate_choice=False
    )

    def validate_work_start(self, field):
        if not HOUR.match(field.data or ""):
            raise ValidationError(_l("A time such as 09:00."))

    def validate_work_end(self, field):
        if not HOUR.match(field.data or ""):
            raise ValidationError(_l("A time such as 18:00."))
        if HOUR.match(self.work_start.data or "") and field.data <= self.work_start.data:
            raise ValidationError(_l("Working hours must end after they start."))

    def validate_work_days(self, field):
        if not field.data:
            raise ValidationError(_l("Choose at least one working day."))

    def validate_timezone(self, field):
        try:
            ZoneInfo(field.data or "")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(_l("A time zone such as Asia/Shanghai.")) from None

    def values(self) -> dict:
        return {
            "sla_hours": self.sla_hours.data,
            "work_start": self.work_start.data,
            "work_end": self.work_end.data,
            "work_days": sorted(set(self.work_days.data)),
            "timezone": self.timezone.data,
            "breach_action": self.breach_action.data,
            "manager_id": self.manager_id.data,
        }

    def fill(self, settings: RoutingSettings) -> None:
        for name in SETTINGS_FIELDS:
            getattr(self, name).data = getattr(settings, name)
