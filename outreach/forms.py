"""Forms Harpoon hosts: checking a submission, storing it (before anything else happens to
it), and the follow-up that hands out the download: a WeChat customer-service message
while the follower's window is open, else an email.

The conference scenario: a visitor scans the event's channel QR code, follows, gets the
code's welcome with the form's tracked link, fills the form, and receives the download.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.references import scoped_get
from core.text import N_
from crm.contacts import normalize_phone
from crm.touchpoints import store_web_touchpoint
from models import (
    Channel,
    Content,
    FollowUpStatus,
    Form,
    FormField,
    FormSubmission,
    LinkMedium,
    PageView,
    TrackedLink,
    utcnow,
)
from outreach.content import create_link, link_path
from outreach.mail import Mailer, MailError
from outreach.suppressions import suppression_of
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)


REQUIRED = N_("Required.")
LENGTHS = {"name": 100, "company": 200, "title": 100, "phone": 32, "email": 254}
FIELD_ORDER = tuple(FormField)


def _phone(value: str) -> None:
    if not 5 <= len(normalize_phone(value)) <= 20:
        raise ValidationError(N_("Not a phone number."))


def submission_schema(form: Form) -> Schema:
    """What this form asks, as a schema: required fields, lengths, a valid email and phone,
    and the consent box when the form asks consent."""
    spec = {}
    messages = {"required": REQUIRED, "null": REQUIRED}
    too_long = N_("Too long.")
    for name in FIELD_ORDER:
        rule = (form.fields or {}).get(name)
        if rule not in ("required", "optional"):
            continue
        length = validate.Length(max=LENGTHS[name], error=too_long)
        if name == FormField.EMAIL:
            field = fields.Email(
                required=rule == "required",
                validate=length,
                error_messages=messages | {"invalid": N_("Not an email address.")},
            )
        elif name == FormField.PHONE:
            field = fields.String(
                required=rule == "required", validate=[length, _phone], error_messages=messages
            )
        else:
            field = fields.String(
                required=rule == "required", validate=length, error_messages=messages
            )
        spec[name] = field
    if form.consent_text:
        agree = N_("Please agree to continue.")
        spec["consent"] = fields.Boolean(
            required=True,
            validate=validate.Equal(True, error=agree),
            error_messages={"required": agree, "null": agree},
        )
    return Schema.from_dict(spec, name="FormSubmissionSchema")(unknown=EXCLUDE)


def check_submission(form: Form, posted: Mapping[str, str]) -> tuple[dict, dict]:
    """(clean data, errors by field name): blank inputs count as not given."""
    data = {k: v.strip() for k, v in posted.items() if isinstance(v, str) and v.strip()}
    try:
        return submission_schema(form).load(data), {}
    except ValidationError as exc:
        return {}, {name: list(errors) for name, errors in exc.messages.items()}


def wants_follow_up(form: Form) -> bool:
    follow_up = form.follow_up or {}
    return bool(follow_up.get("wechat") or follow_up.get("email"))


def submit(
    session: Session,
    form: Form,
    data: dict,
    *,
    nonce: str,
    view: PageView | None,
    lanes: int,
    now: datetime | None = None,
) -> tuple[FormSubmission, bool]:
    """Store a checked submission and its `form.submit` touchpoint, in the caller's
    transaction; (submission, False) when this rendering of the form was posted before."""
    now = now or utcnow()
    openid = view.openid if view is not None else None
    submission = FormSubmission(
        workspace_id=form.workspace_id,
        form_id=form.id,
        nonce=nonce,
        page_view_id=view.id if view is not None else None,
        channel_id=view.channel_id if openid else None,
        openid=openid,
        data={k: v for k, v in data.items() if k != "consent"},
        consent=bool(data.get("consent")),
        submitted_at=now,
        followup_status=FollowUpStatus.PENDING if wants_follow_up(form) else FollowUpStatus.NONE,
    )
    if view is not None:
        submission.sharer_staff_id = view.sharer_staff_id
        submission.sharer_openid = view.sharer_openid
        submission.sharer_contact_id = view.sharer_contact_id
    try:
        with session.begin_nested():
            session.add(submission)
            session.flush()
    except IntegrityError:
        existing = session.scalar(
            select(FormSubmission).where(
                FormSubmission.form_id == form.id, FormSubmission.nonce == nonce
            )
        )
        return existing, False
    identity = {"openid": openid, "channel_id": submission.channel_id}
    identity |= {k: data[k] for k in ("phone", "email") if data.get(k)}
    properties = {"form_id": form.id, "title": form.title, "submission_id": submission.id}
    if view is not None:
        properties["view_id"] = view.id
        if view.sharer_staff_id or view.sharer_openid or view.sharer_contact_id:
            properties["via_share"] = True
    payload = {
        "kind": "form.submit",
        "occurred_at": now.isoformat(),
        "identity": {k: v for k, v in identity.items() if v},
        "person": {k: data[k] for k in ("name", "company", "title") if data.get(k)},
        "properties": properties,
        "refs": {"submission_id": submission.id},
    }
    store_web_touchpoint(
        session,
        form.workspace_id,
        submission.channel_id,
        f"form:{submission.id}",
        payload,
        now,
        lanes,
    )
    return submission, True


# ---- the follow-up ------------------------------------------------------------------------


@dataclass
class FollowUpPlatform:
    """What a follow-up reaches outside the database with (the app composes it)."""

    oa_client: Callable[[Channel], object]
    mailer: Mailer | None
    public_url: Callable[[str], str]


@dataclass
class FollowUpResult:
    sent: int = 0
    failed: int = 0


def download_link(session: Session, form: Form, channel_id: int | None) -> TrackedLink | None:
    """The tracked link (medium "form") a form's follow-up hands out, made once per form
    and OA (none for an OA that is not the form's workspace's); None when the form has no
    download."""
    if scoped_get(session, Content, form.download_content_id, form.workspace_id) is None:
        return None
    if scoped_get(session, Channel, channel_id, form.workspace_id) is None:
        channel_id = None
    label = f"form:{form.id}"
    link = session.scalar(
        select(TrackedLink).where(
            TrackedLink.workspace_id == form.workspace_id,
            TrackedLink.content_id == form.download_content_id,
            TrackedLink.medium == LinkMedium.FORM,
            TrackedLink.label == label,
            TrackedLink.channel_id.is_(None)
            if channel_id is None
            else TrackedLink.channel_id == channel_id,
            TrackedLink.archived_at.is_(None),
        )
    )
    if link is None:
        link = create_link(
            session,
            form.workspace_id,
            content_id=form.download_content_id,
            channel_id=channel_id,
            medium=LinkMedium.FORM,
            label=label,
        )
    return link


def follow_up_text(session: Session, form: Form, submission: FormSubmission, platform) -> str:
    lines = [(form.follow_up or {}).get("message") or form.thank_you or form.title]
    link = download_link(session, form, submission.channel_id)
    if link is not None:
        content = session.get(Content, link.content_id)
        lines.append(f"{content.title}: {platform.public_url(link_path(link))}")
    return "\n".join(line for line in lines if line)


def send_follow_ups(
    session: Session, workspace_id: int, platform: FollowUpPlatform, limit: int = 100
) -> FollowUpResult:
    """The workspace's pending follow-ups whose submission the drain has tied to a contact.
    Each is marked `sending` and committed before the call, so a crash never sends twice."""
    result = FollowUpResult()
    ids = session.scalars(
        select(FormSubmission.id)
        .where(
            FormSubmission.workspace_id == workspace_id,
            FormSubmission.followup_status == FollowUpStatus.PENDING,
            FormSubmission.contact_id.isnot(None),
        )
        .order_by(FormSubmission.id)
        .limit(limit)
    ).all()
    for submission_id in ids:
        submission = session.get(
            FormSubmission, submission_id, with_for_update={"skip_locked": True}
        )
        if submission is None or submission.followup_status != FollowUpStatus.PENDING:
            session.rollback()
            continue
        submission.followup_status = FollowUpStatus.SENDING
        submission.followup_at = utcnow()
        form = scoped_get(session, Form, submission.form_id, workspace_id)
        if form is None:
            submission.followup_status = FollowUpStatus.FAILED
            submission.followup_error = "the form is not this workspace's"
            session.commit()
            result.failed += 1
            continue
        text = follow_up_text(session, form, submission, platform)
        session.commit()
        status, channel, error = _deliver(session, form, submission, text, platform)
        submission.followup_status, submission.followup_channel = status, channel
        submission.followup_error = error
        session.commit()
        if status == FollowUpStatus.SENT:
            result.sent += 1
        else:
            result.failed += 1
            log.info("form submission %s: follow-up failed: %s", submission.id, error)
    return result


def _deliver(session, form: Form, submission: FormSubmission, text: str, platform):
    """(status, channel, error): WeChat first while the follower's window is open, then
    email; each refusal is kept in the error."""
    follow_up = form.follow_up or {}
    problems = []
    channel = scoped_get(session, Channel, submission.channel_id, submission.workspace_id)
    if follow_up.get("wechat") and submission.openid and channel is not None:
        client = platform.oa_client(channel)
        try:
            client.post(
                "message/custom/send",
                data={
                    "touser": submission.openid,
                    "msgtype": "text",
                    "text": {"content": text},
                },
            )
            return FollowUpStatus.SENT, "wechat", None
        except WeChatApiError as exc:
            problems.append(f"wechat: {exc.errcode} {exc.errmsg}")
    elif follow_up.get("wechat"):
        problems.append("wechat: not opened inside WeChat")
    email = (submission.data or {}).get("email")
    if follow_up.get("email") and email:
        stopped = suppression_of(session, submission.workspace_id, email)
        if stopped is not None:
            problems.append(f"email: the address is suppressed ({stopped.reason})")
        elif platform.mailer is None:
            problems.append("email: no SMTP server configured (HARPOON_SMTP_URL)")
        else:
            try:
                platform.mailer.send(email, form.title, text)
                return FollowUpStatus.SENT, "email", None
            except MailError as exc:
                problems.append(f"email: {exc}")
    elif follow_up.get("email"):
        problems.append("email: no address given")
    return FollowUpStatus.FAILED, None, "; ".join(problems)
