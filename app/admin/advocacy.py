"""Advocacy: who brings readers and leads by sharing content — staff members through their
personal links, customers by forwarding what they read — ranked by the leads they brought,
then by views, over the last 7, 30 or 90 days (outreach.library.advocacy.leaderboard: one query)."""

from flask import render_template, request

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.content import window
from outreach.library import stats
from outreach.library.advocacy import SharerKind, leaderboard

TOP = 100
KINDS = (SharerKind.STAFF, SharerKind.CONTACT)


@bp.get("/advocacy")
@requires("view")
def advocacy():
    days, since = window()
    kind = request.args.get("kind")
    kind = kind if kind in KINDS else None
    return render_template(
        "admin/advocacy.html",
        advocates=leaderboard(db(), workspace_id(), since, kind=kind, limit=TOP),
        days=days,
        windows=stats.WINDOWS,
        kind=kind,
        top=TOP,
    )
