"""What the attribution pages show: the labels of models, dimensions and value-chain steps,
the filters read from the query string, and the charts' data."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _

from core.days import usable
from revenue.credit import DIMENSIONS, MODELS
from revenue.influence import ChainStep, Influence

MODEL_LABELS = {
    "first_touch": _("First touch"),
    "last_touch": _("Last touch"),
    "linear": _("Linear"),
    "u_shaped": _("U-shaped"),
    "w_shaped": _("W-shaped"),
    "time_decay": _("Time decay"),
}
MODEL_HINTS = {
    "first_touch": _("All the credit to the first touch in the window."),
    "last_touch": _("All the credit to the last touch before the deal was created or won."),
    "linear": _("Every touch in the window gets an equal share."),
    "u_shaped": _("First touch 40%, last touch 40%, the touches between 20%."),
    "w_shaped": _(
        "First touch 30%, the first touch after the account became an MQA (else the middle"
        " one) 30%, last touch 30%, the rest 10%."
    ),
    "time_decay": _("Recent touches count more: a touch 7 days older counts half as much."),
}
DIMENSION_LABELS = {
    "content": _("Content"),
    "push": _("Pushes"),
    "journey": _("Journeys"),
    "qr": _("QR codes"),
    "contact_way": _("Contact Me codes"),
    "join_way": _("Group join codes"),
    "form": _("Forms"),
    "campaign": _("Campaigns"),
    "event": _("Events"),
    "live": _("Live streams"),
    "email": _("Emails"),
    "sales": _("Sales touches"),
    "program": _("Tier programs"),
    "other": _("Other"),
}
CHAIN_LABELS = {
    "readers": _("Readers"),
    "followers": _("Followers"),
    "members": _("Members with contact details"),
    "mql": _("MQLs"),
    "mqa": _("MQA accounts"),
    "opportunities": _("Opportunities"),
    "revenue": _("Signed revenue"),
}
CHAIN_HINTS = {
    "readers": _("People who opened it (a merged contact counts once)."),
    "followers": _("Readers following one of your Official Accounts now."),
    "members": _("Readers who left a phone number or email, or submitted a form."),
    "mql": _(
        "Readers whose lead score reached the engaged threshold, or at stage Engaged or later."
    ),
    "mqa": _("The readers' accounts that are MQAs now."),
    "opportunities": _(
        "Opportunities on the readers' accounts created after the account's first read."
    ),
    "revenue": _("The won amount of those opportunities."),
}
CHART_ROWS = 15
assert set(MODEL_LABELS) == set(MODELS) and set(DIMENSION_LABELS) == set(DIMENSIONS)


@dataclass
class Filters:
    model: str = "linear"
    dimension: str = "content"
    since: date | None = None
    until: date | None = None  # the last day counted
    errors: dict[str, str] = field(default_factory=dict)

    def bounds(self, timezone: str) -> tuple[datetime | None, datetime | None]:
        """The range in UTC: from the first day's local midnight to after the last day."""
        zone = ZoneInfo(timezone)
        since = datetime.combine(self.since, time(), zone) if self.since else None
        until = (
            datetime.combine(self.until + timedelta(days=1), time(), zone) if self.until else None
        )
        return since, until

    def args(self, **changes) -> dict:
        values = {
            "model": self.model,
            "dimension": self.dimension,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in {**values, **changes}.items() if value}


def filters(args) -> Filters:
    """The query string's choices; an unknown model or dimension or a bad date is named
    and left out (the page shows the default instead), never an error page."""
    chosen = Filters()
    model, dimension = args.get("model"), args.get("dimension")
    if model:
        if model in MODELS:
            chosen.model = model
        else:
            chosen.errors["model"] = _("Unknown model: showing Linear.")
    if dimension:
        if dimension in DIMENSIONS:
            chosen.dimension = dimension
        else:
            chosen.errors["dimension"] = _("Unknown dimension: showing Content.")
    for name in ("since", "until"):
        value = args.get(name)
        if value:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                chosen.errors[name] = _("Not a date (YYYY-MM-DD): ignored.")
                continue
            if usable(day):
                setattr(chosen, name, day)
            else:
                chosen.errors[name] = _("A date between 2000 and 2100: ignored.")
    if chosen.since and chosen.until and chosen.until < chosen.since:
        chosen.errors["until"] = _("Must not be before the start: ignored.")
        chosen.until = None
    return chosen


def chart(rows: list[Influence]) -> dict:
    top = rows[:CHART_ROWS]
    return {
        "names": [row.name for row in top],
        "pipeline": [float(row.pipeline) for row in top],
        "revenue": [float(row.revenue) for row in top],
        "labels": {"pipeline": str(_("Influenced pipeline")), "revenue": str(_("Won revenue"))},
    }


def funnel(steps: list[ChainStep]) -> list[list]:
    """The counted steps for the funnel chart (revenue is money: shown beside it)."""
    return [[str(CHAIN_LABELS[s.key]), s.value] for s in steps if s.key != "revenue"]
