"""Reading the workspace's audit log: the actions it holds and its entries, newest first."""

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from models import AuditLog, User


def audit_actions(session: Session, workspace_id: int) -> list[str]:
    """Every action the workspace's log holds, alphabetically."""
    return list(
        session.scalars(
            select(AuditLog.action)
            .where(AuditLog.workspace_id == workspace_id)
            .distinct()
            .order_by(AuditLog.action)
        )
    )


def audit_entries(workspace_id: int, action: str = "") -> Select:
    """(entry, user name, user email) of the workspace's log (only `action`'s when given),
    newest first: a statement, so a page can count and slice it."""
    shown = [AuditLog.workspace_id == workspace_id]
    if action:
        shown.append(AuditLog.action == action)
    return (
        select(AuditLog, User.name, User.email)
        .outerjoin(User, User.id == AuditLog.user_id)
        .where(*shown)
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    )
