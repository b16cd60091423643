"""An account's activity kept as it happens: its people's latest interaction
(`accounts.last_active_at`) and every return after a silence of REACTIVATION_DAYS or more
(`account_reactivations`), so that "dormant when the period began, back in it" is a count of
rows rather than a probe of every account's interactions.

Both follow from the interactions: an interaction at or after the account's latest one
extends it (one gap to check); an earlier one, or interactions moved between accounts,
rebuild the accounts concerned from their interactions. Set-based: a handful of statements
per batch, never one per interaction."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import Account, AccountReactivation, Interaction

REACTIVATION_DAYS = 90
GAP = timedelta(days=REACTIVATION_DAYS)


def note_activity(
    session: Session, workspace_id: int, rows: Iterable[tuple[int | None, datetime]]
) -> None:
    """Record interactions already written, (account id, occurred at) each; those without an
    account are skipped. Locks the accounts' rows (in id order) for the batch."""
    times: dict[int, list[datetime]] = defaultdict(list)
    for account_id, occurred_at in rows:
        if account_id is not None:
            times[account_id].append(occurred_at)
    if not times:
        return
    latest = dict(
        session.execute(
            select(Account.id, Account.last_active_at)
            .where(Account.workspace_id == workspace_id, Account.id.in_(times))
            .order_by(Account.id)
            .with_for_update()
        ).all()
    )
    returns, late = [], []
    for account_id, seen in times.items():
        if account_id not in latest:
            continue
        seen.sort()
        before = latest[account_id]
        if before is not None and seen[0] < before:
            late.append(account_id)
            continue
        for at in seen:
            if before is not None and at - before >= GAP:
                returns.append(_row(workspace_id, account_id, before, at))
            before = at
    if returns:
        session.execute(AccountReactivation.__table__.insert(), returns)
    in_order = [
        account_id for account_id in times if account_id in latest and account_id not in late
    ]
    if in_order:
        _set_latest(session, workspace_id, in_order)
    if late:
        rebuild_activity(session, workspace_id, late)


def rebuild_activity(session: Session, workspace_id: int, account_ids: Iterable[int]) -> None:
    """The accounts' latest interaction and returns, again from their interactions (one read
    of the accounts' history through ix_interactions_account_occurred)."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    returns, before = [], {}
    for account_id, at in session.execute(
        select(Interaction.account_id, Interaction.occurred_at)
        .where(Interaction.workspace_id == workspace_id, Interaction.account_id.in_(ids))
        .order_by(Interaction.account_id, Interaction.occurred_at)
    ):
        previous = before.get(account_id)
        if previous is not None and at - previous >= GAP:
            returns.append(_row(workspace_id, account_id, previous, at))
        before[account_id] = at
    session.execute(
        delete(AccountReactivation).where(
            AccountReactivation.workspace_id == workspace_id,
            AccountReactivation.account_id.in_(ids),
        )
    )
    if returns:
        session.execute(AccountReactivation.__table__.insert(), returns)
    _set_latest(session, workspace_id, ids)


def interactions_accounts(session: Session, workspace_id: int, contact_ids: Iterable[int]) -> set:
    """The accounts the contacts' interactions count for now (before they are moved)."""
    return set(
        session.scalars(
            select(Interaction.account_id)
            .where(
                Interaction.workspace_id == workspace_id,
                Interaction.contact_id.in_(list(contact_ids)),
                Interaction.account_id.is_not(None),
            )
            .distinct()
        )
    )


def _set_latest(session: Session, workspace_id: int, ids: list[int]) -> None:
    session.execute(
        update(Account)
        .where(Account.workspace_id == workspace_id, Account.id.in_(ids))
        .values(
            last_active_at=select(func.max(Interaction.occurred_at))
            .where(Interaction.workspace_id == workspace_id, Interaction.account_id == Account.id)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )


def _row(workspace_id: int, account_id: int, previous_at: datetime, at: datetime) -> dict:
    return {
        "workspace_id": workspace_id,
        "account_id": account_id,
        "previous_at": previous_at,
        "reactivated_at": at,
    }
