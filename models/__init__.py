"""SQLAlchemy models, one module per aggregate."""

from models.account import Account
from models.base import Base, Database, utcnow
from models.channel import Channel, ChannelKind, MessageMode
from models.contact import (
    ACCOUNT_SOURCE_STRENGTH,
    AccountSource,
    Contact,
    ContactMerge,
    Identity,
    IdentityKind,
)
from models.imports import AccountImport, ImportStatus
from models.inbox import InboundEvent, InboxStatus
from models.interaction import Interaction
from models.scoring import AccountSnapshot, ScoreEntry, ScoringModel, StageChange
from models.tag import (
    EXCLUSIVE_GROUPS,
    ContactTag,
    RemoteStatus,
    RuleKind,
    SyncAction,
    SyncStatus,
    Tag,
    TagGroup,
    TagRemote,
    TagRule,
    TagSource,
    TagSyncItem,
    TitleSynonym,
)
from models.user import AuditLog, Role, User
from models.wecom import (
    ContactWay,
    FollowRelation,
    GroupSend,
    NotificationStatus,
    Staff,
    StaffNotification,
    WelcomeMessage,
    WelcomeStatus,
)
from models.workspace import Workspace

__all__ = [
    "ACCOUNT_SOURCE_STRENGTH",
    "EXCLUSIVE_GROUPS",
    "Account",
    "AccountImport",
    "AccountSnapshot",
    "AccountSource",
    "AuditLog",
    "Base",
    "Channel",
    "ChannelKind",
    "Contact",
    "ContactMerge",
    "ContactTag",
    "ContactWay",
    "Database",
    "FollowRelation",
    "GroupSend",
    "Identity",
    "IdentityKind",
    "ImportStatus",
    "InboundEvent",
    "InboxStatus",
    "Interaction",
    "MessageMode",
    "NotificationStatus",
    "RemoteStatus",
    "Role",
    "RuleKind",
    "ScoreEntry",
    "ScoringModel",
    "Staff",
    "StaffNotification",
    "StageChange",
    "SyncAction",
    "SyncStatus",
    "Tag",
    "TagGroup",
    "TagRemote",
    "TagRule",
    "TagSource",
    "TagSyncItem",
    "TitleSynonym",
    "User",
    "WelcomeMessage",
    "WelcomeStatus",
    "Workspace",
    "utcnow",
]
