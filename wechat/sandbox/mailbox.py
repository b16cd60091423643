"""A local SMTP sink (aiosmtpd): the mail server of the demo, the tests and the benches.

It accepts every message and keeps the latest `KEEP` of them (all are counted), except
for addresses at `bounce.invalid`, which it refuses with a permanent 550 as a server does
for an address that does not exist, and at `busy.invalid`, which get a temporary 451.
A sender (MAIL FROM) at `refused.invalid` is refused with 550, as a server refuses a
sender it will not relay for; a message to an address at `rejected.invalid` is refused
after its DATA with 554, as a server refuses content it will not take.
"""

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from html import escape

from aiosmtpd.controller import Controller

KEEP = 1000
BOUNCING_DOMAIN = "bounce.invalid"
BUSY_DOMAIN = "busy.invalid"
REFUSED_SENDER_DOMAIN = "refused.invalid"
REJECTED_DATA_DOMAIN = "rejected.invalid"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass
class Delivered:
    sender: str
    recipients: list[str]
    data: bytes

    def message(self):
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class Mailbox:
    """What the sink received."""

    messages: deque = field(default_factory=lambda: deque(maxlen=KEEP))
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if _domain(address) == REFUSED_SENDER_DOMAIN:
            return "550 5.7.1 Sender address rejected: not allowed to send from here"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = _domain(address)
        if domain == BOUNCING_DOMAIN:
            return "550 5.1.1 No such user here"
        if domain == BUSY_DOMAIN:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(_domain(address) == REJECTED_DATA_DOMAIN for address in envelope.rcpt_tos):
            return "554 5.6.0 Message content rejected"
        with self.lock:
            self.received += 1
            self.messages.append(
                Delivered(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.received = 0

    def to(self, address: str) -> list[Delivered]:
        with self.lock:
            return [m for m in self.messages if address in m.recipients]


class SmtpSink:
    """The sink running on a port of 127.0.0.1 (a free one unless given): `url` is what
    HARPOON_SMTP_URL takes."""

    def __init__(self, port: int = 0, hostname: str = "127.0.0.1"):
        if not port:
            with socket.socket() as probe:  # the controller checks it can connect
                probe.bind((hostname, 0))
                port = probe.getsockname()[1]
        self.mailbox = Mailbox()
        self.url = f"smtp://{hostname}:{port}"
        self._controller = Controller(
            self.mailbox, hostname=hostname, port=port, data_size_limit=10 * 1024 * 1024
        )

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


MAIL_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>收到的邮件 · Sandbox mail</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}}
article{{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}}
dl{{display:grid;grid-template-columns:8em 1fr;gap:.2em 1em;margin:0 0 1em}}
dt{{color:#666}}iframe{{width:100%;height:18em;border:1px solid #eee}}</style></head>
<body><h1>收到的邮件 <small>({received} 封, 最近 {shown} 封)</small></h1>{items}</body></html>"""
MAIL_ITEM = """<article><dl><dt>发件人</dt><dd>{sender}</dd><dt>收件人</dt><dd>{to}</dd>
<dt>主题</dt><dd>{subject}</dd><dt>退订</dt><dd>{unsubscribe}</dd></dl>
<iframe sandbox srcdoc="{html}"></iframe></article>"""


def mail_page(mailbox: Mailbox, limit: int = 50) -> str:
    """The latest messages the sink received, newest first, as an HTML page: what a new
    user opens to see the demo's email arrive (the body in a sandboxed frame)."""
    with mailbox.lock:
        latest = list(mailbox.messages)[-limit:][::-1]
        received = mailbox.received
    items = []
    for delivered in latest:
        message = delivered.message()
        body = message.get_body(("html", "plain"))
        items.append(
            MAIL_ITEM.format(
                sender=escape(delivered.sender),
                to=escape(", ".join(delivered.recipients)),
                subject=escape(str(message["Subject"] or "")),
                unsubscribe=escape(str(message["List-Unsubscribe"] or "")),
                html=escape(body.get_content() if body is not None else ""),
            )
        )
    return MAIL_PAGE.format(received=received, shown=len(items), items="".join(items))


def add_mail_page(app, mailbox: Mailbox) -> None:
    """GET /sandbox/mail on a Flask app (the sandbox's, in the demo)."""
    app.add_url_rule(
        "/sandbox/mail",
        endpoint="sandbox_mail",
        view_func=lambda: (mail_page(mailbox), 200, {"Content-Type": "text/html; charset=utf-8"}),
    )
