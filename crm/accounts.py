"""Which company a contact works for: one account per company, the strongest source wins."""

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.jobs import Followups
from crm.activity import interactions_accounts, rebuild_activity
from crm.companies import normalize_company
from crm.contacts import live
from crm.tags import TagBook, apply_tags
from models import (
    ACCOUNT_SOURCE_STRENGTH,
    Account,
    AccountSource,
    Contact,
    Interaction,
    TagGroup,
    TagSource,
)

# Addresses at these say nothing about the employer.
FREE_EMAIL_DOMAINS = frozenset(
    {
        "qq.com",
        "foxmail.com",
        "163.com",
        "126.com",
        "yeah.net",
        "sina.com",
        "sina.cn",
        "sohu.com",
        "aliyun.com",
        "139.com",
        "189.cn",
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
    }
)
NAME_LENGTH = Account.__table__.c.name.type.length
# The roles a B2B deal needs engaged, in the order the account page shows their coverage.
BUYING_COMMITTEE = (
    "ceo",
    "cio",
    "cto",
    "cfo",
    "ciso",
    "it_manager",
    "procurement",
    "finance",
    "engineer",
)


def email_domain(email: str | None) -> str | None:
    """The employer's domain of an address, or None for free mail and nonsense."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    if "." not in domain or domain in FREE_EMAIL_DOMAINS:
        return None
    return domain


def account_named(
    session: Session, workspace_id: int, name: str, known: dict | None = None
) -> Account | None:
    """The account of this company name, created on first sight; None for an empty name.
    `known` (normalized name -> account) spares a batch one query per mention."""
    name = " ".join(name.split())[:NAME_LENGTH]
    key = normalize_company(name)
    if not key:
        return None
    account = known.get(key) if known is not None else None
    if account is None:
        account = _by_key(session, workspace_id, key)
    if account is not None:
        if known is not None:
            known[key] = account
        return account
    try:
        with session.begin_nested():
            account = Account(workspace_id=workspace_id, name=name, normalized_name=key)
            session.add(account)
            session.flush()
    except IntegrityError:  # created meanwhile by another worker
        account = _by_key(session, workspace_id, key)
    if known is not None and account is not None:
        known[key] = account
    return account


def _by_key(session: Session, workspace_id: int, key: str) -> Account | None:
    return session.scalars(
        select(Account).where(Account.workspace_id == workspace_id, Account.normalized_name == key)
    ).one_or_none()


def account_for_domain(session: Session, workspace_id: int, domain: str) -> Account | None:
    return session.scalars(
        select(Account)
        .where(Account.workspace_id == workspace_id, Account.domain == domain)
        .order_by(Account.is_target.desc(), Account.id)
        .limit(1)
    ).first()


def assign_account(
    session: Session,
    book: TagBook,
    contact: Contact,
    *,
    source: str,
    company: str | None = None,
    email: str | None = None,
    account: Account | None = None,
    followups: Followups | None = None,
    known_accounts: dict | None = None,
    later: "AccountMoves | None" = None,
) -> bool:
    """Attach the contact to the account a source names; False when a stronger source
    already decided (a marketer's manual assignment is never overridden). `known_accounts`:
    a batch's accounts by normalized name (see account_named); `later`: the history and
    industry tag follow at the end of the batch, together (AccountMoves)."""
    current = contact.account_source
    if current is not None and ACCOUNT_SOURCE_STRENGTH[source] < ACCOUNT_SOURCE_STRENGTH[current]:
        return False
    if account is None and company:
        account = account_named(session, contact.workspace_id, company, known_accounts)
    if account is None and email:
        domain = email_domain(email)
        account = account_for_domain(session, contact.workspace_id, domain) if domain else None
    if account is None:
        return False
    if company:
        contact.company = company.strip()[: Contact.__table__.c.company.type.length]
    contact.account_source = source
    if contact.account_id == account.id:
        return True
    contact.account_id = account.id
    if later is not None:
        later.add(contact.id)
        return True
    session.flush()
    _follow_account(session, book, [contact.id], account, followups)
    return True


def detach_account(session: Session, contact: Contact) -> int | None:
    """Take the contact off its account by hand; returns the account it left. Its history
    leaves with it, and as a manual choice the weaker automatic sources may not attach it
    again."""
    before = contact.account_id
    contact.account_id = None
    contact.account_source = AccountSource.MANUAL
    left = interactions_accounts(session, contact.workspace_id, [contact.id])
    session.execute(
        update(Interaction)
        .where(
            Interaction.contact_id == contact.id, Interaction.workspace_id == contact.workspace_id
        )
        .values(account_id=None)
        .execution_options(synchronize_session=False)
    )
    rebuild_activity(session, contact.workspace_id, left)
    return before


def _follow_account(
    session: Session,
    book: TagBook,
    contact_ids: list[int],
    account: Account,
    followups: Followups | None,
) -> None:
    """The people's whole history now counts for the account, and they carry its industry."""
    moved = interactions_accounts(session, account.workspace_id, contact_ids)
    session.execute(
        update(Interaction)
        .where(Interaction.contact_id.in_(contact_ids))
        .values(account_id=account.id)
        .execution_options(synchronize_session=False)
    )
    rebuild_activity(session, account.workspace_id, moved | {account.id})
    if account.industry:
        tag = book.get(session, TagGroup.INDUSTRY, account.industry)
        apply_tags(session, book, contact_ids, [tag], source=TagSource.ACCOUNT, followups=followups)


class AccountMoves:
    """Contacts a batch moved to another account: their history and industry tags follow
    at the end of the batch, one statement per account instead of per event."""

    def __init__(self):
        self._contact_ids: set[int] = set()

    def add(self, contact_id: int) -> None:
        self._contact_ids.add(contact_id)

    def apply(self, session: Session, book: TagBook, followups: Followups | None) -> None:
        session.flush()
        by_account: dict[int, list[int]] = {}
        for contact_id in self._contact_ids:
            contact = live(session, session.get(Contact, contact_id))  # merged meanwhile?
            if contact.account_id is not None:
                by_account.setdefault(contact.account_id, []).append(contact.id)
        self._contact_ids = set()
        for account_id, contact_ids in by_account.items():
            account = session.get(Account, account_id)
            _follow_account(session, book, sorted(set(contact_ids)), account, followups)


def tag_account_industry(
    session: Session, book: TagBook, account: Account, followups: Followups | None = None
) -> int:
    """Give the account's contacts its industry tag (after an import changed it)."""
    if not account.industry:
        return 0
    contact_ids = session.scalars(
        select(Contact.id).where(Contact.account_id == account.id, Contact.merged_into_id.is_(None))
    ).all()
    tag = book.get(session, TagGroup.INDUSTRY, account.industry)
    return apply_tags(
        session, book, contact_ids, [tag], source=TagSource.ACCOUNT, followups=followups
    )
