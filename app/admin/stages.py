"""Stages by hand, and the scoring an account or contact page shows beside them: the Move
stage form (sales log meetings, opportunities and wins with it), the stage history and the
points ledger. The routes are the account's and the contact's (accounts/views.py,
contacts/views.py)."""

from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from app.admin import db
from app.admin.access import audit, can
from app.admin.labels import stage_names
from models import Account, Contact
from scoring.ledger import newest_entries
from scoring.model import Model
from scoring.stages import REASON_LENGTH, set_stage, stage_history

HISTORY_SHOWN = 50
LEDGER_SHOWN = 25
# The quick buttons: stage key -> (button, the reason they fill in); shown if the model has it.
QUICK_MOVES = {
    "meeting": (_l("Meeting held"), _l("Meeting held")),
    "opportunity": (_l("Opportunity"), _l("Opportunity opened")),
    "customer": (_l("Won"), _l("Won: now a customer")),
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class StageForm(FlaskForm):
    stage = SelectField(_l("Stage"), choices=[])
    reason = StringField(
        _l("Reason"),
        filters=[_strip],
        validators=[DataRequired(), Length(max=REASON_LENGTH)],
    )


def stage_form(model: Model, current: str | None, form: StageForm | None = None):
    """The Move stage form for someone who may move stages (None for anyone else)."""
    if not can("stages.move"):
        return None
    form = form or StageForm(formdata=None, stage=current)
    form.stage.choices = list(stage_names(model.stages).items())
    return form


def move_stage(subject: Account | Contact, form: StageForm) -> bool:
    """The signed-in person's move, audited; False if it is the stage already."""
    kind = "account" if isinstance(subject, Account) else "contact"
    before = subject.stage
    moved = set_stage(db(), subject, form.stage.data, form.reason.data, current_user.id)
    if moved:
        audit(
            db(),
            f"{kind}.stage",
            kind,
            subject.id,
            {"stage": [before, subject.stage], "reason": form.reason.data},
        )
    return moved


def ledger(workspace_id: int, *conditions) -> list:
    """The newest ledger entries matching `conditions` (on ScoreEntry or Contact):
    (entry, interaction kind, contact name)."""
    return newest_entries(db(), workspace_id, *conditions, limit=LEDGER_SHOWN)


def scoring_context(model: Model, subject: str, row: Account | Contact, form) -> dict:
    """What both pages' scoring cards need: stage names, the form, quick moves, history."""
    names = stage_names(model.stages)
    return {
        "stage_names": names,
        "stage_form": stage_form(model, row.stage, form),
        "quick_moves": [
            (key, label, reason) for key, (label, reason) in QUICK_MOVES.items() if key in names
        ],
        "stage_history": stage_history(
            db(), row.workspace_id, subject, row.id, limit=HISTORY_SHOWN
        ),
        "ledger_limit": LEDGER_SHOWN,
    }
