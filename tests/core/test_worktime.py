"""Working time: an SLA's clock runs in working hours only."""

from datetime import UTC, datetime, time

import pytest

from core.worktime import WorkingHours, add_working_hours

SHANGHAI = WorkingHours()  # Monday to Friday 09:00-18:00, Asia/Shanghai


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI.zone)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (local(2026, 12, 4, 17, 0), 4, local(2026, 12, 7, 12, 0)),  # Friday 17:00 -> Monday 12:00
        (local(2026, 12, 1, 10, 0), 4, local(2026, 12, 1, 14, 0)),  # within one day
        (local(2026, 12, 1, 7, 30), 4, local(2026, 12, 1, 13, 0)),  # before opening: from 09:00
        (local(2026, 12, 1, 20, 0), 4, local(2026, 12, 2, 13, 0)),  # after closing: next morning
        (local(2026, 12, 5, 11, 0), 1, local(2026, 12, 7, 10, 0)),  # Saturday: Monday
        (local(2026, 12, 1, 14, 0), 4, local(2026, 12, 1, 18, 0)),  # ends exactly at closing
        (local(2026, 12, 1, 9, 0), 20, local(2026, 12, 3, 11, 0)),  # more than two days' hours
    ],
)
def test_a_deadline_counts_working_hours_only(start, hours, due):
    assert add_working_hours(start, hours, SHANGHAI) == due.astimezone(UTC)


def test_the_answer_is_utc_and_other_schedules_are_honoured():
    weekend_shift = WorkingHours(start=time(10, 0), end=time(12, 0), days=(6, 7), timezone="UTC")
    due = add_working_hours(datetime(2026, 12, 4, 11, 0, tzinfo=UTC), 3, weekend_shift)
    assert due == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)  # Sat 10-12, then Sun 10-11
    assert due.tzinfo is UTC


def test_a_naive_moment_or_an_impossible_schedule_is_refused():
    with pytest.raises(ValueError):
        add_working_hours(datetime(2026, 12, 4, 17, 0), 4, SHANGHAI)
    with pytest.raises(ValueError):
        WorkingHours(start=time(18, 0), end=time(9, 0))
    with pytest.raises(ValueError):
        WorkingHours(days=())
