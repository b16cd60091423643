"""What happens to an email after it left: opened (the pixel), clicked (a tracked link),
unsubscribed (the one-click link or the page), bounced or marked as spam (the API).

The public routes and the API call these in their request's transaction: each updates the
message's counters and puts a touchpoint (email.open, email.click, email.unsubscribe,
email.bounce, email.complaint) in the durable inbox, where the drain makes it the
contact's interaction, so it scores and drives journeys. An open is one touchpoint per
message, a click one per message and link, an unsubscribe one per message: the counters
count every request, the interactions do not repeat.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from core.lanes import lane_of
from crm.touchpoints import person_key, store_web_touchpoint
from models import EmailMessage, EmailStatus, SuppressionReason, utcnow
from outreach.suppressions import normalized, suppress

TOKEN = re.compile(r"[A-Za-z0-9_-]{8,32}")
MAX_URL = 2000
BOUNCE, COMPLAINT = "bounce", "complaint"
REPORT_KINDS = {BOUNCE: "email.bounce", COMPLAINT: "email.complaint"}


def message_of_token(session: Session, token: str) -> EmailMessage | None:
    """The message a tracking URL names; None for a token that names none (or is no token)."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return None
    return session.scalar(select(EmailMessage).where(EmailMessage.token == token))


def _touch(
    session: Session,
    message: EmailMessage,
    kind: str,
    dedupe_key: str,
    now: datetime,
    lanes: int,
    extra: dict | None = None,
) -> int | None:
    """The message's contact's touchpoint into the inbox; the lane to drain, or None when
    the inbox had it already (or the message had no address)."""
    if not message.to_address:
        return None
    identity = {"email": message.to_address}
    properties = {
        "email_id": message.id,
        "subject": message.subject,
        "template_id": message.template_id,
        "push_id": message.push_id,
        "step_id": message.step_id,
    }
    payload = {
        "kind": kind,
        "occurred_at": now.isoformat(),
        "identity": identity,
        "properties": {k: v for k, v in properties.items() if v is not None} | (extra or {}),
        "minutes": 0.0,
        "refs": {"email_message_id": message.id},
    }
    stored = store_web_touchpoint(
        session, message.workspace_id, None, dedupe_key, payload, now, lanes
    )
    return lane_of(person_key(identity), lanes) if stored else None


def record_open(
    session: Session, message: EmailMessage, *, lanes: int, now: datetime | None = None
) -> int | None:
    """The pixel was loaded: counted, the first time noted; the lane to drain or None."""
    now = now or utcnow()
    session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message.id)
        .values(
            open_count=EmailMessage.open_count + 1,
            opened_at=case((EmailMessage.opened_at.is_(None), now), else_=EmailMessage.opened_at),
        )
    )
    return _touch(session, message, "email.open", f"email.open:{message.id}", now, lanes)


def record_click(
    session: Session, message: EmailMessage, url: str, *, lanes: int, now: datetime | None = None
) -> int | None:
    """A tracked link was followed (its signature checked by the caller); a click also
    proves the email was opened, when the pixel was blocked."""
    now = now or utcnow()
    session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message.id)
        .values(
            click_count=EmailMessage.click_count + 1,
            clicked_at=case(
                (EmailMessage.clicked_at.is_(None), now), else_=EmailMessage.clicked_at
            ),
            opened_at=case((EmailMessage.opened_at.is_(None), now), else_=EmailMessage.opened_at),
        )
    )
    key = f"email.click:{message.id}:{_url_key(url)}"
    return _touch(session, message, "email.click", key, now, lanes, {"url": url[:MAX_URL]})


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


def unsubscribe(
    session: Session, message: EmailMessage, *, lanes: int, now: datetime | None = None
) -> int | None:
    """The person asked for no more email: their address is suppressed (again is a no-op);
    the lane to drain or None."""
    now = now or utcnow()
    if message.to_address:
        suppress(
            session,
            message.workspace_id,
            message.to_address,
            SuppressionReason.UNSUBSCRIBED,
            message_id=message.id,
            now=now,
        )
    key = f"email.unsubscribe:{message.id}"
    return _touch(session, message, "email.unsubscribe", key, now, lanes)


@dataclass
class Report:
    """One bounce or complaint an email provider reported (the API's item, checked)."""

    type: str  # BOUNCE or COMPLAINT
    email: str | None = None
    token: str | None = None
    message_id: str | None = None  # the Message-ID header, with or without <>
    hard: bool = True
    detail: str | None = None


@dataclass
class ReportResult:
    status: str  # "suppressed", "recorded" (a soft bounce) or "unknown" (no such message)
    address: str | None = None
    message: EmailMessage | None = None
    lane: int | None = None


def _reported_message(session: Session, workspace_id: int, report: Report):
    scope = EmailMessage.workspace_id == workspace_id
    if report.token:
        return session.scalar(select(EmailMessage).where(scope, EmailMessage.token == report.token))
    if report.message_id:
        bare = report.message_id.strip().strip("<>")
        return session.scalar(
            select(EmailMessage).where(scope, EmailMessage.message_id.in_((f"<{bare}>", bare)))
        )
    return session.scalar(
        select(EmailMessage)
        .where(
            scope,
            EmailMessage.to_address == normalized(report.email),  # stored lower-cased
            EmailMessage.status.in_((EmailStatus.SENT, EmailStatus.BOUNCED)),
        )
        .order_by(EmailMessage.sent_at.desc(), EmailMessage.id.desc())
        .limit(1)
    )


def record_report(
    session: Session, workspace_id: int, report: Report, *, lanes: int, now: datetime | None = None
) -> ReportResult:
    """A bounce or complaint: a hard bounce or a complaint suppresses the address and marks
    its message bounced; each becomes the contact's email.bounce / email.complaint."""
    now = now or utcnow()
    message = _reported_message(session, workspace_id, report)
    address = normalized(report.email) if report.email else None
    if message is not None and message.to_address:
        address = address or normalized(message.to_address)
    if address is None:
        return ReportResult("unknown")
    final = report.type == COMPLAINT or report.hard
    if final:
        reason = (
            SuppressionReason.COMPLAINED if report.type == COMPLAINT else SuppressionReason.BOUNCED
        )
        suppress(
            session,
            workspace_id,
            address,
            reason,
            detail=report.detail,
            message_id=message.id if message else None,
            now=now,
        )
    lane = None
    if message is not None:
        if report.type == BOUNCE and report.hard:
            message.status = EmailStatus.BOUNCED
            message.reason = (report.detail or "bounced")[:300]
        kind = REPORT_KINDS[report.type]
        extra = {"hard": report.hard} if report.type == BOUNCE else {}
        if report.detail:
            extra["detail"] = report.detail[:300]
        # A soft bounce and a later hard one are two interactions of the message.
        grade = ("hard:" if report.hard else "soft:") if report.type == BOUNCE else ""
        lane = _touch(session, message, kind, f"{kind}:{grade}{message.id}", now, lanes, extra)
    return ReportResult(
        "suppressed" if final else "recorded", address=address, message=message, lane=lane
    )


class ReportSchema(Schema):
    """One bounce or complaint of the API's batch: the message by its tracking token or
    Message-ID header, or only the address."""

    class Meta:
        unknown = RAISE

    type = fields.String(
        required=True,
        validate=validate.OneOf((BOUNCE, COMPLAINT)),
        metadata={"description": "bounce, or complaint (marked as spam)."},
    )
    email = fields.Email(
        validate=validate.Length(3, 254),
        metadata={"description": "The address; enough alone (its latest sent message)."},
    )
    token = fields.String(
        validate=validate.Regexp(rf"{TOKEN.pattern}\Z"),
        metadata={"description": "The message's tracking token (in its /e/<token>/ links)."},
    )
    message_id = fields.String(
        validate=validate.Length(3, 250),
        metadata={"description": "The Message-ID header of the message, <> optional."},
    )
    hard = fields.Boolean(
        load_default=True,
        metadata={
            "description": "A bounce for good (unknown mailbox...): suppresses the address. "
            "false: a soft bounce (mailbox full...), recorded only."
        },
    )
    detail = fields.String(
        validate=validate.Length(max=300),
        metadata={"description": "What the provider said, e.g. 550 5.1.1 user unknown."},
    )

    @validates_schema(pass_original=True)
    def _names_the_message(self, data: dict, original, **_) -> None:
        if isinstance(original, dict) and not any(
            original.get(key) for key in ("email", "token", "message_id")
        ):
            raise ValidationError({"_schema": ["Name the email: email, token or message_id."]})
