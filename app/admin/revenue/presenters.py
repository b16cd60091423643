"""The KPIs as the dashboard shows them: tiles with the change against the previous
period, money in yuan with thousands separators, and the charts' series."""

from dataclasses import dataclass
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

from revenue.kpis import Bucket, Kpis, LifecycleRow

# The tiles, in order: key -> (name, what it counts, kind). The kind says how a value
# reads and how its change is measured; for "days" less is better.
TILES = {
    "pipeline_created": (
        _l("Pipeline created"),
        _l("Amounts of the opportunities opened in the period"),
        "money",
    ),
    "weighted_pipeline": (
        _l("Weighted open pipeline"),
        _l("Open opportunities now: amount × probability"),
        "money",
    ),
    "won_revenue": (_l("Won revenue"), _l("Opportunities won in the period"), "money"),
    "win_rate": (_l("Win rate"), _l("Won of closed, by count"), "rate"),
    "deal_size": (_l("Average deal size"), _l("Won opportunities"), "money"),
    "sales_cycle": (
        _l("Sales cycle"),
        _l("Median days from opened to won"),
        "days",
    ),
    "mqa_conversion": (
        _l("MQA → opportunity"),
        _l("Accounts that became MQA in the period and had an opportunity since"),
        "rate",
    ),
    "dormant_recovery": (
        _l("Dormant accounts won back"),
        _l("Of the accounts quiet for 90 days when the period began"),
        "rate",
    ),
    "renewal_revenue": (_l("Renewal revenue"), _l("Won renewals"), "money"),
    "expansion_revenue": (_l("Expansion revenue"), _l("Won expansions"), "money"),
    "nps": (
        _l("NPS"),
        _l("Latest answer per person: share of promoters − share of detractors"),
        "score",
    ),
}
LIFECYCLE_NAMES = {
    "target": lazy_pgettext("lifecycle", "Target accounts"),
    "aware": lazy_pgettext("lifecycle", "Awareness"),
    "engaged": lazy_pgettext("lifecycle", "Engagement"),
    "mqa": lazy_pgettext("lifecycle", "Intent (MQA)"),
    "opportunity": lazy_pgettext("lifecycle", "Opportunity"),
    "customer": lazy_pgettext("lifecycle", "Won customer"),
    "expansion": lazy_pgettext("lifecycle", "Retention and expansion"),
}
TYPE_NAMES = {"new": _l("New"), "renewal": _l("Renewal"), "expansion": _l("Expansion")}


def money(amount: Decimal | None) -> str:
    """¥ with thousands separators; cents only when there are some."""
    if amount is None:
        return "—"
    text = f"¥{amount:,.2f}"
    return text[:-3] if text.endswith(".00") else text


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def days(value: float | None) -> str:
    return "—" if value is None else _("%(days)s days", days=f"{value:.1f}")


def _values(kpis: Kpis) -> dict:
    closed = kpis.closed
    return {
        "pipeline_created": kpis.pipeline.created_amount,
        "weighted_pipeline": kpis.pipeline.weighted,
        "won_revenue": closed.won_amount,
        "win_rate": closed.win_rate,
        "deal_size": closed.deal_size,
        "sales_cycle": closed.cycle_median,
        "mqa_conversion": kpis.mqa.rate,
        "dormant_recovery": kpis.recovery.rate,
        "renewal_revenue": closed.renewal_amount,
        "expansion_revenue": closed.expansion_amount,
        "nps": kpis.nps.score,
    }


def _details(kpis: Kpis) -> dict[str, str]:
    closed, mqa, recovery, nps = kpis.closed, kpis.mqa, kpis.recovery, kpis.nps
    return {
        "pipeline_created": _("%(count)s opportunities", count=kpis.pipeline.created),
        "weighted_pipeline": _(
            "%(count)s open, %(amount)s unweighted",
            count=kpis.pipeline.open,
            amount=money(kpis.pipeline.open_amount),
        ),
        "won_revenue": _("%(count)s won", count=closed.won),
        "win_rate": _(
            "%(won)s of %(closed)s; by amount %(rate)s",
            won=closed.won,
            closed=closed.won + closed.lost,
            rate=percent(closed.win_rate_amount),
        ),
        "deal_size": _("%(count)s won", count=closed.won),
        "sales_cycle": _("mean %(days)s", days=days(closed.cycle_mean)),
        "mqa_conversion": _(
            "%(converted)s of %(mqa)s; median %(days)s",
            converted=mqa.converted,
            mqa=mqa.mqa,
            days=days(mqa.median_days),
        ),
        "dormant_recovery": _(
            "%(back)s of %(dormant)s", back=recovery.recovered, dormant=recovery.dormant
        ),
        "renewal_revenue": "",
        "expansion_revenue": "",
        "nps": _(
            "%(answers)s answers: %(promoters)s promoters, %(detractors)s detractors",
            answers=nps.answers,
            promoters=nps.promoters,
            detractors=nps.detractors,
        ),
    }


def shown(value, kind: str) -> str:
    if kind == "money":
        return money(value)
    if kind == "rate":
        return percent(value)
    if kind == "days":
        return days(value)
    return "—" if value is None else f"{value:+.0f}" if value else "0"


@dataclass(frozen=True)
class Change:
    text: str
    direction: str  # up / down / same / none
    good: bool | None


def change(current, previous, kind: str) -> Change:
    """Against the previous period: money as a percentage, rates in points, days and NPS
    as a difference."""
    if current is None or previous is None:
        return Change("—", "none", None)
    if kind == "money":
        if not previous:
            return Change(_("new") if current else "—", "up" if current else "none", None)
        delta = float(current - previous) / float(previous) * 100
        text = f"{delta:+.1f}%"
    elif kind == "rate":
        delta = (current - previous) * 100
        text = _("%(points)s pts", points=f"{delta:+.1f}")
    elif kind == "days":
        delta = current - previous
        text = _("%(days)s days", days=f"{delta:+.1f}")
    else:
        delta = current - previous
        text = f"{delta:+.0f}"
    if abs(delta) < 0.05:
        return Change(text, "same", None)
    direction = "up" if delta > 0 else "down"
    return Change(text, direction, (delta < 0) if kind == "days" else (delta > 0))


def tiles(current: Kpis, previous: Kpis) -> list[dict]:
    now, before, details = _values(current), _values(previous), _details(current)
    rows = []
    for key, (name, description, kind) in TILES.items():
        compared = key != "weighted_pipeline"  # a snapshot of now, not of a period
        rows.append(
            {
                "key": key,
                "name": str(name),
                "description": str(description),
                "value": shown(now[key], kind),
                "detail": details[key],
                "change": change(now[key], before[key], kind) if compared else None,
                "previous": shown(before[key], kind) if compared else None,
            }
        )
    return rows


def lifecycle_rows(rows: list[LifecycleRow], stage_names: dict[str, str]) -> list[dict]:
    tile_names = {key: str(name) for key, (name, _d, _k) in TILES.items()}
    return [
        {
            "key": row.stage.key,
            "name": str(LIFECYCLE_NAMES[row.stage.key]),
            "stages": " · ".join(stage_names.get(key, key) for key in row.stage.account_stages),
            "accounts": row.accounts,
            "reached": row.reached,
            "next_rate": percent(row.next_rate) if row.next_rate is not None else "",
            "kpis": [tile_names[key] for key in row.stage.kpis],
        }
        for row in rows
    ]


def chart_data(series: list[Bucket], rows: list[LifecycleRow], current: Kpis) -> dict:
    """The charts' JSON: amounts as numbers (display only), rates as shares."""
    types = [kind for kind in TYPE_NAMES if any((b.won_by_type or {}).get(kind) for b in series)]
    return {
        "buckets": [b.name for b in series],
        "pipeline": [float(b.created_amount) for b in series],
        "won": [
            {
                "type": kind,
                "name": str(TYPE_NAMES[kind]),
                "amounts": [float((b.won_by_type or {}).get(kind, 0)) for b in series],
            }
            for kind in types or ["new"]
        ],
        "win_rate": [b.win_rate for b in series],
        "cycle": [None if b.cycle_median is None else round(b.cycle_median, 1) for b in series],
        "funnel": [
            {
                "name": str(LIFECYCLE_NAMES[row.stage.key]),
                "accounts": row.accounts,
                "reached": row.reached,
            }
            for row in rows
        ],
        "nps": [
            {"key": "promoters", "name": _("Promoters (9-10)"), "count": current.nps.promoters},
            {"key": "passives", "name": _("Passives (7-8)"), "count": current.nps.passives},
            {"key": "detractors", "name": _("Detractors (0-6)"), "count": current.nps.detractors},
        ],
        "labels": {
            "pipeline": _("Pipeline created"),
            "won": _("Won"),
            "win_rate": _("Win rate"),
            "cycle": _("Median sales cycle (days)"),
            "at_stage": _("At this stage"),
            "reached": _("At it or later"),
            "answers": _("Answers"),
        },
    }
