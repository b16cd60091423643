"""Inbox: what the durable inbox holds, what needs attention, and the operator's retry."""

import json
import logging
import math
from datetime import timedelta
from xml.dom import minidom
from xml.etree import ElementTree
from xml.parsers.expat import ExpatError

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from sqlalchemy import and_, func, select

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.auth import safe_path
from app.extensions import harpoon
from models import (
    Channel,
    Contact,
    InboundEvent,
    InboxStatus,
    Staff,
    WelcomeMessage,
    WelcomeStatus,
    utcnow,
)
from pipeline import inbox as inbox_handler

log = logging.getLogger(__name__)
PAGE_SIZE = 50
# The default view: what an operator has to look at.
ATTENTION = (InboxStatus.PENDING, InboxStatus.FAILED, InboxStatus.DEAD)
STATUS_TABS = (
    InboxStatus.PENDING,
    InboxStatus.FAILED,
    InboxStatus.DEAD,
    InboxStatus.DONE,
    InboxStatus.IGNORED,
)
RETRYABLE = frozenset({InboxStatus.FAILED, InboxStatus.DEAD})
STATUS_LABELS = {
    InboxStatus.PENDING: _l("Pending"),
    InboxStatus.FAILED: _l("Failed"),
    InboxStatus.DEAD: _l("Dead"),
    InboxStatus.DONE: _l("Done"),
    InboxStatus.IGNORED: _l("Ignored"),
}
STATUS_BADGES = {
    InboxStatus.PENDING: "warn",
    InboxStatus.FAILED: "error",
    InboxStatus.DEAD: "error",
    InboxStatus.DONE: "ok",
}


@bp.get("/inbox")
@requires("inbox.view")
def inbox():
    ws = workspace_id()
    status = request.args.get("status", "")
    if status not in (*STATUS_TABS, "all"):
        status = ""
    page = max(request.args.get("page", 1, type=int), 1)
    counts = inbox_handler.status_counts(db(), ws)
    shown = {"": ATTENTION, "all": tuple(InboxStatus)}.get(status, (status,))
    total = sum(counts.get(s, 0) for s in shown)
    rows = db().execute(
        _events(ws)
        .where(InboundEvent.status.in_(shown))
        .order_by(InboundEvent.received_at.desc(), InboundEvent.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    oldest_pending = inbox_handler.oldest_pending(db(), ws)
    return _render(
        "admin/inbox.html",
        counts=counts,
        attention=sum(counts.get(s, 0) for s in ATTENTION),
        everything=sum(counts.values()),
        status=status,
        tabs=STATUS_TABS,
        rows=[(event, name or _source(event)) for event, name in rows],
        page=page,
        pages=max(math.ceil(total / PAGE_SIZE), 1),
        oldest_pending=oldest_pending,
        # Negative: Babel words it in the past ("3 minutes ago", "3分钟前").
        oldest_pending_age=oldest_pending and oldest_pending - utcnow(),
        welcomes=welcome_problems(ws),
    )


@bp.get("/inbox/<int:event_id>")
@requires("inbox.view")
def inbox_event(event_id: int):
    event, channel_name = _event_or_404(event_id)
    return _render(
        "admin/inbox_event.html",
        event=event,
        channel_name=channel_name,
        payload=pretty_xml(event.payload),
        payload_fields=xml_fields(event.payload),
    )


@bp.post("/inbox/<int:event_id>/retry")
@requires("inbox.retry")
def inbox_retry(event_id: int):
    event, channel_name = _event_or_404(event_id)
    before = {"status": event.status, "attempts": event.attempts}
    retried = inbox_handler.retry(db(), event.id, workspace_id())
    if retried:
        audit(db(), "inbox.retry", "inbound_event", event.id, before)
    db().commit()
    if retried:
        _request_drain(event.workspace_id, event.lane)
        message, category = _("Queued for retry."), "success"
    else:
        message, category = _("Only a failed or dead event can be retried."), "error"
    if request.headers.get("HX-Request"):
        db().refresh(event)
        return _render(
            "admin/inbox_row.html",
            event=event,
            channel_name=channel_name,
            back=_back_to(request.form.get("next")),
            message=message,
            message_category=category,
        )
    flash(message, category)
    return redirect(_back_to(request.form.get("next")))


def _render(template: str, **context) -> str:
    return render_template(
        template,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        retryable=RETRYABLE,
        **context,
    )


# Where a touchpoint that names no channel came from.
SOURCE_LABELS = {"api": _l("Touchpoint API"), "web": _l("Harpoon pages")}


def _events(ws: int):
    return (
        select(InboundEvent, Channel.name)
        .outerjoin(Channel, Channel.id == InboundEvent.channel_id)
        .where(InboundEvent.workspace_id == ws)
    )


def _event_or_404(event_id: int) -> tuple[InboundEvent, str]:
    row = db().execute(_events(workspace_id()).where(InboundEvent.id == event_id)).first()
    if row is None:
        abort(404)
    return row[0], row[1] or _source(row[0])


def _source(event: InboundEvent) -> str:
    return str(SOURCE_LABELS.get(event.platform, event.platform))


def _request_drain(ws: int, lane: int) -> None:
    """On either queue a drain job: Redis workers, or the serving process's embedded worker."""
    try:
        harpoon().queue.enqueue_drain(ws, lane)
    except RedisError as exc:  # the row is committed as pending: the sweeper finds it
        log.warning("drain request failed for workspace %s after a retry: %s", ws, exc)


def _back_to(target: str | None) -> str:
    """Back to the inbox page the form came from; never a path elsewhere."""
    inbox = url_for("admin.inbox")
    return target if safe_path(target, inbox) else inbox


def pretty_xml(payload: str) -> str:
    """The payload indented for reading, CDATA kept (a touchpoint's JSON indented); as
    stored when it does not parse."""
    if payload.lstrip().startswith("{"):
        try:
            return json.dumps(json.loads(payload), ensure_ascii=False, indent=2)
        except ValueError:
            return payload
    try:
        document = minidom.parseString(payload)
    except ExpatError:
        return payload
    _strip_blank_text(document.documentElement)
    return document.documentElement.toprettyxml(indent="  ").strip()


def _strip_blank_text(node) -> None:
    # WeChat's own line breaks would otherwise come out doubled.
    for child in list(node.childNodes):
        if child.nodeType == child.TEXT_NODE and not child.data.strip():
            node.removeChild(child)
        else:
            _strip_blank_text(child)


def xml_fields(payload: str) -> list[tuple[str, str]]:
    """The payload's fields in document order; a nested one as Parent/Child (a touchpoint's
    JSON alike)."""
    if payload.lstrip().startswith("{"):
        try:
            return _json_fields(json.loads(payload), "")
        except ValueError:
            return []
    try:
        root = ElementTree.fromstring(payload)
    except ElementTree.ParseError:
        return []
    fields = []

    def walk(element, prefix: str) -> None:
        for child in element:
            name = f"{prefix}{child.tag}"
            if len(child):
                walk(child, f"{name}/")
            else:
                fields.append((name, (child.text or "").strip()))

    walk(root, "")
    return fields


def _json_fields(value, prefix: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [(prefix.rstrip("/"), json.dumps(value, ensure_ascii=False))]
    fields = []
    for name, child in value.items():
        if isinstance(child, dict) and child:
            fields += _json_fields(child, f"{prefix}{name}/")
        else:
            text = child if isinstance(child, str) else json.dumps(child, ensure_ascii=False)
            fields.append((f"{prefix}{name}", text))
    return fields


WELCOME_ALERT_WINDOW = timedelta(hours=24)
WELCOME_ALERT_ROWS = 10


def welcome_problems(ws: int) -> dict | None:
    """Welcomes of the last 24 h that never went out: missed (WeCom's 20 s had passed) or
    refused by WeCom; None when there are none."""
    since = utcnow() - WELCOME_ALERT_WINDOW
    recent = (WelcomeMessage.workspace_id == ws, WelcomeMessage.received_at >= since)
    failed = (WelcomeStatus.MISSED, WelcomeStatus.REFUSED)
    counts = dict(
        db()
        .execute(
            select(WelcomeMessage.status, func.count())
            .where(*recent, WelcomeMessage.status.in_(failed))
            .group_by(WelcomeMessage.status)
        )
        .all()
    )
    if not counts:
        return None

    def latest(status: str) -> list:
        return (
            db()
            .execute(
                select(WelcomeMessage, Contact.name, Staff.name)
                .outerjoin(Contact, Contact.id == WelcomeMessage.contact_id)
                .outerjoin(
                    Staff,
                    and_(
                        Staff.channel_id == WelcomeMessage.channel_id,
                        Staff.userid == WelcomeMessage.staff_userid,
                    ),
                )
                .where(*recent, WelcomeMessage.status == status)
                .order_by(WelcomeMessage.received_at.desc(), WelcomeMessage.id.desc())
                .limit(WELCOME_ALERT_ROWS)
            )
            .all()
        )

    return {
        "counts": counts,
        "missed": latest(WelcomeStatus.MISSED) if WelcomeStatus.MISSED in counts else [],
        "refused": latest(WelcomeStatus.REFUSED) if WelcomeStatus.REFUSED in counts else [],
        "now": utcnow(),
    }
