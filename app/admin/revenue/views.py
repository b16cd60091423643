"""The revenue dashboard's route: filters read from the query string, the KPIs of the
period and of the one before (revenue.kpis), and the page."""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import g, render_template, request
from flask_login import current_user

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.labels import stage_names
from app.admin.revenue.forms import read_filters
from app.admin.revenue.presenters import chart_data, lifecycle_rows, tiles
from crm.users import assignable_users
from models import Role
from revenue.kpis import Scope, kpis, lifecycle, over_time
from scoring.engine import load_model


@bp.get("/revenue")
@requires("revenue.view")
def revenue():
    ws = workspace_id()
    timezone = g.get("workspace_timezone") or "Asia/Shanghai"
    model = load_model(db(), ws)
    owners = {} if current_user.role == Role.SALES else dict(assignable_users(db(), ws, None))
    filters = read_filters(
        request.args,
        today=datetime.now(ZoneInfo(timezone)).date(),
        tiers=sorted({rule.tier for rule in model.tiers}),
        owners=owners,
        forced_owner=current_user.id if current_user.role == Role.SALES else None,
    )
    scope = Scope(ws, *filters.bounds(timezone), tier=filters.tier, owner_id=filters.owner_id)
    mqa_stage = model.stage_rules.mqa or "mqa"
    current, previous = kpis(db(), scope, mqa_stage), kpis(db(), scope.previous(), mqa_stage)
    stages = [stage.key for stage in model.stages]
    rows = lifecycle(db(), scope, stages)
    series = over_time(db(), scope, timezone, filters.grain)
    return render_template(
        "admin/revenue.html",
        filters=filters,
        owners=owners,
        tiers=sorted({rule.tier for rule in model.tiers}),
        tiles=tiles(current, previous),
        current=current,
        lifecycle=lifecycle_rows(rows, stage_names(model.stages)),
        charts=chart_data(series, rows, current),
        has_accounts=any(row.reached for row in rows),
    )
