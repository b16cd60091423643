"""Audit: who changed what in this workspace, newest first."""

import json

from flask import render_template, request
from sqlalchemy import select

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.lookups import paginate
from models import AuditLog, User

PAGE_SIZE = 50


@bp.get("/audit")
@requires("audit.view")
def audit():
    ws = workspace_id()
    action = request.args.get("action", "")
    actions = list(
        db().scalars(
            select(AuditLog.action)
            .where(AuditLog.workspace_id == ws)
            .distinct()
            .order_by(AuditLog.action)
        )
    )
    shown = [AuditLog.workspace_id == ws]
    if action:
        shown.append(AuditLog.action == action)
    listed = paginate(
        select(AuditLog, User.name, User.email)
        .outerjoin(User, User.id == AuditLog.user_id)
        .where(*shown)
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc()),
        PAGE_SIZE,
    )
    entries = [
        {"log": log, "user_name": name, "user_email": email, "changes": compact(log.changes)}
        for log, name, email in listed.rows
    ]
    return render_template(
        "admin/audit.html",
        entries=entries,
        actions=actions,
        action=action,
        page=listed.page,
        pages=listed.pages,
    )


def compact(changes: dict | None) -> list[tuple[str, str]]:
    """Each change as (key, its value in JSON): a string shows its quotes, a list its brackets."""
    return [
        (key, json.dumps(value, ensure_ascii=False, default=str))
        for key, value in (changes or {}).items()
    ]
