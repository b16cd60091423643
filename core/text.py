"""Marking messages for translation where Flask is absent."""


def N_(message: str) -> str:
    """Marks a message for the translation catalog; the admin page translates it."""
    return message
