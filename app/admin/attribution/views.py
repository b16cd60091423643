"""The attribution page (/admin/revenue/attribution) and a content item's value chain."""

from flask import render_template, request

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.attribution import presenters
from app.admin.content import timezone
from app.admin.lookups import scoped_or_404
from models import Content
from revenue.attribution import WINDOW_DAYS
from revenue.credit import DIMENSIONS, HALF_LIFE_DAYS, MODELS
from revenue.influence import influence, influence_totals, value_chain


@bp.get("/revenue/attribution")
@requires("attribution.view")
def attribution():
    chosen = presenters.filters(request.args)
    since, until = chosen.bounds(timezone())
    ws, dimension, model = workspace_id(), chosen.dimension, chosen.model
    rows = influence(db(), ws, dimension, model, since=since, until=until)
    totals = influence_totals(db(), ws, dimension, model, since=since, until=until)
    return render_template(
        "admin/attribution.html",
        chosen=chosen,
        rows=rows,
        totals=totals,
        chart=presenters.chart(rows),
        models=MODELS,
        dimensions=DIMENSIONS,
        model_labels=presenters.MODEL_LABELS,
        model_hints=presenters.MODEL_HINTS,
        dimension_labels=presenters.DIMENSION_LABELS,
        window_days=WINDOW_DAYS,
        half_life_days=int(HALF_LIFE_DAYS),
    )


@bp.get("/content/<int:content_id>/value-chain")
@requires("attribution.view")
def content_value_chain(content_id: int):
    row = scoped_or_404(Content, content_id)
    steps = value_chain(db(), row.workspace_id, row.id)
    return render_template(
        "admin/content_value_chain.html",
        row=row,
        steps=steps,
        funnel=presenters.funnel(steps),
        labels=presenters.CHAIN_LABELS,
        hints=presenters.CHAIN_HINTS,
    )
