"""Who an event is about: identity value -> one Contact."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from models import Contact, Identity

IdentityKey = tuple[str, int | None, str]  # (kind, channel_id, value)
# Identities that only mean something on one channel (an OA's openid, a corp's external id).
CHANNEL_KINDS = frozenset({"openid", "external_userid"})


class IdentityCache:
    """The identities one batch touches, loaded with one query."""

    def __init__(self, workspace_id: int):
        self.workspace_id = workspace_id
        self._by_key: dict[IdentityKey, Identity] = {}

    def preload(self, session: Session, keys: set[IdentityKey]) -> None:
        values = {value for _, _, value in keys}
        if not values:
            return
        rows = session.scalars(
            select(Identity)
            .where(Identity.workspace_id == self.workspace_id, Identity.value.in_(values))
            .options(joinedload(Identity.contact))  # every handler needs the contact
        )
        for identity in rows:
            self._by_key[(identity.kind, identity.channel_id, identity.value)] = identity

    def known(self, kind: str, channel_id: int | None, value: str) -> Identity | None:
        """A preloaded identity; channel None matches the value on any channel (a touchpoint
        may name an external_userid without its corp)."""
        if channel_id is not None or kind not in CHANNEL_KINDS:
            return self._by_key.get((kind, channel_id, value))
        return next((i for (k, _, v), i in self._by_key.items() if k == kind and v == value), None)

    def create_missing(self, session: Session, first_seen: dict[IdentityKey, datetime]) -> None:
        """Contacts for every identity of the batch not known yet, in one flush (the
        optimistic pass: a concurrent insert of the same identity fails the whole pass)."""
        for key, seen_at in first_seen.items():
            if key in self._by_key:
                continue
            kind, channel_id, value = key
            contact = Contact(
                workspace_id=self.workspace_id, first_seen_at=seen_at, last_seen_at=seen_at
            )
            identity = Identity(
                workspace_id=self.workspace_id,
                contact=contact,
                kind=kind,
                channel_id=channel_id,
                value=value,
            )
            session.add(identity)
            self._by_key[key] = identity
        session.flush()

    def resolve(
        self, session: Session, kind: str, channel_id: int | None, value: str, seen_at: datetime
    ) -> Identity:
        """The identity for this value, creating the contact on first sight."""
        if not value:
            raise ValueError(f"event names no {kind}")
        key = (kind, channel_id, value)
        identity = self._by_key.get(key)
        if identity is None:
            identity = self._create(session, kind, channel_id, value, seen_at)
            self._by_key[key] = identity
        contact = identity.contact
        if seen_at > contact.last_seen_at:
            contact.last_seen_at = seen_at
        if seen_at < contact.first_seen_at:
            contact.first_seen_at = seen_at
        return identity

    def forget_new(self, session: Session) -> None:
        """After a rolled-back event, drop identities that were never committed."""
        self._by_key = {key: ident for key, ident in self._by_key.items() if ident in session}

    def _create(
        self, session: Session, kind: str, channel_id: int | None, value: str, seen_at: datetime
    ) -> Identity:
        try:
            with session.begin_nested():
                contact = Contact(
                    workspace_id=self.workspace_id, first_seen_at=seen_at, last_seen_at=seen_at
                )
                identity = Identity(
                    workspace_id=self.workspace_id,
                    contact=contact,
                    kind=kind,
                    channel_id=channel_id,
                    value=value,
                )
                session.add(identity)
                session.flush()
            return identity
        except IntegrityError:
            # Another worker created it between our preload and this insert.
            return session.scalars(
                select(Identity).where(
                    Identity.workspace_id == self.workspace_id,
                    Identity.kind == kind,
                    Identity.channel_id.is_(None)
                    if channel_id is None
                    else Identity.channel_id == channel_id,
                    Identity.value == value,
                )
            ).one()
