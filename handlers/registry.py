"""Event kind -> handler. One obvious place to find what an event does."""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from handlers.identity import IdentityCache
from wechat.events import NormalizedEvent


@dataclass
class EventContext:
    workspace_id: int
    channel_id: int
    inbound_event_id: int
    event: NormalizedEvent
    identities: IdentityCache


Handler = Callable[[Session, EventContext], None]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for kind in kinds:
            if kind in HANDLERS:
                raise ValueError(f"{kind} already handled by {HANDLERS[kind].__qualname__}")
            HANDLERS[kind] = fn
        return fn

    return register
