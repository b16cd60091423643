from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, EncryptedString, JSONDoc, UTCDateTime, utcnow


class Workspace(Base):
    """One customer company of Harpoon (the tenant)."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # A push to more followers than this waits for an admin's approval.
    push_approval_threshold: Mapped[int] = mapped_column(Integer, default=1000)
    # Contacts who receive a push's preview (message/mass/preview).
    push_test_contact_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    # Marketing messages (journey messages and pushes) a contact receives a day at most.
    messages_per_day: Mapped[int] = mapped_column(Integer, default=2)
    # A salesperson's WeCom alerts: at most one digest every this many minutes, and at most
    # this many messages a day (MQA entries go out past the cap; the rest wait for tomorrow).
    digest_minutes: Mapped[int] = mapped_column(Integer, default=60)
    staff_messages_per_day: Mapped[int] = mapped_column(Integer, default=8)
    # An MQA or a surge gives the account's owner a task due in this many hours.
    alert_task_hours: Mapped[int] = mapped_column(Integer, default=4)
    # Where Harpoon tells the CRM that an account reached MQA or was routed (signed with
    # the workspace's webhook secret); None: not told.
    crm_webhook_url: Mapped[str | None] = mapped_column(String(500))
    # The workspace's own SMTP server for journey and push email (smtp[s]://user:pw@host:port)
    # and its From address; None: HARPOON_SMTP_URL and HARPOON_MAIL_FROM.
    smtp_url: Mapped[str | None] = mapped_column(EncryptedString(600))
    mail_from: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
