"""Content and tracked links: what a marketer registers, the short links placed in menus,
pushes and articles, and what opening one records.

Opening a link makes a PageView row and, once the reader is known (their openid, from
silent OAuth or the visitor cookie), a `content.view` touchpoint in the inbox, in the
same transaction: the drain ties it to the contact, scores it and feeds journeys. The
reading beacon, likes and shares of a view are touchpoints of that view the same way.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.references import (
    CHANNEL,
    CONTENT,
    FORM,
    Reference,
    check_references,
    declare,
    scoped_get,
)
from core.tokens import Purpose, Sharer, Signer, TokenError, share_token
from crm.touchpoints import store_web_touchpoint
from models import Content, Form, LinkMedium, PageView, TrackedLink, utcnow

CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
# Reading time below this is noise (a page opened and closed), not recorded as minutes.
MIN_READ_SECONDS = 5
# While the reader stays, heartbeats update the page's statistics; reading is recorded when
# they leave, or once this much is unrecorded (a closed WebView may never say goodbye).
HEARTBEAT_RECORD_SECONDS = 120
# A beacon never claims more reading than the time since the view began, plus this slack.
CLOCK_SLACK_SECONDS = 5


LINK_REFERENCES = declare(
    "tracked_link",
    Reference("content_id", CONTENT),
    Reference("form_id", FORM),
    Reference("channel_id", CHANNEL),
)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def create_link(
    session: Session,
    workspace_id: int,
    *,
    content_id: int | None = None,
    form_id: int | None = None,
    channel_id: int | None = None,
    medium: str = LinkMedium.OTHER,
    label: str = "",
    created_by: int | None = None,
) -> TrackedLink:
    """A new short link to a content item or a form (exactly one); a ValidationError keyed
    by argument when one names another workspace's row."""
    if (content_id is None) == (form_id is None):
        raise ValueError("a link goes to a content item or a form")
    named = {"content_id": content_id, "form_id": form_id, "channel_id": channel_id}
    check_references(session, workspace_id, named, LINK_REFERENCES)
    for _ in range(5):
        try:
            with session.begin_nested():
                link = TrackedLink(
                    workspace_id=workspace_id,
                    code=new_code(),
                    content_id=content_id,
                    form_id=form_id,
                    channel_id=channel_id,
                    medium=medium,
                    label=label[:100],
                    created_by=created_by,
                )
                session.add(link)
                session.flush()
            return link
        except IntegrityError:  # the code was taken: draw another
            continue
    raise RuntimeError("no free link code after 5 draws")


def link_codes(
    session: Session,
    workspace_id: int,
    *,
    content_id: int | None = None,
    form_id: int | None = None,
) -> list[str]:
    """The codes of the workspace's links to this content (or, without one, to this form)."""
    target = (
        TrackedLink.content_id == content_id
        if content_id is not None
        else TrackedLink.form_id == form_id
    )
    return list(
        session.scalars(
            select(TrackedLink.code).where(TrackedLink.workspace_id == workspace_id, target)
        )
    )


def live_contents(session: Session, workspace_id: int) -> list[Content]:
    """The workspace's content that is not archived, newest first."""
    return list(
        session.scalars(
            select(Content)
            .where(Content.workspace_id == workspace_id, Content.archived_at.is_(None))
            .order_by(Content.created_at.desc(), Content.id.desc())
        )
    )


def link_path(link: TrackedLink) -> str:
    return f"/t/{link.code}"


def share_path(signer: Signer, link: TrackedLink, staff_id: int) -> str:
    """A staff member's personal path to a link: views through it count as their shares."""
    token = share_token(signer, Sharer(link.workspace_id, staff_id=staff_id))
    return f"{link_path(link)}?s={token}"


def chat_links(
    session: Session, workspace_id: int, content_ids: list[int], channel_id: int | None
) -> dict[int, TrackedLink]:
    """Each content item's tracked link for WeCom chats (the newest live one), made on first
    use; `channel_id` is the OA whose OAuth names the reader."""
    links = {
        link.content_id: link
        for link in session.scalars(
            select(TrackedLink)
            .where(
                TrackedLink.workspace_id == workspace_id,
                TrackedLink.content_id.in_(content_ids),
                TrackedLink.medium == LinkMedium.CHAT,
                TrackedLink.archived_at.is_(None),
            )
            .order_by(TrackedLink.created_at, TrackedLink.id)
        )
    }
    for content_id in content_ids:
        if content_id not in links:
            links[content_id] = create_link(
                session,
                workspace_id,
                content_id=content_id,
                channel_id=channel_id,
                medium=LinkMedium.CHAT,
                label="WeCom chat",
            )
    return links


@dataclass(frozen=True)
class Target:
    """Where a link leads: a content item or a form, and the link itself."""

    link: TrackedLink
    content: Content | None
    form: Form | None

    @property
    def hosted(self) -> bool:
        """Harpoon renders the page (with the beacon), rather than redirecting away."""
        return self.form is not None or (self.content is not None and not self.content.url)

    @property
    def workspace_id(self) -> int:
        return self.link.workspace_id


def target_of(session: Session, code: str) -> Target | None:
    """The live link of a code with what it leads to; None when unknown or archived."""
    link = session.scalar(select(TrackedLink).where(TrackedLink.code == code))
    if link is None or link.archived_at is not None:
        return None
    content = scoped_get(session, Content, link.content_id, link.workspace_id)
    form = scoped_get(session, Form, link.form_id, link.workspace_id)
    if (content is None) == (form is None):  # naming another workspace's
        return None
    if (content is not None and content.archived_at) or (form is not None and form.archived_at):
        return None
    return Target(link, content, form)


def view_properties(target: Target, view: PageView) -> dict:
    """What a view's touchpoints carry: score rules and journeys match on these."""
    link = target.link
    properties = {"view_id": view.id, "link": link.code, "medium": link.medium}
    if target.content is not None:
        content = target.content
        properties |= {
            "content_id": content.id,
            "content_kind": content.kind,
            "title": content.title,
            "topics": list(content.topics or []),
            "products": list(content.products or []),
        }
        if content.url:
            properties["url"] = content.url
    if target.form is not None:
        properties |= {"form_id": target.form.id, "title": target.form.title}
    if view.sharer_staff_id or view.sharer_openid or view.sharer_contact_id:
        properties["via_share"] = True
    return properties


def open_view(
    session: Session,
    target: Target,
    *,
    channel_id: int | None,
    openid: str | None,
    sharer: Sharer | None,
    lanes: int,
    now: datetime | None = None,
) -> PageView:
    """Record one opening of a link; a known reader's `content.view` goes to the inbox in
    the same transaction. The caller commits and asks for a drain."""
    now = now or utcnow()
    view = PageView(
        workspace_id=target.workspace_id,
        link_id=target.link.id,
        content_id=target.link.content_id,
        form_id=target.link.form_id,
        channel_id=channel_id if openid else None,
        openid=openid,
        started_at=now,
    )
    # Sharing with yourself is no share; an anonymous reader's sharer counts all the same.
    if sharer is not None and not (openid and sharer.openid == openid):
        view.sharer_staff_id = sharer.staff_id
        view.sharer_contact_id = sharer.contact_id
        if sharer.openid:
            view.sharer_openid = sharer.openid
    session.add(view)
    session.flush()
    if openid:
        kind = "content.view"
        _touch(session, target, view, kind, f"view:{view.id}", now, lanes)
    return view


def _touch(
    session: Session,
    target: Target,
    view: PageView,
    kind: str,
    dedupe_key: str,
    now: datetime,
    lanes: int,
    *,
    minutes: float = 0.0,
    extra: dict | None = None,
) -> bool:
    """A touchpoint of this view's reader into the inbox; False when it was there already."""
    payload = {
        "kind": kind,
        "occurred_at": now.isoformat(),
        "identity": {"openid": view.openid, "channel_id": view.channel_id},
        "properties": view_properties(target, view) | (extra or {}),
        "minutes": minutes,
        "refs": {"view_id": view.id},
    }
    return store_web_touchpoint(
        session, target.workspace_id, view.channel_id, dedupe_key, payload, now, lanes
    )


def target_of_view(session: Session, view: PageView) -> Target:
    link = session.get(TrackedLink, view.link_id)
    content = scoped_get(session, Content, view.content_id, view.workspace_id)
    form = scoped_get(session, Form, view.form_id, view.workspace_id)
    return Target(link, content, form)


def report_reading(
    session: Session,
    view: PageView,
    seconds: int,
    *,
    lanes: int,
    leaving: bool = False,
    now: datetime | None = None,
) -> float:
    """The beacon: the page was read for `seconds` in all. Returns the minutes recorded
    now as a `content.read` (the reading not recorded before), 0 when none.

    A claim is capped by the time since the view began: a beacon cannot make up reading."""
    now = now or utcnow()
    elapsed = (now - view.started_at).total_seconds() + CLOCK_SLACK_SECONDS
    seconds = int(max(0, min(seconds, elapsed)))
    session.execute(
        update(PageView)
        .where(PageView.id == view.id, PageView.active_seconds < seconds)
        .values(active_seconds=seconds, last_beacon_at=now)
    )
    if not view.openid:
        return 0.0
    # Claim the unrecorded seconds: a concurrent beacon of the same view claims none twice.
    recorded = view.recorded_seconds
    if seconds - recorded < (MIN_READ_SECONDS if leaving else HEARTBEAT_RECORD_SECONDS):
        return 0.0
    claimed = session.execute(
        update(PageView)
        .where(PageView.id == view.id, PageView.recorded_seconds == recorded)
        .values(recorded_seconds=seconds)
    ).rowcount
    if not claimed:
        return 0.0
    minutes = round((seconds - recorded) / 60, 2)
    target = target_of_view(session, view)
    key = f"read:{view.id}:{seconds}"
    _touch(session, target, view, "content.read", key, now, lanes, minutes=minutes)
    return minutes


def like(session: Session, view: PageView, *, lanes: int, now: datetime | None = None) -> bool:
    """The reader liked the page (once per view)."""
    now = now or utcnow()
    done = session.execute(
        update(PageView).where(PageView.id == view.id, PageView.liked.is_(False)).values(liked=True)
    ).rowcount
    if done and view.openid:
        target = target_of_view(session, view)
        _touch(session, target, view, "content.like", f"like:{view.id}", now, lanes)
    return bool(done)


def share(session: Session, view: PageView, *, lanes: int, now: datetime | None = None) -> int:
    """The reader shared the page: counted per view; the first share is the touchpoint."""
    now = now or utcnow()
    session.execute(
        update(PageView).where(PageView.id == view.id).values(shares=PageView.shares + 1)
    )
    session.refresh(view)
    if view.openid and view.shares == 1:
        target = target_of_view(session, view)
        _touch(session, target, view, "content.share", f"share:{view.id}", now, lanes)
    return view.shares


def browser_tag(browser_id: str) -> str:
    """What a view token says of the browser that opened the view: a hash, so the token
    (in a URL anyone may be forwarded) never carries the browser's own id."""
    return hashlib.sha256(browser_id.encode()).hexdigest()[:32]


def view_token(signer: Signer, view: PageView, browser: str) -> str:
    """A token naming the view, bound to the browser (its tag) that opened it."""
    return signer.sign(Purpose.VIEW, {"v": view.id, "w": view.workspace_id, "b": browser})


def view_of_token(session: Session, signer: Signer, token: str | None) -> tuple[PageView, str]:
    """The view a (valid, unexpired) view token names and the tag of the browser it is
    bound to; TokenError otherwise."""
    payload = signer.verify(Purpose.VIEW, token)
    view = session.get(PageView, payload.get("v"))
    if view is None or view.workspace_id != payload.get("w"):
        raise TokenError("invalid")
    return view, str(payload.get("b") or "")


def same_browser(bound: str, browser_id: str | None) -> bool:
    """The browser that sends a view's beacon is the one that opened the view."""
    return bool(bound and browser_id) and hmac.compare_digest(bound, browser_tag(browser_id))


def reader_sharer(view: PageView) -> Sharer | None:
    """The reader of a view as a sharer of its page (their forwarded page becomes their
    share); None for an anonymous view."""
    if not view.openid:
        return None
    return Sharer(view.workspace_id, channel_id=view.channel_id, openid=view.openid)
