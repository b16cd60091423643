"""The public addresses an email's links point at (outreach.emails.Tracking):

- `/e/<token>/o.gif`: the open pixel. Always the same 1x1 GIF, whatever the token; an
  unknown token records nothing.
- `/e/<token>/c?u=<url>&s=<signature>`: a tracked click. The signature (HMAC of the token
  and the URL with the secret key) must hold, else a 400 page: the route never sends a
  reader to an address Harpoon did not put in an email. A signed click is recorded and
  redirected (302).
- `/e/<token>/u`: the unsubscribe page (GET: a confirm button), and the unsubscribe itself
  (POST), which RFC 8058's one-click POST (`List-Unsubscribe=One-Click`, from the mail
  client, with no cookie and no CSRF token) reaches too. Posting again changes nothing.

Each records through outreach.email_events in one transaction with its touchpoint, then
asks for a drain, which makes the contact's interaction.
"""

import logging

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError

from app.admin import limiter
from app.extensions import harpoon
from models import EmailSuppression, Workspace
from outreach import email_events
from outreach.emails import click_is_signed
from outreach.suppressions import normalized

log = logging.getLogger(__name__)
bp = Blueprint("email_links", __name__, template_folder="templates")

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
MAX_POST_BYTES = 4 * 1024  # a one-click POST is one short field
ONE_CLICK = "One-Click"


@bp.before_request
def _limit_body() -> None:
    request.max_content_length = MAX_POST_BYTES


def _lanes() -> int:
    return harpoon().settings.inbox_lanes


def _drain(workspace_id: int, lane: int | None) -> None:
    if lane is not None:
        harpoon().queue.drain_requests.mark(workspace_id, lane)


def _message(message: str, status: int):
    return render_template("public/message.html", message=message), status


def _pixel() -> Response:
    response = Response(PIXEL, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, private"
    return response


# Per client address, as the readers' pages: generous for the pixel and clicks, which mail
# providers' image proxies fetch for many readers from few addresses.
@bp.get("/e/<token>/o.gif")
@limiter.limit("3000 per minute")
def opened(token: str):
    """The pixel; a database hiccup loses an open, never the image."""
    try:
        with harpoon().db.session() as session:
            message = email_events.message_of_token(session, token)
            if message is None:
                return _pixel()
            lane = email_events.record_open(session, message, lanes=_lanes())
            session.commit()
            workspace_id = message.workspace_id
        _drain(workspace_id, lane)
    except SQLAlchemyError as exc:
        log.warning("email open not recorded (%s): %s", token[:40], exc)
    return _pixel()


@bp.get("/e/<token>/c")
@limiter.limit("3000 per minute")
def clicked(token: str):
    url = request.args.get("u", "")
    signature = request.args.get("s", "")
    signed = (
        url.startswith(("https://", "http://"))
        and len(url) <= email_events.MAX_URL
        and click_is_signed(harpoon().settings.secret_key, token, url, signature)
    )
    if not signed:
        log.info("email click refused: bad signature on %s", token[:40])
        return _message(_("This link is not valid."), 400)
    with harpoon().db.session() as session:
        message = email_events.message_of_token(session, token)
        if message is not None:  # a signed link of a message since deleted still leads on
            lane = email_events.record_click(session, message, url, lanes=_lanes())
            session.commit()
            _drain(message.workspace_id, lane)
    return redirect(url, code=302)


@bp.get("/e/<token>/u")
@limiter.limit("120 per minute")
def unsubscribe_page(token: str):
    with harpoon().db.session() as session:
        message = email_events.message_of_token(session, token)
        if message is None or not message.to_address:
            return _message(_("This link does not exist."), 404)
        done = (
            session.get(EmailSuppression, (message.workspace_id, normalized(message.to_address)))
            is not None
        )
        return render_template(
            "public/unsubscribe.html",
            address=masked(message.to_address),
            sender=_sender(session, message.workspace_id),
            done=done,
            action=url_for("email_links.unsubscribe", token=token),
        )


@bp.post("/e/<token>/u")
@limiter.limit("60 per minute")
def unsubscribe(token: str):
    """The page's button, or the mail client's one-click POST: the same, and idempotent."""
    with harpoon().db.session() as session:
        message = email_events.message_of_token(session, token)
        if message is None or not message.to_address:
            return _message(_("This link does not exist."), 404)
        lane = email_events.unsubscribe(session, message, lanes=_lanes())
        session.commit()
        _drain(message.workspace_id, lane)
        one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
        log.info("email %s unsubscribed%s", message.id, " (one-click)" if one_click else "")
        return render_template(
            "public/unsubscribe.html",
            address=masked(message.to_address),
            sender=_sender(session, message.workspace_id),
            done=True,
            action=None,
        )


def _sender(session, workspace_id: int) -> str:
    workspace = session.get(Workspace, workspace_id)
    return workspace.name if workspace is not None else ""


def masked(address: str) -> str:
    """w***@example.com: enough for its owner to recognise, little for anyone forwarded it."""
    local, _at, domain = normalized(address).partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
