"""Shared pieces of the admin views: a workspace-scoped lookup that 404s, and pagination."""

from dataclasses import dataclass
from math import ceil
from typing import TypeVar

from flask import abort, request
from sqlalchemy import Select, func, select

from app.admin import db
from app.admin.access import workspace_id

M = TypeVar("M")


def scoped_or_404(model: type[M], row_id: int, *conditions) -> M:
    """The workspace's row of `model` with this id (and `conditions`), or a 404: another
    workspace's id is answered exactly like an id that does not exist."""
    row = db().scalar(
        select(model).where(model.id == row_id, model.workspace_id == workspace_id(), *conditions)
    )
    if row is None:
        abort(404)
    return row


@dataclass
class Page:
    rows: list
    page: int  # 1-based, clamped to 1..pages
    pages: int
    total: int


def paginate(stmt: Select, page_size: int, page: int | None = None) -> Page:
    """One page of `stmt`'s rows (the `page` query argument unless given): one COUNT and one
    LIMIT/OFFSET query. `stmt` carries its own ORDER BY."""
    total = db().scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    pages = max(1, ceil(total / page_size))
    wanted = page if page is not None else request.args.get("page", 1, type=int)
    current = min(max(wanted, 1), pages)
    rows = db().execute(stmt.limit(page_size).offset((current - 1) * page_size)).all()
    return Page(rows=rows, page=current, pages=pages, total=total)
