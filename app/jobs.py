"""RQ job entry points: `verb_noun(ids...)`, primitive arguments, run in the app context."""

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import select

from app.extensions import harpoon
from config import Settings
from core.jobs import Followups, Job
from core.outbound import Outbound
from crm import contacts
from crm.crm_webhook import tell_crm_of_mqa
from crm.imports import run_import
from crm.rules import tag_inactive
from journeys import delivery, runner, triggers
from models import (
    Channel,
    ChannelKind,
    GroupSend,
    Material,
    Push,
    TagRule,
    Transfer,
    Workspace,
)
from outreach import email_pushes, email_sending, forms, materials, pushes
from outreach.mail import Mailer, mailer_for
from pipeline.drain import RetryPolicy, drain_workspace
from pipeline.sweeper import sweep
from revenue import attribution
from revenue.imports import run_opportunity_import
from sales import (
    contact_way_rotation,
    group_send,
    groups,
    notify,
    routing,
    staff,
    transfers,
    welcome,
)
from sales.task_rules import tasks_for_scoring
from scoring.engine import Scorer, refresh_accounts
from sync import enrichment, tag_sync

log = logging.getLogger(__name__)
ROUTING_SLA_CHECK_SECONDS = 300  # how late a breach may be noticed, at most
# How late a changed opportunity that asked for no attribution (one a person forgot to
# announce) is credited, at most.
ATTRIBUTION_CHECK_SECONDS = 300


JOBS: dict[Job, Callable] = {}  # the registry: job name -> the function that does it


def job(name: Job, *, followup: bool = False) -> Callable[[Callable], Callable]:
    """Register a job function under its name. A follow-up job (asked for through
    JobQueue.enqueue_followups) first clears its request flag, so an ask made while it
    runs queues the next run."""

    def register(fn: Callable) -> Callable:
        run = fn
        if followup:

            @functools.wraps(fn)
            def run(key: int):
                harpoon().queue.followup_started(name, key)
                return fn(key)

        if name in JOBS or name != fn.__name__:
            raise ValueError(f"job {name} registered twice or under another name")
        JOBS[name] = run
        return run

    return register


def cron_jobs(settings: Settings) -> list[tuple[Callable, int]]:
    """The periodic jobs, each with its interval in seconds (RQ cron, or the embedded
    worker's timer)."""
    return [
        (sweep_inbox, settings.sweep_interval_seconds),
        (tag_inactive_contacts, 86400),
        (refresh_group_send_results, 600),
        (refresh_transfers, 600),
        (refresh_scores, 86400),
        (send_due_pushes, 60),
        (run_due_journeys, 15),
        (check_routing_slas, ROUTING_SLA_CHECK_SECONDS),
        (attribute_changed_opportunities, ATTRIBUTION_CHECK_SECONDS),
        (reattribute_all, 86400),
        (rotate_contact_ways, 60),
        # Events keep groups current between runs; the daily sync catches what they missed.
        (sync_all_customer_groups, 86400),
    ]


@job(Job.DRAIN_INBOX)
def drain_inbox(workspace_id: int, lane: int | None = None) -> dict:
    """Process the due inbound events of one lane of a workspace, for at most
    drain_max_seconds (pipeline.drain). Without a lane (a job queued by a release before
    lanes, still waiting during a rolling deploy) it asks for every lane's drain."""
    h = harpoon()
    s = h.settings
    if lane is None:
        for each in range(s.inbox_lanes):
            h.queue.request_drain(workspace_id, each)
        return {"lanes": s.inbox_lanes}
    return drain_workspace(
        h.db,
        h.queue,
        workspace_id,
        lane,
        policy=RetryPolicy(
            s.inbox_max_attempts, s.inbox_retry_base_seconds, s.inbox_retry_max_seconds
        ),
        batch_size=s.inbox_batch_size,
        max_seconds=s.drain_max_seconds,
        after_commit=_after_batch_commit,
        enrichment_wait=timedelta(seconds=s.journey_enrichment_wait_seconds),
    )


def _after_batch_commit(jobs: set[tuple[Job, int]]) -> None:
    """A drained batch's follow-up jobs are queued: its welcomes, the outbox its journey
    steps wrote, and a run_journeys for any step it could not walk."""
    harpoon().queue.enqueue_followups(jobs)


@job(Job.SWEEP_INBOX)
def sweep_inbox() -> list[tuple[int, int]]:
    """Re-queue drains and follow-ups for work left behind (Redis was down, a worker died,
    retries due); the (workspace, lane) pairs found due."""
    h = harpoon()
    with h.db.session() as session:
        found = sweep(session, h.settings.sweep_grace_seconds)
    if found.settled:
        log.info("sweeper moved %s late records of merged contacts", found.settled)
    # The request flag (a TTL, no job id) keeps one drain per lane waiting; a killed drain
    # cleared it when it started, and a lost job's expires: neither blocks this.
    asked = [lane for lane in found.lanes if h.queue.request_drain(*lane)]
    if asked:
        log.info("sweeper re-queued drains for (workspace, lane) %s", asked)
    if found.followups:
        log.info("sweeper re-queued %s", sorted(found.followups))
        h.queue.enqueue_followups(found.followups, force=True)
    return found.lanes


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


@job(Job.ENRICH_FOLLOWERS, followup=True)
def enrich_followers(channel_id: int) -> dict:
    """user/info (100 per call) for an OA's followers not yet looked up."""
    return _enrich(channel_id, Job.ENRICH_FOLLOWERS, enrichment.enrich_followers)


@job(Job.ENRICH_EXTERNAL_CONTACTS, followup=True)
def enrich_external_contacts(channel_id: int) -> dict:
    """externalcontact/get for a corp's customers added or edited since the last run."""
    return _enrich(
        channel_id,
        Job.ENRICH_EXTERNAL_CONTACTS,
        functools.partial(
            enrichment.enrich_external_contacts,
            on_customer=notify.tell_staff_a_target_added_them,
        ),
    )


def _enrich(channel_id: int, name: Job, enrich: Callable) -> dict:
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        result = enrich(session, channel, _client(channel), followups)
    if result.more:
        followups.add(name, channel_id)
    h.queue.enqueue_followups(followups.jobs)
    log.info("channel %s: %s looked up, %s merged", channel_id, result.looked_up, result.merged)
    return {"looked_up": result.looked_up, "merged": result.merged}


@job(Job.SYNC_TAGS, followup=True)
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


@job(Job.PULL_CORP_TAGS, followup=True)
def pull_corp_tags(channel_id: int) -> int:
    """Corp tags changed in the WeCom console: bring new ones into Harpoon."""
    with harpoon().db.session() as session:
        channel = _channel(session, channel_id)
        return tag_sync.pull_corp_tags(session, channel, _client(channel))


@job(Job.TAG_INACTIVE_CONTACTS)
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


@job(Job.REFRESH_SCORES)
def refresh_scores() -> dict:
    """Daily: decay every lead score to today, re-judge every account (surges, tiers, MQA,
    stages) and write today's snapshots; owners hear of new MQAs and surges."""
    with harpoon().db.session() as session:
        workspace_ids = list(session.scalars(select(Workspace.id).order_by(Workspace.id)))
    return {
        workspace_id: score_workspace(workspace_id, "refresh_workspace")
        for workspace_id in workspace_ids
    }


@job(Job.REFRESH_WORKSPACE_SCORES, followup=True)
def refresh_workspace_scores(workspace_id: int) -> dict:
    """The model's weights, MQA, tier or stage rules changed: re-judge the accounts."""
    return score_workspace(workspace_id, "refresh_workspace")


@job(Job.RESCORE_WORKSPACE, followup=True)
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
        tell_crm_of_mqa(session, workspace_id, result.alerts, followups)
        routing.route_guarded(session, workspace_id, result.alerts, (), followups)
        notify.notify_owners(session, result.alerts, followups)
        tasks_for_scoring(session, workspace_id, result)
        session.commit()
    h.queue.enqueue_followups(followups.jobs)
    summary = {"entries": result.entries, "accounts": result.accounts, "alerts": len(result.alerts)}
    log.info("workspace %s %s: %s", workspace_id, method, summary)
    return summary


@job(Job.IMPORT_ACCOUNTS)
def import_accounts(import_id: int) -> dict:
    """Import an uploaded target-account list (models.AccountImport)."""
    h = harpoon()
    with h.db.session() as session:
        result = run_import(session, import_id, refresh_accounts=refresh_accounts)
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


@job(Job.IMPORT_OPPORTUNITIES)
def import_opportunities(import_id: int) -> dict:
    """Import an uploaded file of opportunities (models.OpportunityImport)."""
    with harpoon().db.session() as session:
        done = run_opportunity_import(session, import_id)
        counts = {
            "created": done.created_count,
            "updated": done.updated_count,
            "unchanged": done.unchanged_count,
            "rejected": done.rejected_count,
        }
        log.info("opportunity import %s %s: %s", import_id, done.status, counts)
    if done.created_count or done.updated_count:
        harpoon().queue.request_followups({(Job.ATTRIBUTE_OPPORTUNITIES, done.workspace_id)})
    return counts


@job(Job.RETAG_TITLES)
def retag_titles(workspace_id: int) -> int:
    """The title dictionary changed: re-read the workspace's recorded titles."""
    h = harpoon()
    followups = Followups()
    with h.db.session() as session:
        retagged = contacts.retag_titles(session, workspace_id, followups)
    h.queue.enqueue_followups(followups.jobs)
    log.info("workspace %s: %s contacts re-tagged from their titles", workspace_id, retagged)
    return retagged


@job(Job.SEND_WELCOMES, followup=True)
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


@job(Job.SEND_NOTIFICATIONS, followup=True)
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


@job(Job.SEND_FORM_FOLLOWUPS, followup=True)
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


@job(Job.SEND_GROUP_SEND)
def send_group_send(group_send_id: int) -> str:
    """Hand a salesperson's group send to WeCom, where they confirm it."""
    with harpoon().db.session() as session:
        row = _group_send(session, group_send_id)
        channel = group_send.corp_of(session, row)
        if channel is not None and row.status == group_send.GroupSendStatus.QUEUED:
            _send_with_attachments(session, row, channel, _client(channel))
        return row.status


def _send_with_attachments(session, row: GroupSend, channel: Channel, client) -> None:
    """The group send with its library attachments (uploaded to WeCom now when missing or
    older than 2.5 days); a 40007 answer uploads them again and sends once more. An item
    that cannot be had fails the send with the reason; a transient refusal is raised."""
    for force in (False, True):
        try:
            attachments = materials.attachments_for(
                session,
                row.workspace_id,
                channel,
                client,
                list(row.material_ids or []),
                force=force,
            )
        except materials.MaterialError as exc:
            if exc.transient:
                raise
            session.refresh(row)
            row.status, row.error = group_send.GroupSendStatus.FAILED, exc.reason
            session.commit()
            return
        try:
            group_send.send_group_send(
                session, row, client, attachments, retry_expired_media=not force
            )
            return
        except group_send.ExpiredMedia:
            log.info("group send %s: WeCom forgot its media, uploading again", row.id)


@job(Job.FETCH_GROUP_SEND_RESULTS)
def fetch_group_send_results(group_send_id: int) -> str:
    """Who got a group send: each recipient's status as WeCom reports it now."""
    with harpoon().db.session() as session:
        row = _group_send(session, group_send_id)
        channel = group_send.corp_of(session, row)
        if channel is not None:
            group_send.fetch_group_send_results(session, row, _client(channel))
        return row.status


@job(Job.REFRESH_GROUP_SEND_RESULTS)
def refresh_group_send_results() -> int:
    """Periodic: results of the week's group sends, and a new job for a send whose was lost."""
    queue = harpoon().queue
    with harpoon().db.session() as session:
        due = group_send.results_due(session)
        lost = group_send.queued_too_long(session)
    # No job ids: a failed job keeps its id for a day, and both jobs are safe to repeat.
    for group_send_id in due:
        queue.enqueue(Job.FETCH_GROUP_SEND_RESULTS, group_send_id)
    for group_send_id in lost:
        queue.enqueue(Job.SEND_GROUP_SEND, group_send_id)
    if lost:
        log.warning("group sends %s were still queued: their send jobs are queued again", lost)
    return len(due)


def _transfer(session, transfer_id: int) -> tuple[Transfer, Channel]:
    row = session.get(Transfer, transfer_id)
    if row is None:
        raise LookupError(f"no transfer {transfer_id}")
    channel = session.get(Channel, row.channel_id)
    if channel is None or channel.workspace_id != row.workspace_id:
        raise LookupError(f"transfer {transfer_id} names another workspace's corp")
    return row, channel


@job(Job.SEND_TRANSFER)
def send_transfer(transfer_id: int) -> dict:
    """Hand a transfer's queued customers to WeCom, 100 a call (a crashed call looked up
    first, never sent twice)."""
    with harpoon().db.session() as session:
        row, channel = _transfer(session, transfer_id)
        transfers.send_transfer(session, row, _client(channel))
        return dict(transfers.status_counts(session, row.workspace_id, [row.id])[row.id])


@job(Job.CHECK_TRANSFER, followup=True)
def check_transfer(transfer_id: int) -> dict:
    """Each waiting customer's takeover as WeCom reports it; done ones move in Harpoon."""
    with harpoon().db.session() as session:
        row, channel = _transfer(session, transfer_id)
        transfers.check_transfer(session, row, _client(channel))
        return dict(transfers.status_counts(session, row.workspace_id, [row.id])[row.id])


@job(Job.REFRESH_TRANSFERS)
def refresh_transfers() -> int:
    """Periodic: transfers with customers waiting (or a call to look up) are checked, and
    one whose send job was lost is sent again."""
    queue = harpoon().queue
    with harpoon().db.session() as session:
        check, lost = transfers.transfers_due(session)
    # A check is a follow-up (one waits per transfer, whoever asked); no job id for a
    # lost send: it is safe to repeat, and a failed job keeps its id for a day.
    queue.enqueue_followups({(Job.CHECK_TRANSFER, transfer_id) for transfer_id in check})
    for transfer_id in lost:
        queue.enqueue(Job.SEND_TRANSFER, transfer_id)
    if lost:
        log.warning("transfers %s had customers still queued: sent again", lost)
    return len(check)


@job(Job.SYNC_STAFF)
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


@job(Job.SYNC_CUSTOMER_GROUPS, followup=True)
def sync_customer_groups(channel_id: int) -> dict:
    """groupchat/list for a corp's customer groups; each is then read by the refresh."""
    h = harpoon()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        result = groups.sync_groups(session, channel, _client(channel))
    h.queue.enqueue_followups({(Job.REFRESH_CUSTOMER_GROUPS, channel_id)})
    log.info(
        "channel %s groups: %s listed, %s dismissed", channel_id, result.listed, result.dismissed
    )
    return {"listed": result.listed, "dismissed": result.dismissed}


@job(Job.REFRESH_CUSTOMER_GROUPS, followup=True)
def refresh_customer_groups(channel_id: int) -> dict:
    """groupchat/get for a corp's groups an event or the sync marked; the customers who
    joined or left go to the inbox, whose drains are asked for."""
    h = harpoon()
    with h.db.session() as session:
        channel = _channel(session, channel_id)
        result = groups.refresh_groups(session, channel, _client(channel), h.settings.inbox_lanes)
    for workspace_id, lane in result.lanes:
        h.queue.request_drain(workspace_id, lane)
    if result.more:
        h.queue.enqueue_followups({(Job.REFRESH_CUSTOMER_GROUPS, channel_id)})
    log.info(
        "channel %s groups: %s refreshed, %s joins, %s leaves, %s refused",
        channel_id,
        result.refreshed,
        result.joins,
        result.leaves,
        result.failed,
    )
    return {
        "refreshed": result.refreshed,
        "joins": result.joins,
        "leaves": result.leaves,
        "failed": result.failed,
    }


@job(Job.SYNC_ALL_CUSTOMER_GROUPS)
def sync_all_customer_groups() -> list[int]:
    """Daily: every WeCom corp's customer groups synced."""
    with harpoon().db.session() as session:
        channel_ids = list(
            session.scalars(
                select(Channel.id).where(Channel.kind == ChannelKind.WECOM).order_by(Channel.id)
            )
        )
    harpoon().queue.enqueue_followups({(Job.SYNC_CUSTOMER_GROUPS, c) for c in channel_ids})
    return channel_ids


def push_limits() -> pushes.PushLimits:
    s = harpoon().settings
    return pushes.PushLimits(window_hours=s.cs_window_hours, window_messages=s.cs_window_messages)


@job(Job.SEND_PUSH)
def send_push(push_id: int) -> str:
    """Plan and send a due push, or resume one whose worker died (safe to run twice: the
    push's heartbeat is its lock)."""
    with harpoon().db.session() as session:
        push = session.get(Push, push_id)
        if push is None:
            raise LookupError(f"no push {push_id}")
        workspace = session.get(Workspace, push.workspace_id)
        threshold = workspace.push_approval_threshold
        if email_pushes.is_email(push):
            rate = harpoon().settings.email_rate_per_minute
            sender = email_sender(workspace)
            status = email_pushes.run_email_push(session, push_id, sender, threshold, rate)
        else:
            channel = _channel(session, push.channel_id)
            status = pushes.run_push(session, push_id, _client(channel), push_limits(), threshold)
    log.info("push %s: %s", push_id, status)
    return status


@job(Job.UPLOAD_MATERIAL)
def upload_material(material_id: int) -> list[str]:
    """A library item to every channel of its workspace that sends it (a page's "upload
    now"); the refusals, also kept on the material."""
    with harpoon().db.session() as session:
        material = session.get(Material, material_id)
        if material is None:
            raise LookupError(f"no material {material_id}")
        channels = session.scalars(
            select(Channel)
            .where(Channel.workspace_id == material.workspace_id)
            .order_by(Channel.id)
        ).all()
        errors = materials.upload_everywhere(session, material, channels, _client)
    if errors:
        log.warning("material %s: %s", material_id, "; ".join(errors))
    return errors


@job(Job.SEND_DUE_PUSHES)
def send_due_pushes() -> list[int]:
    """Periodic: scheduled pushes whose time has come, and sending ones gone quiet."""
    with harpoon().db.session() as session:
        due = pushes.due_pushes(session)
    for push_id in due:
        harpoon().queue.enqueue(Job.SEND_PUSH, push_id, timeout=3600)
    return due


@job(Job.RUN_JOURNEYS, followup=True)
def run_journeys(workspace_id: int) -> dict:
    """The workspace's due journey steps (database only: what reaches the outside goes to
    the outbox, and a deliver_outbox job is asked for)."""
    return journey_steps(workspace_id)


def journey_steps(workspace_id: int) -> dict:
    """Walk the workspace's due journey steps."""
    h = harpoon()
    wait = timedelta(seconds=h.settings.journey_enrichment_wait_seconds)
    with h.db.session() as session:
        result = runner.run_due(session, workspace_id, enrichment_wait=wait)
    h.queue.enqueue_followups(result.followups.jobs)
    if result.enrolments:
        log.info(
            "workspace %s journeys: %s enrolments, %s steps, %s done, %s queued to send, "
            "%s skipped, %s deferred by the daily cap, %s awaiting enrichment, %s failed",
            workspace_id,
            result.enrolments,
            result.steps,
            result.sent,
            result.queued,
            result.skipped,
            result.deferred,
            result.awaiting_enrichment,
            result.failed,
        )
    return {"enrolments": result.enrolments, "steps": result.steps, "queued": result.queued}


@job(Job.DELIVER_OUTBOX, followup=True)
def deliver_outbox(workspace_id: int) -> dict:
    """Send the workspace's due journey messages and webhooks (journeys.delivery)."""
    h = harpoon()
    platform = delivery.Platform(
        oa_client=lambda channel: h.wechat.oa(channel.app_id, channel.secret),
        outbound=Outbound(h.settings.outbound_allow),
    )
    with h.db.session() as session:
        result = delivery.deliver_due(session, workspace_id, platform)
    if result.more:
        h.queue.enqueue_followups({(Job.DELIVER_OUTBOX, workspace_id)})
    if result.failed or result.retrying or result.interrupted:
        log.warning(
            "workspace %s outbox: %s sent, %s failed, %s to retry, %s deferred, "
            "%s interrupted by a sender that died",
            workspace_id,
            result.sent,
            result.failed,
            result.retrying,
            result.deferred,
            result.interrupted,
        )
    return {"sent": result.sent, "failed": result.failed, "retrying": result.retrying}


def email_sender(workspace: Workspace) -> email_sending.Sender:
    """The workspace's own SMTP server, else the service's; tracking on the public base."""
    settings = harpoon().settings
    return email_sending.Sender(
        mailer=mailer_for(
            workspace, default_url=settings.smtp_url, default_sender=settings.mail_from
        ),
        base_url=settings.public_base_url,
        secret=settings.secret_key,
    )


@job(Job.SEND_EMAILS, followup=True)
def send_emails(workspace_id: int) -> dict:
    """The workspace's due journey emails (outreach.email_sending), after the drain's
    commit: rendered, claimed, sent over one SMTP session a batch, recorded."""
    h = harpoon()
    with h.db.session() as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            raise LookupError(f"no workspace {workspace_id}")
        result, more = email_sending.deliver_due(session, workspace_id, email_sender(workspace))
    if more:
        h.queue.enqueue_followups({(Job.SEND_EMAILS, workspace_id)})
    if result.failed or result.retrying or result.interrupted:
        log.warning(
            "workspace %s emails: %s sent, %s skipped, %s failed, %s to retry, "
            "%s interrupted by a sender that died",
            workspace_id,
            result.sent,
            result.skipped,
            result.failed,
            result.retrying,
            result.interrupted,
        )
    return {"sent": result.sent, "skipped": result.skipped, "failed": result.failed}


@job(Job.RUN_DUE_JOURNEYS)
def run_due_journeys() -> list[int]:
    """Periodic: condition triggers (tags, stages, MQA, scores, segments, dates) checked,
    then the workspaces with journey steps due (new entries, waits over, timeouts)."""
    h = harpoon()
    with h.db.session() as session:
        for workspace_id in triggers.live_workspaces(session):
            triggers.scan_triggers(session, workspace_id)
        session.commit()
        due = runner.due_workspaces(session)
    h.queue.enqueue_followups({(Job.RUN_JOURNEYS, workspace_id) for workspace_id in due})
    return due


@job(Job.CHECK_ROUTING_SLAS)
def check_routing_slas() -> list[int]:
    """Periodic: the workspaces with routed accounts waiting for a first touch, each
    asked for its check."""
    with harpoon().db.session() as session:
        due = routing.workspaces_with_pending(session)
    harpoon().queue.enqueue_followups({(Job.CHECK_ROUTING_SLA, ws) for ws in due})
    return due


@job(Job.CHECK_ROUTING_SLA, followup=True)
def check_routing_sla(workspace_id: int) -> dict:
    """Routed accounts' first-touch SLA: met, escalated or reassigned (sales.routing)."""
    followups = Followups()
    with harpoon().db.session() as session:
        result = routing.check_sla(session, workspace_id, followups)
        session.commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return asdict(result)


@job(Job.ATTRIBUTE_OPPORTUNITIES, followup=True)
def attribute_opportunities(workspace_id: int) -> dict:
    """Credit the workspace's opportunities created or changed since they last were
    (the API, the admin and the import ask for it after a save)."""
    return _attribute_changed(workspace_id)


def _attribute_changed(workspace_id: int) -> dict:
    with harpoon().db.session() as session:
        ids = attribution.changed_opportunity_ids(session, workspace_id)
        result = attribution.attribute_opportunities(session, workspace_id, ids)
    return asdict(result)


@job(Job.ATTRIBUTE_CHANGED_OPPORTUNITIES)
def attribute_changed_opportunities() -> dict:
    """Periodic: every workspace's changed opportunities that nobody asked to credit."""
    with harpoon().db.session() as session:
        workspace_ids = attribution.workspaces_with_changes(session)
    return {workspace_id: _attribute_changed(workspace_id) for workspace_id in workspace_ids}


@job(Job.REATTRIBUTE_ALL)
def reattribute_all() -> dict:
    """Nightly: every opportunity credited again, for what no save announces (late
    interactions, merged contacts, people moving account, a program executed)."""
    with harpoon().db.session() as session:
        workspace_ids = list(session.scalars(select(Workspace.id).order_by(Workspace.id)))
    out = {}
    for workspace_id in workspace_ids:
        with harpoon().db.session() as session:
            out[workspace_id] = asdict(attribution.attribute_opportunities(session, workspace_id))
        log.info("workspace %s attribution recomputed: %s", workspace_id, out[workspace_id])
    return out


@job(Job.ROTATE_CONTACT_WAY, followup=True)
def rotate_contact_way(way_id: int) -> str:
    """Point a rotating 联系我 code at whoever may receive the next add (update_contact_way,
    only when that changed); a refusal is recorded on the code and retried with backoff."""
    with harpoon().db.session() as session:
        return contact_way_rotation.rotate_contact_way(session, way_id, _client)


@job(Job.ROTATE_CONTACT_WAYS)
def rotate_contact_ways() -> list[int]:
    """Every minute: the rotating codes a new day, a schedule or window boundary or a due
    retry changes are re-pointed (a job each, asked for like the drain's)."""
    with harpoon().db.session() as session:
        due = contact_way_rotation.ways_to_rotate(session)
    harpoon().queue.enqueue_followups({(Job.ROTATE_CONTACT_WAY, way_id) for way_id in due})
    return due
