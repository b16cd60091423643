"""The durable inbox: callbacks and touchpoints stored as rows (the database is the source
of truth; Redis only carries "please drain"), and what operators read and do with them."""

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.lanes import lane_of
from models import InboundEvent, InboxStatus, utcnow
from models.base import insert_ignoring_conflicts
from wechat.callbacks import WECOM


def callback_lane(platform: str, fields: dict, lanes: int) -> int:
    """The lane of a callback (its parsed XML fields): the person it is about, i.e. the OA
    follower's openid, or the WeCom customer's external_userid (else the sending user)."""
    person = fields.get("ExternalUserID") if platform == WECOM else None
    return lane_of(person or fields.get("FromUserName"), lanes)


def retry(session: Session, event_id: int, workspace_id: int | None = None) -> bool:
    """Put a failed or dead event back in line now (the operator's retry).

    `workspace_id`, when given, must own the event (the admin page passes the user's).
    """
    scope = [] if workspace_id is None else [InboundEvent.workspace_id == workspace_id]
    updated = session.execute(
        update(InboundEvent)
        .where(
            *scope,
            InboundEvent.id == event_id,
            InboundEvent.status.in_((InboxStatus.FAILED, InboxStatus.DEAD)),
        )
        .values(status=InboxStatus.PENDING, next_attempt_at=utcnow(), attempts=0)
    )
    return updated.rowcount == 1


def status_counts(session: Session, workspace_id: int) -> dict[str, int]:
    """How many of a workspace's events are in each status."""
    rows = session.execute(
        select(InboundEvent.status, func.count())
        .where(InboundEvent.workspace_id == workspace_id)
        .group_by(InboundEvent.status)
    )
    return dict(rows.all())


def oldest_pending(session: Session, workspace_id: int) -> datetime | None:
    """When the longest-waiting pending event of a workspace arrived."""
    return session.scalar(
        select(func.min(InboundEvent.received_at)).where(
            InboundEvent.workspace_id == workspace_id,
            InboundEvent.status == InboxStatus.PENDING,
        )
    )


def stats(session: Session) -> list[dict]:
    """Counts per workspace and status, with the oldest pending event's age."""
    rows = session.execute(
        select(
            InboundEvent.workspace_id,
            InboundEvent.status,
            func.count(),
            func.min(InboundEvent.received_at),
        ).group_by(InboundEvent.workspace_id, InboundEvent.status)
    )
    return [
        {"workspace_id": ws, "status": status, "count": count, "oldest": oldest}
        for ws, status, count, oldest in rows
    ]


class InboxWriter:
    """Stores callbacks in the inbox; concurrent requests share one INSERT.

    Group commit: a request that finds no write under way becomes the writer
    and inserts its row; rows arriving meanwhile wait, and the writer done with
    its INSERT hands the pen, with every row waiting by then, to the first of
    them: one statement and one commit for the lot. Every request still
    answers WeChat only once the commit carrying its row is done.
    """

    def __init__(self, engine: Engine, max_batch: int = 200):
        self._engine = engine
        self._max_batch = max_batch
        self._statement = (
            insert_ignoring_conflicts(engine.dialect.name, InboundEvent.__table__)
            .values(
                {
                    "workspace_id": bindparam("workspace_id"),
                    "channel_id": bindparam("channel_id"),
                    "platform": bindparam("platform"),
                    "dedupe_key": bindparam("dedupe_key"),
                    "payload": bindparam("payload"),
                    "lane": bindparam("lane"),
                    "status": bindparam("status"),
                    "attempts": bindparam("attempts"),
                    "received_at": bindparam("received_at"),
                    "next_attempt_at": bindparam("received_at"),
                }
            )
            .returning(InboundEvent.channel_id, InboundEvent.dedupe_key)
        )
        # PostgreSQL: the driver's cursor. SQLAlchemy's per-statement work (compiling the
        # multi-row VALUES, its execution context) cost a callback more CPU than verifying
        # and decrypting it (py-spy under bench/callback_ingest.py).
        self._driver_insert = _DriverInsert(engine) if engine.dialect.name == "postgresql" else None
        self._lock = threading.Lock()
        self._waiting: list[_PendingRow] = []
        self._writing = False

    def store(
        self,
        *,
        workspace_id: int,
        channel_id: int,
        platform: str,
        dedupe_key: str,
        payload: str,
        lane: int = 0,
    ) -> bool:
        """Insert one callback (in its lane: callback_lane); False when it is a retry the
        inbox already has."""
        row = _PendingRow(
            {
                "workspace_id": workspace_id,
                "channel_id": channel_id,
                "platform": platform,
                "dedupe_key": dedupe_key,
                "payload": payload,
                "lane": lane,
                "status": InboxStatus.PENDING.value,
                "attempts": 0,
                "received_at": utcnow(),
            }
        )
        with self._lock:
            self._waiting.append(row)
            lead, self._writing = not self._writing, True
            if lead:
                row.batch = self._take_batch()
        if not lead:
            row.wake.acquire()  # released once: written, or handed the pen with a batch
        if row.batch is not None:  # led from the start, or handed the pen
            self._write(row.batch)
        if row.error is not None:
            raise row.error
        return row.stored

    def _take_batch(self) -> list["_PendingRow"]:
        """The rows waiting, oldest first, up to max_batch (with the lock held)."""
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        return batch

    def _write(self, batch: list["_PendingRow"]) -> None:
        try:
            inserted = self._insert([row.params for row in batch])
        except Exception as exc:  # every request of the batch answers with it
            for row in batch:
                row.error = exc
        else:
            for row in batch:
                key = (row.params["channel_id"], row.params["dedupe_key"])
                row.stored = key in inserted
                inserted.discard(key)  # a retry in the same batch is not new
        for row in batch:
            row.wake.release()
        with self._lock:
            if self._waiting:  # the first waiting row writes them all
                head = self._waiting[0]
                head.batch = self._take_batch()
                head.wake.release()
            else:
                self._writing = False

    def _insert(self, rows: list[dict]) -> set[tuple[int, str]]:
        """One autocommit INSERT ... ON CONFLICT DO NOTHING, retried on a dropped connection."""
        if self._driver_insert is not None:
            return self._driver_insert(rows)
        for attempt in (1, 2):
            try:
                with self._engine.connect() as conn:
                    return {tuple(r) for r in conn.execute(self._statement, rows)}
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")


def _latch() -> threading.Lock:
    """A one-shot wake-up: acquire blocks until another thread releases it. A plain lock,
    not a threading.Event, whose Python-level Condition per wait and per set cost a
    callback about as much CPU as its share of the INSERT (py-spy, as above)."""
    latch = threading.Lock()
    latch.acquire()
    return latch


@dataclass
class _PendingRow:
    params: dict
    wake: threading.Lock = field(default_factory=_latch)
    batch: list["_PendingRow"] | None = None  # set for the row whose thread writes them
    stored: bool = False
    error: Exception | None = None


class _DriverInsert:
    """The inbox INSERT on PostgreSQL through the driver's connection from the engine's pool:
    `INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING channel_id,
    dedupe_key` for whichever columns the rows carry (next_attempt_at = received_at: due at
    once), each value through its column type's bind processing as a Core insert would.
    Autocommit, as the engine is; a dropped connection is discarded and the INSERT retried
    once on a fresh one."""

    COPIED = {"next_attempt_at": "received_at"}

    def __init__(self, engine: Engine):
        self._engine = engine
        self._dropped = engine.dialect.loaded_dbapi.OperationalError
        self._shapes: dict[tuple[str, ...], tuple[list[str], list[str], list]] = {}
        self._statements: dict[tuple[tuple[str, ...], int], str] = {}

    def __call__(self, rows: list[dict]) -> set[tuple[int, str]]:
        sql, params = self._statement(rows)
        for attempt in (1, 2):
            connection = self._engine.raw_connection()
            try:
                cursor = connection.driver_connection.execute(sql, params, prepare=True)
                return {(channel_id, key) for channel_id, key in cursor.fetchall()}
            except self._dropped:
                if attempt == 2 or not connection.driver_connection.closed:
                    raise
                connection.invalidate()
            finally:
                connection.close()
        raise AssertionError("unreachable")

    def _statement(self, rows: list[dict]) -> tuple[str, list]:
        columns = tuple(rows[0])
        if columns not in self._shapes:
            self._shapes[columns] = self._shape(columns)
        targets, sources, processors = self._shapes[columns]
        params = []
        for row in rows:
            for name, process in zip(sources, processors, strict=True):
                params.append(row[name] if process is None else process(row[name]))
        key = (columns, len(rows))
        if key not in self._statements:
            one = "(" + ", ".join(["%s"] * len(targets)) + ")"
            self._statements[key] = (
                f"INSERT INTO {InboundEvent.__tablename__} ({', '.join(targets)})"
                f" VALUES {', '.join([one] * len(rows))}"
                " ON CONFLICT DO NOTHING RETURNING channel_id, dedupe_key"
            )
        return self._statements[key], params

    def _shape(self, columns: tuple[str, ...]) -> tuple[list[str], list[str], list]:
        """The columns inserted, the row keys their values come from, and their processing."""
        copied = {target: source for target, source in self.COPIED.items() if source in columns}
        targets = [*columns, *copied]
        sources = [*columns, *copied.values()]
        table = InboundEvent.__table__
        processors = [table.c[name].type.bind_processor(self._engine.dialect) for name in sources]
        return targets, sources, processors
