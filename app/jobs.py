"""RQ job entry points: `verb_noun(ids...)`, primitive arguments, run in the app context."""

import functools
import logging

from sqlalchemy import select

from app.extensions import harpoon
from core.outbound import Outbound
from handlers import contacts, enrichment, group_send, notify, staff, tag_sync, welcome
from handlers.enrichment import followups_due
from handlers.imports import run_import
from handlers.inbox import RetryPolicy, drain, exclusive_drain, workspaces_due
from handlers.rules import tag_inactive
from handlers.tags import Followups
from journeys import engine as journeys
from models import Channel, ChannelKind, GroupSend, Push, TagRule, Workspace
from outreach import forms, pushes
from outreach.mail import Mailer
from scoring.engine import Scorer

log = logging.getLogger(__name__)


def drain_inbox(workspace_id: int) -> dict:
    """Process every due inbound event of one workspace.

    One drain per workspace at a time: a drain that finds another running leaves the
    request flag set, and the running one, seeing it, drains again before it stops.
    """
    h = harpoon()
    s = h.settings
    policy = RetryPolicy(
        s.inbox_max_attempts, s.inbox_retry_base_seconds, s.inbox_retry_max_seconds
    )
    total = {"done": 0, "ignored": 0, "failed": 0}
    more = False
    with exclusive_drain(h.db.engine, workspace_id) as mine:
        if not mine:
            return {**total, "skipped": True}
        while True:
            # Clear the request flag before reading: a callback after this point asks again.
            h.queue.drain_started(workspace_id)
            with h.db.session() as session:
                result = drain(
                    session,
                    workspace_id,
                    batch_size=s.inbox_batch_size,
                    policy=policy,
                    after_commit=_after_batch_commit,
                )
            _log_drain(workspace_id, result)
            for key in total:
                total[key] += getattr(result, key)
            more = result.more
            if more or not h.queue.drain_requested(workspace_id):
                break
    # Asked for between the last check and the lock's release, or out of time: go on.
    if more or h.queue.drain_requested(workspace_id):
        h.queue.enqueue_drain(workspace_id)
    return total


def _after_batch_commit(jobs: set[tuple[str, int]]) -> None:
    """A drained batch's follow-up jobs are queued, but the journey steps it made due run
    right here, between batches: a drain kept busy by steady traffic would hold a queued
    job back for as long as it runs."""
    due = {job for job in jobs if job[0] == journeys.RUN_JOURNEYS}
    harpoon().queue.enqueue_followups(jobs - due)
    for _, workspace_id in due:
        run_journeys.__wrapped__(workspace_id)


def _log_drain(workspace_id: int, result) -> None:
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


def followup(job):
    """A per-channel (or per-workspace) job asked for through JobQueue.enqueue_followups: it
    clears its request flag first, so an ask made while it runs queues the next run."""

    @functools.wraps(job)
    def run(key: int):
        harpoon().queue.followup_started(job.__name__, key)
        return job(key)

    return run


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


@followup
def enrich_followers(channel_id: int) -> dict:
    """user/info (100 per call) for an OA's followers not yet looked up."""
    return _enrich(channel_id, enrichment.enrich_followers)


@followup
def enrich_external_contacts(channel_id: int) -> dict:
    """externalcontact/get for a corp's customers added or edited since the last run."""
    return _enrich(channel_id, enrichment.enrich_external_contacts)


def _enrich(channel_id: int, enrich) -> dict:
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        result = enrich(session, channel, _client(channel), followups)
    if result.more:
        followups.add(enrich.__name__, channel_id)
    h.queue.enqueue_followups(followups.jobs)
    log.info("channel %s: %s looked up, %s merged", channel_id, result.looked_up, result.merged)
    return {"looked_up": result.looked_up, "merged": result.merged}


@followup
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


@followup
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


def refresh_scores() -> dict:
    """Daily: decay every lead score to today, re-judge every account (surges, tiers, MQA,
    stages) and write today's snapshots; owners hear of new MQAs and surges."""
    with harpoon().db.session() as session:
        workspace_ids = list(session.scalars(select(Workspace.id).order_by(Workspace.id)))
    return {
        workspace_id: score_workspace(workspace_id, "refresh_workspace")
        for workspace_id in workspace_ids
    }


@followup
def refresh_workspace_scores(workspace_id: int) -> dict:
    """The model's weights, MQA, tier or stage rules changed: re-judge the accounts."""
    return score_workspace(workspace_id, "refresh_workspace")


@followup
def rescore_workspace(workspace_id: int) -> dict:
    """The model's rules or half-life changed: rebuild the ledger from history."""
    return score_workspace(workspace_id, "rescore_history")


def score_workspace(workspace_id: int, method: str) -> dict:
    """Run one whole-workspace Scorer pass (refresh_workspace, recompute, rescore_history),
    commit it, and tell the owners of what it found (the jobs above and the CLI)."""
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        result = getattr(Scorer.load(session, workspace_id), method)()
        notify.notify_owners(session, result.alerts, followups)
        session.commit()
    h.queue.enqueue_followups(followups.jobs)
    summary = {"entries": result.entries, "accounts": result.accounts, "alerts": len(result.alerts)}
    log.info("workspace %s %s: %s", workspace_id, method, summary)
    return summary


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


@followup
def send_welcomes(channel_id: int) -> dict:
    """The pending welcome messages of a WeCom corp (high-priority queue: 20 s window)."""
    with harpoon().db.session() as session:
        channel = _channel(session, channel_id)
        result = welcome.send_welcomes(session, channel, _client(channel))
    if result.missed or result.refused:
        log.warning(
            "channel %s welcomes: %s sent, %s missed the window, %s refused, %s without text",
            channel_id,
            result.sent,
            result.missed,
            result.refused,
            result.skipped,
        )
    return {"sent": result.sent, "missed": result.missed, "refused": result.refused}


@followup
def send_notifications(channel_id: int) -> dict:
    """Staff notifications as WeCom app messages: one digest per member, within the limit."""
    h = harpoon()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        agent = h.wechat.wecom(channel.app_id, channel.agent_secret)
        result = notify.send_notifications(session, channel, agent)
    if result.deferred or result.failed:
        log.warning(
            "channel %s notifications: %s deferred by the per-member limit, %s refused",
            channel_id,
            result.deferred,
            result.failed,
        )
    return {"messages": result.messages, "notifications": result.notifications}


@followup
def send_form_followups(workspace_id: int) -> dict:
    """The download a form promised: a WeChat message in the window, else an email."""
    h = harpoon()
    settings = h.settings
    platform = forms.FollowUpPlatform(
        oa_client=lambda channel: h.wechat.oa(channel.app_id, channel.secret),
        mailer=Mailer(settings.smtp_url, settings.mail_from) if settings.smtp_url else None,
        public_url=h.public_url,
    )
    with h.db.session() as session:
        result = forms.send_follow_ups(session, workspace_id, platform)
    if result.failed:
        log.warning(
            "workspace %s form follow-ups: %s sent, %s failed",
            workspace_id,
            result.sent,
            result.failed,
        )
    return {"sent": result.sent, "failed": result.failed}


def _group_send(session, group_send_id: int) -> GroupSend:
    row = session.get(GroupSend, group_send_id)
    if row is None:
        raise LookupError(f"no group send {group_send_id}")
    return row


def send_group_send(group_send_id: int) -> str:
    """Hand a salesperson's group send to WeCom, where they confirm it."""
    with harpoon().db.session() as session:
        row = _group_send(session, group_send_id)
        channel = group_send.corp_of(session, row)
        if channel is not None:
            group_send.send_group_send(session, row, _client(channel))
        return row.status


def fetch_group_send_results(group_send_id: int) -> str:
    """Who got a group send: each recipient's status as WeCom reports it now."""
    with harpoon().db.session() as session:
        row = _group_send(session, group_send_id)
        channel = group_send.corp_of(session, row)
        if channel is not None:
            group_send.fetch_group_send_results(session, row, _client(channel))
        return row.status


def refresh_group_send_results() -> int:
    """Periodic: results of the week's group sends, and a new job for a send whose was lost."""
    queue = harpoon().queue
    with harpoon().db.session() as session:
        due = group_send.results_due(session)
        lost = group_send.queued_too_long(session)
    # No job ids: a failed job keeps its id for a day, and both jobs are safe to repeat.
    for group_send_id in due:
        queue.enqueue("app.jobs.fetch_group_send_results", group_send_id)
    for group_send_id in lost:
        queue.enqueue("app.jobs.send_group_send", group_send_id)
    if lost:
        log.warning("group sends %s were still queued: their send jobs are queued again", lost)
    return len(due)


def sync_staff(channel_id: int) -> dict:
    """The corp's members with the customer-contact permission, mapped to admin users."""
    with harpoon().db.session() as session:
        channel = _channel(session, channel_id)
        result = staff.sync_staff(session, channel, _client(channel))
    log.info(
        "channel %s staff sync: %s added, %s updated, %s deactivated, %s mapped by email",
        channel_id,
        result.added,
        result.updated,
        result.deactivated,
        result.mapped,
    )
    return {
        "added": result.added,
        "updated": result.updated,
        "deactivated": result.deactivated,
        "mapped": result.mapped,
    }


def push_limits() -> pushes.PushLimits:
    s = harpoon().settings
    return pushes.PushLimits(window_hours=s.cs_window_hours, window_messages=s.cs_window_messages)


def send_push(push_id: int) -> str:
    """Plan and send a due push, or resume one whose worker died (safe to run twice: the
    push's heartbeat is its lock)."""
    with harpoon().db.session() as session:
        push = session.get(Push, push_id)
        if push is None:
            raise LookupError(f"no push {push_id}")
        channel = _channel(session, push.channel_id)
        threshold = session.get(Workspace, push.workspace_id).push_approval_threshold
        status = pushes.run_push(session, push_id, _client(channel), push_limits(), threshold)
    log.info("push %s: %s", push_id, status)
    return status


def send_due_pushes() -> list[int]:
    """Periodic: scheduled pushes whose time has come, and sending ones gone quiet."""
    with harpoon().db.session() as session:
        due = pushes.due_pushes(session)
    for push_id in due:
        harpoon().queue.enqueue("app.jobs.send_push", push_id, timeout=3600)
    return due


@followup
def run_journeys(workspace_id: int) -> dict:
    """The workspace's due journey steps (high priority: journeys act within seconds)."""
    h = harpoon()
    platform = journeys.Platform(
        oa_client=lambda channel: h.wechat.oa(channel.app_id, channel.secret),
        outbound=Outbound(h.settings.outbound_allow),
    )
    with h.db.session() as session:
        result = journeys.run_due(session, workspace_id, platform)
    h.queue.enqueue_followups(result.followups.jobs)
    if result.enrolments:
        log.info(
            "workspace %s journeys: %s enrolments, %s steps, %s sent, %s skipped, "
            "%s deferred by the daily cap, %s failed",
            workspace_id,
            result.enrolments,
            result.steps,
            result.sent,
            result.skipped,
            result.deferred,
            result.failed,
        )
    return {"enrolments": result.enrolments, "steps": result.steps}


def run_due_journeys() -> list[int]:
    """Periodic: condition triggers (tags, stages, MQA, scores, segments, dates) checked,
    then the workspaces with journey steps due (new entries, waits over, timeouts)."""
    h = harpoon()
    with h.db.session() as session:
        for workspace_id in journeys.live_workspaces(session):
            journeys.scan_triggers(session, workspace_id)
        session.commit()
        due = journeys.due_workspaces(session)
    h.queue.enqueue_followups({(journeys.RUN_JOURNEYS, workspace_id) for workspace_id in due})
    return due
