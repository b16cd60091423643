"""Putting tags on contacts and taking them off, in batches, and queueing their sync; the
workspace's tags as a marketer manages them (listed, named, deleted with what names them).

Every path that tags someone (rules in the drain, the title dictionary, an
account's industry, a marketer in the admin, WeCom) goes through
`apply_tags` / `remove_tags`, so exclusivity, the role/seniority columns and
the WeChat/WeCom mirrors stay right whoever tagged.
"""

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from models import (
    EXCLUSIVE_GROUPS,
    Channel,
    Contact,
    ContactTag,
    FollowRelation,
    Identity,
    IdentityKind,
    SyncAction,
    SyncStatus,
    Tag,
    TagGroup,
    TagRemote,
    TagRule,
    TagSyncItem,
    utcnow,
)
from models.base import dialect_insert

MAX_TAG_NAME = Tag.__table__.c.name.type.length
# Tag groups whose tag names mirror a contact column.
COLUMN_GROUPS = {TagGroup.ROLE: "role", TagGroup.SENIORITY: "seniority"}


class TagBook:
    """A workspace's tags, loaded once; tags named by rules are created on first use."""

    def __init__(self, session: Session, workspace_id: int):
        self.workspace_id = workspace_id
        self._by_name: dict[tuple[str, str], Tag] = {}
        self._by_id: dict[int, Tag] = {}
        # (contact, tag) pairs this book applied and that still hold: applying one again
        # (a follower repeating themselves within a batch) costs no statement.
        self.holding: set[tuple[int, int]] = set()
        for tag in session.scalars(select(Tag).where(Tag.workspace_id == workspace_id)):
            self._remember(tag)

    def _remember(self, tag: Tag) -> None:
        self._by_name[(tag.group, tag.name)] = tag
        self._by_id[tag.id] = tag

    def by_id(self, tag_id: int) -> Tag | None:
        return self._by_id.get(tag_id)

    def get(self, session: Session, group: str, name: str) -> Tag:
        name = name.strip()[:MAX_TAG_NAME]
        if not name:
            raise ValueError("a tag needs a name")
        tag = self._by_name.get((group, name))
        if tag is None:
            tag = self._create(session, group, name)
            self._remember(tag)
        return tag

    def in_group(self, group: str) -> list[Tag]:
        return [tag for (g, _), tag in self._by_name.items() if g == group]

    def _create(self, session: Session, group: str, name: str) -> Tag:
        try:
            with session.begin_nested():
                tag = Tag(workspace_id=self.workspace_id, group=group, name=name)
                session.add(tag)
                session.flush()
            return tag
        except IntegrityError:  # created meanwhile by another worker
            return session.scalars(
                select(Tag).where(
                    Tag.workspace_id == self.workspace_id, Tag.group == group, Tag.name == name
                )
            ).one()


def workspace_tags(session: Session, workspace_id: int) -> list[Tag]:
    """The workspace's tags, by group then name."""
    return list(
        session.scalars(
            select(Tag).where(Tag.workspace_id == workspace_id).order_by(Tag.group, Tag.name)
        )
    )


def workspace_tag_ids(session: Session, workspace_id: int) -> list[int]:
    return list(session.scalars(select(Tag.id).where(Tag.workspace_id == workspace_id)))


def tag_name_taken(
    session: Session, workspace_id: int, group: str, name: str, except_id: int | None = None
) -> bool:
    """Whether another tag of the group has this name."""
    taken = session.scalar(
        select(Tag.id).where(
            Tag.workspace_id == workspace_id,
            Tag.group == group,
            Tag.name == name,
            Tag.id != (except_id or 0),
        )
    )
    return bool(taken)


def delete_tag(session: Session, tag: Tag) -> tuple[int, int]:
    """Delete the tag and what names it: its holders (their role/seniority column too, when
    it mirrors the tag), its rules, its sync items and remote tags. Returns how many
    contacts held it and how many rules applied it."""
    ws = tag.workspace_id
    column = COLUMN_GROUPS.get(tag.group)
    if column:  # the contacts' role/seniority column mirrors the tag
        holders = select(ContactTag.contact_id).where(
            ContactTag.workspace_id == ws, ContactTag.tag_id == tag.id
        )
        session.execute(
            update(Contact)
            .where(
                Contact.workspace_id == ws,
                Contact.id.in_(holders),
                getattr(Contact, column) == tag.name,
            )
            .values({column: None})
            .execution_options(synchronize_session=False)
        )
    contacts = session.execute(
        delete(ContactTag).where(ContactTag.workspace_id == ws, ContactTag.tag_id == tag.id)
    ).rowcount
    rules = session.execute(
        delete(TagRule).where(TagRule.workspace_id == ws, TagRule.tag_id == tag.id)
    ).rowcount
    session.execute(
        delete(TagSyncItem).where(TagSyncItem.workspace_id == ws, TagSyncItem.tag_id == tag.id)
    )
    session.execute(
        delete(TagRemote).where(TagRemote.workspace_id == ws, TagRemote.tag_id == tag.id)
    )
    session.delete(tag)
    return contacts, rules


def apply_tags(
    session: Session,
    book: TagBook,
    contact_ids: Iterable[int],
    tags: Iterable[Tag],
    *,
    source: str,
    rule_id: int | None = None,
    followups: Followups | None = None,
) -> int:
    """Tag the contacts; a tag of an exclusive group replaces the contact's other one.

    Returns how many (contact, tag) pairs are new.
    """
    contact_ids = sorted(set(contact_ids))
    tags = [
        tag
        for tag in {tag.id: tag for tag in tags}.values()
        if any((contact_id, tag.id) not in book.holding for contact_id in contact_ids)
    ]
    if not contact_ids or not tags:
        return 0
    for tag in tags:
        if tag.group in EXCLUSIVE_GROUPS:
            rivals = [t for t in book.in_group(tag.group) if t.id != tag.id]
            remove_tags(session, book, contact_ids, rivals, followups=followups)
        if tag.group in COLUMN_GROUPS:
            session.execute(
                update(Contact)
                .where(Contact.id.in_(contact_ids))
                .values({COLUMN_GROUPS[tag.group]: tag.name})
                .execution_options(synchronize_session="fetch")
            )
    now = utcnow()
    rows = [
        {
            "contact_id": contact_id,
            "tag_id": tag.id,
            "workspace_id": book.workspace_id,
            "source": source,
            "rule_id": rule_id,
            "created_at": now,
        }
        for contact_id in contact_ids
        for tag in tags
    ]
    stmt = (
        dialect_insert(session.get_bind().dialect.name, ContactTag.__table__)
        .on_conflict_do_nothing()
        .returning(ContactTag.contact_id, ContactTag.tag_id)
    )
    added = [tuple(row) for row in session.execute(stmt, rows)]
    book.holding.update((row["contact_id"], row["tag_id"]) for row in rows)
    _queue_sync(session, book, added, SyncAction.ADD, followups)
    return len(added)


def remove_tags(
    session: Session,
    book: TagBook,
    contact_ids: Iterable[int],
    tags: Iterable[Tag],
    *,
    followups: Followups | None = None,
) -> int:
    """Take the tags off the contacts; returns how many (contact, tag) pairs were there."""
    contact_ids = sorted(set(contact_ids))
    tags = list({tag.id: tag for tag in tags}.values())
    if not contact_ids or not tags:
        return 0
    removed = [
        tuple(row)
        for row in session.execute(
            delete(ContactTag)
            .where(
                ContactTag.contact_id.in_(contact_ids),
                ContactTag.tag_id.in_([tag.id for tag in tags]),
            )
            .returning(ContactTag.contact_id, ContactTag.tag_id)
            .execution_options(synchronize_session=False)
        )
    ]
    book.holding.difference_update((c, t) for c in contact_ids for t in (tag.id for tag in tags))
    for tag in tags:
        column = COLUMN_GROUPS.get(tag.group)
        untagged = [contact_id for contact_id, tag_id in removed if tag_id == tag.id]
        if column and untagged:
            session.execute(
                update(Contact)
                .where(Contact.id.in_(untagged), getattr(Contact, column) == tag.name)
                .values({column: None})
                .execution_options(synchronize_session="fetch")
            )
    _queue_sync(session, book, removed, SyncAction.REMOVE, followups)
    return len(removed)


def contact_tags(session: Session, contact_ids: Iterable[int]) -> dict[int, list[Tag]]:
    """Each contact's tags, by group then name."""
    result: dict[int, list[Tag]] = {}
    rows = session.execute(
        select(ContactTag.contact_id, Tag)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(ContactTag.contact_id.in_(list(contact_ids)))
        .order_by(Tag.group, Tag.name)
    )
    for contact_id, tag in rows:
        result.setdefault(contact_id, []).append(tag)
    return result


def queue_contact_resync(
    session: Session, book: TagBook, contact_id: int, followups: Followups | None = None
) -> None:
    """Mirror all the contact's synced tags again (it has new openids or WeCom relations)."""
    tag_ids = session.scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == contact_id))
    _queue_sync(session, book, [(contact_id, t) for t in tag_ids], SyncAction.ADD, followups)


def queue_holders_sync(
    session: Session,
    book: TagBook,
    tag: Tag,
    followups: Followups | None = None,
    batch_size: int = 500,
) -> None:
    """Mirror a tag that has just become synced on everyone who already holds it."""
    after = 0
    while contact_ids := list(
        session.scalars(
            select(ContactTag.contact_id)
            .where(ContactTag.tag_id == tag.id, ContactTag.contact_id > after)
            .order_by(ContactTag.contact_id)
            .limit(batch_size)
        )
    ):
        _queue_sync(session, book, [(c, tag.id) for c in contact_ids], SyncAction.ADD, followups)
        after = contact_ids[-1]


def drop_unsent_sync(
    session: Session, workspace_id: int, tag_id: int, channel_kinds: list[str]
) -> None:
    """Forget the tag's items not sent yet (pending or failed) to channels of these kinds:
    its sync there was turned off, so they are no longer wanted."""
    channels = select(Channel.id).where(
        Channel.workspace_id == workspace_id, Channel.kind.in_(channel_kinds)
    )
    session.execute(
        delete(TagSyncItem).where(
            TagSyncItem.workspace_id == workspace_id,
            TagSyncItem.tag_id == tag_id,
            TagSyncItem.channel_id.in_(channels),
            TagSyncItem.status.in_((SyncStatus.PENDING, SyncStatus.FAILED)),
        )
    )


def retry_failed_sync(session: Session, workspace_id: int) -> int:
    """Make the workspace's failed sync items due again, attempts reset; how many."""
    return session.execute(
        update(TagSyncItem)
        .where(TagSyncItem.workspace_id == workspace_id, TagSyncItem.status == SyncStatus.FAILED)
        .values(status=SyncStatus.PENDING, attempts=0, error=None, next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount


def _queue_sync(
    session: Session,
    book: TagBook,
    pairs: list[tuple[int, int]],
    action: str,
    followups: Followups | None,
) -> None:
    """Record, per follower and channel, that a synced tag must be added or removed there."""
    wechat = [(c, t) for c, t in pairs if (tag := book.by_id(t)) is not None and tag.sync_wechat]
    wecom = [(c, t) for c, t in pairs if (tag := book.by_id(t)) is not None and tag.sync_wecom]
    if not wechat and not wecom:
        return
    subjects: dict[int, list[tuple[int, str]]] = {}  # contact -> [(channel, openid/external id)]
    if wechat:
        for contact_id, channel_id, value in session.execute(
            select(Identity.contact_id, Identity.channel_id, Identity.value).where(
                Identity.contact_id.in_({c for c, _ in wechat}),
                Identity.kind == IdentityKind.OPENID,
            )
        ):
            subjects.setdefault(contact_id, []).append((channel_id, value))
    wecom_subjects: dict[int, set[tuple[int, str]]] = {}
    if wecom:
        for contact_id, channel_id, value in session.execute(
            select(
                FollowRelation.contact_id, FollowRelation.channel_id, FollowRelation.external_userid
            ).where(
                FollowRelation.contact_id.in_({c for c, _ in wecom}),
                FollowRelation.removed_at.is_(None),
            )
        ):
            wecom_subjects.setdefault(contact_id, set()).add((channel_id, value))
    now = utcnow()
    rows = {}
    for source, targets in ((wechat, subjects), (wecom, wecom_subjects)):
        for contact_id, tag_id in source:
            for channel_id, subject in targets.get(contact_id, ()):
                rows[(channel_id, subject, tag_id)] = {
                    "workspace_id": book.workspace_id,
                    "channel_id": channel_id,
                    "subject": subject,
                    "tag_id": tag_id,
                    "action": action,
                    "status": SyncStatus.PENDING,
                    "attempts": 0,
                    "error": None,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
    if not rows:
        return
    stmt = dialect_insert(session.get_bind().dialect.name, TagSyncItem.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel_id", "subject", "tag_id"],
        set_={
            name: getattr(stmt.excluded, name)
            for name in ("action", "status", "attempts", "error", "next_attempt_at", "updated_at")
        },
    )
    session.execute(stmt, list(rows.values()))
    if followups is not None:
        for channel_id, _, _ in rows:
            followups.add(Job.SYNC_TAGS, channel_id)
