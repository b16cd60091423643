"""Email templates and the messages built from them.

A template is sandboxed Jinja (`ImmutableSandboxedEnvironment`, autoescaped HTML,
`StrictUndefined`): it reads the person's variables and nothing else, and a variable it
does not know fails with that variable's name, at preview time as at sending time.

Every message carries its own token (`EmailMessage.token`), which names it in three URLs
on Harpoon's public base: the open pixel `/e/<token>/o.gif`, each tracked click
`/e/<token>/c?u=<url>&s=<signature>` (signed, so the click URL is no open redirect), and the
one-click unsubscribe `/e/<token>/u` (RFC 8058: `List-Unsubscribe` and
`List-Unsubscribe-Post` headers, and the page a person reaches from the footer link).
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

# What a template may use, with a sample for previews and checks.
PERSON_VARIABLES = {
    "name": "王伟",
    "company": "华信科技",
    "title": "首席信息官",
    "email": "wang.wei@example.com",
    "phone": "13800000000",
    "owner": "张三",
}
# Filled per message: the unsubscribe page (a template may place its own link to it).
MESSAGE_VARIABLES = ("unsubscribe_url",)

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
# The text part's templates: the same sandbox, nothing to escape in plain text.
_TEXT_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")
_JINJA_WITH_MARKUP = re.compile(r"\{[{%#](?:(?![}%#]\}).)*?[<>&](?:(?![}%#]\}).)*?[}%#]\}", re.S)
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


class EmailTemplateError(ValueError):
    """A template that cannot be rendered; `variable` names the unknown variable, if that
    is why, and `line` the line of a syntax error."""

    def __init__(self, message: str, *, variable: str | None = None, line: int | None = None):
        super().__init__(message)
        self.variable = variable
        self.line = line


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@lru_cache(maxsize=256)
def _compiled(source: str):
    """A template compiled once: a push renders the same source for every person."""
    return _ENV.from_string(source)


def _render_one(source: str, variables: dict) -> str:
    try:
        return _compiled(source).render(variables)
    except TemplateSyntaxError as exc:
        raise EmailTemplateError(exc.message or str(exc), line=exc.lineno) from exc
    except UndefinedError as exc:
        found = _UNDEFINED_NAME.search(str(exc))
        name = next((group for group in found.groups() if group), None) if found else None
        raise EmailTemplateError(str(exc), variable=name) from exc
    except SecurityError as exc:
        raise EmailTemplateError(str(exc)) from exc
    except TemplateError as exc:
        raise EmailTemplateError(str(exc)) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise EmailTemplateError(f"{type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=256)
def _text_template(body_html: str):
    """The text part's template: the HTML source turned to text once, its Jinja kept, so a
    push renders each person's text part as cheaply as their HTML (parsing every person's
    HTML was most of the cost). None when the source does not survive that as a template,
    or when its Jinja holds markup that turning to text would eat."""
    if _JINJA_WITH_MARKUP.search(body_html):
        return None
    try:
        return _TEXT_ENV.from_string(html_to_text(body_html))
    except TemplateError:
        return None


def _text_part(body_html: str, html: str, variables: dict) -> str:
    template = _text_template(body_html)
    if template is not None:
        try:
            return template.render(variables).strip()
        except (TemplateError, TypeError, ValueError, ArithmeticError):
            pass  # the HTML rendered, so its text does
    return html_to_text(html)


def render(subject: str, body_html: str, variables: dict) -> Rendered:
    """The subject (plain text, one line) and the body (HTML, plus its text part)."""
    subject_text = " ".join(unescape(_render_one(subject, variables)).split())
    html = _render_one(body_html, variables)
    return Rendered(subject=subject_text, html=html, text=_text_part(body_html, html, variables))


def check(subject: str, body_html: str) -> EmailTemplateError | None:
    """Why the template cannot render for a person with every variable set, or None."""
    sample = {**PERSON_VARIABLES, **{name: "https://example.com/" for name in MESSAGE_VARIABLES}}
    try:
        render(subject, body_html, sample)
    except EmailTemplateError as exc:
        return exc
    return None


def person_variables(*, name, company, title, email, phone, owner) -> dict:
    """One person's variables; what Harpoon does not know renders as empty text."""
    values = {
        "name": name,
        "company": company,
        "title": title,
        "email": email,
        "phone": phone,
        "owner": owner,
    }
    return {key: value or "" for key, value in values.items()}


class _Text(HTMLParser):
    BREAKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head"):
            self._skip += 1
        if tag in self.BREAKS:
            self.parts.append("\n")
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        if tag == "a" and self.links and self.links[-1]:
            self.parts.append(f" ({self.links[-1]})")
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def new_token() -> str:
    return secrets.token_urlsafe(16)


@lru_cache(maxsize=1024)
def _quoted(url: str) -> str:
    """A link as a query value (every person's email repeats the same few links)."""
    return quote(url, safe="")


def click_signature(secret: str, token: str, url: str) -> str:
    digest = hmac.new(secret.encode(), f"{token}\n{url}".encode(), hashlib.sha256)
    return digest.hexdigest()[:20]


def click_is_signed(secret: str, token: str, url: str, signature: str) -> bool:
    return hmac.compare_digest(click_signature(secret, token, url), signature or "")


@dataclass(frozen=True)
class Tracking:
    """Where one message's pixel, clicks and unsubscribe point."""

    base_url: str  # Harpoon's public base, no trailing slash
    secret: str  # signs click URLs
    token: str

    @property
    def open_url(self) -> str:
        return f"{self.base_url}/e/{self.token}/o.gif"

    @property
    def unsubscribe_url(self) -> str:
        return f"{self.base_url}/e/{self.token}/u"

    def click_url(self, url: str) -> str:
        signature = click_signature(self.secret, self.token, url)
        return f"{self.base_url}/e/{self.token}/c?u={_quoted(url)}&s={signature}"

    def track_links(self, html: str) -> str:
        """Every http(s) link through the click URL (but the unsubscribe link itself)."""

        def rewrite(match: re.Match) -> str:
            url = unescape(match.group(3))
            if url == self.unsubscribe_url:
                return match.group(0)
            quote_char = match.group(2)
            return f"{match.group(1)}{quote_char}{Markup.escape(self.click_url(url))}{quote_char}"

        return _HREF.sub(rewrite, html)


UNSUBSCRIBE_FOOTER = (
    '<p style="color:#888;font-size:12px;margin-top:24px">'
    '<a href="{url}" style="color:#888">{label}</a></p>'
)


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    to: str,
    tracking: Tracking,
    unsubscribe_label: str = "退订 / Unsubscribe",
) -> EmailMessage:
    """The MIME message: text and tracked HTML parts, the pixel, an unsubscribe footer
    (unless the template placed the link) and RFC 8058's one-click headers."""
    html, text = _parts(rendered, tracking, unsubscribe_label)
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=tracking.token.replace("-", ""), domain="harpoon")
    message["List-Unsubscribe"] = f"<{tracking.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _parts(rendered: Rendered, tracking: Tracking, unsubscribe_label: str) -> tuple[str, str]:
    """The tracked HTML (links, pixel, footer) and the text part."""
    html = tracking.track_links(rendered.html)
    if tracking.unsubscribe_url not in html:
        html += UNSUBSCRIBE_FOOTER.format(
            url=Markup.escape(tracking.unsubscribe_url), label=Markup.escape(unsubscribe_label)
        )
    html += f'<img src="{tracking.open_url}" width="1" height="1" alt="" style="display:none">'
    text = rendered.text + f"\n\n{unsubscribe_label}: {tracking.unsubscribe_url}"
    return html, text


@dataclass(frozen=True)
class Composed:
    """A message ready for the wire: its bytes (CRLF lines) and its Message-ID."""

    data: bytes
    message_id: str


def _header(value: str) -> str:
    """An unstructured header value: as is when ASCII, else RFC 2047 base64 encoded words
    of at most 39 bytes of UTF-8 each (whole characters), one per folded line of less
    than 78 characters."""
    if value.isascii():
        return value
    words, chunk, size = [], [], 0
    for char in value:
        length = len(char.encode("utf-8"))
        if size + length > 39:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += length
    words.append("".join(chunk))
    encoded = (base64.b64encode(word.encode("utf-8")).decode() for word in words)
    return "\r\n ".join(f"=?utf-8?b?{word}?=" for word in encoded)


def _part(content: str, subtype: str) -> bytes:
    canonical = content.replace("\r\n", "\n").replace("\n", "\r\n")  # text/*: CRLF lines
    body = base64.encodebytes(canonical.encode("utf-8")).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + body


def compose(
    rendered: Rendered,
    *,
    sender: str,
    to: str,
    tracking: Tracking,
    unsubscribe_label: str = "退订 / Unsubscribe",
) -> Composed | None:
    """The same message as build_message, written straight to bytes: a push builds a
    hundred thousand, and the email package's header objects cost more than the SMTP
    conversation. None when an address is not plain ASCII (build_message handles those)."""
    name, address = parseaddr(sender)
    if not (address.isascii() and to.isascii()):
        return None
    html, text = _parts(rendered, tracking, unsubscribe_label)
    message_id = make_msgid(idstring=tracking.token.replace("-", ""), domain="harpoon")
    # The token is random already; "=_" never occurs in base64 parts.
    boundary = f"=_harpoon_{tracking.token}"
    headers = (
        f"From: {formataddr((name, address), charset='utf-8')}",
        f"To: {to}",
        f"Subject: {_header(rendered.subject)}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: {message_id}",
        f"List-Unsubscribe: <{tracking.unsubscribe_url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    )
    data = b"".join(
        (
            "\r\n".join(headers).encode(),
            f"\r\n\r\n--{boundary}\r\n".encode(),
            _part(text, "plain"),
            f"\r\n--{boundary}\r\n".encode(),
            _part(html, "html"),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    return Composed(data, message_id)
