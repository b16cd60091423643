"""The tags page's forms: a tag, a rule (what every rule has, and its kind's own inputs,
checked by crm.rule_config), a title synonym; the checks a form makes against the
workspace's tags."""

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.admin.contacts import INTERACTION_LABELS
from app.admin.labels import (
    CODE_GROUPS,
    CONTACT_ROLE_LABELS,
    SENIORITY_LABELS,
    TAG_GROUP_LABELS,
    tag_label,
)
from core.references import TAG
from crm.rule_config import (
    DEFAULT_PROFILE_PATTERN,
    INTERACTION_KINDS,
    REPLY_KINDS,
    TAGLESS_KINDS,
    rule_tag,
)
from crm.tags import MAX_TAG_NAME, tag_name_taken, workspace_tags
from models import ChannelKind, RuleKind, Tag, TagGroup

RULE_KIND_LABELS = {
    RuleKind.KEYWORD: _l("Keyword"),
    RuleKind.MENU: _l("Menu click"),
    RuleKind.PROFILE: _l("Profile (“我是…”)"),
    RuleKind.SOURCE: _l("Source (QR scene / Contact Me)"),
    RuleKind.BEHAVIOR: _l("Behavior"),
    RuleKind.INACTIVITY: _l("Inactivity"),
}
MATCH_LABELS = {
    "contains": _l("Contains"),
    "exact": _l("Is exactly"),
    "regex": _l("Matches the regular expression"),
    "prefix": _l("Starts with"),
    "equals": _l("Equals"),
}
# The tag's sync flag -> the channels it mirrors the tag on.
SYNC_CHANNEL_KINDS = {"sync_wechat": ChannelKind.OA, "sync_wecom": ChannelKind.WECOM}


@dataclass(frozen=True)
class ConfigField:
    """One kind-specific input of the rule form; its key is the config key it fills."""

    key: str
    label: str
    widget: str  # text, textarea, number, select, checkboxes
    choices: tuple = ()
    hint: str | None = None


RULE_FIELDS: dict[str, tuple[ConfigField, ...]] = {
    RuleKind.KEYWORD: (
        ConfigField("match", _l("Match"), "select", ("contains", "exact", "regex")),
        ConfigField(
            "pattern",
            _l("Keyword"),
            "text",
            hint=_l("Up to 200 characters; a regular expression in Python syntax for “regex”."),
        ),
    ),
    RuleKind.MENU: (
        ConfigField(
            "key",
            _l("Menu key"),
            "text",
            hint=_l("The key of a click menu item (at most 128 bytes; a Chinese character is 3)."),
        ),
    ),
    RuleKind.PROFILE: (
        ConfigField(
            "pattern",
            _l("Pattern"),
            "textarea",
            hint=_l(
                "A regular expression that captures (?P<title>…) and/or (?P<company>…) "
                "from a follower's message."
            ),
        ),
    ),
    RuleKind.SOURCE: (
        ConfigField("match", _l("Match"), "select", ("exact", "prefix")),
        ConfigField(
            "value",
            _l("QR scene or Contact Me state"),
            "text",
            hint=_l("Up to 64 characters."),
        ),
    ),
    RuleKind.BEHAVIOR: (
        ConfigField("kinds", _l("Interactions"), "checkboxes", tuple(INTERACTION_KINDS)),
        ConfigField("min_count", _l("At least this many times"), "number", hint=_l("1 to 1000.")),
        ConfigField("days", _l("Within the last days"), "number", hint=_l("1 to 365.")),
        ConfigField(
            "property",
            _l("Only where the property"),
            "text",
            hint=_l("Optional, e.g. key (menu), url (link) or content (message)."),
        ),
        ConfigField("match", _l("Compared by"), "select", ("equals", "contains")),
        ConfigField("value", _l("Value"), "text", hint=_l("Needed with a property.")),
    ),
    RuleKind.INACTIVITY: (
        ConfigField(
            "days",
            _l("No interaction for days"),
            "number",
            hint=_l("1 to 730. The tag comes off at the contact's next interaction."),
        ),
    ),
}
# What a new rule's form starts with.
RULE_DEFAULTS = {
    RuleKind.KEYWORD: {"match": "contains"},
    RuleKind.PROFILE: {"pattern": DEFAULT_PROFILE_PATTERN},
    RuleKind.SOURCE: {"match": "exact"},
    RuleKind.BEHAVIOR: {"match": "equals", "min_count": "3", "days": "30"},
    RuleKind.INACTIVITY: {"days": "90"},
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _group_choices() -> list[tuple[str, str]]:
    return [(group.value, label) for group, label in TAG_GROUP_LABELS.items()]


class TagForm(FlaskForm):
    group = SelectField(_l("Group"), choices=_group_choices, default=TagGroup.INTEREST)
    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=MAX_TAG_NAME)]
    )
    description = StringField(_l("Description"), filters=[_strip], validators=[Length(max=200)])


class TagEditForm(FlaskForm):
    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=MAX_TAG_NAME)]
    )
    description = StringField(_l("Description"), filters=[_strip], validators=[Length(max=200)])


class RuleForm(FlaskForm):
    """What every rule has; the kind's own settings are checked by crm.rule_config."""

    kind = SelectField(
        _l("Kind"), choices=lambda: list(RULE_KIND_LABELS.items()), default=RuleKind.KEYWORD
    )
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    # Checked against the workspace's tags in pick_tag: a tagless kind leaves it out.
    tag_id = SelectField(_l("Tag"), choices=[], validate_choice=False)
    new_tag_group = SelectField(
        _l("Or a new tag in group"), choices=_group_choices, default=TagGroup.INTEREST
    )
    new_tag_name = StringField(
        _l("New tag name"), filters=[_strip], validators=[Length(max=MAX_TAG_NAME)]
    )
    reply = TextAreaField(_l("Reply"), filters=[_strip])
    enabled = BooleanField(_l("Enabled"), default=True)
    position = IntegerField(
        _l("Position"), validators=[Optional(), NumberRange(0, 9999)], render_kw={"min": 0}
    )


class SynonymForm(FlaskForm):
    phrase = StringField(
        _l("Phrase in the title"), filters=[_strip], validators=[DataRequired(), Length(max=60)]
    )
    role = SelectField(_l("Role"), choices=lambda: list(CONTACT_ROLE_LABELS.items()))
    seniority = SelectField(
        _l("Seniority"),
        choices=lambda: [("", _l("From the rest of the title")), *SENIORITY_LABELS.items()],
    )


def name_problem(
    session: Session, ws: int, group: str, name: str, *, except_id: int | None = None
) -> str | None:
    """Why a tag may not take this name in its group, or None."""
    codes = CODE_GROUPS.get(group)
    if codes is not None and name not in codes:
        return code_names(group)
    if tag_name_taken(session, ws, group, name, except_id):
        return _("This group already has a tag with this name.")
    return None


def code_names(group: str) -> str:
    return _(
        "%(group)s tags are named by a code: %(codes)s.",
        group=TAG_GROUP_LABELS[group],
        codes=", ".join(CODE_GROUPS[group]),
    )


def tag_choices(session: Session, ws: int) -> list[tuple[str, str]]:
    """The rule form's tag picker: none, or one of the workspace's tags, by group."""
    return [("", _("— none —"))] + [
        (str(tag.id), f"{TAG_GROUP_LABELS.get(tag.group, tag.group)} · {tag_label(tag)}")
        for tag in workspace_tags(session, ws)
    ]


def config_values(kind: str, formdata) -> dict:
    """The kind's settings as typed: an empty input is left out, so it reads as missing."""
    values = {}
    for spec in RULE_FIELDS.get(kind, ()):
        name = f"config-{spec.key}"
        if spec.widget == "checkboxes":
            values[spec.key] = formdata.getlist(name)
        elif value := formdata.get(name, "").strip():
            values[spec.key] = value
    return values


def rule_kind(form: RuleForm) -> str:
    return form.kind.data if form.kind.data in RULE_FIELDS else RuleKind.KEYWORD


def stored_values(config: dict) -> dict:
    return {key: value if isinstance(value, list) else str(value) for key, value in config.items()}


def rule_fields_context(kind: str, form: RuleForm, values: dict, errors: dict) -> dict:
    """What the rule form shows for this kind: its own inputs, their values and mistakes."""
    return {
        "kind": kind,
        "fields": RULE_FIELDS[kind],
        "values": values,
        "config_errors": errors,
        "takes_tag": kind not in TAGLESS_KINDS,
        "takes_reply": kind in REPLY_KINDS,
        "match_labels": MATCH_LABELS,
        "interaction_labels": INTERACTION_LABELS,
        "form": form,
    }


def pick_tag(session: Session, ws: int, form: RuleForm, kind: str) -> tuple[Tag | None, bool]:
    """The existing tag the form picks (None for a typed new one), and whether it names one."""
    if kind in TAGLESS_KINDS:
        return None, False
    if form.new_tag_name.data:
        group, name = form.new_tag_group.data, form.new_tag_name.data
        codes = CODE_GROUPS.get(group)
        if codes is not None and name not in codes:
            add_error(form.new_tag_name, code_names(group))
        return None, True
    if form.tag_id.data:
        picked = form.tag_id.data
        # Only the ASCII digits the picker offers: int() would also read "１２".
        if not (picked.isascii() and picked.isdigit()):
            add_error(form.tag_id, _(TAG.message))
            return None, True
        try:
            return rule_tag(session, ws, int(picked)), True
        except ValidationError as exc:
            for message in exc.messages["tag_id"]:
                add_error(form.tag_id, _(message))
            return None, True
    return None, False


def add_error(field, message: str) -> None:
    field.errors = [*field.errors, message]


def tag_field(form: RuleForm):
    """The input a mistake about the rule's tag shows beside."""
    return form.new_tag_name if form.new_tag_name.data else form.tag_id
