"""Declarative base, shared column types and the database handle."""

from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, TypeDecorator, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use models.base.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SecretCipher:
    """Encrypts secrets at rest; the first key encrypts, every key decrypts."""

    def __init__(self, keys: tuple[str, ...]):
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc


class EncryptedString(TypeDecorator):
    """A string column stored encrypted with the process's SecretCipher.

    Type hooks see only the dialect, so Database.configure() installs the
    cipher process-wide, as it does the engine.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return _cipher().encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return _cipher().decrypt(value)


_active_cipher: list[SecretCipher] = []


def _cipher() -> SecretCipher:
    if not _active_cipher:
        raise RuntimeError("Database.configure() sets the secret cipher before secrets are used")
    return _active_cipher[0]


class Database:
    """Engine + session factory, configured once by the composition root."""

    def __init__(self):
        self.engine: Engine | None = None
        # Same pool, each statement its own transaction: one round trip for a lone INSERT.
        self.autocommit_engine: Engine | None = None
        self.Session = sessionmaker(expire_on_commit=False)

    def configure(self, url: str, encryption_keys: tuple[str, ...]) -> None:
        _active_cipher[:] = [SecretCipher(encryption_keys)]
        kwargs = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping: it costs a round trip per checkout; callers that must
            # survive a database restart retry once on an invalidated connection.
            kwargs.update(pool_size=10, max_overflow=10, pool_recycle=3600)
        self.engine = create_engine(url, **kwargs)
        # Its own small pool, autocommit from connect on: nothing to set or reset per checkout.
        self.autocommit_engine = create_engine(
            url, **kwargs, isolation_level="AUTOCOMMIT", pool_reset_on_return=None
        )
        if url.startswith("sqlite"):
            for engine in (self.engine, self.autocommit_engine):
                event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling breaks SAVEPOINTs; SQLAlchemy's recipe:
            # the driver stays out of it and each transaction starts with an explicit BEGIN.
            # IMMEDIATE takes the write lock up front, so a drain never finds its snapshot
            # stale when a callback committed between its first read and first write.
            event.listen(self.engine, "connect", _sqlite_driver_autocommit)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self.Session.configure(bind=self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine is not None and self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self.Session()

    def dispose(self) -> None:
        for engine in (self.engine, self.autocommit_engine):
            if engine is not None:
                engine.dispose()


def _sqlite_driver_autocommit(dbapi_connection, _record):
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection):
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    # WAL lets the web process append to the inbox while the worker drains it.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def dialect_insert(dialect_name: str, table):
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite alike)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"no ON CONFLICT support for {dialect_name}")
    return insert(table)


def insert_ignoring_conflicts(dialect_name: str, table):
    """INSERT ... ON CONFLICT DO NOTHING."""
    return dialect_insert(dialect_name, table).on_conflict_do_nothing()
