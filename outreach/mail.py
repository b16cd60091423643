"""Email out through SMTP: a form's follow-up when WeChat cannot carry it.

`HARPOON_SMTP_URL`: smtp://user:password@host:587 (STARTTLS when the server offers
it), smtps://...:465 (TLS from the start); empty means Harpoon sends no email.
"""

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

SMTP_TIMEOUT_SECONDS = 15


class MailError(Exception):
    """The SMTP server refused or could not be reached."""


@dataclass(frozen=True)
class Mailer:
    url: str
    sender: str

    def send(self, to: str, subject: str, text: str, *, message_id: str | None = None) -> str:
        """Send one plain-text email; returns its Message-ID."""
        parts = urlsplit(self.url)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = message_id or make_msgid(domain="harpoon")
        message.set_content(text)
        try:
            if parts.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(
                    parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS
                )
            else:
                smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
            with smtp:
                if parts.scheme == "smtp":
                    smtp.ehlo()
                    if smtp.has_extn("starttls"):
                        smtp.starttls()
                        smtp.ehlo()
                if parts.username:
                    smtp.login(unquote(parts.username), unquote(parts.password or ""))
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
        return message["Message-ID"]
