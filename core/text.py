"""Marking messages for translation where Flask is absent."""

from marshmallow import validate


def N_(message: str) -> str:
    """Marks a message for the translation catalog; the admin page translates it."""
    return message


class Formatted(str):
    """A message with its values filled in (the English a log or test reads) that keeps its
    msgid and values, so the admin page can show it translated."""

    msgid: str
    values: dict

    def __new__(cls, msgid: str, **values) -> "Formatted":
        made = super().__new__(cls, msgid % values)
        made.msgid, made.values = msgid, values
        return made


class Length(validate.Length):
    """marshmallow's Length whose `error` (a Formatted message) is raised as it is."""

    def _format_error(self, value, message: str) -> str:
        return self.error if self.error is not None else super()._format_error(value, message)
