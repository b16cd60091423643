"""RQ job entry points: `verb_noun(ids...)`, primitive arguments, run in the app context."""

import logging

from sqlalchemy import select

from app.extensions import harpoon
from handlers import contacts, enrichment, tag_sync
from handlers.enrichment import followups_due
from handlers.imports import run_import
from handlers.inbox import RetryPolicy, drain, workspaces_due
from handlers.rules import tag_inactive
from handlers.tags import Followups
from models import Channel, ChannelKind, TagRule

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
    h.queue.enqueue_followups(result.followups)
    return {"done": result.done, "ignored": result.ignored, "failed": result.failed}


def sweep_inbox() -> list[int]:
    """Re-queue drains for events left behind (Redis was down, a worker died, retries due)."""
    h = harpoon()
    with h.db.session() as session:
        due = workspaces_due(session, h.settings.sweep_grace_seconds)
        followups = followups_due(session, h.settings.sweep_grace_seconds)
        settled = contacts.settle_merged(session)
        session.commit()
    if settled:
        log.info("sweeper moved %s late records of merged contacts", settled)
    for workspace_id in due:
        # A fixed job id: while one sweeper drain waits in the queue, no second one joins it.
        h.queue.enqueue_drain(workspace_id, job_id=f"drain-inbox-{workspace_id}-sweep")
    if due:
        log.info("sweeper re-queued drains for workspaces %s", due)
    if followups:
        log.info("sweeper re-queued %s", sorted(followups))
        h.queue.enqueue_followups(followups)
    return due


def _channel(session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise LookupError(f"no channel {channel_id}")
    return channel


def _client(channel: Channel):
    clients = harpoon().wechat
    if channel.kind == ChannelKind.OA:
        return clients.oa(channel.app_id, channel.secret)
    return clients.wecom(channel.app_id, channel.secret)


def enrich_followers(channel_id: int) -> dict:
    """user/info (100 per call) for an OA's followers not yet looked up."""
    return _enrich(channel_id, enrichment.enrich_followers)


def enrich_external_contacts(channel_id: int) -> dict:
    """externalcontact/get for a corp's customers added or edited since the last run."""
    return _enrich(channel_id, enrichment.enrich_external_contacts)


def _enrich(channel_id: int, enrich) -> dict:
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        result = enrich(session, channel, _client(channel), followups)
    h.queue.enqueue_followups(followups.jobs)
    log.info("channel %s: %s looked up, %s merged", channel_id, result.looked_up, result.merged)
    return {"looked_up": result.looked_up, "merged": result.merged}


def sync_tags(channel_id: int) -> dict:
    """Mirror synced tags to the channel: OA user tags or WeCom corp tags."""
    with harpoon().db.session() as session:
        channel = _channel(session, channel_id)
        result = tag_sync.sync_channel(session, channel, _client(channel))
    if result.done or result.failed or result.over_limit:
        log.info(
            "channel %s tag sync: %s done, %s failed, %s over the per-follower limit",
            channel_id,
            result.done,
            result.failed,
            result.over_limit,
        )
    return {"done": result.done, "failed": result.failed, "over_limit": result.over_limit}


def pull_corp_tags(channel_id: int) -> int:
    """Corp tags changed in the WeCom console: bring new ones into Harpoon."""
    with harpoon().db.session() as session:
        channel = _channel(session, channel_id)
        return tag_sync.pull_corp_tags(session, channel, _client(channel))


def tag_inactive_contacts() -> int:
    """Daily: inactivity rules (e.g. no interaction in 60 days -> dormant)."""
    h = harpoon()
    followups = Followups()
    tagged = 0
    with h.db.session() as session:
        for workspace_id in session.scalars(select(TagRule.workspace_id).distinct()):
            tagged += tag_inactive(session, workspace_id, followups)
        session.commit()
    h.queue.enqueue_followups(followups.jobs)
    return tagged


def import_accounts(import_id: int) -> dict:
    """Import an uploaded target-account list (models.AccountImport)."""
    h = harpoon()
    with h.db.session() as session:
        result = run_import(session, import_id)
    log.info(
        "account import %s %s: %s created, %s updated, %s errors",
        import_id,
        result.status,
        result.created,
        result.updated,
        result.error_count,
    )
    h.queue.enqueue_followups(result.followup_jobs)
    return {"created": result.created, "updated": result.updated, "errors": result.error_count}


def retag_titles(workspace_id: int) -> int:
    """The title dictionary changed: re-read the workspace's recorded titles."""
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        retagged = contacts.retag_titles(session, workspace_id, followups)
    h.queue.enqueue_followups(followups.jobs)
    log.info("workspace %s: %s contacts re-tagged from their titles", workspace_id, retagged)
    return retagged
