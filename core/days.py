"""Calendar days in a workspace's time zone: the last few of them, and a timestamp's day
computed in SQL on PostgreSQL or SQLite."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal_column
from sqlalchemy.orm import Session

# The days a person's input may name: outside them a date is a typo, and converting one
# across time zones (or binding it) can overflow.
FIRST_USABLE = date(2000, 1, 1)
LAST_USABLE = date(2100, 12, 31)


def usable(day: date) -> bool:
    """Whether a typed day (or a datetime's day) lies in FIRST_USABLE..LAST_USABLE."""
    if isinstance(day, datetime):
        day = day.date()
    return FIRST_USABLE <= day <= LAST_USABLE


def local_day(session: Session, column, timezone: str):
    """The calendar day ("YYYY-MM-DD") of a UTC timestamp in the time zone, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(timezone, column), "YYYY-MM-DD")
    # SQLite has no time zones: today's offset, in minutes (right for fixed-offset zones
    # such as Asia/Shanghai; approximate across a daylight-saving change).
    minutes = int(datetime.now(ZoneInfo(timezone)).utcoffset().total_seconds() // 60)
    return func.date(column, literal_column(f"'{minutes:+d} minutes'"))


def last_days(count: int, timezone: str) -> list[str]:
    """The last `count` calendar days in the time zone, today last, as "YYYY-MM-DD"."""
    today = datetime.now(ZoneInfo(timezone)).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(count - 1, -1, -1)]
