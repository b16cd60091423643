"""How tasks read on the pages: their sources and statuses, and who can be given one."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import SelectChoice

from models import Role, TaskSource, TaskStatus, User

SOURCE_LABELS = {
    TaskSource.MQA: _l("MQA"),
    TaskSource.SURGE: _l("Surge"),
    TaskSource.ROUTING: _l("Routing"),
    TaskSource.JOURNEY: _l("Journey"),
    TaskSource.RULE: _l("Task rule"),
    TaskSource.MANUAL: _l("By hand"),
}
STATUS_LABELS = {
    TaskStatus.OPEN: _l("To do"),
    TaskStatus.DONE: _l("Done"),
    TaskStatus.SKIPPED: _l("Skipped"),
}
STATUS_BADGES = {TaskStatus.OPEN: "warn", TaskStatus.DONE: "ok", TaskStatus.SKIPPED: ""}
RULE_ON_LABELS = {"stage": _l("Enters the stage"), "tier": _l("Enters the tier")}
# Who may be given a task: the people who work accounts.
ASSIGNABLE_ROLES = (Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES)


def assignable_users(session: Session, workspace_id: int) -> list:
    """(id, name) of the workspace's active users who may be given a task, by name."""
    return session.execute(
        select(User.id, User.name)
        .where(
            User.workspace_id == workspace_id,
            User.active.is_(True),
            User.role.in_(ASSIGNABLE_ROLES),
        )
        .order_by(User.name, User.id)
    ).all()


def assignee_choices(users: list, unassigned_label) -> list[SelectChoice]:
    return [SelectChoice("", unassigned_label)] + [
        SelectChoice(user_id, name) for user_id, name in users
    ]
