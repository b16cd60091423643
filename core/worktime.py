"""Working time: a deadline N working hours after a moment, within working days and hours
in a time zone (an SLA's clock stops at night and at the weekend).

Pure arithmetic on aware datetimes; the answers are in UTC.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAYS = (1, 2, 3, 4, 5)  # ISO weekdays: Monday to Friday


@dataclass(frozen=True)
class WorkingHours:
    """Working days (ISO weekdays, 1 = Monday) and the hours of each, in a time zone."""

    start: time = time(9, 0)
    end: time = time(18, 0)
    days: tuple[int, ...] = DEFAULT_DAYS
    timezone: str = "Asia/Shanghai"

    def __post_init__(self):
        if not self.start < self.end:
            raise ValueError("working hours must end after they start")
        if not self.days or not set(self.days) <= set(range(1, 8)):
            raise ValueError("working days are ISO weekdays 1-7, at least one")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working window (local, aware), or None on a day off."""
        if day.isoweekday() not in self.days:
            return None
        return (
            datetime.combine(day, self.start, tzinfo=self.zone),
            datetime.combine(day, self.end, tzinfo=self.zone),
        )


def add_working_hours(moment: datetime, hours: float, schedule: WorkingHours) -> datetime:
    """The moment `hours` of working time after `moment` (UTC). Time outside working hours
    does not count: Friday 17:00 plus 4 hours, Monday to Friday 9-18, is Monday 12:00."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    left = timedelta(hours=hours)
    local = moment.astimezone(schedule.zone)
    day = local.date()
    for _ in range(366 * 2):  # at least one working day a week: a year is plenty
        window = schedule._window(day)
        if window is not None:
            start, end = window
            begin = max(start, local)
            if begin < end:
                if begin + left <= end:
                    return (begin + left).astimezone(UTC)
                left -= end - begin
        day += timedelta(days=1)
    raise ValueError("no working time found")
