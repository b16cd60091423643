"""Shared pieces of the admin views: a workspace-scoped lookup that 404s, an id from the
query string, pagination, and the archive / restore of a library row."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil
from typing import TypeVar

from flask import abort, flash, redirect, request
from sqlalchemy import Select, func, select

from app.admin import db
from app.admin.access import audit, workspace_id
from core.references import fits_column

M = TypeVar("M")


def scoped_or_404(model: type[M], row_id: int, *conditions, options: Sequence = ()) -> M:
    """The workspace's row of `model` with this id (and `conditions`), or a 404: another
    workspace's id is answered exactly like an id that does not exist. `options` are the
    loader options (e.g. a deferred large column). An id too large to be any row's (a
    made-up URL) is a 404 too."""
    if not fits_column(model.id, row_id):
        abort(404)
    row = db().scalar(
        select(model)
        .options(*options)
        .where(model.id == row_id, model.workspace_id == workspace_id(), *conditions)
    )
    if row is None:
        abort(404)
    return row


def id_arg(name: str, column) -> int | None:
    """The request's `name` argument (query string or form) as an id of `column` (e.g.
    `User.id`): None when absent, not a whole number, or too large to be any row's."""
    value = request.values.get(name, type=int)
    return value if value is not None and fits_column(column, value) else None


@dataclass
class Page:
    rows: list
    page: int  # 1-based, clamped to 1..pages
    pages: int
    total: int


def _current_page(total: int, page_size: int, page: int | None) -> tuple[int, int]:
    """(page, pages): the asked page (the `page` query argument unless given) within range."""
    pages = max(1, ceil(total / page_size))
    wanted = page if page is not None else request.args.get("page", 1, type=int)
    return min(max(wanted, 1), pages), pages


def paginate(stmt: Select, page_size: int, page: int | None = None) -> Page:
    """One page of `stmt`'s rows (the `page` query argument unless given): one COUNT and one
    LIMIT/OFFSET query. `stmt` carries its own ORDER BY."""
    total = db().scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    current, pages = _current_page(total, page_size, page)
    rows = db().execute(stmt.limit(page_size).offset((current - 1) * page_size)).all()
    return Page(rows=rows, page=current, pages=pages, total=total)


def paginate_list(items: Sequence, page_size: int, page: int | None = None) -> Page:
    """One page of a list already in memory (e.g. a JSON array column), as `paginate`."""
    current, pages = _current_page(len(items), page_size, page)
    rows = list(items[(current - 1) * page_size : current * page_size])
    return Page(rows=rows, page=current, pages=pages, total=len(items))


@dataclass(frozen=True)
class Archivable:
    """How an archivable kind of row (content, a form) is archived from its pages."""

    kind: str  # the audit log's name: "content" -> content.archive / content.restore
    set_archived: Callable  # (session, row, archived) -> False when it was so already
    after_commit: Callable  # (row) -> None, e.g. forget its links' cached targets
    archived: Callable  # (row) -> the flash message once archived
    restored: Callable  # (row) -> the flash message once restored
    list_url: Callable  # () -> where an archived row's page goes: the list
    detail_url: Callable  # (row) -> where a restored row's page goes: the row's page


def archive_or_restore(row, archived: bool, archivable: Archivable):
    """Archive or restore `row` (audited with its title; nothing is written when it was so
    already), then back to the list (archived) or to its page (restored)."""
    if archivable.set_archived(db(), row, archived):
        action = f"{archivable.kind}.{'archive' if archived else 'restore'}"
        audit(db(), action, archivable.kind, row.id, {"title": row.title})
        db().commit()
        archivable.after_commit(row)
    if archived:
        flash(archivable.archived(row), "success")
        return redirect(archivable.list_url())
    flash(archivable.restored(row), "success")
    return redirect(archivable.detail_url(row))
