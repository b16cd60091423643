"""Creating admin users (CLI, demo seeding), and the workspace's
users as the admin pages' pickers and names read them."""

import re

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from models import Role, User, Workspace

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


class UserError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def create_user(
    session: Session, workspace: Workspace, email: str, name: str, password: str, role: str
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError("email", "is not an email address")
    if session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise UserError("email", f"{email} already has an account")
    if len(password) < MIN_PASSWORD:
        raise UserError("password", f"at least {MIN_PASSWORD} characters")
    if role not in set(Role):
        raise UserError("role", f"one of {', '.join(Role)}")
    user = User(workspace_id=workspace.id, email=email, name=name.strip() or email, role=role)
    user.set_password(password)
    session.add(user)
    session.flush()
    return user


def user_names(
    session: Session, workspace_id: int, user_ids: list[int] | None = None
) -> dict[int, str]:
    """user id -> name, of every user of the workspace or of those in `user_ids`."""
    query = select(User.id, User.name).where(User.workspace_id == workspace_id)
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    return dict(session.execute(query).all())


def users_by_name(session: Session, workspace_id: int) -> list[Row]:
    """(id, name) of every user of the workspace, by name."""
    return session.execute(
        select(User.id, User.name).where(User.workspace_id == workspace_id).order_by(User.name)
    ).all()


def assignable_users(session: Session, workspace_id: int, current_id: int | None) -> list[Row]:
    """(id, name) of the active users, and of `current_id` (who may be deactivated since)."""
    return session.execute(
        select(User.id, User.name)
        .where(User.workspace_id == workspace_id, User.active.is_(True) | (User.id == current_id))
        .order_by(User.name, User.id)
    ).all()


def user_by_email(session: Session, email: str) -> User | None:
    """The user signing in with this (lowercased) email, of whichever workspace: an email
    names one account across workspaces, and sign-in comes before any workspace."""
    return session.scalar(select(User).where(func.lower(User.email) == email))


def workspace_user(session: Session, workspace_id: int, user_id: int | None) -> User | None:
    return session.scalar(select(User).where(User.id == user_id, User.workspace_id == workspace_id))
