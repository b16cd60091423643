"""Mirroring Harpoon's synced tags into WeChat (OA user tags) and WeCom (corp tags).

Work comes from `tag_sync_items` (one row per follower, tag and channel; the
latest wish wins). A run creates the remote tags it needs, then sends the
items in the platform's batches: OA 50 openids per call, WeCom one mark_tag per
customer relation. A transient failure leaves the items failed with a backoff
(the sweeper retries them); a platform limit is a per-item status, not a crash.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.transient import is_transient
from crm.tags import TagBook
from models import (
    Channel,
    ChannelKind,
    FollowRelation,
    Identity,
    IdentityKind,
    RemoteStatus,
    SyncAction,
    SyncStatus,
    Tag,
    TagGroup,
    TagRemote,
    TagSyncItem,
    utcnow,
)
from wechat.clients import OPENIDS_PER_TAGGING, WeChatApiError, chunks

log = logging.getLogger(__name__)

OA_TAGS_PER_ACCOUNT = 100  # 45056 beyond
OA_TAGS_PER_FOLLOWER = 20  # 45059 beyond
OA_TAG_LIMIT = 45056
OA_TAG_NAME_TAKEN = 45157
OA_FOLLOWER_TAG_LIMIT = 45059
WECOM_TAG_NAME_TAKEN = 40071
WECOM_TAG_GROUP = "Harpoon"
MAX_ATTEMPTS = 8
BATCH = 2000


@dataclass
class SyncResult:
    done: int = 0
    failed: int = 0
    over_limit: int = 0
    remote_tags_created: int = 0
    errors: list[str] = field(default_factory=list)


def sync_channel(session: Session, channel: Channel, client) -> SyncResult:
    """Run the channel's due sync items; commits as it goes."""
    result = SyncResult()
    while True:
        items = _due(session, channel)
        if not items:
            return result
        remotes = _ensure_remotes(session, channel, client, {i.tag_id for i in items}, result)
        if channel.kind == ChannelKind.OA:
            _sync_oa(session, client, items, remotes, result)
        else:
            _sync_wecom(session, channel, client, items, remotes, result)
        session.commit()
        if len(items) < BATCH:
            return result


def _due(session: Session, channel: Channel) -> list[TagSyncItem]:
    return list(
        session.scalars(
            select(TagSyncItem)
            .where(
                TagSyncItem.channel_id == channel.id,
                TagSyncItem.status.in_((SyncStatus.PENDING, SyncStatus.FAILED)),
                TagSyncItem.next_attempt_at <= utcnow(),
                TagSyncItem.attempts < MAX_ATTEMPTS,
            )
            .order_by(TagSyncItem.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )


def ensure_remote_tags(
    session: Session, channel: Channel, client, tag_ids: set[int]
) -> dict[int, TagRemote]:
    """Each tag's twin on the channel, created on the platform when missing (an OA menu
    can match only a tag WeChat has); a twin whose status is not OK carries the error."""
    return _ensure_remotes(session, channel, client, tag_ids, SyncResult())


def _ensure_remotes(
    session: Session, channel: Channel, client, tag_ids: set[int], result: SyncResult
) -> dict[int, TagRemote]:
    """The remote twin of each tag, created on the platform when missing."""
    remotes = {
        r.tag_id: r
        for r in session.scalars(
            select(TagRemote).where(
                TagRemote.workspace_id == channel.workspace_id,
                TagRemote.channel_id == channel.id,
                TagRemote.tag_id.in_(tag_ids),
            )
        )
    }
    tags = session.scalars(
        select(Tag).where(Tag.workspace_id == channel.workspace_id, Tag.id.in_(tag_ids))
    ).all()
    for tag in tags:
        remote = remotes.get(tag.id)
        if remote is not None and remote.status == RemoteStatus.OK and remote.remote_id:
            continue
        if remote is None:
            remote = TagRemote(workspace_id=tag.workspace_id, tag_id=tag.id, channel_id=channel.id)
            session.add(remote)
            remotes[tag.id] = remote
        try:
            if channel.kind == ChannelKind.OA:
                remote.remote_id = _create_oa_tag(session, channel, client, tag)
            else:
                remote.remote_id = _create_corp_tag(client, tag)
            remote.status, remote.error, remote.synced_at = RemoteStatus.OK, None, utcnow()
            result.remote_tags_created += 1
        except WeChatApiError as exc:
            remote.status = (
                RemoteStatus.LIMIT if exc.errcode == OA_TAG_LIMIT else RemoteStatus.FAILED
            )
            remote.error = str(exc)[:500]
            result.errors.append(remote.error)
            log.warning("tag %s not created on channel %s: %s", tag.id, channel.id, exc)
    session.flush()
    return remotes


def _create_oa_tag(session: Session, channel: Channel, client, tag: Tag) -> str:
    mirrored = session.scalar(
        select(func.count()).where(
            TagRemote.channel_id == channel.id, TagRemote.status == RemoteStatus.OK
        )
    )
    if mirrored >= OA_TAGS_PER_ACCOUNT:
        raise WeChatApiError(OA_TAG_LIMIT, f"at most {OA_TAGS_PER_ACCOUNT} tags per account")
    try:
        return str(client.tag.create(tag.name)["id"])
    except WeChatApiError as exc:
        if exc.errcode != OA_TAG_NAME_TAKEN:
            raise
        # Made by an earlier run that died before recording it, or by hand: adopt it.
        existing = next((t for t in client.tag.get() if t["name"] == tag.name), None)
        if existing is None:
            raise
        return str(existing["id"])


def _create_corp_tag(client, tag: Tag) -> str:
    try:
        answer = client.post(
            "externalcontact/add_corp_tag",
            data={"group_name": WECOM_TAG_GROUP, "tag": [{"name": tag.name}]},
        )
        return answer["tag_group"]["tag"][0]["id"]
    except WeChatApiError as exc:
        if exc.errcode != WECOM_TAG_NAME_TAKEN:
            raise
        groups = client.post("externalcontact/get_corp_tag_list", data={})["tag_group"]
        for group in groups:
            if group["group_name"] == WECOM_TAG_GROUP:
                for corp_tag in group["tag"]:
                    if corp_tag["name"] == tag.name:
                        return corp_tag["id"]
        raise


def _sync_oa(
    session: Session,
    client,
    items: list[TagSyncItem],
    remotes: dict[int, TagRemote],
    result: SyncResult,
) -> None:
    mirrored = _mirrored_counts(session, items)
    groups: dict[tuple[int, str], list[TagSyncItem]] = defaultdict(list)
    for item in items:
        remote = remotes.get(item.tag_id)
        if remote is None or remote.status != RemoteStatus.OK:
            if item.action == SyncAction.REMOVE:
                _finish(item, SyncStatus.DONE, result)  # never mirrored: nothing to take off
            else:
                _fail(item, f"tag not on WeChat: {remote.error if remote else 'unknown'}", result)
            continue
        if item.action == SyncAction.ADD and mirrored[item.subject] >= OA_TAGS_PER_FOLLOWER:
            _over_limit(item, result)
            continue
        if item.action == SyncAction.ADD:
            mirrored[item.subject] += 1
        groups[(item.tag_id, item.action)].append(item)
    for (tag_id, action), group in groups.items():
        tag_remote_id = int(remotes[tag_id].remote_id)
        call = client.tag.untag_user if action == SyncAction.REMOVE else client.tag.tag_user
        for batch in chunks(group, OPENIDS_PER_TAGGING):
            _send_oa_batch(call, tag_remote_id, batch, result)


def _send_oa_batch(call, tag_remote_id: int, batch: list[TagSyncItem], result: SyncResult):
    try:
        call(tag_remote_id, [item.subject for item in batch])
    except WeChatApiError as exc:
        # Worth another try later; anything else is about the request: isolate the item.
        if is_transient(exc):
            for item in batch:
                _fail(item, str(exc), result, transient=True)
            return
        if len(batch) == 1:
            if exc.errcode == OA_FOLLOWER_TAG_LIMIT:
                _over_limit(batch[0], result)
            else:
                _fail(batch[0], str(exc), result)
            return
        # All or nothing on the platform: find the follower(s) at fault one by one.
        for item in batch:
            _send_oa_batch(call, tag_remote_id, [item], result)
        return
    for item in batch:
        _finish(item, SyncStatus.DONE, result)


def _mirrored_counts(session: Session, items: list[TagSyncItem]) -> dict[str, int]:
    """How many WeChat tags each follower already carries: ours, plus those set in the OA
    console that user/info reported (tagid_list) at enrichment."""
    subjects = {item.subject for item in items}
    channel_id = items[0].channel_id
    ours = set(
        session.scalars(
            select(TagRemote.remote_id).where(
                TagRemote.channel_id == channel_id, TagRemote.remote_id.is_not(None)
            )
        )
    )
    others = {
        openid: sum(1 for t in (details or {}).get("tagid_list") or () if str(t) not in ours)
        for openid, details in session.execute(
            select(Identity.value, Identity.details).where(
                Identity.channel_id == channel_id,
                Identity.kind == IdentityKind.OPENID,
                Identity.value.in_(subjects),
            )
        )
    }
    rows = session.execute(
        select(TagSyncItem.subject, func.count())
        .where(
            TagSyncItem.channel_id == channel_id,
            TagSyncItem.subject.in_(subjects),
            TagSyncItem.action == SyncAction.ADD,
            TagSyncItem.status == SyncStatus.DONE,
        )
        .group_by(TagSyncItem.subject)
    )
    counts = defaultdict(int, others)
    for subject, mirrored in rows:
        counts[subject] += mirrored
    return counts


def _sync_wecom(
    session: Session,
    channel: Channel,
    client,
    items: list[TagSyncItem],
    remotes: dict[int, TagRemote],
    result: SyncResult,
) -> None:
    by_customer: dict[str, list[TagSyncItem]] = defaultdict(list)
    for item in items:
        remote = remotes.get(item.tag_id)
        if remote is None or remote.status != RemoteStatus.OK:
            if item.action == SyncAction.REMOVE:
                _finish(item, SyncStatus.DONE, result)
            else:
                _fail(item, f"tag not in WeCom: {remote.error if remote else 'unknown'}", result)
            continue
        by_customer[item.subject].append(item)
    staff = defaultdict(list)
    for external_userid, staff_userid in session.execute(
        select(FollowRelation.external_userid, FollowRelation.staff_userid).where(
            FollowRelation.channel_id == channel.id,
            FollowRelation.external_userid.in_(by_customer),
            FollowRelation.removed_at.is_(None),
        )
    ):
        staff[external_userid].append(staff_userid)
    for external_userid, customer_items in by_customer.items():
        add = [remotes[i.tag_id].remote_id for i in customer_items if i.action == SyncAction.ADD]
        remove = [
            remotes[i.tag_id].remote_id for i in customer_items if i.action == SyncAction.REMOVE
        ]
        try:
            # Corp tags sit on each salesperson's relation with the customer.
            for userid in staff[external_userid]:
                client.post(
                    "externalcontact/mark_tag",
                    data={
                        "userid": userid,
                        "external_userid": external_userid,
                        "add_tag": add,
                        "remove_tag": remove,
                    },
                )
        except WeChatApiError as exc:
            for item in customer_items:
                _fail(item, str(exc), result, transient=is_transient(exc))
            continue
        for item in customer_items:
            _finish(item, SyncStatus.DONE, result)


def pull_corp_tags(session: Session, channel: Channel, client) -> int:
    """Corp tags made in the WeCom console become Harpoon tags (group manual, synced to
    WeCom) so marketers see and use them; returns how many were new to Harpoon."""
    book = TagBook(session, channel.workspace_id)
    known = set(
        session.scalars(select(TagRemote.remote_id).where(TagRemote.channel_id == channel.id))
    )
    groups = client.post("externalcontact/get_corp_tag_list", data={})["tag_group"]
    added = 0
    for group in groups:
        for corp_tag in group.get("tag") or []:
            if corp_tag["id"] in known or corp_tag.get("deleted"):
                continue
            tag = book.get(session, TagGroup.MANUAL, corp_tag["name"])
            tag.sync_wecom = True
            remote = session.scalars(
                select(TagRemote).where(
                    TagRemote.tag_id == tag.id, TagRemote.channel_id == channel.id
                )
            ).one_or_none()
            if remote is None:
                remote = TagRemote(
                    workspace_id=channel.workspace_id, tag_id=tag.id, channel_id=channel.id
                )
                session.add(remote)
            remote.remote_id, remote.status, remote.synced_at = (
                corp_tag["id"],
                RemoteStatus.OK,
                utcnow(),
            )
            added += 1
    session.commit()
    return added


def _finish(item: TagSyncItem, status: str, result: SyncResult) -> None:
    item.status, item.error = status, None
    result.done += status == SyncStatus.DONE


def _over_limit(item: TagSyncItem, result: SyncResult) -> None:
    item.status = SyncStatus.OVER_LIMIT
    item.error = f"the follower already has {OA_TAGS_PER_FOLLOWER} WeChat tags"
    result.over_limit += 1


def _fail(item: TagSyncItem, error: str, result: SyncResult, *, transient: bool = False) -> None:
    """Tried again after a backoff. A refusal counts toward MAX_ATTEMPTS; a transient failure
    never uses up the last one (a long outage must not abandon the work): it is retried at
    a long backoff until the platform answers."""
    item.attempts = min(item.attempts + 1, MAX_ATTEMPTS - 1) if transient else item.attempts + 1
    item.status = SyncStatus.FAILED
    item.error = error[:500]
    item.next_attempt_at = utcnow() + timedelta(seconds=min(30 * 2 ** (item.attempts - 1), 3600))
    result.failed += 1
