"""The form/schema toolkit every admin section shares: marshmallow fields built with the
messages a form shows (marked N_, translated by the admin), `FormSchema` (stripped text,
empty inputs missing, unknown inputs ignored), and the dotted input names a form posts
("tiers.0.min_fit") to and from nested data (`unflatten`, `flatten`, `flat_errors`).
No Flask and no database here.
"""

import re
from collections.abc import Iterable, Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from core.text import N_

REQUIRED = N_("Required.")
NOT_A_NUMBER = N_("Not a number.")
NOT_WHOLE = N_("Not a whole number.")
MAX_NAMES = 50  # names one input may hold
MAX_ROWS = 50  # rows of one list a form may post (stages, tier rules, filters)


# ---- fields -----------------------------------------------------------------------------


def field_messages(**extra) -> dict:
    """A field's error messages: missing and null are both "Required."."""
    return {"required": REQUIRED, "null": REQUIRED, **extra}


def number(
    error: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
    default: float | None = None,
    optional: bool = False,
) -> fields.Float:
    """A finite number in [low, high] (or above `low`); `optional`: empty is None, and
    `default`: empty is that value."""
    missing = {"load_default": default} if optional or default is not None else {}
    return fields.Float(
        required=not missing,
        allow_none=optional,
        validate=validate.Range(low, high, min_inclusive=not above, error=error),
        error_messages=field_messages(invalid=NOT_A_NUMBER, special=NOT_A_NUMBER),
        **missing,
    )


def count(
    error: str, *, low: int, high: int | None = None, optional: bool = False
) -> fields.Integer:
    """A whole number in [low, high]; `optional`: empty is None."""
    return fields.Integer(
        required=not optional,
        allow_none=optional,
        validate=validate.Range(low, high, error=error),
        error_messages=field_messages(invalid=NOT_WHOLE),
        **({"load_default": None} if optional else {}),
    )


def text(error: str, *, high: int, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.Length(1, high, error=error), error_messages=field_messages(), **kwargs
    )


def choice(choices: Iterable, error: str, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(list(choices), error=error),
        error_messages=field_messages(),
        **kwargs,
    )


class Several(fields.List):
    """A list that a form may post as one value (one ticked checkbox)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = [value]
        return super()._deserialize(value, attr, data, **kwargs)


class Names(fields.Field):
    """Names typed in one input, separated by commas, 、 or new lines; each once."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = re.split(r"[,，、;；\n]", value) if isinstance(value, str) else value
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise ValidationError(N_("Names separated by commas."))
        names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
        if len(names) > MAX_NAMES:
            raise ValidationError(N_("At most 50 names."))
        if any(len(name) > 50 for name in names):
            raise ValidationError(N_("Each name at most 50 characters."))
        return names


def rows(schema, error: str = N_("Not a list of rows."), **kwargs) -> fields.List:
    return fields.List(
        fields.Nested(schema, error_messages={"type": error}),
        error_messages=field_messages(invalid=error),
        **kwargs,
    )


class FormSchema(Schema):
    """What a form posts: text, stripped; an empty input is a missing one; inputs of no
    concern to the section (the CSRF token, the button) are ignored."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _blank_is_missing(self, data, **_kwargs):
        if not isinstance(data, Mapping):
            return data
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return {k: v for k, v in stripped.items() if v != ""}


# ---- the form's flat names ----------------------------------------------------------------


def shown(value) -> str:
    """A value as a form shows it: None empty, 30.0 as 30."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def unflatten(items: Iterable[tuple[str, object]]) -> dict:
    """Dotted input names -> nested data: "tiers.0.min_fit" is data["tiers"][0]["min_fit"]."""
    root: dict = {}
    for name, value in items:
        *path, last = name.split(".")
        if any(_digits(part) and row_index(part) is None for part in path):
            continue  # a row past any list's end: not from the page
        node = root
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = value
    return _lists(root)


def column(rows, key: str) -> list[str]:
    """One input of each row as typed (stripped); rows that are not rows count as empty."""
    if not isinstance(rows, list):
        return []
    return [str(row.get(key) or "").strip() if isinstance(row, Mapping) else "" for row in rows]


def row_index(part: str) -> int | None:
    """The row a part of an input name stands for ("3" in "stages.3.key"), or None."""
    return int(part) if _digits(part) and int(part) < MAX_ROWS else None


def _digits(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(_digits(key) for key in node):
        size = max(int(key) for key in node) + 1
        return [_lists(node.get(str(index), {})) for index in range(size)]
    return {key: _lists(value) for key, value in node.items()}


def flatten(data, prefix: str = "") -> dict:
    """Nested data -> dotted names (lists of plain values stay lists: checkboxes)."""
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list) and any(isinstance(item, dict) for item in data):
        items = ((str(index), item) for index, item in enumerate(data))
    else:
        return {prefix: data}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def flat_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages keyed by the dotted input names; a row's or a
    section's own messages under its name."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, inner in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            for path, found in flat_errors(inner, name).items():
                flat.setdefault(path, []).extend(found)
        return flat
    if isinstance(messages, list):
        return {prefix: [str(message) for message in messages]}
    return {prefix: [str(messages)]}
