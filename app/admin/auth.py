"""Sign in, sign out, language."""

import hmac
import logging
import secrets

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from app.admin import LOCALES, bp, db, limiter, login_manager
from app.admin.access import landing_endpoint
from app.extensions import harpoon
from core.sign_in import Refusal, SignInGuard, SignInPolicy, account_key
from core.tokens import MAX_AGE, Purpose, TokenError
from crm.users import user_by_email
from models import User, Workspace, utcnow

log = logging.getLogger(__name__)


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[
            DataRequired(),
            Length(max=254),
            Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter an email address.")),
        ],
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, token = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit()):
        return None
    user = db().get(User, int(user_id))
    if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
        return None
    workspace = db().get(Workspace, user.workspace_id)
    g.workspace_timezone = workspace.timezone
    return user


def _login_limit() -> str:
    return harpoon().settings.login_rate_limit


KNOWN_DEVICE_COOKIE = "hp_device"


def _guard() -> SignInGuard:
    settings = harpoon().settings
    policy = SignInPolicy(
        address_failures=settings.login_address_failures,
        account_failures=settings.login_account_failures,
        window_seconds=settings.login_failure_window_seconds,
        backoff_max_seconds=settings.login_backoff_max_seconds,
    )
    return SignInGuard(harpoon().queue.connection, settings.queue_prefix, policy)


def _known_device(account: str) -> bool:
    """This browser signed in to the account before (the signed cookie names it)."""
    try:
        payload = harpoon().signer.verify(Purpose.DEVICE, request.cookies.get(KNOWN_DEVICE_COOKIE))
    except TokenError:
        return False
    return payload.get("a") == account


def _remember_device(response, account: str) -> None:
    settings = harpoon().settings
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        harpoon().signer.sign(Purpose.DEVICE, {"a": account}),
        max_age=MAX_AGE[Purpose.DEVICE],
        path=bp.url_prefix,
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies,
    )


def _refusal_message(refusal: Refusal) -> str:
    if refusal.reason == "address":
        minutes = -(-refusal.retry_after // 60)
        return _(
            "Too many failed sign-ins to this account from your network. "
            "Try again in %(minutes)d min.",
            minutes=minutes,
        )
    return _(
        "This account has had many failed sign-ins, so attempts are slowed down. Try again "
        "in %(seconds)d s, or from a browser you signed in with before.",
        seconds=refusal.retry_after,
    )


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])  # per client address, whatever the account
def login():
    if current_user.is_authenticated:
        return redirect(url_for(landing_endpoint()))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form)
    email = form.email.data.strip().lower()
    account, address, guard = account_key(email), request.remote_addr or "", _guard()
    refusal = guard.check(account, address, known_device=_known_device(account))
    if refusal is not None:
        log.info("sign-in refused (%s) for an account from %s", refusal.reason, address)
        form.password.errors.append(_refusal_message(refusal))
        return render_template("admin/login.html", form=form), 429
    user = user_by_email(db(), email)
    # Hash even for an unknown email: the answer's timing must not tell who has an account.
    password_ok = (user or _NOBODY).check_password(form.password.data)
    if user is None or not user.active or not password_ok:
        guard.failed(account, address)
        form.password.errors.append(_("Wrong email or password."))
        return render_template("admin/login.html", form=form)
    guard.succeeded(account, address)
    user.last_login_at = utcnow()
    db().commit()
    locale = session.get("locale")  # chosen on the sign-in page
    session.clear()  # a fresh session on sign-in: no fixation
    if locale in LOCALES and locale != user.locale:
        user.locale = locale
        db().commit()
    login_user(user)
    response = redirect(_safe_next(request.args.get("next")))
    _remember_device(response, account)
    return response


def _nobody() -> User:
    user = User(email="", name="", role="viewer")
    user.set_password(secrets.token_urlsafe(16))
    return user


_NOBODY = _nobody()


def safe_path(target: str | None, prefix: str) -> bool:
    """A path under `prefix` on this site: no other host, no control characters."""
    return bool(
        target
        and target.startswith(prefix)
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    )


def _safe_next(target: str | None) -> str:
    # The bare index names no page: each role starts where it works.
    if safe_path(target, "/admin") and target.rstrip("/") != bp.url_prefix:
        return target
    return url_for(landing_endpoint() if current_user.is_authenticated else "admin.dashboard")


@bp.post("/logout")
@login_required
def logout():
    # Sessions are signed cookies: a new token makes every copy of the old one worthless.
    current_user.rotate_session_token()
    db().commit()
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))


@bp.post("/locale")
def set_locale():
    locale = request.form.get("locale", "")
    if locale in LOCALES:
        session["locale"] = locale
        if current_user.is_authenticated:
            current_user.locale = locale
            db().commit()
        refresh()
    else:
        flash(_("Unknown language."), "error")
    return redirect(_safe_next(request.form.get("next")))
