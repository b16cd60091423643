"""The dashboard's GET filters read leniently: a value that names nothing (an unknown
tier or owner, a malformed date) is ignored with a message, never an error page."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _

from revenue.kpis import GRAINS

DEFAULT_MONTHS = 6
MAX_DAYS = 3 * 366  # a week's bucket each: at most ~157 bars
EARLIEST = date(2000, 1, 1)


@dataclass
class Filters:
    """What the dashboard shows: local dates first..last (inclusive), tier, owner, grain."""

    first: date
    last: date
    grain: str = "month"
    tier: int | None = None
    owner_id: int | None = None
    messages: list[str] = field(default_factory=list)

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """[start, end) in UTC: local midnight of the first day to that after the last."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(self.first, time(), zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return start, end

    def args(self) -> dict[str, str]:
        """The GET arguments that show these filters again."""
        shown = {"start": self.first.isoformat(), "end": self.last.isoformat(), "grain": self.grain}
        if self.tier is not None:
            shown["tier"] = str(self.tier)
        if self.owner_id is not None:
            shown["owner"] = str(self.owner_id)
        return shown


def default_first(today: date) -> date:
    """The first day of the month DEFAULT_MONTHS - 1 months back: six whole-ish months."""
    month = today.month - (DEFAULT_MONTHS - 1)
    year = today.year + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1)


def _day(value: str | None, messages: list[str], problem: str) -> date | None:
    """The date a YYYY-MM-DD argument names; None (and the problem noted) otherwise."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        messages.append(problem)
        return None


def read_filters(
    args, *, today: date, tiers: list[int], owners: dict[int, str], forced_owner: int | None
) -> Filters:
    """The filters `args` ask for; `owners` are the users one may choose (id -> name),
    `forced_owner` the only owner a salesperson may see."""
    messages: list[str] = []
    first = _day(
        args.get("start"),
        messages,
        _("The start date is not a date (YYYY-MM-DD); the default is shown."),
    )
    last = _day(
        args.get("end"), messages, _("The end date is not a date (YYYY-MM-DD); today is shown.")
    )
    if (first and first < EARLIEST) or (last and last < EARLIEST):
        messages.append(_("Dates before 2000 are not shown."))
        first = max(first, EARLIEST) if first else None
        last = max(last, EARLIEST) if last else None
    if first and first > today:
        messages.append(_("The start date was after today; today is shown."))
    if first and last and first > last:
        messages.append(_("The start date was after the end date; they were swapped."))
        first, last = last, first
    last = min(last or today, today)
    first = min(first or default_first(last), last)
    if (last - first).days > MAX_DAYS:
        messages.append(_("At most three years at once: the start date was moved."))
        first = last - timedelta(days=MAX_DAYS)
    grain = args.get("grain") or "month"
    if grain not in GRAINS:
        grain = "month"
    tier = None
    asked_tier = (args.get("tier") or "").strip()
    if asked_tier:
        if asked_tier.isascii() and asked_tier.isdigit() and int(asked_tier) in tiers:
            tier = int(asked_tier)
        else:
            messages.append(_("No tier %(tier)s: every tier is shown.", tier=asked_tier[:20]))
    owner = forced_owner
    asked_owner = (args.get("owner") or "").strip()
    if forced_owner is None and asked_owner:
        if asked_owner.isascii() and asked_owner.isdigit() and int(asked_owner) in owners:
            owner = int(asked_owner)
        else:
            messages.append(_("No such owner: every owner's accounts are shown."))
    return Filters(first, last, grain, tier, owner, messages)
