from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class IdentityKind(StrEnum):
    OPENID = "openid"  # per OA channel
    UNIONID = "unionid"  # per workspace (one Open Platform account)
    EXTERNAL_USERID = "external_userid"  # per WeCom corp channel
    PHONE = "phone"
    EMAIL = "email"


class AccountSource(StrEnum):
    """Where a contact's company came from; a stronger source is never overridden by a weaker."""

    SELF = "self"  # the follower said so in a message
    EMAIL = "email"  # the domain of their email address
    FORM = "form"  # a form they filled in
    WECOM = "wecom"  # WeCom's corp_name (a WeCom user's own company)
    WECOM_REMARK = "wecom_remark"  # remark_corp_name, typed by the salesperson
    MANUAL = "manual"  # a marketer's assignment in the admin: always wins


ACCOUNT_SOURCE_STRENGTH = {source: rank for rank, source in enumerate(AccountSource)}


class Contact(Base):
    """A person (lead)."""

    __tablename__ = "contacts"
    __table_args__ = (
        # The admin list: a workspace's contacts, most recently active first.
        Index("ix_contacts_workspace_last_seen", "workspace_id", "last_seen_at"),
        # The buying-committee views: an account's contacts by role.
        Index("ix_contacts_workspace_role", "workspace_id", "role"),
        # Who was merged into a contact (a journey's skip check and cap read them all).
        Index(
            "ix_contacts_merged_into",
            "merged_into_id",
            postgresql_where=text("merged_into_id IS NOT NULL"),
            sqlite_where=text("merged_into_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    account_source: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(100))
    # The company as the person or the salesperson wrote it (the account has the clean name).
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(100))
    # Normalized from the title (crm.titles) or stated by the follower.
    role: Mapped[str | None] = mapped_column(String(30))
    seniority: Mapped[str | None] = mapped_column(String(20))
    # Set when a unionid / phone / email showed this is the same person as another contact.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Scoring: the sum of the ledger's weights, and the lead score as of scored_at (today's
    # is scoring.engine.lead_score_at(score_mass, ...); decay never rewrites contacts).
    score_mass: Mapped[float] = mapped_column(Float, default=0.0)
    lead_score: Mapped[float] = mapped_column(Float, default=0.0)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last positive points
    stage: Mapped[str | None] = mapped_column(String(30))

    identities: Mapped[list["Identity"]] = relationship(back_populates="contact")


class Identity(Base):
    """One way to recognise a contact: an openid, unionid, external_userid, ..."""

    __tablename__ = "identities"
    __table_args__ = (
        # channel_id is NULL for workspace-wide kinds; coalesce keeps those unique too.
        Index(
            "uq_identities_workspace_kind_channel_value",
            "workspace_id",
            "kind",
            text("coalesce(channel_id, 0)"),
            "value",
            unique=True,
        ),
        # Exact lookup by value alone (admin search by openid / external_userid / unionid).
        Index("ix_identities_workspace_value", "workspace_id", "value"),
        # The enrichment jobs: a channel's identities not yet looked up.
        Index("ix_identities_channel_enriched", "channel_id", "enriched_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    value: Mapped[str] = mapped_column(String(128))
    # For OA openids: is the person following that OA now, as of which event.
    following: Mapped[bool | None] = mapped_column(Boolean)
    following_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the platform told us about it (user/info, externalcontact/get), and when.
    details: Mapped[dict | None] = mapped_column(JSONDoc)
    enriched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")

    def set_following(self, following: bool, as_of: datetime) -> None:
        """Events may be processed out of order (retries, parallel drains): newest wins."""
        if self.following_changed_at is None or as_of >= self.following_changed_at:
            self.following = following
            self.following_changed_at = as_of


class ContactMerge(Base):
    """Two contacts found to be one person: the record of the merge (done once)."""

    __tablename__ = "contact_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    kept_contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    merged_contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    # The identity both turned out to share, e.g. "unionid:o6_bmasdasdsad6_2sgVt7hMZOPfL".
    reason: Mapped[str] = mapped_column(String(200))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
