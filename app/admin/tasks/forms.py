"""The tasks pages' forms: a task by hand, closing one, reassigning one, a task rule."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from models import TaskStatus
from sales.task_rules import MAX_DUE_HOURS


def _optional_id(value):
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # not a choice: the select's validation refuses it


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class TaskForm(FlaskForm):
    """A task by hand, on an account's or a contact's page."""

    title = StringField(
        _l("Task"),
        filters=[_strip],
        validators=[
            DataRequired(_l("What should be done?")),
            Length(max=200, message=_l("At most 200 characters.")),
        ],
    )
    due_hours = IntegerField(
        _l("Due in (hours)"),
        default=24,
        validators=[
            DataRequired(_l("In how many hours.")),
            NumberRange(1, MAX_DUE_HOURS, _l("From 1 hour to 90 days.")),
        ],
    )
    detail = TextAreaField(
        _l("Detail"),
        filters=[_strip],
        validators=[Optional(), Length(max=1000, message=_l("At most 1000 characters."))],
    )
    assignee_id = SelectField(_l("Assignee"), coerce=_optional_id, choices=[])


class CloseTaskForm(FlaskForm):
    status = RadioField(
        _l("Outcome"),
        choices=[
            SelectChoice(TaskStatus.DONE.value, _l("Done")),
            SelectChoice(TaskStatus.SKIPPED.value, _l("Skipped")),
        ],
        default=TaskStatus.DONE.value,
        validators=[DataRequired(_l("Done or skipped."))],
    )
    outcome = TextAreaField(
        _l("Note"),
        filters=[_strip],
        validators=[Optional(), Length(max=1000, message=_l("At most 1000 characters."))],
    )


class AssignTaskForm(FlaskForm):
    assignee_id = SelectField(_l("Assign to"), coerce=_optional_id, choices=[])


class DigestForm(FlaskForm):
    """The workspace's alert settings: digest interval, daily cap, alert tasks' due time."""

    digest_minutes = IntegerField(
        _l("Digest interval (minutes)"),
        validators=[
            DataRequired(_l("Required.")),
            NumberRange(1, 1440, _l("From 1 minute to a day.")),
        ],
    )
    staff_messages_per_day = IntegerField(
        _l("Messages a day at most"),
        validators=[DataRequired(_l("Required.")), NumberRange(1, 200, _l("From 1 to 200."))],
    )


class StaffDigestForm(FlaskForm):
    digest_minutes = IntegerField(
        _l("Digest interval (minutes)"),
        validators=[Optional(), NumberRange(1, 1440, _l("From 1 minute to a day."))],
    )


class AlertTaskForm(FlaskForm):
    alert_task_hours = IntegerField(
        _l("MQA and surge tasks due in (hours)"),
        validators=[
            DataRequired(_l("Required.")),
            NumberRange(1, MAX_DUE_HOURS, _l("From 1 hour to 90 days.")),
        ],
    )
