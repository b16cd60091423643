"""What create_app wires together, reachable from views, jobs and the CLI."""

import time
from dataclasses import dataclass

from flask import current_app

from app.queue import JobQueue
from config import Settings
from handlers.inbox import InboxWriter
from handlers.rules import RuleBook
from models import Channel, Database
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


class ChannelCache:
    """Callback credentials per channel, kept for a few seconds per process.

    Every callback needs them; reading and decrypting them from the database
    each time would cost more than the rest of the request.
    """

    def __init__(self, db: Database, ttl_seconds: float):
        self.db = db
        self.ttl = ttl_seconds
        self._entries: dict[int, tuple[float, ChannelKeys | None]] = {}

    def get(self, channel_id: int) -> ChannelKeys | None:
        now = time.monotonic()
        entry = self._entries.get(channel_id)
        if entry and entry[0] > now:
            return entry[1]
        keys = self._load(channel_id)
        self._entries[channel_id] = (now + self.ttl, keys)
        return keys

    def invalidate(self, channel_id: int) -> None:
        self._entries.pop(channel_id, None)

    def _load(self, channel_id: int) -> ChannelKeys | None:
        with self.db.session() as session:
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


class ReplyRules:
    """Each workspace's rules, compiled and kept a few seconds per process: a message
    callback picks its passive reply from them without a database round trip."""

    def __init__(self, db: Database, ttl_seconds: float):
        self.db = db
        self.ttl = ttl_seconds
        self._entries: dict[int, tuple[float, RuleBook]] = {}

    def get(self, workspace_id: int) -> RuleBook:
        now = time.monotonic()
        entry = self._entries.get(workspace_id)
        if entry and entry[0] > now:
            return entry[1]
        with self.db.session() as session:
            rules = RuleBook.load(session, workspace_id)
        self._entries[workspace_id] = (now + self.ttl, rules)
        return rules

    def invalidate(self, workspace_id: int) -> None:
        self._entries.pop(workspace_id, None)


@dataclass
class Harpoon:
    settings: Settings
    db: Database
    queue: JobQueue
    channels: ChannelCache
    inbox: InboxWriter
    wechat: WeChatClients
    replies: ReplyRules


def harpoon() -> Harpoon:
    return current_app.extensions["harpoon"]
