"""Tags, the rules that apply them, and their mirrors in WeChat and WeCom."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class TagGroup(StrEnum):
    ROLE = "role"
    SENIORITY = "seniority"
    INDUSTRY = "industry"
    INTEREST = "interest"
    BEHAVIOR = "behavior"
    SOURCE = "source"
    LIFECYCLE = "lifecycle"
    MANUAL = "manual"


# A contact holds at most one tag of these groups: a new one replaces the old.
EXCLUSIVE_GROUPS = frozenset({TagGroup.ROLE, TagGroup.SENIORITY, TagGroup.INDUSTRY})


class TagSource(StrEnum):
    """Who put a tag on a contact."""

    RULE = "rule"
    TITLE = "title"  # the title dictionary
    ACCOUNT = "account"  # the account's industry
    MANUAL = "manual"  # a marketer or salesperson in the admin
    WECOM = "wecom"  # a corp tag set in WeCom


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "group", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    group: Mapped[str] = mapped_column(String(20))
    # Role and seniority tags are named by their code (cio, c_level); the admin labels them.
    name: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(String(200), default="")
    # Mirrored as an OA user tag (menus, mass sends) / as a WeCom corp tag.
    sync_wechat: Mapped[bool] = mapped_column(Boolean, default=False)
    sync_wecom: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactTag(Base):
    __tablename__ = "contact_tags"
    __table_args__ = (Index("ix_contact_tags_tag", "tag_id"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    source: Mapped[str] = mapped_column(String(20))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("tag_rules.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuleKind(StrEnum):
    KEYWORD = "keyword"  # a message contains / matches -> tag, optional passive reply
    MENU = "menu"  # a menu click key -> tag (e.g. the "我是..." menu)
    PROFILE = "profile"  # "我是信息中心主任，来自华信科技" -> title and company
    SOURCE = "source"  # a QR scene / 联系我 state -> tag
    BEHAVIOR = "behavior"  # >= N interactions of a kind within D days -> tag
    INACTIVITY = "inactivity"  # no interaction for D days -> tag, removed on the next one


class TagRule(Base):
    __tablename__ = "tag_rules"
    __table_args__ = (Index("ix_tag_rules_workspace_kind", "workspace_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    # The tag it applies; PROFILE rules set title and company instead.
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"))
    # Kind-specific settings, validated by crm.rule_config.RULE_SCHEMAS.
    config: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    # A passive reply sent inside the callback (KEYWORD and MENU rules).
    reply: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TitleSynonym(Base):
    """A workspace's own title -> role / seniority entries, checked before the shipped ones."""

    __tablename__ = "title_synonyms"
    __table_args__ = (UniqueConstraint("workspace_id", "phrase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    # Found anywhere in the title, case-insensitively (e.g. "信息化办公室").
    phrase: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(30))
    seniority: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # retried by the next sync
    LIMIT = "limit"  # the platform's cap (100 OA tags per account) is reached


class TagRemote(Base):
    """A tag's twin on one channel: an OA user tag id or a WeCom corp tag id."""

    __tablename__ = "tag_remotes"
    __table_args__ = (
        UniqueConstraint("tag_id", "channel_id"),
        Index("ix_tag_remotes_channel_remote", "channel_id", "remote_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    remote_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=RemoteStatus.OK)
    error: Mapped[str | None] = mapped_column(String(500))
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class SyncStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # retried at next_attempt_at
    OVER_LIMIT = "over_limit"  # the follower already has 20 OA tags


class TagSyncItem(Base):
    """One follower's tag to add or remove on one channel: the latest wish wins."""

    __tablename__ = "tag_sync_items"
    __table_args__ = (
        UniqueConstraint("channel_id", "subject", "tag_id"),
        Index("ix_tag_sync_items_due", "status", "channel_id", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    # openid (OA) or external_userid (WeCom).
    subject: Mapped[str] = mapped_column(String(128))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default=SyncStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
