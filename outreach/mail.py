"""Email out through SMTP: form follow-ups, journey steps and pushes.

`HARPOON_SMTP_URL` (or a workspace's own `smtp_url`): smtp://user:password@host:587
(STARTTLS when the server offers it), smtps://...:465 (TLS from the start); empty means
Harpoon sends no email. `MailConnection` keeps one SMTP session open for many messages, so
a push pays the connection and login once per batch, not once per person.
"""

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from core.outbound import host_problem, system_resolver

SMTP_TIMEOUT_SECONDS = 15


class MailError(Exception):
    """The SMTP server refused or could not be reached. `permanent`: the server refused for
    good (a 5xx), so retrying would not help; otherwise try again later. `code`: the
    server's reply code when it answered; None when it could not be reached or the session
    broke. `stage`: what it refused: RECIPIENT (RCPT TO: the address, a bounce), SENDER
    (MAIL FROM: our account or sender address, a problem of the server, not of the person)
    or DATA (this message's content or size); None when it did not answer."""

    RECIPIENT, SENDER, DATA = "recipient", "sender", "data"

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: int | None = None,
        stage: str | None = None,
    ):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.stage = stage

    @property
    def bounced(self) -> bool:
        """The server refused the address for good: it is not worth mailing again."""
        return self.permanent and self.stage == self.RECIPIENT


class MailConnection:
    """One open SMTP session: `send` many messages, then `close` (or use `with`)."""

    def __init__(self, url: str, *, guarded: bool = False):
        """`guarded`: the URL is a workspace's own (someone typed it in): its host must
        resolve to public addresses only, unless the operator allow-lists it
        (HARPOON_OUTBOUND_ALLOW), as for webhooks. The service's HARPOON_SMTP_URL is not."""
        parts = urlsplit(url)
        if guarded:
            check_host(url)
        try:
            if parts.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(
                    parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS
                )
            else:
                smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
            try:
                smtp.ehlo()
                if parts.scheme == "smtp" and smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                if parts.username:
                    smtp.login(unquote(parts.username), unquote(parts.password or ""))
            except BaseException:
                smtp.close()
                raise
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
        self._smtp = smtp

    def send(self, message: EmailMessage) -> str:
        """Send one message; returns its Message-ID. A refusal raises MailError (its `stage`
        says of what); a refused address or message leaves the session usable for the next
        one."""
        self._call(self._smtp.send_message, message)
        return message["Message-ID"]

    def send_bytes(self, sender: str, to: str, data: bytes) -> None:
        """Send a message already written as bytes (CRLF lines), from the envelope address
        `sender` to `to`; refusals as for `send`."""
        self._call(self._smtp.sendmail, sender, [to], data)

    def _call(self, method, *args) -> None:
        try:
            method(*args)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise MailError(
                _reply(code, reply), permanent=code >= 500, code=code, stage=MailError.RECIPIENT
            ) from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            stage = (
                MailError.SENDER if isinstance(exc, smtplib.SMTPSenderRefused) else MailError.DATA
            )
            reply = _reply(exc.smtp_code, exc.smtp_error)
            raise MailError(
                reply, permanent=exc.smtp_code >= 500, code=exc.smtp_code, stage=stage
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            self._smtp.close()

    def __enter__(self) -> "MailConnection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def check_host(url: str) -> None:
    """Raises MailError when the URL's host resolves to an address Harpoon may not reach
    (private, loopback, link-local...) and HARPOON_OUTBOUND_ALLOW does not let it in."""
    parts = urlsplit(url)
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    problem = host_problem(parts.hostname or "", port, system_resolver)
    if problem:
        raise MailError(f"{parts.hostname}: {problem}")


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {text}"[:300]


@dataclass(frozen=True)
class Mailer:
    url: str
    sender: str
    guarded: bool = False  # a workspace's own server: see MailConnection

    def connect(self) -> MailConnection:
        return MailConnection(self.url, guarded=self.guarded)

    def send(self, to: str, subject: str, text: str, *, message_id: str | None = None) -> str:
        """Send one plain-text email; returns its Message-ID."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = message_id or make_msgid(domain="harpoon")
        message.set_content(text)
        with self.connect() as connection:
            return connection.send(message)


def mailer_for(workspace, *, default_url: str, default_sender: str) -> Mailer | None:
    """The workspace's own SMTP server when it has one, else the service's; None: no email."""
    url = workspace.smtp_url or default_url
    if not url:
        return None
    return Mailer(url, workspace.mail_from or default_sender, guarded=bool(workspace.smtp_url))
