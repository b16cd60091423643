"""What the transfer pages show: statuses and WeCom's errcodes in words."""

from collections import Counter

from flask_babel import lazy_gettext as _l

from models import GroupTransferStatus, TransferItemStatus, TransferKind
from sales.transfers import IN_TRANSFER, NOT_HANDOVERS, SAME_MEMBER, TAKEOVER_FULL, TOO_OFTEN

KIND_LABELS = {
    TransferKind.IN_SERVICE: _l("In service"),
    TransferKind.DEPARTED: _l("Departed member"),
}
STATUS_LABELS = {
    TransferItemStatus.QUEUED: _l("Queued"),
    TransferItemStatus.SENDING: _l("Sending"),
    TransferItemStatus.WAITING: _l("Waiting for the takeover (24 h)"),
    TransferItemStatus.DONE: _l("Taken over"),
    TransferItemStatus.REFUSED: _l("Refused by the customer"),
    TransferItemStatus.LIMIT: _l("Takeover at their customer limit"),
    TransferItemStatus.FAILED: _l("Refused by WeCom"),
}
STATUS_BADGES = {
    TransferItemStatus.WAITING: "warn",
    TransferItemStatus.SENDING: "warn",
    TransferItemStatus.DONE: "ok",
    TransferItemStatus.REFUSED: "error",
    TransferItemStatus.LIMIT: "error",
    TransferItemStatus.FAILED: "error",
}
ERRCODE_LABELS = {
    TOO_OFTEN: _l("Transferred too often: a customer can be transferred twice in 90 days."),
    IN_TRANSFER: _l("This customer is being transferred already."),
    SAME_MEMBER: _l("The handover and the takeover are the same member."),
    NOT_HANDOVERS: _l("No longer the handover's customer."),
    TAKEOVER_FULL: _l("The takeover has reached their customer limit."),
}


def item_error(item) -> str:
    """A customer's problem in the reader's language, WeCom's errcode kept beside it."""
    if item.errcode in ERRCODE_LABELS:
        return str(ERRCODE_LABELS[item.errcode])
    if item.status == TransferItemStatus.REFUSED:
        return str(_l("The customer refused to be transferred."))
    if item.status == TransferItemStatus.LIMIT:
        return str(ERRCODE_LABELS[TAKEOVER_FULL])
    if item.status == TransferItemStatus.FAILED:
        return str(_l("WeCom refused it: %(error)s", error=item.error or item.errcode))
    return ""


def summary(counts: Counter) -> dict[str, int]:
    """A transfer's customers by outcome, as the pages name them."""
    return {
        "total": sum(counts.values()),
        "open": sum(
            counts[s]
            for s in (
                TransferItemStatus.QUEUED,
                TransferItemStatus.SENDING,
                TransferItemStatus.WAITING,
            )
        ),
        "done": counts[TransferItemStatus.DONE],
        "failed": sum(
            counts[s]
            for s in (
                TransferItemStatus.REFUSED,
                TransferItemStatus.LIMIT,
                TransferItemStatus.FAILED,
            )
        ),
    }


def labels() -> dict:
    return {
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "group_status_labels": GROUP_STATUS_LABELS,
        "group_status_badges": GROUP_STATUS_BADGES,
    }


# ---- the customer groups that move with a transfer ----

GROUP_STATUS_LABELS = {
    GroupTransferStatus.QUEUED: _l("Queued"),
    GroupTransferStatus.SENDING: _l("Sending"),
    GroupTransferStatus.DONE: _l("Handed over"),
    GroupTransferStatus.FAILED: _l("Refused by WeCom"),
}
GROUP_STATUS_BADGES = {
    GroupTransferStatus.SENDING: "warn",
    GroupTransferStatus.DONE: "ok",
    GroupTransferStatus.FAILED: "error",
}
GROUP_ERRCODE_LABELS = {
    40050: _l("The group no longer exists."),
    40130: _l("The group is the takeover's already."),
    90500: _l("The owner has not left the corp."),
    90502: _l("The owner has left the corp: transfer as a departed member."),
    90506: _l("Transferred too often: a group can be transferred twice in 90 days."),
    90507: _l("300 groups of a departed owner can be handed over a day: try again tomorrow."),
}


def group_rows(rows: list) -> list[tuple]:
    """(item, group, the problem in words) of a transfer's groups."""
    return [(item, group, _group_error(item)) for item, group in rows]


def _group_error(item) -> str:
    if item.errcode in GROUP_ERRCODE_LABELS:
        return str(GROUP_ERRCODE_LABELS[item.errcode])
    if item.status == GroupTransferStatus.FAILED:
        return str(_l("WeCom refused it: %(error)s", error=item.error or item.errcode))
    return ""
