"""What the admin shows of a person's phone number and email: in full to marketers, admins
and owners, and to a salesperson for their own people (sales.ownership); masked
(`138****5678`, `l***@huaxin.com`) to a salesperson for everyone else's. The one place
the rule lives: every page that shows a phone or an email asks a `Reveal`."""

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from models import IdentityKind, Role, User
from sales.ownership import owned_contact_ids

MASKED_KINDS = {IdentityKind.PHONE: "phone", IdentityKind.EMAIL: "email"}


def mask_phone(value: str) -> str:
    """The first three and last four digits of a mobile number (`138****5678`, without a
    +86 prefix); a short number keeps its first and last two; separators are dropped."""
    digits = "".join(char for char in value if char.isascii() and char.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) >= 10:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) > 4:
        return f"{digits[:2]}****{digits[-2:]}"
    return "****"


def mask_email(value: str) -> str:
    """The first character of the mailbox and the whole domain (the company shows, the
    person does not): `l***@huaxin.com`."""
    local, at, domain = value.strip().partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


MASKERS = {"phone": mask_phone, "email": mask_email}


@dataclass(frozen=True)
class Reveal:
    """Whose phone numbers and emails the signed-in user sees in full: everyone's, or (a
    salesperson) their own people's, by contact id."""

    everyone: bool
    own: frozenset[int] = frozenset()

    def shows(self, contact_id: int | None) -> bool:
        return self.everyone or (contact_id is not None and contact_id in self.own)

    def field(self, kind: str, value, contact_id: int | None):
        """A value as shown: `kind` is "phone", "email" (masked unless shown) or any other
        field name (shown as it is)."""
        masker = MASKERS.get(kind)
        if masker is None or value is None or value == "" or self.shows(contact_id):
            return value
        return masker(str(value))

    def identity(self, identity_kind: str, value: str, contact_id: int | None) -> str:
        return self.field(MASKED_KINDS.get(identity_kind, identity_kind), value, contact_id)


def reveal_for(
    session: Session, workspace_id: int, user: User, contact_ids: Iterable[int | None]
) -> Reveal:
    """What `user` sees of these people: one query for a salesperson, none otherwise."""
    if user.role != Role.SALES:
        return Reveal(everyone=True)
    own = owned_contact_ids(session, workspace_id, user.id, contact_ids)
    return Reveal(everyone=False, own=frozenset(own))
