"""What create_app wires together, reachable from views, jobs and the CLI."""

import time
from dataclasses import dataclass

from flask import current_app

from app.queue import JobQueue
from config import Settings
from core.tokens import Signer
from crm.rules import RuleBook
from models import Channel, Database
from outreach.content import Target, target_of
from outreach.qr_scans import QrCodeBook
from pipeline.inbox import InboxWriter
from wechat.clients import WeChatClients


@dataclass(frozen=True)
class ChannelKeys:
    """A channel's callback credentials, decrypted once and cached."""

    id: int
    workspace_id: int
    kind: str
    app_id: str
    token: str
    aes_keys: tuple[str, ...]
    message_mode: str


class TtlCache:
    """Values by key, loaded on a miss and kept `ttl_seconds` per process."""

    def __init__(self, load, ttl_seconds: float):
        self._load = load
        self.ttl = ttl_seconds
        self._entries: dict = {}

    def get(self, key):
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry and entry[0] > now:
            return entry[1]
        value = self._load(key)
        self._entries[key] = (now + self.ttl, value)
        return value

    def invalidate(self, key) -> None:
        self._entries.pop(key, None)


def channel_cache(db: Database, ttl_seconds: float) -> TtlCache:
    """Callback credentials per channel: every callback needs them, and reading and
    decrypting them from the database each time would cost more than the rest of the
    request."""

    def load(channel_id: int) -> ChannelKeys | None:
        with db.session() as session:
            channel = session.get(Channel, channel_id)
            if channel is None:
                return None
            return ChannelKeys(
                id=channel.id,
                workspace_id=channel.workspace_id,
                kind=channel.kind,
                app_id=channel.app_id,
                token=channel.token,
                aes_keys=tuple(k for k in (channel.aes_key, channel.previous_aes_key) if k),
                message_mode=channel.message_mode,
            )

    return TtlCache(load, ttl_seconds)


def link_cache(db: Database, ttl_seconds: float) -> TtlCache:
    """Tracked links by code with what they lead to: every reader's click needs one, and a
    marketer's change (or archiving) shows within the TTL. Read-only, detached rows."""

    def load(code: str) -> Target | None:
        with db.session() as session:
            return target_of(session, code)

    return TtlCache(load, ttl_seconds)


@dataclass(frozen=True)
class PassiveReplies:
    """What a workspace's callbacks may answer inside the request: its rules' replies and
    its channel QR codes' welcomes."""

    rules: RuleBook
    qr_codes: QrCodeBook

    def reply_to(self, event_kind: str, text: str | None) -> str | None:
        return self.rules.reply_to(event_kind, text)

    def welcome(self, channel_id: int, event: str | None, event_key: str | None) -> str | None:
        return self.qr_codes.welcome(channel_id, event, event_key)


def reply_rules(db: Database, ttl_seconds: float) -> TtlCache:
    """Each workspace's rules, compiled, and QR code welcomes: a callback picks its passive
    reply from them without a database round trip."""

    def load(workspace_id: int) -> PassiveReplies:
        with db.session() as session:
            return PassiveReplies(
                RuleBook.load(session, workspace_id), QrCodeBook.load(session, workspace_id)
            )

    return TtlCache(load, ttl_seconds)


@dataclass
class Harpoon:
    settings: Settings
    db: Database
    queue: JobQueue
    channels: TtlCache
    inbox: InboxWriter
    wechat: WeChatClients
    replies: TtlCache
    links: TtlCache

    @property
    def signer(self) -> Signer:
        """Signs and checks the tokens in public URLs (shares, views, forms, OAuth state)."""
        return Signer(self.settings.secret_key)

    def public_url(self, path: str) -> str:
        """An absolute URL of a public page (tracked links, forms) as readers reach it."""
        return f"{self.settings.public_base_url}{path}"


def harpoon() -> Harpoon:
    return current_app.extensions["harpoon"]
