"""Sign in, sign out, language."""

import hmac
import secrets

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from app.admin import LOCALES, bp, db, limiter, login_manager
from app.extensions import harpoon
from models import User, Workspace, utcnow


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
    if not user_id.isdigit():
        return None
    user = db().get(User, int(user_id))
    if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
        return None
    workspace = db().get(Workspace, user.workspace_id)
    g.workspace_timezone = workspace.timezone
    return user


def _login_limit() -> str:
    return harpoon().settings.login_rate_limit


def _login_email() -> str:
    return (request.form.get("email") or "").strip().lower()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])  # per client address
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_email)  # per account
def login():
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db().scalar(select(User).where(func.lower(User.email) == email))
        # Hash even for an unknown email: the answer's timing must not tell who has an account.
        password_ok = (user or _NOBODY).check_password(form.password.data)
        if user is not None and user.active and password_ok:
            user.last_login_at = utcnow()
            db().commit()
            locale = session.get("locale")  # chosen on the sign-in page
            session.clear()  # a fresh session on sign-in: no fixation
            if locale in LOCALES and locale != user.locale:
                user.locale = locale
                db().commit()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append(_("Wrong email or password."))
    return render_template("admin/login.html", form=form)


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
    return target if safe_path(target, "/admin") else url_for("admin.dashboard")


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
