"""The group-commit inbox writer under concurrent requests."""

import threading

import pytest
from sqlalchemy import create_engine, func, select

from models import InboundEvent
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


def test_concurrent_stores_share_commits_and_lose_nothing(app):
    h = harpoon_of(app)
    channel_id = make_channel(app, "oa", OA_CREDS)
    with h.db.session() as session:
        from models import Channel

        workspace_id = session.get(Channel, channel_id).workspace_id
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
