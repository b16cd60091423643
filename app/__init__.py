"""The composition root: wires config, models, the queue and the web layer."""

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from app import inputs, jobs
from app.extensions import Harpoon, channel_cache, link_cache, reply_rules
from app.logs import configure_logging
from app.queue import JobQueue
from config import load_settings
from core import outbound
from models import Database
from pipeline.inbox import InboxWriter
from wechat.clients import TokenStore, WeChatClients


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app; `test_config` overrides settings by name (see config.Settings)."""
    settings = load_settings(**(test_config or {}))
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    inputs.init_app(app)
    configure_logging(settings.log_level)

    db = Database()
    db.configure(settings.database_url, settings.encryption_keys)
    outbound.configure(settings.outbound_allow)
    queue = JobQueue(settings, jobs.JOBS, jobs.cron_jobs(settings))
    app.extensions["harpoon"] = Harpoon(
        settings=settings,
        db=db,
        queue=queue,
        channels=channel_cache(db, settings.channel_cache_seconds),
        inbox=InboxWriter(db.autocommit_engine),
        wechat=WeChatClients(
            settings.wechat_api_url,
            TokenStore(queue.connection, prefix=f"{settings.queue_prefix}:wechat"),
        ),
        replies=reply_rules(db, settings.channel_cache_seconds),
        links=link_cache(db, settings.channel_cache_seconds),
    )

    from app import (
        admin,
        api,
        callbacks,
        cli,
        email_links,
        health,
        public,
        security,
        wecom_app,
        wecom_panel,
    )

    security.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(email_links.bp)
    app.register_blueprint(api.bp)
    admin.init_app(app)
    app.register_blueprint(wecom_app.bp)
    app.register_blueprint(wecom_panel.bp)
    # Readers' pages and the API carry signed tokens and keys of their own, not CSRF tokens.
    admin.csrf.exempt(public.bp)
    admin.csrf.exempt(email_links.bp)
    admin.csrf.exempt(api.bp)
    cli.init_app(app)
    app.wsgi_app = DispatcherMiddleware(
        app.wsgi_app, {callbacks.MOUNT: callback_app(app.extensions["harpoon"])}
    )
    if settings.proxy_hops:
        # Client addresses (rate limits, logs) and https from the proxy's headers, for both.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops
        )
    return app


def callback_app(extension: Harpoon) -> Flask:
    """WeChat's callbacks, thousands a second, as an app of their own: none of the admin's
    session, CSRF, sign-in or rate-limit hooks run for them (WeChat signs each callback)."""
    from app import callbacks, security

    app = Flask(callbacks.__name__)
    app.extensions["harpoon"] = extension
    inputs.init_app(app)
    security.init_app(app)
    app.register_blueprint(callbacks.bp)
    return app
