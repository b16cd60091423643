"""Audit: who changed what in this workspace, newest first."""

import json

from flask import render_template, request

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.lookups import paginate
from crm.audit import audit_actions, audit_entries

PAGE_SIZE = 50


@bp.get("/audit")
@requires("audit.view")
def audit():
    ws = workspace_id()
    action = request.args.get("action", "")
    actions = audit_actions(db(), ws)
    listed = paginate(audit_entries(ws, action), PAGE_SIZE)
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
