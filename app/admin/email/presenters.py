"""What the email pages show: the variables a template may use, with their meaning; the
suppressions' reasons; and the SMTP server's settings without its password."""

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from flask_babel import lazy_gettext as _l

from models import SuppressionReason
from outreach.emails import MESSAGE_VARIABLES, PERSON_VARIABLES

VARIABLE_LABELS = {
    "name": _l("The person's name"),
    "company": _l("Their company (else their account's name)"),
    "title": _l("Their job title"),
    "email": _l("Their email address"),
    "phone": _l("Their phone number"),
    "owner": _l("The salesperson who owns their account"),
    "unsubscribe_url": _l(
        "Their unsubscribe page; without it, Harpoon adds an unsubscribe line at the end"
    ),
}
REASON_LABELS = {
    SuppressionReason.UNSUBSCRIBED: _l("Unsubscribed"),
    SuppressionReason.BOUNCED: _l("Bounced"),
    SuppressionReason.COMPLAINED: _l("Marked as spam"),
}
SECURITY_LABELS = {
    "smtp": _l("STARTTLS (usually port 587 or 25)"),
    "smtps": _l("SSL/TLS (usually port 465)"),
}


def variables() -> list[tuple[str, str, str]]:
    """(name, meaning, sample) of every variable, in the editor's order."""
    listed = [(name, VARIABLE_LABELS[name], sample) for name, sample in PERSON_VARIABLES.items()]
    return listed + [(name, VARIABLE_LABELS[name], "") for name in MESSAGE_VARIABLES]


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int | None = None
    security: str = "smtp"
    username: str = ""
    has_password: bool = False


def smtp_settings(url: str | None) -> SmtpSettings:
    """The stored URL's parts to show: never the password, only whether there is one."""
    if not url:
        return SmtpSettings()
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return SmtpSettings(
        host=parts.hostname or "",
        port=port,
        security=parts.scheme if parts.scheme in ("smtp", "smtps") else "smtp",
        username=unquote(parts.username or ""),
        has_password=bool(parts.password),
    )


def smtp_url(host: str, port: int | None, security: str, username: str, password: str) -> str:
    credentials = ""
    if username:
        credentials = quote(username, safe="")
        if password:
            credentials += ":" + quote(password, safe="")
        credentials += "@"
    return f"{security}://{credentials}{host}" + (f":{port}" if port else "")


def stored_password(url: str | None) -> str:
    """The password in the stored URL, kept when the form leaves the field empty."""
    return unquote(urlsplit(url).password or "") if url else ""
