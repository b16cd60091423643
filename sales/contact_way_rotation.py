"""联系我 codes that rotate their staff, as peers' 渠道活码 do: round-robin or by load,
a daily cap per member, backup staff, weekday hours and auto-accept windows.

WeCom hands an add through a several-person code to one of the code's `user` list at
random, and `update_contact_way` changes that list and `skip_verify` without changing
the QR image. So Harpoon rotates a code by pointing it, at the right moments, at the
members who may receive the next add:

- "all": every eligible member (WeCom picks among them at random);
- "round_robin": the one eligible member whose turn it is — the fewest adds through
  this code today, then the longest since their last add through it, then the order of
  the code's members. One member at a time: a burst that arrives before the update
  lands on the same member, and the next turns even it out (turns are counted, not
  remembered);
- "by_load": the eligible members with the fewest new customers today from any source
  (every code, every add in the corp): whoever is least busy today, several when tied.

Eligible: active (still has the customer-contact permission), under the daily cap
through this code, and inside the code's weekday hours. When nobody is, the backup staff
receive the adds. The auto-accept windows set skip_verify: without verification inside
them, verified outside.

Adds are counted from FollowRelation rows (a query, never a counter that drifts), per
calendar day in the workspace's time zone. The drain asks for `rotate_contact_way` after
every add through a managed code. Each run records on the code `next_check_at`, the next
moment its wanted config can change on its own (the day rollover, a schedule or window
boundary, a due retry; at most CHECK_AT_LEAST_EVERY away, for what no clock announces: a
member made inactive, by-load counts moved by adds elsewhere), and the cron pass every
minute asks for the job only for the codes whose moment has come (one indexed query).
The job calls WeCom only when the wanted config differs from what it last applied; a
refusal is recorded on the code and retried with backoff.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Channel, ContactWay, FollowRelation, Staff, Workspace, utcnow
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

ALL, ROUND_ROBIN, BY_LOAD = "all", "round_robin", "by_load"
ROTATIONS = (ALL, ROUND_ROBIN, BY_LOAD)
WEEKDAYS = range(7)  # Monday 0, as datetime.weekday()
RETRY_FIRST_SECONDS = 60
RETRY_MAX_SECONDS = 3600
CHECK_AT_LEAST_EVERY = timedelta(minutes=10)
BY_LOAD_CHECK_EVERY = timedelta(minutes=1)  # any add in the corp moves the load
MAX_ERROR = ContactWay.__table__.c.sync_error.type.length
NOBODY = "Nobody may receive adds: no member may now and every backup is inactive."

# Why a member is or is not on the code's list now.
ON = "on"  # receives the next adds
WAITING = "waiting"  # eligible, not their turn (round robin) or busier (by load)
CAPPED = "capped"
OFF_SCHEDULE = "off_schedule"
INACTIVE = "inactive"
BACKUP_ON = "backup_on"  # a backup receiving the adds
BACKUP_STANDBY = "backup_standby"  # a backup, not needed now


def is_managed(way: ContactWay) -> bool:
    """Harpoon changes this code's list or skip_verify over time (else WeCom keeps what the
    form saved)."""
    return bool(
        way.rotation != ALL
        or way.daily_cap
        or way.schedule
        or way.auto_accept
        or way.backup_userids
    )


def parse_time(value: str) -> time:
    """ "HH:MM" (24 h) as a time; ValueError otherwise."""
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(value)
    return time(int(hours), int(minutes))


def in_schedule(schedule: dict | None, local: datetime) -> bool:
    """Inside the code's weekday hours (always, without a schedule); `end` excluded."""
    if not schedule:
        return True
    if local.weekday() not in schedule["days"]:
        return False
    return parse_time(schedule["start"]) <= local.time() < parse_time(schedule["end"])


def in_windows(windows: list | None, local: datetime) -> bool:
    moment = local.time()
    return any(
        parse_time(window["start"]) <= moment < parse_time(window["end"])
        for window in windows or []
    )


@dataclass
class Wanted:
    """The config a code should have now, and why each member is on its list or not."""

    userids: list[str]
    skip_verify: bool
    reasons: dict[str, str] = field(default_factory=dict)
    on_backup: bool = False

    def differs(self, way: ContactWay) -> bool:
        return (self.userids, self.skip_verify) != (way.applied_userids, way.applied_skip_verify)


def day_bounds(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The workspace's calendar day around `now`, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    start = datetime.combine(local.date(), time(0), ZoneInfo(timezone))
    end = datetime.combine(local.date() + timedelta(days=1), time(0), ZoneInfo(timezone))
    return start.astimezone(UTC), end.astimezone(UTC)


def _adds(session: Session, way: ContactWay, since: datetime | None, until: datetime | None):
    query = select(FollowRelation.staff_userid, func.count()).where(
        FollowRelation.workspace_id == way.workspace_id,
        FollowRelation.contact_way_id == way.id,
    )
    if since is not None:
        query = query.where(FollowRelation.added_at >= since)
    if until is not None:
        query = query.where(FollowRelation.added_at < until)
    return dict(session.execute(query.group_by(FollowRelation.staff_userid)).all())


def adds_per_member(session: Session, way: ContactWay, now: datetime, timezone: str) -> dict:
    """userid -> {"today", "week", "total"}: adds through the code (week: the last 7 days,
    today included)."""
    start, end = day_bounds(now, timezone)
    counts = {
        "today": _adds(session, way, start, end),
        "week": _adds(session, way, start - timedelta(days=6), end),
        "total": _adds(session, way, None, None),
    }
    members = dict.fromkeys([*way.staff_userids, *way.backup_userids, *counts["total"]])
    return {userid: {name: counts[name].get(userid, 0) for name in counts} for userid in members}


def _last_adds(session: Session, way: ContactWay) -> dict[str, datetime]:
    return dict(
        session.execute(
            select(FollowRelation.staff_userid, func.max(FollowRelation.added_at))
            .where(
                FollowRelation.workspace_id == way.workspace_id,
                FollowRelation.contact_way_id == way.id,
            )
            .group_by(FollowRelation.staff_userid)
        ).all()
    )


def _new_customers(session: Session, way: ContactWay, start: datetime, end: datetime) -> dict:
    """userid -> customers added today from any source, in the code's corp."""
    return dict(
        session.execute(
            select(FollowRelation.staff_userid, func.count())
            .where(
                FollowRelation.workspace_id == way.workspace_id,
                FollowRelation.channel_id == way.channel_id,
                FollowRelation.added_at >= start,
                FollowRelation.added_at < end,
            )
            .group_by(FollowRelation.staff_userid)
        ).all()
    )


def _active(session: Session, way: ContactWay) -> set[str]:
    return set(
        session.scalars(
            select(Staff.userid).where(
                Staff.workspace_id == way.workspace_id,
                Staff.channel_id == way.channel_id,
                Staff.active.is_(True),
                Staff.userid.in_([*way.staff_userids, *way.backup_userids]),
            )
        )
    )


def workspace_timezone(session: Session, workspace_id: int) -> str:
    return session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id)) or (
        "Asia/Shanghai"
    )


def wanted_config(session: Session, way: ContactWay, now: datetime, timezone: str) -> Wanted:
    """Who of the code's members may receive the next add now, and skip_verify."""
    local = now.astimezone(ZoneInfo(timezone))
    skip_verify = in_windows(way.auto_accept, local) if way.auto_accept else way.skip_verify
    active = _active(session, way)
    start, end = day_bounds(now, timezone)
    today = _adds(session, way, start, end) if way.id else {}
    open_hours = in_schedule(way.schedule, local)
    reasons: dict[str, str] = {}
    eligible = []
    for userid in way.staff_userids:
        if userid not in active:
            reasons[userid] = INACTIVE
        elif not open_hours:
            reasons[userid] = OFF_SCHEDULE
        elif way.daily_cap and today.get(userid, 0) >= way.daily_cap:
            reasons[userid] = CAPPED
        else:
            reasons[userid] = WAITING
            eligible.append(userid)
    chosen = _choose(session, way, eligible, today, start, end)
    for userid in chosen:
        reasons[userid] = ON
    backups = [u for u in way.backup_userids if u in active and u not in way.staff_userids]
    for userid in way.backup_userids:
        reasons.setdefault(userid, BACKUP_STANDBY if userid in active else INACTIVE)
    if not chosen:
        chosen = backups
        for userid in backups:
            reasons[userid] = BACKUP_ON
        return Wanted(chosen, skip_verify, reasons, on_backup=bool(backups))
    return Wanted(chosen, skip_verify, reasons)


def _choose(
    session: Session,
    way: ContactWay,
    eligible: list[str],
    today: dict[str, int],
    start: datetime,
    end: datetime,
) -> list[str]:
    if not eligible or way.rotation == ALL:
        return eligible
    if way.rotation == ROUND_ROBIN:
        last = _last_adds(session, way) if way.id else {}
        never = datetime.min.replace(tzinfo=UTC)
        order = {userid: n for n, userid in enumerate(way.staff_userids)}
        return [
            min(
                eligible,
                key=lambda u: (today.get(u, 0), last.get(u) or never, order[u]),
            )
        ]
    load = _new_customers(session, way, start, end)
    least = min(load.get(userid, 0) for userid in eligible)
    return [userid for userid in eligible if load.get(userid, 0) == least]


def mark_applied(way: ContactWay, userids: list[str], skip_verify: bool, now: datetime) -> None:
    """The config WeCom now holds; the cron looks at the code at its next pass (which sets
    the real next moment)."""
    way.applied_userids, way.applied_skip_verify, way.applied_at = list(userids), skip_verify, now
    way.sync_error, way.sync_failures, way.sync_retry_at = None, 0, None
    way.next_check_at = now if is_managed(way) else None


def next_check(way: ContactWay, now: datetime, timezone: str) -> datetime | None:
    """The next moment after `now` the code's wanted config can change without an add
    through it: the next local midnight, schedule start or end, auto-accept window start or
    end, the failed update's retry, or CHECK_AT_LEAST_EVERY from now (BY_LOAD_CHECK_EVERY
    for a by-load code), whichever comes first; None for a code Harpoon does not manage."""
    if not is_managed(way):
        return None
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    times = [window[key] for window in way.auto_accept or [] for key in ("start", "end")]
    if way.schedule:
        times += [way.schedule["start"], way.schedule["end"]]
    every = BY_LOAD_CHECK_EVERY if way.rotation == BY_LOAD else CHECK_AT_LEAST_EVERY
    moments = [now + every, day_bounds(now, timezone)[1]]
    for day in (today, today + timedelta(days=1)):
        moments += [datetime.combine(day, parse_time(value), zone) for value in times]
    if way.sync_retry_at is not None:
        moments.append(way.sync_retry_at)
    return min(moment.astimezone(UTC) for moment in moments if moment > now)


def _failed(way: ContactWay, error: str, now: datetime) -> None:
    way.sync_failures = (way.sync_failures or 0) + 1
    delay = min(RETRY_FIRST_SECONDS * 2 ** (way.sync_failures - 1), RETRY_MAX_SECONDS)
    way.sync_error = error[:MAX_ERROR]
    way.sync_retry_at = now + timedelta(seconds=delay)


def rotate_contact_way(session: Session, way_id: int, client_for) -> str:
    """Point the code at the members who may receive the next add, if that changed: one
    update_contact_way, after which the row says what WeCom holds. The row is locked
    while it runs, so two runs never interleave. `client_for(channel)`: the WeCom client.
    Returns what happened: "gone", "backoff", "nobody", "unchanged", "updated", "failed"."""
    now = utcnow()
    way = session.scalars(
        select(ContactWay).where(ContactWay.id == way_id).with_for_update()
    ).one_or_none()
    if way is None or way.deleted_at is not None or not way.config_id:
        return "gone"
    timezone = workspace_timezone(session, way.workspace_id)
    if way.sync_retry_at is not None and way.sync_retry_at > now:
        way.next_check_at = next_check(way, now, timezone)
        session.commit()
        return "backoff"
    channel = session.get(Channel, way.channel_id)
    if channel is None or channel.workspace_id != way.workspace_id:
        raise LookupError(f"contact way {way_id} names another workspace's corp")
    wanted = wanted_config(session, way, now, timezone)
    if not wanted.userids:
        outcome = "nobody"
        _failed(way, NOBODY, now)
    elif not wanted.differs(way):
        outcome = "unchanged"
        way.sync_error, way.sync_failures, way.sync_retry_at = None, 0, None
    else:
        try:
            client_for(channel).external_contact.update_contact_way(
                way.config_id,
                way.name[:30],
                skip_verify=wanted.skip_verify,
                state=way.state,
                user=wanted.userids,
            )
        except WeChatApiError as exc:
            outcome = "failed"
            _failed(way, f"{exc.errcode}: {exc.errmsg}", now)
            log.warning("update_contact_way for code %s failed: %s", way.id, exc)
        else:
            outcome = "updated"
            mark_applied(way, wanted.userids, wanted.skip_verify, now)
    way.next_check_at = next_check(way, now, timezone)
    session.commit()
    return outcome


def ways_to_rotate(session: Session) -> list[int]:
    """Periodic: the live codes whose next moment to look at has come (a new day, a schedule
    or window boundary, a due retry; see next_check). One indexed query: the job each is
    asked for evaluates the code and records its next moment."""
    return list(
        session.scalars(
            select(ContactWay.id)
            .where(
                ContactWay.next_check_at <= utcnow(),
                ContactWay.deleted_at.is_(None),
                ContactWay.config_id.is_not(None),
            )
            .order_by(ContactWay.next_check_at)
        )
    )
