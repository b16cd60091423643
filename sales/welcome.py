"""The welcome message WeCom allows once per add, within 20 seconds, with its WelcomeCode.

The drain records a pending WelcomeMessage for each add that carries a code
(unique by code, so a redelivered callback records nothing new) and asks for
`send_welcomes` on the high-priority queue. That job sends every pending
welcome of the channel: personalized from the 联系我 code's text and what
Harpoon knows, or marked missed when the window has passed. The code itself
is the idempotency key: WeCom refuses a second use (41051), so nothing is
ever sent twice, and a send that failed transiently (core.transient: a token
refused, the platform busy, no answer) is simply tried again, within the same
job after a short pause, until it goes out or the window has passed.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.transient import is_transient
from models import (
    Account,
    Channel,
    Contact,
    ContactWay,
    Identity,
    IdentityKind,
    Interaction,
    Staff,
    WelcomeMessage,
    WelcomeStatus,
    utcnow,
)
from models.base import insert_ignoring_conflicts
from sales.contact_ways import PLACEHOLDER
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

WINDOW = timedelta(seconds=20)
SEND_BATCH = 50
SEND_CONCURRENCY = 8  # API calls in flight per channel; WeCom allows about 10,000 a minute
# Pauses between passes over welcomes that failed transiently: 3.5 s at most, so a platform
# outage holds a high-queue worker briefly; what is still pending after them is sent by
# the next send_welcomes (or marked missed once its window has passed).
RETRY_PAUSE_SECONDS = (0.5, 1.0, 2.0)
# Reads worth mentioning: what the person last opened.
READ_KINDS = ("content.view", "wechat.menu_view")
FALLBACKS = {"name": "", "account": "", "staff": "", "last_read": "我们的产品资料"}


def record_welcome(
    session: Session,
    *,
    workspace_id: int,
    channel_id: int,
    contact_id: int,
    contact_way_id: int | None,
    external_userid: str,
    staff_userid: str,
    welcome_code: str,
    added_at,
    received_at,
) -> bool:
    """A pending welcome for this add; False if the code was recorded before."""
    return (
        session.execute(
            insert_ignoring_conflicts(session.get_bind().dialect.name, WelcomeMessage.__table__)
            .values(
                workspace_id=workspace_id,
                channel_id=channel_id,
                contact_id=contact_id,
                contact_way_id=contact_way_id,
                external_userid=external_userid,
                staff_userid=staff_userid,
                welcome_code=welcome_code,
                status=WelcomeStatus.PENDING,
                added_at=added_at,
                received_at=received_at or utcnow(),
            )
            .returning(WelcomeMessage.id)
        ).first()
        is not None
    )


@dataclass
class WelcomeResult:
    sent: int = 0
    missed: int = 0
    refused: int = 0
    skipped: int = 0
    retried: int = 0  # sends that failed transiently and were tried again


def send_welcomes(session: Session, channel: Channel, client) -> WelcomeResult:
    """Send the channel's pending welcomes, a batch at a time, the API calls of a batch in
    parallel (a burst of adds must not queue behind one HTTP call after another)."""
    result = WelcomeResult()
    retry_passes = 0
    with ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="welcome") as pool:
        while True:
            pending = session.scalars(
                select(WelcomeMessage)
                .where(
                    WelcomeMessage.channel_id == channel.id,
                    WelcomeMessage.status == WelcomeStatus.PENDING,
                )
                .order_by(WelcomeMessage.id)
                .limit(SEND_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            if not pending:
                return result
            retrying = _send_batch(session, client, pool, pending, result)
            session.commit()
            if retrying:
                # Still pending: the next pass sends them again, or marks them missed.
                result.retried += retrying
                if retry_passes == len(RETRY_PAUSE_SECONDS):
                    return result
                time.sleep(RETRY_PAUSE_SECONDS[retry_passes])
                retry_passes += 1


def _send_batch(session: Session, client, pool, pending: list, result: WelcomeResult) -> int:
    """Send what is still in its window; returns how many failed transiently (left pending)."""
    live = []
    for welcome in pending:
        if utcnow() - welcome.added_at > WINDOW:
            welcome.status = WelcomeStatus.MISSED
            welcome.error = "the 20-second window had passed"
            result.missed += 1
            log.warning("welcome %s missed its window (added %s)", welcome.id, welcome.added_at)
        else:
            live.append(welcome)
    lacking = [w for w in live if _needs_profile(session, w)]
    profiles = dict(
        zip(
            [w.id for w in lacking],
            pool.map(lambda w: _wecom_profile(client, w.external_userid), lacking),
            strict=True,
        )
    )
    outgoing = []
    for welcome in live:
        text = compose(session, welcome, profiles.get(welcome.id, {}))
        if text:
            welcome.text = text
            outgoing.append(welcome)
        else:
            welcome.status = WelcomeStatus.SKIPPED
            result.skipped += 1
    sends = [(w.welcome_code, w.text) for w in outgoing]
    retrying = 0
    for welcome, (error, at) in zip(
        outgoing, pool.map(lambda args: _post(client, *args), sends), strict=True
    ):
        if error is None:
            welcome.status, welcome.sent_at, welcome.error = WelcomeStatus.SENT, at, None
            result.sent += 1
        elif is_transient(error):
            # Safe to repeat even after a timeout: a code that was used is refused (41051).
            welcome.error = str(error)[:500]
            retrying += 1
        else:
            # 41051: they chatted already, or it was sent before a crash; 41050: code expired.
            welcome.status, welcome.error = WelcomeStatus.REFUSED, str(error)[:500]
            result.refused += 1
    if retrying:
        log.warning("%s welcome(s) failed transiently, trying again in the window", retrying)
    return retrying


def _post(client, welcome_code: str, text: str) -> tuple[WeChatApiError | None, datetime]:
    """One send_welcome_msg: (the refusal, None when sent; when it was answered)."""
    try:
        client.post(
            "externalcontact/send_welcome_msg",
            data={"welcome_code": welcome_code, "text": {"content": text}},
        )
    except WeChatApiError as exc:
        return exc, utcnow()
    return None, utcnow()


def _template(session: Session, welcome: WelcomeMessage) -> str | None:
    way = session.get(ContactWay, welcome.contact_way_id) if welcome.contact_way_id else None
    return way.welcome_text if way else None


def _needs_profile(session: Session, welcome: WelcomeMessage) -> bool:
    """The name (and unionid) must come from WeCom: the add is too fresh for enrichment."""
    template = _template(session, welcome)
    if not template or not set(PLACEHOLDER.findall(template)) & {"name", "account", "last_read"}:
        return False
    return not session.get(Contact, welcome.contact_id).name


def compose(session: Session, welcome: WelcomeMessage, profile: dict) -> str | None:
    """The code's welcome text with {name}, {account}, {staff} and {last_read} filled in
    from what Harpoon knows, including the person's OA history when their unionid (in the
    WeCom `profile`) says this new customer is a known follower (the merge itself comes
    later, in enrichment)."""
    template = _template(session, welcome)
    if not template:
        return None
    contact = session.get(Contact, welcome.contact_id)
    known = _known_as(session, contact, profile.get("unionid"))
    values = dict(FALLBACKS)
    values["name"] = contact.name or profile.get("name") or known.name or ""
    account_id = contact.account_id or known.account_id
    if account_id:
        values["account"] = session.get(Account, account_id).name
    values["staff"] = _staff_name(session, welcome.channel_id, welcome.staff_userid)
    # A customer new to Harpoon has read nothing yet; a known follower may have.
    if known is not contact and "last_read" in PLACEHOLDER.findall(template):
        values["last_read"] = _last_read(session, known.id) or values["last_read"]
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template).strip()


def _staff_name(session: Session, channel_id: int, userid: str) -> str:
    names = session.info.setdefault("staff_names", {})  # one query per job, not per welcome
    if channel_id not in names:
        names[channel_id] = dict(
            session.execute(
                select(Staff.userid, Staff.name).where(Staff.channel_id == channel_id)
            ).all()
        )
    return names[channel_id].get(userid) or userid


def _wecom_profile(client, external_userid: str) -> dict:
    """The new customer's WeCom name and unionid (enrichment has not run yet on a fresh add)."""
    try:
        return client.external_contact.get(external_userid).get("external_contact") or {}
    except WeChatApiError:
        return {}  # a welcome without the name beats no welcome


def _known_as(session: Session, contact: Contact, unionid: str | None) -> Contact:
    """The contact Harpoon already knows this person as (by unionid), else the new one."""
    if not unionid:
        return contact
    known = session.scalar(
        select(Contact)
        .join(Identity, Identity.contact_id == Contact.id)
        .where(
            Identity.workspace_id == contact.workspace_id,
            Identity.kind == IdentityKind.UNIONID,
            Identity.value == unionid,
        )
    )
    return known or contact


def _last_read(session: Session, contact_id: int) -> str | None:
    interaction = session.scalars(
        select(Interaction)
        .where(Interaction.contact_id == contact_id, Interaction.kind.in_(READ_KINDS))
        .order_by(Interaction.occurred_at.desc())
        .limit(1)
    ).first()
    if interaction is None:
        return None
    properties = interaction.properties or {}
    return properties.get("title") or properties.get("url")
