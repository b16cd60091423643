"""What the QR code pages show: a code's status, its daily scans as a chart, and WeChat's
refusals in words."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from outreach.qr_codes import DayScans, QrStatus
from wechat.clients import WeChatApiError

STATUS_LABELS = {
    QrStatus.ACTIVE: _l("Active"),
    QrStatus.EXPIRED: _l("Expired"),
    QrStatus.ARCHIVED: _l("Archived"),
}
STATUS_BADGES = {QrStatus.ACTIVE: "ok", QrStatus.EXPIRED: "warn", QrStatus.ARCHIVED: ""}
# What WeChat's refusals of qrcode/create mean for the person filling in the form.
WECHAT_REFUSALS = {
    40053: _l("WeChat refused this kind of code or scene."),
    48001: _l("Only a verified service account may create parametric QR codes."),
    45009: _l("The Official Account used up today's API calls."),
}


def wechat_refusal(exc: WeChatApiError) -> str:
    if exc.errcode is None:
        return _("WeChat could not be reached, so nothing changed. Try again in a moment.")
    reason = WECHAT_REFUSALS.get(exc.errcode) or exc.errmsg
    return _("WeChat refused the code (%(code)s): %(reason)s", code=exc.errcode, reason=reason)


def scans_chart(days: list[DayScans]) -> dict:
    return {
        "days": [day.day.isoformat() for day in days],
        "scans": [day.scans for day in days],
        "follows": [day.follows for day in days],
        "people": [day.people for day in days],
        "names": {
            "scans": _("Scans"),
            "follows": _("Follows"),
            "people": _("People"),
        },
    }
