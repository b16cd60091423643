"""Sign in, sign out, language."""

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
def load_user(user_id: str) -> User | None:
    user = db().get(User, int(user_id))
    if user is None or not user.active:
        return None
    workspace = db().get(Workspace, user.workspace_id)
    g.workspace_timezone = workspace.timezone
    return user


def _login_limit() -> str:
    return harpoon().settings.login_rate_limit


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db().scalar(select(User).where(func.lower(User.email) == email))
        if user is not None and user.active and user.check_password(form.password.data):
            user.last_login_at = utcnow()
            db().commit()
            session.clear()  # a fresh session on sign-in: no fixation
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append(_("Wrong email or password."))
    return render_template("admin/login.html", form=form)


def _safe_next(target: str | None) -> str:
    """Only a path on this site; never an absolute URL another site could supply."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return url_for("admin.dashboard")


@bp.post("/logout")
@login_required
def logout():
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
