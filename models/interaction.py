from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow

# Interactions that carry a QR scene; a query that names them literally can use the
# partial index below (a bound parameter cannot match its predicate).
SCAN_KINDS = ("wechat.follow", "wechat.scan")
SCAN_PREDICATE = f"kind IN ({', '.join(repr(kind) for kind in SCAN_KINDS)})"
# NPS answers (revenue.kpis): a sliver of all interactions, read by period.
NPS_KIND = "survey.nps"
NPS_PREDICATE = f"kind = '{NPS_KIND}'"


class Interaction(Base):
    """One normalized touchpoint of a contact."""

    __tablename__ = "interactions"
    __table_args__ = (
        # Reprocessing an inbound event adds nothing.
        UniqueConstraint("source_event_id", "kind"),
        Index("ix_interactions_workspace_occurred", "workspace_id", "occurred_at"),
        Index("ix_interactions_contact_occurred", "contact_id", "occurred_at"),
        # Channel QR code stats: a channel's follows and scans only (a small slice of all).
        Index(
            "ix_interactions_channel_scans",
            "channel_id",
            "occurred_at",
            postgresql_where=text(SCAN_PREDICATE),
            sqlite_where=text(SCAN_PREDICATE),
        ),
        # Dormant accounts (revenue.kpis): an account's last activity before a day.
        Index("ix_interactions_account_occurred", "account_id", "occurred_at"),
        Index(
            "ix_interactions_nps",
            "workspace_id",
            "occurred_at",
            postgresql_where=text(NPS_PREDICATE),
            sqlite_where=text(NPS_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    kind: Mapped[str] = mapped_column(String(64))
    properties: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    engagement_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
