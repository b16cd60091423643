"""Dashboard: followers, follows per day, interactions per day by kind, inbox health; the
accounts' stage funnel and the ABM metrics of the target accounts (scoring.metrics)."""

from datetime import date, timedelta

from flask import g, jsonify, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.labels import CONTACT_ROLE_LABELS, stage_names
from core.days import last_days
from crm.accounts import BUYING_COMMITTEE
from models import utcnow
from pipeline import inbox
from scoring.engine import load_model
from scoring.metrics import (
    AbmMetrics,
    abm_metrics,
    abm_trend,
    daily_interactions,
    daily_interactions_by_kind,
    follower_count,
    interaction_count,
    stage_funnel,
)

FOLLOW_DAYS = 30
KIND_DAYS = 14
ABM_DAYS = 30
# The five ABM metrics: key -> (name, what it counts).
ABM_METRICS = {
    "reach": (_l("Reach"), _l("Target accounts with at least one known contact")),
    "coverage": (
        _l("Committee coverage"),
        _l("Buying-committee roles known, of every role of every target account"),
    ),
    "awareness": (_l("Awareness"), _l("Target accounts with any interaction")),
    "engagement": (
        _l("Engagement"),
        _l("Target accounts with engagement points, or at the engaged stage or later"),
    ),
    "impact": (_l("Impact"), _l("Target accounts at the MQA stage or later")),
}
# The trend's lines, from the daily snapshots: key -> name.
ABM_TREND = {
    "aware": _l("Awareness"),
    "engaged": _l("Engagement"),
    "impact": _l("Impact"),
    "surging": _l("Surging"),
}


@bp.get("/")
@requires("view")
def dashboard():
    ws = workspace_id()
    since = utcnow() - timedelta(days=1)
    followers = follower_count(db(), ws)
    interactions_24h = interaction_count(db(), ws, since)
    follows_24h = interaction_count(db(), ws, since, kind="wechat.follow")
    health = inbox.status_counts(db(), ws)
    oldest_pending = inbox.oldest_pending(db(), ws)
    metrics = abm_metrics(db(), ws, load_model(db(), ws), BUYING_COMMITTEE)
    return render_template(
        "admin/dashboard.html",
        followers=followers,
        follows_24h=follows_24h,
        interactions_24h=interactions_24h,
        health=health,
        oldest_pending=oldest_pending,
        metrics=metrics,
        abm=_abm_rows(metrics),
        abm_days=ABM_DAYS,
    )


def _abm_rows(metrics: AbmMetrics) -> list[dict]:
    """The five metrics as the table and the bar chart show them."""
    slots = metrics.targets * len(metrics.committee_roles)
    counts = {
        "reach": (metrics.reached, metrics.targets, metrics.share(metrics.reached)),
        "coverage": (sum(metrics.roles_known.values()), slots, metrics.coverage),
        "awareness": (metrics.aware, metrics.targets, metrics.share(metrics.aware)),
        "engagement": (metrics.engaged, metrics.targets, metrics.share(metrics.engaged)),
        "impact": (metrics.impact, metrics.targets, metrics.share(metrics.impact)),
    }
    return [
        {
            "key": key,
            "name": str(name),
            "description": str(description),
            "count": counts[key][0],
            "of": counts[key][1],
            "share": round(counts[key][2], 4),
        }
        for key, (name, description) in ABM_METRICS.items()
    ]


@bp.get("/api/dashboard/abm")
@requires("view")
def dashboard_abm():
    """Chart data: the stage funnel, the ABM metrics with committee coverage per role, and
    their trend over the last ABM_DAYS days of snapshots (shares of target accounts)."""
    ws, tz = workspace_id(), g.get("workspace_timezone", "Asia/Shanghai")
    model = load_model(db(), ws)
    names = stage_names(model.stages)
    metrics = abm_metrics(db(), ws, model, BUYING_COMMITTEE)
    days = last_days(ABM_DAYS, tz)
    by_day = {
        row.day.isoformat(): row for row in abm_trend(db(), ws, model, date.fromisoformat(days[0]))
    }

    def share(day: str, key: str) -> float | None:
        row = by_day.get(day)
        return round(getattr(row, key) / row.accounts, 4) if row and row.accounts else None

    return jsonify(
        funnel=[
            {
                "key": stage.key,
                "name": names[stage.key],
                "accounts": stage.accounts,
                "reached": stage.reached,
            }
            for stage in stage_funnel(db(), ws, model)
        ],
        targets=metrics.targets,
        metrics=_abm_rows(metrics),
        impact_acv=metrics.impact_acv,
        roles=[
            {
                "role": role,
                "name": str(CONTACT_ROLE_LABELS[role]),
                "accounts": known,
                "share": round(metrics.share(known), 4),
            }
            for role, known in metrics.roles_known.items()
        ],
        trend={
            "days": days,
            "series": [
                {"key": key, "name": str(name), "shares": [share(day, key) for day in days]}
                for key, name in ABM_TREND.items()
            ],
        },
        labels={"at_stage": _("At this stage"), "reached": _("At it or later")},
    )


@bp.get("/api/dashboard/series")
@requires("view")
def dashboard_series():
    """Chart data: follows per day, interactions per day by kind (workspace time zone)."""
    ws, tz = workspace_id(), g.get("workspace_timezone", "Asia/Shanghai")
    follow_days = last_days(FOLLOW_DAYS, tz)
    follows = daily_interactions(
        db(),
        ws,
        tz,
        utcnow() - timedelta(days=FOLLOW_DAYS + 1),
        kind="wechat.follow",
    )
    kind_days = last_days(KIND_DAYS, tz)
    by_kind: dict[str, dict[str, int]] = {}
    rows = daily_interactions_by_kind(db(), ws, tz, utcnow() - timedelta(days=KIND_DAYS + 1))
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
