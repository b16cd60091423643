"""The admin pages: server-rendered Jinja with htmx and ECharts served from node_modules.

Each page module registers its views on `bp`; the navigation shows only the
pages that exist and that the user's role may open.
"""

from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, format_datetime
from flask_babel import lazy_gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from app.admin.access import can, landing_endpoint
from app.extensions import harpoon
from config import ROOT

bp = Blueprint(
    "admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static"
)
csrf = CSRFProtect()
login_manager = LoginManager()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

LOCALES = {"zh_CN": "中文", "en": "English"}
# (endpoint, label, permission): the order of the navigation.
NAVIGATION = [
    ("admin.home", _("My workbench"), "contacts.view"),
    ("admin.dashboard", _("Dashboard"), "view"),
    ("admin.revenue", _("Revenue"), "revenue.view"),
    ("admin.accounts", _("Accounts"), "contacts.view"),
    ("admin.opportunities", _("Opportunities"), "opportunities.view"),
    ("admin.contacts", _("Contacts"), "contacts.view"),
    ("admin.groups", _("Customer groups"), "contacts.view"),
    ("admin.group_sends", _("Group sends"), "contacts.view"),
    ("admin.notifications", _("Sales alerts"), "contacts.view"),
    ("admin.tasks", _("Tasks"), "tasks.view"),
    ("admin.tags", _("Tags"), "view"),
    ("admin.menus", _("Menus"), "view"),
    ("admin.segments", _("Segments"), "view"),
    ("admin.pushes", _("Pushes"), "view"),
    ("admin.qr_codes", _("QR codes"), "view"),
    ("admin.content", _("Content library"), "view"),
    ("admin.email_templates", _("Emails"), "view"),
    ("admin.materials", _("Material library"), "view"),
    ("admin.forms", _("Forms"), "view"),
    ("admin.posters_page", _("Posters"), "view"),
    ("admin.advocacy", _("Advocacy"), "view"),
    ("admin.journeys", _("Journeys"), "view"),
    ("admin.scoring", _("Scoring"), "scoring.manage"),
    ("admin.programs_page", _("Tier programs"), "programs.manage"),
    ("admin.attribution", _("Attribution"), "attribution.view"),
    ("admin.routing_page", _("Account routing"), "routing.manage"),
    ("admin.channels", _("Channels"), "channels.view"),
    ("admin.api_keys", _("API keys"), "api_keys.manage"),
    ("admin.webhooks", _("Webhooks"), "webhooks.manage"),
    ("admin.contact_ways", _("Contact Me codes"), "channels.view"),
    ("admin.join_ways", _("Group join codes"), "channels.view"),
    ("admin.group_welcomes", _("Group welcome messages"), "channels.view"),
    ("admin.staff", _("Staff"), "contacts.view"),
    ("admin.transfers", _("Customer transfers"), "transfers.manage"),
    ("admin.inbox", _("Inbox"), "inbox.view"),
    ("admin.settings", _("Settings"), "view"),
    ("admin.audit", _("Audit"), "audit.view"),
]
ROLE_LABELS = {
    "owner": _("Owner"),
    "admin": _("Admin"),
    "marketer": _("Marketer"),
    "sales": _("Sales"),
    "viewer": _("Viewer"),
}
# Front-end files served from node_modules (installed from the npm registry by make).
VENDOR_FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "echarts.min.js": "echarts/dist/echarts.min.js",
    "wecom.global.js": "@wecom/jssdk/dist/wecom.global.prod.js",
}
NODE_MODULES = ROOT / "node_modules"


@bp.get("/vendor/<name>")
def vendor(name: str):
    path = VENDOR_FILES.get(name)
    if path is None:
        abort(404)
    file = NODE_MODULES / path
    return send_from_directory(file.parent, file.name, max_age=86400)


def db() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db_session" not in g:
        g.db_session = harpoon().db.session()
    return g.db_session


def close_db_session(_exc=None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def _unauthorized():
    """Sign-in first: a page redirects to it, the JSON API answers 401."""
    if request.path.startswith("/admin/api/"):
        return {"error": "Unauthorized"}, 401
    if request.path.startswith("/wecom/"):
        return str(_("Sign in again: reopen the sidebar in WeCom.")), 401
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


def error_page(error):
    """Admin pages answer with a page of their own; other paths keep the plain answer."""
    if not request.path.startswith("/admin"):
        return error
    if request.path.startswith("/admin/api/"):
        return {"error": error.name}, error.code
    messages = {
        403: _("Your role may not open this page."),
        404: _("No such page."),
        429: _("Too many requests from your address: wait a minute and try again."),
    }
    return render_template(
        "admin/error.html", code=error.code, message=messages[error.code]
    ), error.code


# The admin, and the pages WeCom's sidebar opens for a signed-in user.
SESSION_PATHS = (bp.url_prefix, "/wecom/")


class AdminSessions(SecureCookieSessionInterface):
    """Sessions exist on the admin pages (and those opened in WeCom) only: readers' pages,
    the API and the health check skip the cookie work (WeChat's callbacks are an app of
    their own)."""

    def open_session(self, app, request):
        if not request.path.startswith(SESSION_PATHS):
            return self.make_null_session(app)
        return super().open_session(app, request)


def select_locale() -> str:
    if current_user and current_user.is_authenticated:
        return current_user.locale
    return session.get("locale", "zh_CN")


def select_timezone() -> str:
    return getattr(g, "workspace_timezone", None) or "Asia/Shanghai"


def navigation(app: Flask) -> list[tuple[str, str]]:
    return [
        (endpoint, label)
        for endpoint, label, permission in NAVIGATION
        if endpoint in app.view_functions and can(permission)
    ]


def init_app(app: Flask) -> None:
    from app.admin import (  # noqa: F401
        accounts,
        advocacy,
        api_keys,
        attribution,
        audit,
        auth,
        channels,
        contacts,
        content,
        dashboard,
        email,
        forms,
        group_sends,
        groups,
        home,
        imports,
        inbox,
        journeys,
        materials,
        menus,
        notifications,
        opportunities,
        posters,
        programs,
        pushes,
        qr_codes,
        revenue,
        routing,
        scoring,
        segments,
        tags,
        tasks,
        transfers,
        webhooks,
        wecom,
    )

    settings = app.extensions["harpoon"].settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent.parent / "translations"),
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        # Redis down must not lock everyone out: count in memory meanwhile.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_KEY_PREFIX=f"{settings.queue_prefix}:limits",
    )
    app.session_interface = AdminSessions()
    login_manager.login_view = "admin.login"
    login_manager.unauthorized_handler(_unauthorized)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    app.register_blueprint(bp)
    app.teardown_appcontext(close_db_session)
    for code in (403, 404, 429):
        app.register_error_handler(code, error_page)
    app.jinja_env.globals.update(
        can=can,
        landing_endpoint=landing_endpoint,
        navigation=lambda: navigation(app),
        LOCALES=LOCALES,
        ROLE_LABELS=ROLE_LABELS,
        current_locale=select_locale,
        format_datetime=format_datetime,  # in the workspace's time zone and the user's language
    )
