"""A local SMTP sink (aiosmtpd): the mail server of the demo, the tests and the benches.

It accepts every message and keeps the latest `KEEP` of them (all are counted), except
for addresses at `bounce.invalid`, which it refuses with a permanent 550 as a server does
for an address that does not exist, and at `busy.invalid`, which get a temporary 451.
"""

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

KEEP = 1000
BOUNCING_DOMAIN = "bounce.invalid"
BUSY_DOMAIN = "busy.invalid"


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

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if domain == BOUNCING_DOMAIN:
            return "550 5.1.1 No such user here"
        if domain == BUSY_DOMAIN:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
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
