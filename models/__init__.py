"""SQLAlchemy models, one module per aggregate."""

from models.account import Account
from models.base import Base, Database, utcnow
from models.channel import Channel, ChannelKind, MessageMode
from models.contact import Contact, Identity, IdentityKind
from models.inbox import InboundEvent, InboxStatus
from models.interaction import Interaction
from models.user import AuditLog, Role, User
from models.workspace import Workspace

__all__ = [
    "Account",
    "AuditLog",
    "Base",
    "Channel",
    "ChannelKind",
    "Contact",
    "Database",
    "Identity",
    "IdentityKind",
    "InboundEvent",
    "InboxStatus",
    "Interaction",
    "MessageMode",
    "Role",
    "User",
    "Workspace",
    "utcnow",
]
