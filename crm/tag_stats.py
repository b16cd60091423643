"""What the tags page counts per tag and per channel: holders and rules of each tag, the
sync items of each channel by status, the synced tags with their remote twins, and the
newest sync problems."""

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models import Channel, ContactTag, SyncStatus, Tag, TagRemote, TagRule, TagSyncItem

PROBLEM_STATUSES = (SyncStatus.FAILED, SyncStatus.OVER_LIMIT)


def holder_counts(session: Session, workspace_id: int) -> dict[int, int]:
    """Tag id -> how many contacts hold it (tags nobody holds are left out)."""
    return dict(
        session.execute(
            select(ContactTag.tag_id, func.count())
            .where(ContactTag.workspace_id == workspace_id)
            .group_by(ContactTag.tag_id)
        ).all()
    )


def rule_counts(session: Session, workspace_id: int) -> dict[int, int]:
    """Tag id -> how many rules apply it (tags no rule applies are left out)."""
    return dict(
        session.execute(
            select(TagRule.tag_id, func.count())
            .where(TagRule.workspace_id == workspace_id, TagRule.tag_id.is_not(None))
            .group_by(TagRule.tag_id)
        ).all()
    )


def sync_counts(session: Session, workspace_id: int) -> dict[int, dict[str, int]]:
    """Channel id -> sync status -> how many items."""
    counts: dict[int, dict[str, int]] = {}
    for channel_id, status, count in session.execute(
        select(TagSyncItem.channel_id, TagSyncItem.status, func.count())
        .where(TagSyncItem.workspace_id == workspace_id)
        .group_by(TagSyncItem.channel_id, TagSyncItem.status)
    ):
        counts.setdefault(channel_id, {})[status] = count
    return counts


def synced_tags(session: Session, workspace_id: int) -> list[Tag]:
    """The tags mirrored to WeChat or WeCom, by group then name."""
    return list(
        session.scalars(
            select(Tag)
            .where(Tag.workspace_id == workspace_id, or_(Tag.sync_wechat, Tag.sync_wecom))
            .order_by(Tag.group, Tag.name)
        )
    )


def tag_remotes(session: Session, workspace_id: int) -> dict[tuple[int, int], TagRemote]:
    """(channel id, tag id) -> the tag's twin on that channel."""
    return {
        (remote.channel_id, remote.tag_id): remote
        for remote in session.scalars(
            select(TagRemote).where(TagRemote.workspace_id == workspace_id)
        )
    }


def sync_problems(session: Session, workspace_id: int, limit: int) -> list:
    """The newest `limit` items that failed or hit a platform limit: (item, tag, channel
    name)."""
    return list(
        session.execute(
            select(TagSyncItem, Tag, Channel.name)
            .join(Tag, Tag.id == TagSyncItem.tag_id)
            .join(Channel, Channel.id == TagSyncItem.channel_id)
            .where(
                TagSyncItem.workspace_id == workspace_id,
                TagSyncItem.status.in_(PROBLEM_STATUSES),
            )
            .order_by(TagSyncItem.updated_at.desc(), TagSyncItem.id.desc())
            .limit(limit)
        )
    )
