"""Settings: the one place that reads the environment.

No setting at all gives the embedded default (SQLite under instance/, an
in-process queue and worker). DATABASE_URL and REDIS_URL switch to PostgreSQL
and real RQ workers; nothing else changes.
"""

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = ROOT / "instance"
    database_url: str = ""
    redis_url: str = ""
    # Fernet keys, newest first; older ones still decrypt (key rotation).
    encryption_keys: tuple[str, ...] = ()
    public_base_url: str = "http://127.0.0.1:8000"
    queue_prefix: str = "harpoon"
    callback_max_bytes: int = 64 * 1024
    callback_max_age_seconds: int = 300
    channel_cache_seconds: float = 30.0
    inbox_batch_size: int = 200
    inbox_max_attempts: int = 8
    inbox_retry_base_seconds: int = 30
    inbox_retry_max_seconds: int = 3600
    # Lanes per workspace's inbox (by a hash of the person): drains of one workspace run in
    # parallel, one per lane; one person's events stay in one lane, in order.
    inbox_lanes: int = 4
    # A drain job's time budget: past it, the job requeues itself behind what waits (welcomes).
    drain_max_seconds: float = 0.5
    sweep_interval_seconds: int = 30
    sweep_grace_seconds: int = 20
    log_level: str = "INFO"
    # Empty: the real WeChat and WeCom. A sandbox's address sends every API call there.
    wechat_api_url: str = ""
    # Signs admin sessions and CSRF tokens.
    secret_key: str = ""
    login_rate_limit: str = "10 per minute"
    # Failed sign-ins (core/sign_in.py): per account and address, per account, their window,
    # and the longest wait between attempts on an account under attack.
    login_address_failures: int = 5
    login_account_failures: int = 10
    login_failure_window_seconds: int = 900
    login_backoff_max_seconds: int = 60
    # Reverse proxies in front of gunicorn whose X-Forwarded-For/-Proto to trust.
    proxy_hops: int = 0
    # The OA customer-service window after a follower's message (WECHAT.md: uncertain).
    cs_window_hours: float = 48.0
    cs_window_messages: int = 5
    # Email (a form's follow-up): smtp[s]://user:password@host:port; empty sends none.
    smtp_url: str = ""
    mail_from: str = "Harpoon <noreply@harpoon.local>"
    # An email push sends at most this many messages a minute (0: as fast as the server takes).
    email_rate_per_minute: int = 6000
    # Touchpoint API requests per minute per key.
    api_rate_limit: str = "120 per minute"
    # Networks and host names webhooks may reach besides public addresses (on-premise).
    outbound_allow: tuple[str, ...] = ()
    # A new WeCom customer's journey actions wait this long, at most, for enrichment to
    # say who they are (their unionid may join them to a known person).
    journey_enrichment_wait_seconds: float = 10.0
    # A font with Chinese glyphs for the text line of posters (Debian's fonts-noto-cjk);
    # missing, posters fall back to Pillow's own font, which has no Chinese.
    poster_font_path: str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

    @property
    def served_over_https(self) -> bool:
        return self.public_base_url.startswith("https://")

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS when Harpoon is served over HTTPS."""
        return self.served_over_https

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_queue(self) -> bool:
        return not self.redis_url

    @property
    def queue_names(self) -> tuple[str, str, str]:
        """(high, default, low), the order workers serve them: high is for work on a platform
        deadline (drains, welcomes), low for bulk work that may wait (enrichment, rescoring)."""
        return tuple(f"{self.queue_prefix}-{urgency}" for urgency in ("high", "default", "low"))


# Drain lock keys and lane numbers leave room for this many lanes per workspace.
MAX_LANES = 256


def _between(value, low, high):
    if not low <= value <= high:
        raise ValueError(f"must be from {low} to {high}")
    return value


HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?$")


def _allow_list(value: str) -> tuple[str, ...]:
    """Comma-separated networks (10.0.0.0/8, 192.168.1.20, fd00::/8) and host names."""
    entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not HOST_NAME.match(entry):
                raise ValueError(f"{entry!r} is neither a network nor a host name") from None
    return entries


_ENV = {
    "HARPOON_INSTANCE_DIR": ("instance_dir", Path),
    "DATABASE_URL": ("database_url", lambda v: _sqlalchemy_url(v)),
    "REDIS_URL": ("redis_url", str),
    "HARPOON_ENCRYPTION_KEYS": (
        "encryption_keys",
        lambda v: tuple(k.strip() for k in v.split(",") if k.strip()),
    ),
    "HARPOON_PUBLIC_BASE_URL": ("public_base_url", lambda v: v.rstrip("/")),
    "HARPOON_QUEUE_PREFIX": ("queue_prefix", str),
    "HARPOON_CALLBACK_MAX_BYTES": ("callback_max_bytes", int),
    "HARPOON_CALLBACK_MAX_AGE_SECONDS": ("callback_max_age_seconds", int),
    "HARPOON_CHANNEL_CACHE_SECONDS": ("channel_cache_seconds", float),
    "HARPOON_INBOX_BATCH_SIZE": ("inbox_batch_size", int),
    "HARPOON_INBOX_MAX_ATTEMPTS": ("inbox_max_attempts", int),
    "HARPOON_INBOX_RETRY_BASE_SECONDS": ("inbox_retry_base_seconds", int),
    "HARPOON_INBOX_RETRY_MAX_SECONDS": ("inbox_retry_max_seconds", int),
    "HARPOON_INBOX_LANES": ("inbox_lanes", lambda v: _between(int(v), 1, MAX_LANES)),
    "HARPOON_DRAIN_MAX_SECONDS": ("drain_max_seconds", lambda v: _between(float(v), 0.1, 240)),
    "HARPOON_SWEEP_INTERVAL_SECONDS": ("sweep_interval_seconds", int),
    "HARPOON_SWEEP_GRACE_SECONDS": ("sweep_grace_seconds", int),
    "HARPOON_LOG_LEVEL": ("log_level", str),
    "HARPOON_WECHAT_API_URL": ("wechat_api_url", lambda v: v.rstrip("/")),
    "HARPOON_SECRET_KEY": ("secret_key", str),
    "HARPOON_LOGIN_RATE_LIMIT": ("login_rate_limit", str),
    "HARPOON_LOGIN_ADDRESS_FAILURES": ("login_address_failures", int),
    "HARPOON_LOGIN_ACCOUNT_FAILURES": ("login_account_failures", int),
    "HARPOON_LOGIN_FAILURE_WINDOW_SECONDS": ("login_failure_window_seconds", int),
    "HARPOON_LOGIN_BACKOFF_MAX_SECONDS": ("login_backoff_max_seconds", int),
    "HARPOON_PROXY_HOPS": ("proxy_hops", int),
    "HARPOON_CS_WINDOW_HOURS": ("cs_window_hours", float),
    "HARPOON_CS_WINDOW_MESSAGES": ("cs_window_messages", int),
    "HARPOON_SMTP_URL": ("smtp_url", str),
    "HARPOON_MAIL_FROM": ("mail_from", str),
    "HARPOON_EMAIL_RATE_PER_MINUTE": ("email_rate_per_minute", int),
    "HARPOON_API_RATE_LIMIT": ("api_rate_limit", str),
    "HARPOON_OUTBOUND_ALLOW": ("outbound_allow", _allow_list),
    "HARPOON_JOURNEY_ENRICHMENT_WAIT_SECONDS": ("journey_enrichment_wait_seconds", float),
    "HARPOON_POSTER_FONT": ("poster_font_path", str),
}

ENVIRONMENT_VARIABLES = tuple(_ENV)


def _sqlalchemy_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg 3, the driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(environ: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from the environment, then apply overrides (tests)."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, (attr, convert) in _ENV.items():
        raw = environ.get(name, "").strip()
        if raw:
            try:
                values[attr] = convert(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    if "database_url" in overrides:
        overrides["database_url"] = _sqlalchemy_url(overrides["database_url"])
    settings = replace(Settings(), **values, **overrides)
    if not 1 <= settings.inbox_lanes <= MAX_LANES:
        raise ConfigError(f"inbox_lanes must be from 1 to {MAX_LANES}")
    return _with_embedded_defaults(settings)


def _with_embedded_defaults(settings: Settings) -> Settings:
    changes = {}
    if not settings.database_url:
        settings.instance_dir.mkdir(parents=True, exist_ok=True)
        changes["database_url"] = f"sqlite:///{settings.instance_dir / 'harpoon.db'}"
    if not settings.encryption_keys:
        if settings.database_url and not settings.database_url.startswith("sqlite"):
            raise ConfigError(
                "HARPOON_ENCRYPTION_KEYS is required with DATABASE_URL "
                "(generate one: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        changes["encryption_keys"] = (_instance_key(settings.instance_dir, "encryption.key"),)
    if not settings.secret_key:
        if settings.database_url and not settings.database_url.startswith("sqlite"):
            raise ConfigError(
                "HARPOON_SECRET_KEY is required with DATABASE_URL (every web process must "
                "share it; generate one: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        changes["secret_key"] = _instance_key(settings.instance_dir, "secret.key")
    return replace(settings, **changes) if changes else settings


def _instance_key(instance_dir: Path, name: str) -> str:
    """The embedded default keeps its keys beside its SQLite file."""
    import base64

    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / name
    if not path.exists():
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(key)
    return path.read_text().strip()
