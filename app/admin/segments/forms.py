"""The segment editor's form -> a segment: the inputs as typed, what each may choose, the
schemas' mistakes by input, and a duplicate's name."""

from flask import request
from flask_babel import gettext as _
from marshmallow import ValidationError

from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.labels import CONTACT_ROLE_LABELS
from core.forms import flat_errors
from crm.titles import SENIORITIES
from outreach.segments import MULTIPLE_INPUTS, SegmentChoices
from scoring.forms import RULE_KINDS
from scoring.model import Model


def posted() -> dict:
    """The form as typed, by input name; checkboxes and multiple selects as lists."""
    return {
        name: request.form.getlist(name) if name in MULTIPLE_INPUTS else request.form.get(name, "")
        for name in request.form
        if name not in ("csrf_token", "editing")
    }


def errors_of(exc: ValidationError) -> dict[str, list[str]]:
    """The schemas' messages by input name, in the user's language."""
    return {
        name: [_(message) for message in messages]
        for name, messages in flat_errors(exc.messages).items()
    }


def kinds() -> list[str]:
    """Interactions a segment may count: every kind Harpoon labels or scores."""
    return list(dict.fromkeys([*INTERACTION_LABELS, *RULE_KINDS]))


def choices(model: Model) -> SegmentChoices:
    return SegmentChoices(
        roles=frozenset(CONTACT_ROLE_LABELS),
        seniorities=frozenset(SENIORITIES),
        stages=frozenset(stage.key for stage in model.stages),
        kinds=frozenset(kinds()),
    )


def copy_name(name: str, n: int) -> str:
    """“Name (copy)”, “Name (copy 2)”…; the name shortened to keep within 100 characters."""

    def named(base: str) -> str:
        if n == 1:
            return _("%(name)s (copy)", name=base)
        return _("%(name)s (copy %(n)s)", name=base, n=n)

    overflow = len(named(name)) - 100
    return named(name[:-overflow] if overflow > 0 else name)
