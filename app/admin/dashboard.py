"""Dashboard: followers, follows per day, interactions per day by kind, inbox health."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import g, jsonify, render_template
from sqlalchemy import func, literal_column, select

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.contacts import INTERACTION_LABELS
from handlers import inbox
from models import Identity, IdentityKind, Interaction, utcnow

FOLLOW_DAYS = 30
KIND_DAYS = 14


def local_day(column, timezone: str):
    """The calendar day of a UTC timestamp in the workspace's time zone, in SQL."""
    dialect = db().get_bind().dialect.name
    if dialect == "postgresql":
        return func.to_char(func.timezone(timezone, column), "YYYY-MM-DD")
    # SQLite has no time zones: today's offset, in minutes (right for fixed-offset zones
    # such as Asia/Shanghai; approximate across a daylight-saving change).
    minutes = int(datetime.now(ZoneInfo(timezone)).utcoffset().total_seconds() // 60)
    return func.date(column, literal_column(f"'{minutes:+d} minutes'"))


def last_days(count: int, timezone: str) -> list[str]:
    today = datetime.now(ZoneInfo(timezone)).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(count - 1, -1, -1)]


@bp.get("/")
@requires("view")
def dashboard():
    ws = workspace_id()
    since = utcnow() - timedelta(days=1)
    followers = db().scalar(
        select(func.count()).where(
            Identity.workspace_id == ws,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
        )
    )
    interactions_24h = db().scalar(
        select(func.count()).where(Interaction.workspace_id == ws, Interaction.occurred_at >= since)
    )
    follows_24h = db().scalar(
        select(func.count()).where(
            Interaction.workspace_id == ws,
            Interaction.kind == "wechat.follow",
            Interaction.occurred_at >= since,
        )
    )
    health = inbox.status_counts(db(), ws)
    oldest_pending = inbox.oldest_pending(db(), ws)
    return render_template(
        "admin/dashboard.html",
        followers=followers,
        follows_24h=follows_24h,
        interactions_24h=interactions_24h,
        health=health,
        oldest_pending=oldest_pending,
    )


@bp.get("/api/dashboard/series")
@requires("view")
def dashboard_series():
    """Chart data: follows per day, interactions per day by kind (workspace time zone)."""
    ws, tz = workspace_id(), g.get("workspace_timezone", "Asia/Shanghai")
    follow_days = last_days(FOLLOW_DAYS, tz)
    day = local_day(Interaction.occurred_at, tz)
    follows = dict(
        db()
        .execute(
            select(day, func.count())
            .where(
                Interaction.workspace_id == ws,
                Interaction.kind == "wechat.follow",
                Interaction.occurred_at >= utcnow() - timedelta(days=FOLLOW_DAYS + 1),
            )
            .group_by(day)
        )
        .all()
    )
    kind_days = last_days(KIND_DAYS, tz)
    by_kind: dict[str, dict[str, int]] = {}
    rows = db().execute(
        select(Interaction.kind, day, func.count())
        .where(
            Interaction.workspace_id == ws,
            Interaction.occurred_at >= utcnow() - timedelta(days=KIND_DAYS + 1),
        )
        .group_by(Interaction.kind, day)
    )
    for kind, on, count in rows:
        by_kind.setdefault(kind, {})[on] = count
    return jsonify(
        follows={"days": follow_days, "counts": [follows.get(d, 0) for d in follow_days]},
        interactions={
            "days": kind_days,
            "series": [
                {
                    "kind": kind,
                    "label": str(INTERACTION_LABELS.get(kind, kind)),
                    "counts": [counts.get(d, 0) for d in kind_days],
                }
                for kind, counts in sorted(by_kind.items())
            ],
        },
    )
