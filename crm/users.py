"""Creating admin users (CLI, demo seeding and later the Settings page), and their names."""

import re

from sqlalchemy import func, select
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


def user_names(session: Session, workspace_id: int) -> dict[int, str]:
    """The workspace's users: id -> name."""
    return dict(
        session.execute(select(User.id, User.name).where(User.workspace_id == workspace_id)).all()
    )
