"""What the push pages show: statuses, mechanisms and skip reasons in words, and a push's
delivery funnel."""

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.admin.pushes.forms import zone
from models import BatchStatus, Mechanism, PushStatus, SuppressionReason
from outreach.email_sending import Reason as EmailReason
from outreach.pushes import MAX_TEXT, Reason

STATUS_LABELS = {
    PushStatus.DRAFT: _l("Draft"),
    PushStatus.AWAITING_APPROVAL: _l("Awaiting approval"),
    PushStatus.SCHEDULED: _l("Scheduled"),
    PushStatus.SENDING: _l("Sending"),
    PushStatus.SENT: _l("Sent"),
    PushStatus.FAILED: _l("Failed"),
    PushStatus.CANCELLED: _l("Cancelled"),
}
STATUS_BADGES = {
    PushStatus.AWAITING_APPROVAL: "warn",
    PushStatus.SCHEDULED: "warn",
    PushStatus.SENDING: "warn",
    PushStatus.SENT: "ok",
    PushStatus.FAILED: "error",
}
MECHANISM_LABELS = {
    Mechanism.MASS_TAG: _l("Mass send to a tag / everyone"),
    Mechanism.MASS_OPENID: _l("Mass send by openid lists"),
    Mechanism.CS: _l("Customer-service message"),
    Mechanism.TEMPLATE: _l("Template message"),
    Mechanism.EMAIL: _l("Email message"),
}
REASON_LABELS = {
    Reason.NO_OPENID: _l("Not a follower of this account"),
    Reason.UNFOLLOWED: _l("Unfollowed"),
    Reason.MONTHLY_QUOTA: _l("Had this month's 4 mass messages"),
    Reason.WINDOW_EXPIRED: _l("Service window closed before the send"),
    Reason.WINDOW_QUOTA: _l("Service window's messages used up"),
    Reason.INTERRUPTED: _l("Interrupted by a crash (maybe delivered)"),
    # email pushes
    EmailReason.NO_ADDRESS: _l("No email address"),
    f"{EmailReason.SUPPRESSED}: {SuppressionReason.UNSUBSCRIBED}": _l("Unsubscribed"),
    f"{EmailReason.SUPPRESSED}: {SuppressionReason.BOUNCED}": _l("Bounced before"),
    f"{EmailReason.SUPPRESSED}: {SuppressionReason.COMPLAINED}": _l("Marked it as spam"),
    EmailReason.BOUNCED: _l("Bounced (the address is suppressed from now on)"),
    EmailReason.REFUSED: _l("The mail server refused this message (size or content)"),
    EmailReason.UNREACHABLE: _l("Mail server unreachable (retried)"),
    EmailReason.TEMPLATE: _l("The template did not render"),
    EmailReason.NO_TEMPLATE: _l("The template was deleted"),
    EmailReason.NO_SERVER: _l("No mail server set up"),
    EmailReason.INTERRUPTED: _l("Interrupted by a crash (maybe delivered)"),
    "temporary": _l("Refused for now by the mail server (retried)"),
}
BATCH_LABELS = {
    BatchStatus.PLANNED: _l("Planned"),
    BatchStatus.SUBMITTING: _l("Submitting"),
    BatchStatus.SUBMITTED: _l("Submitted, waiting for WeChat's result"),
    BatchStatus.FINISHED: _l("Finished"),
    BatchStatus.FAILED: _l("Failed"),
}


def funnel(report: dict) -> list[tuple[str, int]]:
    """Targeted -> reachable -> sent -> delivered, for the funnel chart."""
    targeted = report.get("targeted", 0)
    skipped = sum(report.get("skipped", {}).values())
    steps = [
        (_("Targeted"), targeted),
        (_("Reachable"), targeted - skipped),
        (_("Sent"), sum(report.get("sent", {}).values())),
    ]
    if "opened" in report:  # an email push: opens and clicks, as the pixel and links tell
        return [*steps, (_("Opened it"), report["opened"]), (_("Clicked"), report["clicked"])]
    return [*steps, (_("Delivered"), report.get("delivered", 0))]


def labels() -> dict:
    return {
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "mechanism_labels": MECHANISM_LABELS,
        "reason_labels": REASON_LABELS,
        "batch_labels": BATCH_LABELS,
        "max_text": MAX_TEXT,
        "now": datetime.now(zone()),
    }
