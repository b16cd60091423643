"""The group-commit inbox writer under concurrent requests."""

import threading

import pytest
from sqlalchemy import create_engine, func, select, text

from models import Channel, InboundEvent
from pipeline.inbox import InboxWriter
from tests.factories import make_channel
from tests.helpers import OA_CREDS, harpoon_of


def store_from_threads(writer, channel_id, workspace_id, keys_per_thread):
    results, errors = [], []

    def work(keys):
        for key in keys:
            try:
                stored = writer.store(
                    workspace_id=workspace_id,
                    channel_id=channel_id,
                    platform="oa",
                    dedupe_key=key,
                    payload=f"<xml>{key}</xml>",
                )
                results.append((key, stored))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(keys,)) for keys in keys_per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def workspace_of(h, channel_id: int) -> int:
    with h.db.session() as session:
        return session.get(Channel, channel_id).workspace_id


def test_concurrent_stores_share_commits_and_lose_nothing(app):
    h = harpoon_of(app)
    channel_id = make_channel(app, "oa", OA_CREDS)
    workspace_id = workspace_of(h, channel_id)
    # 8 threads, 40 keys each; every key also sent by a second thread (WeChat's retry).
    keys = [[f"k{(t * 40 + n) % 160}" for n in range(40)] for t in range(8)]
    results, errors = store_from_threads(h.inbox, channel_id, workspace_id, keys)

    assert errors == []
    assert len(results) == 320
    stored = [key for key, was_new in results if was_new]
    assert sorted(stored) == sorted({key for key, _ in results})  # each key new exactly once
    with h.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 160


def test_a_failed_insert_reaches_every_request_of_its_batch(app, tmp_path):
    channel_id = make_channel(app, "oa", OA_CREDS)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'nope.db'}")
    writer = InboxWriter(broken)
    results, errors = store_from_threads(writer, channel_id, 1, [["a", "b"], ["c"], ["d"]])
    assert results == []
    assert len(errors) == 4
    with pytest.raises(Exception, match="unable to open database"):
        raise errors[0]


def test_a_stored_row_is_pending_and_due_at_once(app):
    h = harpoon_of(app)
    channel_id = make_channel(app, "oa", OA_CREDS)
    workspace_id = workspace_of(h, channel_id)
    row = dict(workspace_id=workspace_id, channel_id=channel_id, platform="oa", payload="<xml/>")
    assert h.inbox.store(**row, dedupe_key="msg|1") is True
    assert h.inbox.store(**row, dedupe_key="msg|1") is False  # WeChat's retry
    with h.db.session() as session:
        [event] = session.scalars(select(InboundEvent)).all()
    assert (event.workspace_id, event.channel_id, event.platform, event.payload) == (
        workspace_id,
        channel_id,
        "oa",
        "<xml/>",
    )
    assert (event.dedupe_key, event.status, event.attempts) == ("msg|1", "pending", 0)
    assert event.next_attempt_at == event.received_at and event.received_at.tzinfo is not None


def test_a_connection_the_database_dropped_is_replaced(app):
    """PostgreSQL restarted (or a proxy cut the connection) between two callbacks: the
    second is stored on a fresh connection, not answered with an error."""
    h = harpoon_of(app)
    engine = h.db.autocommit_engine
    if engine.dialect.name != "postgresql":
        pytest.skip("terminating a backend needs PostgreSQL")
    channel_id = make_channel(app, "oa", OA_CREDS)
    workspace_id = workspace_of(h, channel_id)
    writer = InboxWriter(engine)
    row = dict(workspace_id=workspace_id, channel_id=channel_id, platform="oa", payload="<xml/>")
    assert writer.store(**row, dedupe_key="msg|1")
    with h.db.engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        admin.commit()
    assert writer.store(**row, dedupe_key="msg|2")
    with h.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 2
