"""Event kind -> handler. One obvious place to find what an event does."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from core.jobs import Followups
from crm.accounts import AccountMoves
from crm.contacts import TitleTags, title_dictionary
from crm.identity import IdentityCache
from crm.rules import RuleBook
from crm.tags import TagBook
from crm.titles import TitleDictionary
from outreach.qr_scans import QrCodeBook
from wechat.events import NormalizedEvent


@dataclass
class Batch:
    """What the events of one drained batch share: caches, the contacts they touched, and
    the jobs they ask for once the batch has committed."""

    workspace_id: int
    identities: IdentityCache
    # Interactions held back and inserted with one statement at the end of the batch
    # (the optimistic pass); otherwise each is inserted as its event is handled.
    buffer_interactions: bool = False
    interactions: list[dict] = field(default_factory=list)
    followups: Followups = field(default_factory=Followups)
    # contact id -> the interaction kinds it performed in this batch (for behavior rules)
    touched: dict[int, set[str]] = field(default_factory=dict)
    # Accounts the batch's events named, by normalized company name.
    accounts: dict = field(default_factory=dict)
    # Role and seniority tags of titles stated in the batch, applied together at its end
    # (the optimistic pass only: event by event, each applies its own).
    title_tags: TitleTags | None = None
    account_moves: AccountMoves | None = None
    _tags: TagBook | None = None
    _rules: RuleBook | None = None
    _titles: TitleDictionary | None = None
    _qr_codes: QrCodeBook | None = None

    def tags(self, session: Session) -> TagBook:
        if self._tags is None:
            self._tags = TagBook(session, self.workspace_id)
        return self._tags

    def rules(self, session: Session) -> RuleBook:
        if self._rules is None:
            self._rules = RuleBook.load(session, self.workspace_id)
        return self._rules

    def titles(self, session: Session) -> TitleDictionary:
        if self._titles is None:
            self._titles = title_dictionary(session, self.workspace_id)
        return self._titles

    def qr_codes(self, session: Session) -> QrCodeBook:
        if self._qr_codes is None:
            self._qr_codes = QrCodeBook.load(session, self.workspace_id)
        return self._qr_codes

    def finish(self, session: Session) -> None:
        """What the batch's events left for its end."""
        if self.title_tags is not None:
            self.title_tags.apply(session, self.tags(session), self.followups)
        if self.account_moves is not None:
            self.account_moves.apply(session, self.tags(session), self.followups)

    def touch(self, contact_id: int, kind: str) -> None:
        self.touched.setdefault(contact_id, set()).add(kind)

    def forget_failed(self, session: Session) -> None:
        """After an event rolled back: drop what it may have cached (new contacts, tags)."""
        self.identities.forget_new(session)
        self._tags = None
        self.accounts = {}


@dataclass
class EventContext:
    workspace_id: int
    channel_id: int
    inbound_event_id: int
    event: NormalizedEvent
    batch: Batch
    # When Harpoon stored the callback (welcome latency is measured from here).
    received_at: datetime | None = None

    @property
    def identities(self) -> IdentityCache:
        return self.batch.identities


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
