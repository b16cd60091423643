"""RQ job entry points: `verb_noun(ids...)`, primitive arguments, run in the app context."""

import logging

from app.extensions import harpoon
from handlers.inbox import RetryPolicy, drain, workspaces_due

log = logging.getLogger(__name__)


def drain_inbox(workspace_id: int) -> dict:
    """Process every due inbound event of one workspace."""
    h = harpoon()
    s = h.settings
    # Clear the request flag before reading: a callback after this point asks again.
    h.queue.drain_started(workspace_id)
    policy = RetryPolicy(
        s.inbox_max_attempts, s.inbox_retry_base_seconds, s.inbox_retry_max_seconds
    )
    with h.db.session() as session:
        result = drain(session, workspace_id, batch_size=s.inbox_batch_size, policy=policy)
    if result.handled:
        log.info(
            "drained workspace %s: %s done, %s ignored, %s failed, %s dead in %s batches",
            workspace_id,
            result.done,
            result.ignored,
            result.failed,
            result.dead,
            result.batches,
        )
    if result.more:
        h.queue.enqueue_drain(workspace_id)
    return {"done": result.done, "ignored": result.ignored, "failed": result.failed}


def sweep_inbox() -> list[int]:
    """Re-queue drains for events left behind (Redis was down, a worker died, retries due)."""
    h = harpoon()
    with h.db.session() as session:
        due = workspaces_due(session, h.settings.sweep_grace_seconds)
    for workspace_id in due:
        # A fixed job id: while one sweeper drain waits in the queue, no second one joins it.
        h.queue.enqueue_drain(workspace_id, job_id=f"drain-inbox-{workspace_id}-sweep")
    if due:
        log.info("sweeper re-queued drains for workspaces %s", due)
    return due
