"""Whose is a person or an account: what a salesperson sees as "mine".

An account is a user's when they own it. A person is theirs when their account is, or when
they are a current WeCom customer of one of the user's staff identities (a user may be
staff on several corps)."""

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from models import Account, Contact, FollowRelation, Staff


def owned_accounts_clause(workspace_id: int, user_id: int) -> ColumnElement[bool]:
    """A WHERE clause on Account: the user owns it."""
    return and_(Account.workspace_id == workspace_id, Account.owner_id == user_id)


def owned_contacts_clause(workspace_id: int, user_id: int) -> ColumnElement[bool]:
    """A WHERE clause on Contact: the person is the user's (their account, or their WeCom
    customer)."""
    # Aliases of their own: a query that joins accounts, staff or relations for what it
    # shows must not have this clause correlate to its rows.
    account, relation, staff = aliased(Account), aliased(FollowRelation), aliased(Staff)
    own_account = exists().where(
        account.id == Contact.account_id,
        account.workspace_id == workspace_id,
        account.owner_id == user_id,
    )
    own_customer = exists().where(
        relation.workspace_id == workspace_id,
        relation.contact_id == Contact.id,
        relation.removed_at.is_(None),
        staff.workspace_id == workspace_id,
        staff.channel_id == relation.channel_id,
        staff.userid == relation.staff_userid,
        staff.user_id == user_id,
    )
    return and_(Contact.workspace_id == workspace_id, or_(own_account, own_customer))


def owned_contact_ids(
    session: Session, workspace_id: int, user_id: int, contact_ids: Iterable[int | None]
) -> set[int]:
    """Which of these people are the user's, in one query (none for no ids)."""
    wanted = {contact_id for contact_id in contact_ids if contact_id is not None}
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Contact.id).where(
                Contact.id.in_(wanted), owned_contacts_clause(workspace_id, user_id)
            )
        )
    )


def owns_contact(session: Session, workspace_id: int, user_id: int, contact_id: int) -> bool:
    return contact_id in owned_contact_ids(session, workspace_id, user_id, [contact_id])


def staff_userids(session: Session, workspace_id: int, user_id: int) -> list[tuple[int, str]]:
    """(channel_id, userid) of every active WeCom staff identity of the user."""
    return [
        (channel_id, userid)
        for channel_id, userid in session.execute(
            select(Staff.channel_id, Staff.userid).where(
                Staff.workspace_id == workspace_id,
                Staff.user_id == user_id,
                Staff.active.is_(True),
            )
        )
    ]
