"""A contact's values for the variables of an email template (outreach.emails), as Harpoon
knows them: name, company, title, their email address and phone (identities), and the
name of their account's owner.

One rule for the preview and the send (outreach.email_sending uses these), so a previewed
email is the one that goes out: the company is the account's name, else what the contact
gave; the email address and phone are the contact's newest of each kind."""

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Account, Contact, Identity, IdentityKind, User
from outreach.emails import person_variables


def company_of(account_name: str | None, contact_company: str | None) -> str | None:
    """The account's name first, else the company the contact gave."""
    return account_name or contact_company


def newest_identities(
    session: Session, workspace_id: int, contact_ids: Iterable[int]
) -> dict[int, dict[str, str]]:
    """Each contact's newest email address and phone: {contact: {kind: value}}."""
    found: dict[int, dict[str, str]] = {}
    for contact_id, kind, value in session.execute(
        select(Identity.contact_id, Identity.kind, Identity.value)
        .where(
            Identity.workspace_id == workspace_id,
            Identity.contact_id.in_(set(contact_ids)),
            Identity.kind.in_((IdentityKind.EMAIL, IdentityKind.PHONE)),
        )
        .order_by(Identity.id)  # the newest of each kind wins
    ):
        found.setdefault(contact_id, {})[kind] = value
    return found


def contact_variables(session: Session, contact: Contact) -> dict:
    identities = newest_identities(session, contact.workspace_id, [contact.id]).get(contact.id, {})
    owner = None
    account = session.get(Account, contact.account_id) if contact.account_id else None
    if account is not None and account.workspace_id != contact.workspace_id:
        account = None
    if account is not None and account.owner_id:
        user = session.get(User, account.owner_id)
        owner = (
            user.name if user is not None and user.workspace_id == contact.workspace_id else None
        )
    return person_variables(
        name=contact.name,
        company=company_of(account.name if account is not None else None, contact.company),
        title=contact.title,
        email=identities.get(IdentityKind.EMAIL),
        phone=identities.get(IdentityKind.PHONE),
        owner=owner,
    )
