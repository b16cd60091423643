"""Webhook signing: the workspace's secret that every journey webhook is signed with,
created or rotated here and shown once, on the answer to that POST (never through the
session cookie); Harpoon keeps it encrypted. Owners and admins only, as for API keys.
And the CRM's address, told when an account reaches MQA or is routed (crm.crm_webhook),
signed with the same secret.
"""

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from core.outbound import url_problem
from core.text import N_
from crm.api_keys import SIGNATURE_TOLERANCE_SECONDS
from crm.crm_webhook import EVENTS
from journeys.webhooks import (
    DELIVERY_HEADER,
    ROTATION_GRACE,
    SIGNATURE_HEADER,
    WORKSPACE_HEADER,
    NewSecret,
    in_grace,
    rotate_secret,
    secret_of,
)
from models import User, Workspace, utcnow

CRM_URL_LENGTH = 500  # Workspace.crm_webhook_url


@bp.get("/webhooks")
@requires("webhooks.manage")
def webhooks():
    return _page()


@bp.post("/webhooks/secret")
@requires("webhooks.manage")
def webhooks_rotate():
    new = rotate_secret(db(), workspace_id(), created_by=current_user.id)
    if new is None:
        flash(
            _(
                "Another request created the signing secret a moment ago and showed it there. "
                "If nobody has it, rotate it."
            ),
            "error",
        )
        return redirect(url_for("admin.webhooks"))
    audit(
        db(),
        "webhook_secret.rotate" if new.rotated else "webhook_secret.create",
        "webhook_secret",
        new.row.id,
        {"prefix": new.row.prefix},
    )
    db().commit()
    response = make_response(_page(new=new))
    response.headers["Cache-Control"] = "no-store"  # the secret is in this answer only
    return response


@bp.post("/webhooks/crm")
@requires("webhooks.manage")
def webhooks_crm():
    """Set (or, left empty, clear) the address the CRM is told at."""
    url = request.form.get("crm_webhook_url", "").strip()
    problem = url_problem(url) if url else None
    if not problem and len(url) > CRM_URL_LENGTH:
        problem = N_("An address of at most 500 characters.")
    if problem:
        return _page(crm_url=url, crm_error=_(problem)), 400
    workspace = db().get(Workspace, workspace_id())
    before = workspace.crm_webhook_url
    if (url or None) != before:
        workspace.crm_webhook_url = url or None
        audit(
            db(),
            "crm_webhook.set" if url else "crm_webhook.clear",
            "workspace",
            workspace.id,
            {"crm_webhook_url": [before, url or None]},
        )
        db().commit()
        flash(_("CRM webhook saved.") if url else _("CRM webhook removed."), "success")
    return redirect(url_for("admin.webhooks"))


def _page(
    *, new: NewSecret | None = None, crm_url: str | None = None, crm_error: str | None = None
):
    row = secret_of(db(), workspace_id())
    if crm_url is None:
        crm_url = db().get(Workspace, workspace_id()).crm_webhook_url or ""
    creator = db().get(User, row.created_by) if row and row.created_by else None
    return render_template(
        "admin/webhooks.html",
        row=row,
        creator=creator,
        new=new,
        in_grace=row is not None and in_grace(row, utcnow()),
        workspace=workspace_id(),
        headers=(WORKSPACE_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER),
        grace_hours=int(ROTATION_GRACE.total_seconds() // 3600),
        tolerance_minutes=SIGNATURE_TOLERANCE_SECONDS // 60,
        crm_url=crm_url,
        crm_error=crm_error,
        crm_events=EVENTS,
    )
