"""A contact's values for the variables of an email template (outreach.emails), as Harpoon
knows them: name, company, title, their email address and phone (identities), and the
name of their account's owner."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Account, Contact, Identity, IdentityKind, User
from outreach.emails import person_variables


def contact_variables(session: Session, contact: Contact) -> dict:
    identities = dict(
        session.execute(
            select(Identity.kind, Identity.value)
            .where(
                Identity.workspace_id == contact.workspace_id,
                Identity.contact_id == contact.id,
                Identity.kind.in_((IdentityKind.EMAIL, IdentityKind.PHONE)),
            )
            .order_by(Identity.id)  # the newest of each kind wins
        ).all()
    )
    owner = None
    account = session.get(Account, contact.account_id) if contact.account_id else None
    if account is not None and account.workspace_id == contact.workspace_id and account.owner_id:
        user = session.get(User, account.owner_id)
        owner = user.name if user is not None else None
    company = contact.company or (account.name if account is not None else None)
    return person_variables(
        name=contact.name,
        company=company,
        title=contact.title,
        email=identities.get(IdentityKind.EMAIL),
        phone=identities.get(IdentityKind.PHONE),
        owner=owner,
    )
