"""The account pages' forms: the account's own fields and owner, a contact to attach, and
the list's filters and order read from the query string."""

from math import isfinite

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from core.references import CONTACT, USER, Reference, declare
from core.text import N_

# The list's sort keys (a column each); a first click sorts the best first, names A-Z.
SORTS = ("score", "tier", "stage", "surge", "fit", "name")
DEFAULT_SORT = "score"
FIRST_DIRECTION = {"tier": "asc", "name": "asc"}  # tier 1 is the best
FILTERS = ("q", "target", "industry", "region", "owner", "tier", "stage", "mqa", "surging")
# What the edit form changes, named as on the model (and in the audit trail).
EDITABLE = (
    "industry",
    "region",
    "employees",
    "annual_revenue",
    "acv",
    "domain",
    "owner_id",
    "is_target",
)
MAX_CONTACT_ID = 2**63 - 1
ACCOUNT_REFERENCES = declare("account", Reference("owner_id", USER))
ATTACH_REFERENCES = declare(
    "account_contact", Reference("contact_id", CONTACT, N_("No contact #%(id)s in this workspace."))
)


def _text(value):
    """Pasted values often carry spaces; an empty field clears the value."""
    return (value.strip() or None) if isinstance(value, str) else value


def _domain(value):
    value = _text(value)
    return value.lower().removeprefix("www.") if value else value


def _optional_id(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _finite(_form, field):
    if field.data is not None and not isfinite(field.data):
        raise ValidationError(_l("Enter a number."))


class AccountForm(FlaskForm):
    industry = StringField(_l("Industry"), filters=[_text], validators=[Optional(), Length(max=50)])
    region = StringField(_l("Region"), filters=[_text], validators=[Optional(), Length(max=50)])
    employees = IntegerField(
        _l("Employees"), validators=[Optional(), NumberRange(min=0, max=10_000_000)]
    )
    annual_revenue = FloatField(
        _l("Annual revenue"), validators=[Optional(), _finite, NumberRange(min=0, max=10**15)]
    )
    acv = FloatField(
        _l("Expected ACV"), validators=[Optional(), _finite, NumberRange(min=0, max=10**12)]
    )
    domain = StringField(
        _l("Email domain"),
        filters=[_domain],
        validators=[
            Optional(),
            Length(max=100),
            Regexp(
                r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
                message=_l("A domain such as huaxin.com."),
            ),
        ],
    )
    owner_id = SelectField(_l("Account owner"), coerce=_optional_id, choices=[])
    is_target = BooleanField(_l("Target account (on the ICP list)"))


class AttachContactForm(FlaskForm):
    contact_id = IntegerField(
        _l("Contact ID"), validators=[InputRequired(), NumberRange(min=1, max=MAX_CONTACT_ID)]
    )


def owner_choices(users: list) -> list[SelectChoice]:
    """`users`: (id, name) rows, as crm.users.assignable_users reads them."""
    return [SelectChoice("", _("No owner"))] + [
        SelectChoice(str(user_id), name) for user_id, name in users
    ]


def list_filters(tiers: set[str], stages) -> dict[str, str]:
    """The list's filters from the query string, each "" when unused. Values the selects
    do not offer (`tiers` and "none"; the `stages`) are dropped, so the pager never carries
    them on."""
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    if filters["tier"] not in tiers | {"none"}:
        filters["tier"] = ""
    if filters["stage"] not in stages:
        filters["stage"] = ""
    for flag in ("mqa", "surging"):
        filters[flag] = "1" if filters[flag] == "1" else ""
    return filters


def sort_args() -> tuple[str, str]:
    """The list's order from the query string; anything unknown gets the default."""
    sort = request.args.get("sort")
    if sort not in SORTS:
        sort = DEFAULT_SORT
    direction = request.args.get("dir")
    if direction not in ("asc", "desc"):
        direction = FIRST_DIRECTION.get(sort, "desc")
    return sort, direction
