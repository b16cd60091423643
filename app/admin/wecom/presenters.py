"""What the WeCom pages show: the codes' adds as a chart, and WeCom's refusals in words."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from models import ContactWay
from sales.contact_way_rotation import (
    ALL,
    BACKUP_ON,
    BACKUP_STANDBY,
    BY_LOAD,
    CAPPED,
    INACTIVE,
    NOBODY,
    OFF_SCHEDULE,
    ON,
    ROUND_ROBIN,
    WAITING,
    Wanted,
)
from sales.contact_ways import MAX_STAFF
from wechat.clients import WeChatApiError

# What WeCom's refusals of a code mean for the person filling in the form.
WECOM_REFUSALS = {
    40003: _l("WeCom does not know a chosen staff member: sync the staff and choose again."),
    84074: _l(
        "A chosen staff member lacks the customer-contact permission: "
        "sync the staff and choose again."
    ),
    41041: _l("A code reaches at most %(max)s staff members.", max=MAX_STAFF),
    48002: _l("The channel's secret is not the customer-contact secret."),
}


def wecom_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeCom could not be reached, so nothing changed. Try again in a moment.")
    reason = WECOM_REFUSALS.get(exc.errcode) or exc.errmsg
    return _("WeCom refused the change (%(code)s): %(reason)s", code=exc.errcode, reason=reason)


def adds_chart(
    ways: list[ContactWay], days: list[str], daily: dict[int, dict[str, int]]
) -> tuple[dict, dict]:
    """(code id -> adds over the days, the chart: a daily series per code still live or
    with adds in the window)."""
    recent = {way_id: sum(counts.values()) for way_id, counts in daily.items()}
    chart = {
        "days": days,
        "series": [
            {"name": way.name, "counts": [daily.get(way.id, {}).get(d, 0) for d in days]}
            for way in ways
            if way.deleted_at is None or way.id in daily
        ],
    }
    return recent, chart


ROTATION_LABELS = {
    ALL: _l("Random among the members (WeCom's own choice)"),
    ROUND_ROBIN: _l("Round robin: one member at a time, in turn"),
    BY_LOAD: _l("By load: the members with the fewest new customers today"),
}
# Why a member is or is not on the code's list now, as the code's page says it.
REASON_LABELS = {
    ON: _l("Receives the next adds"),
    WAITING: _l("Waiting for their turn"),
    CAPPED: _l("Reached today's cap"),
    OFF_SCHEDULE: _l("Off schedule"),
    INACTIVE: _l("No customer-contact permission"),
    BACKUP_ON: _l("Backup, receiving the adds"),
    BACKUP_STANDBY: _l("Backup, not needed now"),
}
WEEKDAYS_SHORT = (_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun"))


def member_rows(way: ContactWay, wanted: Wanted | None, adds: dict, names: dict) -> list[dict]:
    """One row per member, regular ones first, then backups, then anyone else the code
    brought customers to: name, role, why they are on the list or not, adds."""
    backups = set(way.backup_userids)
    rows = []
    for userid, counts in adds.items():
        if userid in way.staff_userids:
            role = _("Member")
        elif userid in backups:
            role = _("Backup")
        else:
            role = _("Former member")
        reason = (wanted.reasons.get(userid) if wanted else None) or ""
        rows.append(
            {
                "userid": userid,
                "name": names.get((way.channel_id, userid), userid),
                "role": role,
                "member": userid in way.staff_userids,
                "reason": str(REASON_LABELS.get(reason, "")),
                "on": reason in (ON, BACKUP_ON),
                "capped": way.daily_cap is not None and reason == CAPPED,
                **counts,
            }
        )
    return rows


def rotation_summary(way: ContactWay) -> dict:
    """The code's rotation settings in words."""
    schedule = way.schedule
    if schedule:
        days = "、".join(str(WEEKDAYS_SHORT[day]) for day in schedule["days"])
        hours = _(
            "%(days)s %(start)s–%(end)s; outside these hours only the backup staff",
            days=days,
            start=schedule["start"],
            end=schedule["end"],
        )
    else:
        hours = _("Always")
    if way.auto_accept:
        windows = ", ".join(f"{w['start']}–{w['end']}" for w in way.auto_accept)
        accept = _("Without verification %(windows)s; verified outside", windows=windows)
    else:
        accept = _("Without verification") if way.skip_verify else _("Verified by the member")
    return {
        "rotation": str(ROTATION_LABELS.get(way.rotation, way.rotation)),
        "cap": _("%(count)s adds a day per member", count=way.daily_cap)
        if way.daily_cap
        else _("No cap"),
        "hours": hours,
        "accept": accept,
    }


def sync_error_text(error: str | None) -> str | None:
    """The code's last failed sync in words: nobody left to point at, or WeCom's refusal."""
    if not error:
        return None
    if error == NOBODY:
        return _("Nobody may receive adds: no member may now and no backup has the permission.")
    return _("WeCom refused the last update: %(error)s", error=error)
