"""One contact per person: identities that join contacts, merges, and what we know of them."""

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.jobs import Followups
from crm.activity import interactions_accounts, rebuild_activity
from crm.tags import TagBook, apply_tags, queue_contact_resync
from crm.titles import TitleDictionary
from models import (
    ACCOUNT_SOURCE_STRENGTH,
    EXCLUSIVE_GROUPS,
    Contact,
    ContactMerge,
    ContactTag,
    Enrolment,
    EnrolmentStatus,
    FollowRelation,
    Identity,
    Interaction,
    OutboxItem,
    OutboxStatus,
    ScoreEntry,
    Step,
    Tag,
    TagGroup,
    TagSource,
    TitleSynonym,
    utcnow,
)
from models.base import insert_ignoring_conflicts

# Identities that name one person wherever they appear; a second contact holding one is a merge.
PERSONAL_KINDS = ("unionid", "phone", "email")


def normalize_phone(phone: str) -> str:
    """One spelling per number: digits only, China's country code dropped
    ("+86 138-0013-8000" and "13800138000" are one person)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def normalized_identity(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "phone":
        return normalize_phone(value)
    if kind == "email":
        return value.lower()
    return value


def live(session: Session, contact: Contact) -> Contact:
    """The contact itself, or the one it was merged into (never another workspace's)."""
    while contact.merged_into_id is not None:
        kept = session.get(Contact, contact.merged_into_id)
        if kept is None or kept.workspace_id != contact.workspace_id:
            return contact
        contact = kept
    return contact


def merged_ids(session: Session, workspace_id: int, contact_id: int) -> list[int]:
    """The contact and everyone merged into it (a merge points every earlier merged
    contact at the survivor, so one level is all there is)."""
    merged = session.scalars(
        select(Contact.id).where(
            Contact.workspace_id == workspace_id, Contact.merged_into_id == contact_id
        )
    )
    return [contact_id, *merged]


def find_identity(
    session: Session, workspace_id: int, kind: str, channel_id: int | None, value: str
) -> Identity | None:
    return session.scalars(
        select(Identity).where(
            Identity.workspace_id == workspace_id,
            Identity.kind == kind,
            Identity.channel_id.is_(None)
            if channel_id is None
            else Identity.channel_id == channel_id,
            Identity.value == value,
        )
    ).one_or_none()


def attach_identity(
    session: Session,
    book: TagBook,
    contact: Contact,
    kind: str,
    value: str,
    *,
    channel_id: int | None = None,
    followups: Followups | None = None,
) -> Contact:
    """Give the contact this identity. If another contact already has it, both are one
    person: they are merged, and the surviving contact is returned."""
    contact = live(session, contact)
    value = normalized_identity(kind, value)
    if not value:
        return contact
    existing = find_identity(session, contact.workspace_id, kind, channel_id, value)
    if existing is None:
        try:
            with session.begin_nested():
                session.add(
                    Identity(
                        workspace_id=contact.workspace_id,
                        contact_id=contact.id,
                        kind=kind,
                        channel_id=channel_id,
                        value=value,
                    )
                )
                session.flush()
            return contact
        except IntegrityError:  # attached meanwhile by another worker: fall through to merge
            existing = find_identity(session, contact.workspace_id, kind, channel_id, value)
    other = live(session, session.get(Contact, existing.contact_id))
    if other.id == contact.id:
        return contact
    keep, drop = (other, contact) if other.id < contact.id else (contact, other)
    merge_contacts(session, book, keep, drop, reason=f"{kind}:{value}", followups=followups)
    return keep


def merge_contacts(
    session: Session,
    book: TagBook,
    keep: Contact,
    drop: Contact,
    *,
    reason: str,
    followups: Followups | None = None,
) -> None:
    """Fold `drop` into `keep`: identities, interactions, tags, WeCom relations, journey
    enrolments (with their steps) and unsent journey messages follow.

    The merged contact stays as a pointer (merged_into_id) so old references resolve;
    merging again does nothing.
    """
    if drop.merged_into_id == keep.id or drop.id == keep.id:
        return
    if drop.workspace_id != keep.workspace_id:
        raise ValueError(f"contacts {keep.id} and {drop.id} are of two workspaces: never merged")
    session.flush()
    # Both rows locked in id order: two drains merging across lanes wait, never deadlock.
    session.execute(
        select(Contact.id)
        .where(Contact.workspace_id == keep.workspace_id, Contact.id.in_((keep.id, drop.id)))
        .order_by(Contact.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as scoring locks them
    )
    _merge_enrolments(session, keep, drop)
    for model in (Identity, Interaction, FollowRelation, ScoreEntry, Enrolment, OutboxItem):
        session.execute(
            update(model)
            .where(model.contact_id == drop.id)
            .values(contact_id=keep.id)
            .execution_options(synchronize_session="fetch")
        )
    _merge_tags(session, keep, drop)
    session.execute(
        update(Contact).where(Contact.merged_into_id == drop.id).values(merged_into_id=keep.id)
    )
    for column in ("name", "company", "title", "role", "seniority"):
        if getattr(keep, column) is None:
            setattr(keep, column, getattr(drop, column))
    if _stronger(drop.account_source, keep.account_source):
        keep.account_id, keep.account_source = drop.account_id, drop.account_source
    keep.first_seen_at = min(keep.first_seen_at, drop.first_seen_at)
    keep.last_seen_at = max(keep.last_seen_at, drop.last_seen_at)
    # The ledger moved with the interactions; the scores follow until the next rescoring.
    keep.score_mass += drop.score_mass
    keep.lead_score += drop.lead_score
    drop.score_mass = drop.lead_score = 0.0
    drop.merged_into_id = keep.id
    session.flush()
    if keep.account_id is not None:
        moved = interactions_accounts(session, keep.workspace_id, [keep.id])
        session.execute(
            update(Interaction)
            .where(Interaction.contact_id == keep.id)
            .values(account_id=keep.account_id)
            .execution_options(synchronize_session=False)
        )
        rebuild_activity(session, keep.workspace_id, moved | {keep.account_id})
    session.execute(
        insert_ignoring_conflicts(session.get_bind().dialect.name, ContactMerge.__table__).values(
            workspace_id=keep.workspace_id,
            kept_contact_id=keep.id,
            merged_contact_id=drop.id,
            reason=reason[:200],
        )
    )
    # The merged person's openids and WeCom relations now carry the kept contact's tags.
    queue_contact_resync(session, book, keep.id, followups)


def _merge_enrolments(session: Session, keep: Contact, drop: Contact) -> None:
    """One person is on a journey once: where both are on it, the enrolment further along
    (more steps taken; the kept contact's on a tie) stays and the other one's exit (logged
    as a move of its own), their unsent journey messages failed, never delivered, so no
    step is acted on twice. The rest move to `keep` with the contact_id update beside the
    other tables."""
    open_statuses = (EnrolmentStatus.ACTIVE, EnrolmentStatus.WAITING)
    query = (
        select(Enrolment)
        .where(
            Enrolment.workspace_id == keep.workspace_id,
            Enrolment.contact_id.in_((keep.id, drop.id)),
            Enrolment.status.in_(open_statuses),
        )
        .order_by(Enrolment.id)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        # A runner walking them finishes first; one that comes after skips them (SKIP LOCKED).
        query = query.with_for_update()
    by_journey: dict[int, list[Enrolment]] = {}
    for enrolment in session.scalars(query):
        by_journey.setdefault(enrolment.journey_id, []).append(enrolment)
    shared = [group for group in by_journey.values() if len({e.contact_id for e in group}) == 2]
    if not shared:
        return
    ids = [enrolment.id for group in shared for enrolment in group]
    steps_taken = dict(
        session.execute(
            select(Step.enrolment_id, func.count())
            .where(Step.enrolment_id.in_(ids))
            .group_by(Step.enrolment_id)
        ).all()
    )
    now = utcnow()
    exited = []
    for group in shared:
        ahead = max(group, key=lambda e: (steps_taken.get(e.id, 0), e.contact_id == keep.id, -e.id))
        for enrolment in group:
            if enrolment.contact_id == ahead.contact_id:
                continue
            enrolment.visit += 1
            session.add(
                Step(
                    enrolment_id=enrolment.id,
                    journey_id=enrolment.journey_id,
                    version=enrolment.version,
                    node_id=enrolment.node_id,
                    visit=enrolment.visit,
                    outcome="merged",
                    detail={
                        "into": keep.id,
                        "contact_id": enrolment.contact_id,
                        "enrolment_id": ahead.id,
                    },
                    at=now,
                )
            )
            enrolment.status = EnrolmentStatus.EXITED
            enrolment.next_run_at, enrolment.finished_at = None, now
            enrolment.awaits_enrichment = False
            exited.append(enrolment.id)
    _fail_unsent(session, keep, exited)
    session.flush()


def _fail_unsent(session: Session, keep: Contact, enrolment_ids: list[int]) -> None:
    """The exited enrolments' messages and webhooks not yet sent are never sent: the
    enrolment that stays took (or will take) those steps itself. A row a sender has
    claimed meanwhile is its own (the lock waits for it, then it is no longer pending)."""
    reason = f"merged into contact {keep.id}"
    query = (
        select(OutboxItem)
        .join(Step, Step.id == OutboxItem.step_id)
        .where(
            OutboxItem.workspace_id == keep.workspace_id,
            OutboxItem.status == OutboxStatus.PENDING,
            Step.enrolment_id.in_(enrolment_ids),
        )
        .order_by(OutboxItem.id)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=OutboxItem)
    for row in session.scalars(query):
        row.status, row.last_error = OutboxStatus.FAILED, reason
        step = session.get(Step, row.step_id)
        step.outcome = "failed"
        step.detail = {**step.detail, "error": reason, "message": False}


def _merge_tags(session: Session, keep: Contact, drop: Contact) -> None:
    rows = session.execute(
        select(ContactTag, Tag.group)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(ContactTag.contact_id.in_((keep.id, drop.id)))
    ).all()
    kept_groups = {group for link, group in rows if link.contact_id == keep.id}
    kept_tags = {link.tag_id for link, _ in rows if link.contact_id == keep.id}
    moving = [
        link
        for link, group in rows
        if link.contact_id == drop.id
        and link.tag_id not in kept_tags
        # The kept contact's role, seniority and industry win over the merged one's.
        and not (group in EXCLUSIVE_GROUPS and group in kept_groups)
    ]
    session.execute(
        delete(ContactTag)
        .where(ContactTag.contact_id == drop.id)
        .execution_options(synchronize_session="fetch")
    )
    for link in moving:
        session.add(
            ContactTag(
                contact_id=keep.id,
                tag_id=link.tag_id,
                workspace_id=link.workspace_id,
                source=link.source,
                rule_id=link.rule_id,
                created_at=link.created_at,
            )
        )


def _stronger(source: str | None, than: str | None) -> bool:
    if source is None:
        return False
    if than is None:
        return True
    return ACCOUNT_SOURCE_STRENGTH[source] > ACCOUNT_SOURCE_STRENGTH[than]


def title_dictionary(session: Session, workspace_id: int) -> TitleDictionary:
    rows = session.execute(
        select(TitleSynonym.phrase, TitleSynonym.role, TitleSynonym.seniority).where(
            TitleSynonym.workspace_id == workspace_id
        )
    )
    return TitleDictionary([tuple(row) for row in rows])


def set_title(
    session: Session,
    book: TagBook,
    dictionary: TitleDictionary,
    contact: Contact,
    title: str,
    *,
    only_if_known: bool = False,
    followups: Followups | None = None,
    later: "TitleTags | None" = None,
) -> bool:
    """Record the contact's title and tag the role and seniority it states (with `later`,
    the tags wait for the batch's one statement per tag: TitleTags).

    `only_if_known`: for text that may not be a title at all ("我是张三"), keep it only
    when the dictionary recognizes it. Returns whether the title was recorded.
    """
    title = title.strip()[: Contact.__table__.c.title.type.length]
    if not title:
        return False
    normalized = dictionary.normalize(title)
    known = not (normalized.role == "other" and normalized.seniority == "staff")
    if not known and only_if_known:
        return False
    contact.title = title
    if not known:
        return True  # a title the dictionary knows nothing about tags nothing
    tags = [book.get(session, TagGroup.SENIORITY, normalized.seniority)]
    if normalized.role != "other":
        tags.append(book.get(session, TagGroup.ROLE, normalized.role))
    if later is not None:
        later.add(contact.id, tags)
        return True
    session.flush()
    apply_tags(session, book, [contact.id], tags, source=TagSource.TITLE, followups=followups)
    return True


class TitleTags:
    """Role and seniority tags that a batch's titles stated, applied at the end of the batch
    with one apply_tags per distinct tag set instead of one per event (a contact's last
    title in the batch wins)."""

    def __init__(self):
        self._by_contact: dict[int, tuple] = {}

    def add(self, contact_id: int, tags: list) -> None:
        self._by_contact[contact_id] = tuple(tags)

    def apply(self, session: Session, book: TagBook, followups: Followups | None) -> None:
        session.flush()  # tags the batch named first
        groups: dict[tuple, list[int]] = {}
        for contact_id, tags in self._by_contact.items():
            kept = live(session, session.get(Contact, contact_id)).id  # merged meanwhile?
            groups.setdefault(tags, []).append(kept)
        self._by_contact = {}
        for tags, contact_ids in groups.items():
            apply_tags(
                session, book, contact_ids, list(tags), source=TagSource.TITLE, followups=followups
            )


def retag_titles(
    session: Session, workspace_id: int, followups: Followups | None = None, batch: int = 500
) -> int:
    """Re-read recorded titles after the dictionary changed. Role and seniority set by
    hand or by a rule (the follower said so) are kept; returns contacts re-tagged."""
    book = TagBook(session, workspace_id)
    dictionary = title_dictionary(session, workspace_id)
    retagged, after = 0, 0
    while True:
        contacts = session.scalars(
            select(Contact)
            .where(
                Contact.workspace_id == workspace_id,
                Contact.merged_into_id.is_(None),
                Contact.title.is_not(None),
                Contact.id > after,
            )
            .order_by(Contact.id)
            .limit(batch)
        ).all()
        if not contacts:
            return retagged
        after = contacts[-1].id
        decided = _decided_elsewhere(session, [c.id for c in contacts])
        for contact in contacts:
            normalized = dictionary.normalize(contact.title)
            wanted = {TagGroup.ROLE: normalized.role, TagGroup.SENIORITY: normalized.seniority}
            tags = [
                book.get(session, group, name)
                for group, name in wanted.items()
                if (contact.id, group) not in decided
                and name != "other"
                and getattr(contact, group) != name
            ]
            if tags:
                apply_tags(
                    session, book, [contact.id], tags, source=TagSource.TITLE, followups=followups
                )
                retagged += 1
        session.commit()


def _decided_elsewhere(session: Session, contact_ids: list[int]) -> set[tuple[int, str]]:
    """(contact, group) whose role / seniority tag came from someone, not from the title."""
    rows = session.execute(
        select(ContactTag.contact_id, Tag.group)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(
            ContactTag.contact_id.in_(contact_ids),
            Tag.group.in_((TagGroup.ROLE, TagGroup.SENIORITY)),
            ContactTag.source != TagSource.TITLE,
        )
    )
    return {(contact_id, group) for contact_id, group in rows}


def settle_merged(session: Session) -> int:
    """Move what reached a contact after it was merged (a drain that loaded the identity
    just before the merge committed) to the contact it was merged into."""
    merged = select(Contact.id).where(Contact.merged_into_id.is_not(None))
    moved = 0
    for model in (Identity, Interaction, FollowRelation):
        survivor = (
            select(Contact.merged_into_id).where(Contact.id == model.contact_id).scalar_subquery()
        )
        moved += session.execute(
            update(model)
            .where(model.contact_id.in_(merged))
            .values(contact_id=survivor)
            .execution_options(synchronize_session=False)
        ).rowcount
    return moved
