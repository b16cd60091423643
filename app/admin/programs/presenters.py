"""What the programs pages show: labels of kinds and statuses and budget bars."""

from flask_babel import lazy_pgettext

from app.admin.programs.forms import KIND_CHOICES
from models import ProgramOrderStatus

KIND_LABELS = {choice.value: choice.label for choice in KIND_CHOICES}
STATUS_LABELS = {
    ProgramOrderStatus.REQUESTED.value: lazy_pgettext("program order", "Requested"),
    ProgramOrderStatus.APPROVED.value: lazy_pgettext("program order", "Approved"),
    ProgramOrderStatus.EXECUTED.value: lazy_pgettext("program order", "Executed"),
    ProgramOrderStatus.REJECTED.value: lazy_pgettext("program order", "Rejected"),
    ProgramOrderStatus.CANCELLED.value: lazy_pgettext("program order", "Cancelled"),
}
STATUS_BADGES = {
    ProgramOrderStatus.REQUESTED.value: "warn",
    ProgramOrderStatus.APPROVED.value: "",
    ProgramOrderStatus.EXECUTED.value: "ok",
    ProgramOrderStatus.REJECTED.value: "error",
    ProgramOrderStatus.CANCELLED.value: "",
}


def labels() -> dict:
    return {
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
    }


def bar_class(share: float) -> str:
    """A budget bar's colour: calm, nearly used, used up."""
    return "full" if share >= 1 else "high" if share >= 0.8 else ""
