"""What the sales home shows: why an account is hot and what changed, in words."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.admin.labels import CONTACT_ROLE_LABELS
from models import AccountEventKind
from sales.home import Change, Reason

# The badge of each reason, by kind.
REASON_BADGES = {"mqa": "error", "surge": "warn", "committee": "ok", "score": ""}
CHANGE_LABELS = {
    "mqa": _l("MQA"),
    "stage": _l("Stage"),
    "person": _l("New person"),
    AccountEventKind.ROUTED: _l("Routed"),
    AccountEventKind.OWNER_CHANGED: _l("Owner changed"),
    AccountEventKind.TRANSFER: _l("Transferred"),
    AccountEventKind.SLA_REASSIGNED: _l("Reassigned"),
}
CHANGE_BADGES = {"mqa": "error", "stage": "ok", "person": ""}


def person_label(name: str | None, title: str | None, role: str | None) -> str:
    """李总（CIO）: the name, and the role (or else the title) in brackets."""
    what = str(CONTACT_ROLE_LABELS[role]) if role in CONTACT_ROLE_LABELS else title
    who = name or _("Someone")
    return _("%(name)s (%(role)s)", name=who, role=what) if what else who


def reason_text(reason: Reason) -> str:
    if reason.kind == "mqa":
        return _("New MQA")
    if reason.kind == "surge":
        if reason.ratio is None:  # no baseline to compare with
            return _("Intent surge: new activity")
        return _("Intent surge ×%(ratio)s", ratio=f"{reason.ratio:.1f}")
    if reason.kind == "committee":
        return _(
            "New decision maker: %(person)s",
            person=person_label(reason.name, reason.title, reason.role),
        )
    return _("Score +%(delta)s", delta=f"{reason.delta:.0f}")


def change_text(change: Change, stage_names: dict[str, str]) -> str:
    if change.kind == "mqa":
        return _("%(account)s reached MQA", account=change.account)
    if change.kind == "stage":
        return _(
            "%(account)s moved from %(from)s to %(to)s",
            account=change.account,
            **{
                "from": stage_names.get(change.from_stage or "", change.from_stage or "—"),
                "to": stage_names.get(change.to_stage or "", change.to_stage or "—"),
            },
        )
    if change.kind == "person":
        return _(
            "%(person)s of %(account)s is new",
            person=person_label(change.contact, change.text, change.role),
            account=change.account,
        )
    if change.text:
        return _("%(account)s: %(text)s", account=change.account, text=change.text)
    return change.account


def change_rows(changes: list[Change], stage_names: dict[str, str]) -> list[dict]:
    return [
        {
            "change": change,
            "label": CHANGE_LABELS.get(change.kind, change.kind),
            "badge": CHANGE_BADGES.get(change.kind, "warn"),
            "text": change_text(change, stage_names),
        }
        for change in changes
    ]
