"""The pages readers open: tracked links, hosted landing pages with the reading beacon,
and forms.

- `/t/<code>`: inside WeChat, silent OAuth (snsapi_base) learns the reader's openid;
  the round trip's state is a nonce that must match a signed, short-lived cookie of the
  same browser (CSRF). A signed visitor cookie spares the next link the round trip.
  The view is recorded, then the reader goes on to the content (or its hosted page).
- `?s=<token>` on a link names its sharer; a forged or expired one is ignored (the view
  counts, for nobody's share).
- `/p/<code>?v=<view token>`: the hosted page. Forwarded to someone else, it becomes a
  share by the reader it was made for.
- `/b`: the beacon (reading time, like, share) names its view by a signed token, and
  counts only from the browser that opened the view: the token carries the hash of a
  random id in that browser's cookie. Anyone with the page's URL may read it.
- A form's POST carries a signed token of the form's rendering; the same rendering
  posted twice is one submission.
Nothing a forged token claims is stored, so it never scores.
"""

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin import limiter
from app.extensions import ChannelKeys, harpoon
from core.lanes import lane_of
from core.tokens import Purpose, Sharer, TokenError, share_token, verify_share
from models import Channel, ChannelKind, Contact, ContactWay, PageView, Staff
from outreach import content as links
from outreach import forms
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__, template_folder="templates")

OAUTH_COOKIE = "hp_oauth"
BROWSER_COOKIE = "hp_b"  # a random id of the reader's browser: its views' beacons count
BROWSER_COOKIE_MAX_AGE = 30 * 24 * 3600
WECHAT_AGENT = "MicroMessenger"
BEACON_EVENTS = ("read", "like", "share")
MAX_BEACON_SECONDS = 6 * 3600
# A form's or a beacon's few short fields; a longer body is refused (app.inputs).
MAX_POST_BYTES = 64 * 1024


@bp.before_request
def _limit_body() -> None:
    request.max_content_length = MAX_POST_BYTES


def _session() -> Session:
    return harpoon().db.session()


def _lanes() -> int:
    return harpoon().settings.inbox_lanes


def _visitor_cookie(channel_id: int) -> str:
    return f"hp_r{channel_id}"


def _visitor(workspace_id: int, channel_id: int | None) -> str | None:
    """The reader's openid on this OA from the signed visitor cookie, if any."""
    if channel_id is None:
        return None
    try:
        payload = harpoon().signer.verify(
            Purpose.VISITOR, request.cookies.get(_visitor_cookie(channel_id))
        )
    except TokenError:
        return None
    if payload.get("w") != workspace_id or payload.get("ch") != channel_id:
        return None
    return payload.get("o") or None


def _sharer(workspace_id: int, token: str | None) -> Sharer | None:
    if not token:
        return None
    try:
        return verify_share(harpoon().signer, token, workspace_id)
    except TokenError as exc:
        log.info("share token refused (%s) on %s", exc.reason, request.path)
        return None


def _oa(channel_id: int | None) -> ChannelKeys | None:
    """The link's OA, from the per-process channel cache."""
    channel = harpoon().channels.get(channel_id) if channel_id else None
    return channel if channel is not None and channel.kind == ChannelKind.OA else None


def _target(code: str) -> links.Target | None:
    return harpoon().links.get(code)


def _not_found():
    return render_template("public/message.html", message=_("This link does not exist.")), 404


@bp.get("/t/<code>")
def open_link(code: str):
    """A tracked link: who opens it (OAuth inside WeChat), then the content."""
    target = _target(code)
    if target is None:
        return _not_found()
    channel = _oa(target.link.channel_id)
    with _session() as session:
        share = request.args.get("s")
        sharer = _sharer(target.workspace_id, share)
        openid = _visitor(target.workspace_id, channel.id if channel else None)
        if openid is None and channel is not None and WECHAT_AGENT in request.user_agent.string:
            return _start_oauth(channel, code, share if sharer else None)
        view = links.open_view(
            session,
            target,
            channel_id=channel.id if channel else None,
            openid=openid,
            sharer=sharer,
            lanes=_lanes(),
        )
        session.commit()
        return _recorded(session, target, view)


def _start_oauth(channel: ChannelKeys, code: str, share: str | None):
    """Off to WeChat's silent OAuth; the state is a nonce bound to this browser."""
    h = harpoon()
    nonce = secrets.token_urlsafe(16)
    context = h.signer.sign(Purpose.OAUTH_STATE, {"n": nonce, "l": code, "s": share})
    url = h.wechat.oauth_authorize_url(
        channel.app_id, h.public_url(url_for("public.oauth_return")), state=nonce
    )
    response = redirect(url)
    _set_cookie(response, OAUTH_COOKIE, context, max_age=600)
    return response


def _set_cookie(response, name: str, value: str, *, max_age: int) -> None:
    """HttpOnly, and Lax: sent on the top-level return from WeChat's OAuth page."""
    secure = harpoon().settings.secure_cookies
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure)


@bp.get("/t/oauth")
def oauth_return():
    """WeChat sends the reader back with a single-use code and our state."""
    h = harpoon()
    try:
        context = h.signer.verify(Purpose.OAUTH_STATE, request.cookies.get(OAUTH_COOKIE))
    except TokenError as exc:
        log.warning("OAuth return refused: context cookie %s", exc.reason)
        return _message(_("This link has expired. Please open it again."), 400)
    state = request.args.get("state", "")
    if not state or not secrets.compare_digest(state, str(context.get("n", ""))):
        log.warning("OAuth return refused: state does not match this browser's")
        return _message(_("This link has expired. Please open it again."), 400)
    target = _target(str(context.get("l", "")))
    if target is None:
        return _not_found()
    channel = _oa(target.link.channel_id)
    with _session() as session:
        openid = None
        if channel is not None and request.args.get("code"):
            secret = session.get(Channel, channel.id).secret
            try:
                openid = h.wechat.oauth_openid(channel.app_id, secret, request.args["code"])
            except WeChatApiError as exc:  # the reader still gets the content, unnamed
                log.warning("OAuth code refused on channel %s: %s", channel.id, exc)
        sharer = _sharer(target.workspace_id, context.get("s"))
        view = links.open_view(
            session,
            target,
            channel_id=channel.id if channel else None,
            openid=openid,
            sharer=sharer,
            lanes=_lanes(),
        )
        session.commit()
        response = _recorded(session, target, view)
    response.delete_cookie(OAUTH_COOKIE)
    if openid:
        visitor = h.signer.sign(
            Purpose.VISITOR, {"w": target.workspace_id, "ch": channel.id, "o": openid}
        )
        _set_cookie(response, _visitor_cookie(channel.id), visitor, max_age=30 * 24 * 3600)
    return response


def _recorded(session: Session, target: links.Target, view: PageView):
    """After a view is committed: a drain for its touchpoint, then the content (a hosted
    page's view bound to this browser)."""
    if view.openid:
        harpoon().queue.drain_requests.mark(target.workspace_id, lane_of(view.openid, _lanes()))
    if not target.hosted:
        return redirect(target.content.url)
    browser_id = _browser_id() or secrets.token_urlsafe(18)
    token = links.view_token(harpoon().signer, view, links.browser_tag(browser_id))
    response = redirect(url_for("public.page", code=target.link.code, v=token))
    _set_cookie(response, BROWSER_COOKIE, browser_id, max_age=BROWSER_COOKIE_MAX_AGE)
    return response


def _browser_id() -> str | None:
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    return browser_id if 0 < len(browser_id) <= 64 else None


def _message(message: str, status: int):
    return render_template("public/message.html", message=message), status


@bp.get("/p/<code>")
def page(code: str):
    """A hosted page or form, for the reader its view token names."""
    h = harpoon()
    target = _target(code)
    if target is None or not target.hosted:
        return _not_found()
    with _session() as session:
        try:
            view, browser = links.view_of_token(session, h.signer, request.args.get("v"))
        except TokenError:
            return redirect(url_for("public.open_link", code=code))
        if view.link_id != target.link.id:
            return redirect(url_for("public.open_link", code=code))
        if view.openid and _visitor(view.workspace_id, view.channel_id) != view.openid:
            # Someone else opened the reader's page (forwarded): it counts as their share.
            token = share_token(h.signer, links.reader_sharer(view))
            return redirect(url_for("public.open_link", code=code, s=token))
        return _render_page(session, target, view, browser)


def _render_page(
    session: Session, target, view: PageView, browser: str, *, errors=None, values=None
):
    """The page of a view; its beacon and form stay bound to the view's browser."""
    h = harpoon()
    sharer = links.reader_sharer(view)
    share_url = h.public_url(url_for("public.open_link", code=target.link.code))
    if sharer is not None:
        share_url = h.public_url(
            url_for("public.open_link", code=target.link.code, s=share_token(h.signer, sharer))
        )
    form_token = None
    if target.form is not None:
        form_token = h.signer.sign(
            Purpose.FORM,
            {"f": target.form.id, "v": view.id, "b": browser, "n": secrets.token_hex(12)},
        )
    return render_template(
        "public/page.html",
        target=target,
        content=target.content,
        form=target.form,
        paragraphs=_paragraphs(target.content.body if target.content else target.form.intro),
        view_token=links.view_token(h.signer, view, browser),
        share_url=share_url,
        card=_sharer_card(session, view),
        form_token=form_token,
        fields=forms.FIELD_ORDER,
        asked=(target.form.fields or {}) if target.form else {},
        errors=errors or {},
        values=values or {},
    ), (400 if errors else 200)


def _paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]


def _sharer_card(session: Session, view: PageView) -> dict | None:
    """Who shared this page with the reader: a staff member's card (with their 联系我 code
    when they have one), or the sharing reader's name."""
    if view.sharer_staff_id:
        staff = session.get(Staff, view.sharer_staff_id)
        if staff is None:
            return None
        ways = session.scalars(
            select(ContactWay).where(
                ContactWay.workspace_id == staff.workspace_id, ContactWay.qr_code.isnot(None)
            )
        )
        qr_code = next((w.qr_code for w in ways if staff.userid in (w.staff_userids or [])), None)
        return {"staff": True, "name": staff.name or staff.userid, "qr_code": qr_code}
    if view.sharer_contact_id:
        contact = session.get(Contact, view.sharer_contact_id)
        if contact is not None and contact.name:
            return {"staff": False, "name": contact.name}
    if view.sharer_openid:
        return {"staff": False, "name": None}
    return None


# Per client address: generous (a conference's Wi-Fi is one address), but a script
# cannot flood a view's reading or a form.
@bp.post("/b")
@limiter.limit("600 per minute")
def beacon():
    """The landing page reports reading time, a like or a share of its view."""
    h = harpoon()
    event = request.form.get("e", "")
    if event not in BEACON_EVENTS:
        log.info("beacon refused: unknown event %r", event[:20])
        abort(400)
    with _session() as session:
        try:
            view, browser = links.view_of_token(session, h.signer, request.form.get("v"))
        except TokenError as exc:
            log.info("beacon refused: view token %s", exc.reason)
            abort(400)
        if not links.same_browser(browser, request.cookies.get(BROWSER_COOKIE)):
            # A forwarded page's URL: its reader's reading, likes and shares are theirs alone.
            log.info("beacon refused: view %s was opened by another browser", view.id)
            abort(403)
        if event == "read":
            try:
                seconds = min(int(request.form.get("s", "")), MAX_BEACON_SECONDS)
            except ValueError:
                abort(400)
            leaving = request.form.get("f") == "1"
            recorded = (
                links.report_reading(session, view, seconds, leaving=leaving, lanes=_lanes()) > 0
            )
        elif event == "like":
            recorded = links.like(session, view, lanes=_lanes())
        else:
            recorded = links.share(session, view, lanes=_lanes()) == 1
        session.commit()
        if recorded and view.openid:
            h.queue.drain_requests.mark(view.workspace_id, lane_of(view.openid, _lanes()))
    return "", 204


@bp.post("/f/<code>")
@limiter.limit("60 per minute")
def submit_form(code: str):
    """A form posted: checked, stored with its touchpoint, then thanked."""
    h = harpoon()
    target = _target(code)
    if target is None or target.form is None:
        return _not_found()
    with _session() as session:
        try:
            token = h.signer.verify(Purpose.FORM, request.form.get("form_token"))
        except TokenError as exc:
            log.info("form %s refused: form token %s", target.form.id, exc.reason)
            return _message(_("This form has expired. Please open the link again."), 400)
        view = session.get(PageView, token.get("v"))
        if token.get("f") != target.form.id or view is None or view.link_id != target.link.id:
            log.info("form %s refused: token of another form", target.form.id)
            return _message(_("This form has expired. Please open the link again."), 400)
        posted = {k: v for k, v in request.form.items() if k != "form_token"}
        if "consent" in posted:
            posted["consent"] = "true"
        data, errors = forms.check_submission(target.form, posted)
        if errors:
            browser = str(token.get("b") or "")
            return _render_page(session, target, view, browser, errors=errors, values=posted)
        nonce = str(token.get("n", ""))
        forms.submit(session, target.form, data, nonce=nonce, view=view, lanes=_lanes())
        session.commit()
        h.queue.drain_requests.mark(target.workspace_id)  # every lane: its person may be new
        download = None
        link = None
        if target.form.download_content_id:
            link = forms.download_link(
                session, target.form, view.channel_id if view.openid else None
            )
            session.commit()
        if link is not None:
            download = h.public_url(url_for("public.open_link", code=link.code))
        return render_template("public/thanks.html", form=target.form, download=download)
