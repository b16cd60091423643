"""Who may do what, in which workspace; and the audit trail of configuration changes."""

from functools import wraps

from flask import abort, g, request
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from core.references import Reference, unknown_references
from models import AuditLog, Role

# Each permission lists the roles that hold it; every view and JSON API names one.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(Role),
    "contacts.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES, Role.VIEWER}),
    "channels.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "channels.manage": frozenset({Role.OWNER, Role.ADMIN}),
    "inbox.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "inbox.retry": frozenset({Role.OWNER, Role.ADMIN}),
    "accounts.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "accounts.import": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Sales tag their own customers too; rules, the dictionary and sync are the marketers'.
    "contacts.tag": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    "tags.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # 联系我 codes, staff sync and the staff -> user mapping.
    "wecom.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Sales send to their own customers; marketers prepare sends for them.
    "group_send.create": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    # Customer transfers (客户继承): handing a salesperson's WeCom customers to another.
    "transfers.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # The scoring model (rules, weights, MQA, tiers, stages) is the marketers'.
    "scoring.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Sales log meetings, opportunities and wins by moving an account's or contact's stage.
    "stages.move": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    # Outreach: segments, OA menus, channel QR codes and pushes are the marketers'.
    "segments.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "menus.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "qrcodes.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "pushes.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Sending a push to more followers than the workspace's threshold needs an admin.
    "pushes.approve": frozenset({Role.OWNER, Role.ADMIN}),
    # Journeys (editing, going live, pausing, archiving, moving enrolments) are the marketers'.
    "journeys.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # The content library: content items, forms and their tracked links.
    "content.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # The workspace's own SMTP server (its password) and mailing a suppressed address again.
    "email.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # Keys for the touchpoint API let a system write as the workspace.
    "api_keys.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # The webhook signing secret: whoever holds it can forge the workspace's webhooks.
    "webhooks.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # Routing rules and the first-touch SLA decide who sells to whom.
    "routing.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Tasks: everyone who sees contacts sees them; sales add and close their own (and pick
    # up unassigned ones); reassigning and closing anyone's is the marketers'.
    "tasks.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES, Role.VIEWER}),
    "tasks.work": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    "tasks.assign": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # Rules that give owners tasks when an account enters a stage or a tier.
    "task_rules.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "audit.view": frozenset({Role.OWNER, Role.ADMIN}),
    # Opportunities: everyone who sees contacts sees them (sales those of their accounts);
    # sales add and edit those of the accounts they own.
    "opportunities.view": frozenset(
        {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES, Role.VIEWER}
    ),
    "opportunities.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    # The pipeline's stages and the import of a CRM's export.
    "pipeline.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "opportunities.import": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    # The chat sidebar's actions: a note, a task, content sent into the chat.
    "sales.act": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    "users.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # Closing a task (done or skipped, with a note): sales their own, marketers any.
    "tasks.close": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    # Tier programs: the menu, budgets and the order queue are the marketers'; sales tick
    # programs for the accounts they own.
    "programs.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    "programs.request": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.SALES}),
    # The revenue dashboard: sales see it over their own accounts only (the view forces it).
    "revenue.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.VIEWER, Role.SALES}),
    # What marketing influenced: attribution of pipeline and revenue, a content item's value.
    "attribution.view": frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.VIEWER}),
}


def can(permission: str) -> bool:
    return current_user.is_authenticated and current_user.role in PERMISSIONS[permission]


def landing_endpoint() -> str:
    """Where a signed-in user starts: a salesperson on their home, everyone else on the
    dashboard."""
    return "admin.home" if current_user.role == Role.SALES else "admin.dashboard"


MINE, EVERYONES = "mine", "all"


def list_scope() -> str:
    """Whose rows the accounts and contacts lists show (the `scope` argument): "mine" or
    "all"; a salesperson starts on their own, everyone else on all."""
    asked = request.args.get("scope", "")
    return asked if asked in (MINE, EVERYONES) else _default_scope()


def _default_scope() -> str:
    return MINE if current_user.role == Role.SALES else EVERYONES


def scope_args(scope: str) -> dict[str, str]:
    """The `scope` argument the list's links carry: none for the role's default."""
    return {} if scope == _default_scope() else {"scope": scope}


def requires(permission: str):
    """Sign-in plus the permission; a 403 page otherwise. Also usable on JSON endpoints."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission}")

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not can(permission):
                abort(403)
            g.workspace_id = current_user.workspace_id
            return view(*args, **kwargs)

        wrapped.permission = permission
        return wrapped

    return decorate


def workspace_id() -> int:
    """The signed-in user's workspace: every admin query is filtered by it."""
    return current_user.workspace_id


def audit(session: Session, action: str, target_type: str, target_id, changes: dict) -> None:
    """Record a configuration change in the same transaction as the change."""
    session.add(
        AuditLog(
            workspace_id=current_user.workspace_id,
            user_id=current_user.id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            changes={**changes, "ip": request.remote_addr},
        )
    )


def ids_of_workspace(session: Session, form, references: tuple[Reference, ...]) -> bool:
    """Whether every id the form's inputs name (one input per declared path) is the
    workspace's; the declaration's message (given the id as %(id)s) beside each input that
    names another's."""
    named = {reference.path: form[reference.path].data for reference in references}
    problems = unknown_references(session, workspace_id(), named, references)
    for path, messages in problems.items():
        field = form[path]
        field.errors = [*field.errors, *(gettext(text, id=field.data) for text in messages)]
    return not problems
