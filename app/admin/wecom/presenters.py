"""What the WeCom pages show: the codes' adds as a chart, and WeCom's refusals in words."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from models import ContactWay
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
