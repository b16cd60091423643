"""The settings of each kind of tag rule, checked before a rule is saved.

A rule's `config` holds exactly the keys the rule engine (crm.rules)
reads; `validate_rule` returns it cleaned or raises a ValidationError whose
messages name the offending keys (plus `tag` and `reply`).
"""

import re

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema
from sqlalchemy.orm import Session

from core.references import TAG, Reference, check_references, declare
from crm.touchpoints import KINDS as TOUCHPOINT_KINDS
from models import RuleKind, Tag

# What a behavior rule may count: the interaction kinds the pipeline records.
INTERACTION_KINDS = [
    "wechat.follow",
    "wechat.scan",
    "wechat.menu_click",
    "wechat.menu_view",
    "wechat.menu_scan",
    "wechat.message",
    "wechat.location",
    "wecom.contact_added",
    "wecom.group_join",
    "wecom.group_leave",
    # Touchpoints from Harpoon's pages and the API (crm.touchpoints.KINDS).
    *TOUCHPOINT_KINDS,
]
# "我是信息中心主任，来自华信科技" -> title 信息中心主任, company 华信科技.
DEFAULT_PROFILE_PATTERN = (
    r"我是(?P<title>[^，,。.\s]{2,20})(?:[，,\s]*(?:来自|在)(?P<company>[^，,。.\s]{2,40}))?"
)
PROFILE_GROUPS = ("title", "company")
MAX_REPLY = 600
MAX_MENU_KEY_BYTES = 128  # WeChat's limit on a click menu's key
# A profile rule sets the title and company; every other kind applies a tag.
TAGLESS_KINDS = frozenset({RuleKind.PROFILE})
# Only rules that answer a message or a menu tap inside the callback may reply.
REPLY_KINDS = frozenset({RuleKind.KEYWORD, RuleKind.MENU, RuleKind.PROFILE})
# A menu button may only answer the tap: its rule needs a tag or a reply.
TAG_OR_REPLY_KINDS = frozenset({RuleKind.MENU})

REQUIRED = {"required": "Required.", "null": "Required."}
REFERENCES = declare("tag_rule", Reference("tag_id", TAG))


class Count(fields.Integer):
    """A whole number, also typed as digits in a form; never a bool or a fraction."""

    def __init__(self, low: int, high: int, **kwargs):
        super().__init__(
            strict=True,
            required=True,
            validate=validate.Range(low, high, error=f"A whole number from {low} to {high}."),
            error_messages={**REQUIRED, "invalid": "Not a whole number."},
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value, re.ASCII):
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def _text(low: int, high: int, **kwargs) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(low, high, error=f"{low} to {high} characters."),
            _not_blank,
        ],
        error_messages=REQUIRED,
        **kwargs,
    )


def _choice(choices, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(choices, error=f"One of: {', '.join(choices)}."),
        error_messages=REQUIRED,
        **kwargs,
    )


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Required.")


def _compiled(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValidationError(f"not a valid regular expression: {exc}") from None


class KeywordConfig(Schema):
    match = _choice(("contains", "exact", "regex"), required=True)
    pattern = _text(1, 200, required=True)

    @validates_schema
    def _regex_compiles(self, data, **_kwargs):
        if data.get("match") == "regex" and "pattern" in data:
            try:
                _compiled(data["pattern"])
            except ValidationError as exc:
                raise ValidationError(exc.messages, "pattern") from None


class MenuConfig(Schema):
    key = _text(1, MAX_MENU_KEY_BYTES, required=True)

    @validates("key")
    def _fits_wechat(self, value: str, **_kwargs):
        if len(value.encode()) > MAX_MENU_KEY_BYTES:
            raise ValidationError(
                f"At most {MAX_MENU_KEY_BYTES} bytes (a Chinese character takes 3)."
            )


class ProfileConfig(Schema):
    pattern = _text(1, 500, required=True)

    @validates("pattern")
    def _names_a_field(self, value: str, **_kwargs):
        if not set(PROFILE_GROUPS) & set(_compiled(value).groupindex):
            raise ValidationError(
                "Must capture (?P<title>...) or (?P<company>...): that is what it records."
            )


class SourceConfig(Schema):
    match = _choice(("exact", "prefix"), required=True)
    value = _text(1, 64, required=True)


class BehaviorConfig(Schema):
    kinds = fields.List(
        fields.String(
            validate=validate.OneOf(INTERACTION_KINDS, error="Not an interaction Harpoon records.")
        ),
        required=True,
        validate=validate.Length(min=1, error="Choose at least one interaction."),
        error_messages={**REQUIRED, "invalid": "Not a list of interaction kinds."},
    )
    property = fields.String(
        validate=validate.Regexp(
            r"^[A-Za-z_][A-Za-z0-9_]{0,39}$", error="A property name such as key, url or content."
        ),
        error_messages=REQUIRED,
    )
    value = _text(1, 200)
    match = _choice(("equals", "contains"), load_default="equals")
    min_count = Count(1, 1000)
    days = Count(1, 365)

    # On the input as given, so a mistake in one of the two does not hide the other's absence.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _value_with_property(self, _data, original, **_kwargs):
        if "property" in original and "value" not in original:
            raise ValidationError("Required with a property.", "value")
        if "value" in original and "property" not in original:
            raise ValidationError("Name the property this value is compared with.", "property")

    @validates("kinds")
    def _distinct(self, value: list, **_kwargs):
        if len(set(value)) != len(value):
            raise ValidationError("Each interaction once.")


class InactivityConfig(Schema):
    days = Count(1, 730)


RULE_SCHEMAS: dict[str, type[Schema]] = {
    RuleKind.KEYWORD: KeywordConfig,
    RuleKind.MENU: MenuConfig,
    RuleKind.PROFILE: ProfileConfig,
    RuleKind.SOURCE: SourceConfig,
    RuleKind.BEHAVIOR: BehaviorConfig,
    RuleKind.INACTIVITY: InactivityConfig,
}


def validate_rule(kind: str, config: dict, *, has_tag: bool, reply: str | None) -> dict:
    """The rule's config, cleaned; every problem at once, keyed by config key, `tag`, `reply`."""
    schema = RULE_SCHEMAS.get(kind)
    if schema is None:
        raise ValidationError({"kind": [f"One of: {', '.join(RULE_SCHEMAS)}."]})
    errors: dict = {}
    if kind in TAGLESS_KINDS and has_tag:
        errors["tag"] = ["A profile rule records the title and company; it applies no tag."]
    elif kind in TAG_OR_REPLY_KINDS and not has_tag and not reply:
        errors["tag"] = ["Choose the tag this rule applies, or give it a reply."]
    elif kind not in TAGLESS_KINDS | TAG_OR_REPLY_KINDS and not has_tag:
        errors["tag"] = ["Choose the tag this rule applies."]
    if reply and kind not in REPLY_KINDS:
        errors["reply"] = ["Only keyword, menu and profile rules reply."]
    elif reply and len(reply) > MAX_REPLY:
        errors["reply"] = [f"At most {MAX_REPLY} characters."]
    try:
        cleaned = schema().load(config)
    except ValidationError as exc:
        errors.update(exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})
    if errors:
        raise ValidationError(errors)
    return cleaned


def rule_tag(session: Session, workspace_id: int, tag_id: int) -> Tag:
    """The workspace's tag a rule applies; a ValidationError on "tag_id" for any other."""
    check_references(session, workspace_id, {"tag_id": tag_id}, REFERENCES)
    return session.get(Tag, tag_id)
