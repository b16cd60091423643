"""Job names, and the follow-up jobs a unit of work asks for once it has committed.

Domain code names the work it needs done with a `Job`; `app/jobs.py` maps each
name to the function that does it, and the queue enqueues that function. So no
layer below `app` imports a job or spells an import path.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class Job(StrEnum):
    # the inbox
    DRAIN_INBOX = "drain_inbox"
    SWEEP_INBOX = "sweep_inbox"
    # per channel, asked for as follow-ups (a burst of asks makes one run)
    ENRICH_FOLLOWERS = "enrich_followers"
    ENRICH_EXTERNAL_CONTACTS = "enrich_external_contacts"
    SYNC_TAGS = "sync_tags"
    PULL_CORP_TAGS = "pull_corp_tags"
    SEND_WELCOMES = "send_welcomes"
    SEND_NOTIFICATIONS = "send_notifications"
    SYNC_CUSTOMER_GROUPS = "sync_customer_groups"
    REFRESH_CUSTOMER_GROUPS = "refresh_customer_groups"
    # per workspace, asked for as follow-ups
    SEND_FORM_FOLLOWUPS = "send_form_followups"
    RUN_JOURNEYS = "run_journeys"
    DELIVER_OUTBOX = "deliver_outbox"
    SEND_EMAILS = "send_emails"
    REFRESH_WORKSPACE_SCORES = "refresh_workspace_scores"
    CHECK_ROUTING_SLA = "check_routing_sla"
    RESCORE_WORKSPACE = "rescore_workspace"
    ATTRIBUTE_OPPORTUNITIES = "attribute_opportunities"
    # one row each
    SEND_GROUP_SEND = "send_group_send"
    FETCH_GROUP_SEND_RESULTS = "fetch_group_send_results"
    SEND_PUSH = "send_push"
    UPLOAD_MATERIAL = "upload_material"
    IMPORT_ACCOUNTS = "import_accounts"
    IMPORT_OPPORTUNITIES = "import_opportunities"
    RETAG_TITLES = "retag_titles"
    SYNC_STAFF = "sync_staff"
    SEND_TRANSFER = "send_transfer"
    CHECK_TRANSFER = "check_transfer"
    ROTATE_CONTACT_WAY = "rotate_contact_way"
    # periodic
    TAG_INACTIVE_CONTACTS = "tag_inactive_contacts"
    REFRESH_SCORES = "refresh_scores"
    REFRESH_GROUP_SEND_RESULTS = "refresh_group_send_results"
    SEND_DUE_PUSHES = "send_due_pushes"
    RUN_DUE_JOURNEYS = "run_due_journeys"
    REFRESH_TRANSFERS = "refresh_transfers"
    CHECK_ROUTING_SLAS = "check_routing_slas"
    ATTRIBUTE_CHANGED_OPPORTUNITIES = "attribute_changed_opportunities"
    REATTRIBUTE_ALL = "reattribute_all"
    ROTATE_CONTACT_WAYS = "rotate_contact_ways"
    SYNC_ALL_CUSTOMER_GROUPS = "sync_all_customer_groups"


class Urgency(StrEnum):
    """The queue a job waits in; workers serve high, then default, then low."""

    HIGH = "high"  # a platform deadline: welcomes (20 s), a form's download, the drain
    DEFAULT = "default"  # people wait for it: journey steps, notifications, pushes
    LOW = "low"  # bulk work that may wait: enrichment, tag sync, imports, rescoring


_HIGH = Urgency.HIGH
_DEFAULT = Urgency.DEFAULT
_LOW = Urgency.LOW
# Jobs queued at the front of their queue: a welcome (20 seconds from the add) goes before
# the drains waiting on the high queue, and a drain that asked for one steps aside.
AT_FRONT = frozenset({Job.SEND_WELCOMES})
QUEUE_OF: dict[Job, Urgency] = {
    # The drain makes the welcomes and passive-window replies, so it runs with them; the
    # sweeper is recovery for drains and cheap, so it never waits behind a busy default.
    Job.DRAIN_INBOX: _HIGH,
    Job.SWEEP_INBOX: _HIGH,
    Job.SEND_WELCOMES: _HIGH,
    Job.SEND_FORM_FOLLOWUPS: _HIGH,
    Job.RUN_JOURNEYS: _DEFAULT,
    Job.RUN_DUE_JOURNEYS: _DEFAULT,
    Job.DELIVER_OUTBOX: _DEFAULT,
    Job.SEND_EMAILS: _DEFAULT,
    Job.SEND_NOTIFICATIONS: _DEFAULT,
    Job.SEND_PUSH: _DEFAULT,
    Job.UPLOAD_MATERIAL: _DEFAULT,
    Job.SEND_DUE_PUSHES: _DEFAULT,
    Job.SEND_GROUP_SEND: _DEFAULT,
    Job.FETCH_GROUP_SEND_RESULTS: _DEFAULT,
    Job.REFRESH_GROUP_SEND_RESULTS: _DEFAULT,
    Job.SEND_TRANSFER: _DEFAULT,
    Job.CHECK_TRANSFER: _DEFAULT,
    # A rotating 联系我 code: the next scan must land on whoever's turn it is.
    Job.ROTATE_CONTACT_WAY: _DEFAULT,
    Job.ROTATE_CONTACT_WAYS: _DEFAULT,
    Job.REFRESH_TRANSFERS: _DEFAULT,
    # A routed account's first-touch deadline: a salesperson or their manager waits on it.
    Job.CHECK_ROUTING_SLA: _DEFAULT,
    Job.CHECK_ROUTING_SLAS: _DEFAULT,
    Job.ENRICH_FOLLOWERS: _LOW,
    # A new WeCom customer's journey steps wait (bounded) for their unionid: not bulk work.
    Job.ENRICH_EXTERNAL_CONTACTS: _DEFAULT,
    Job.SYNC_TAGS: _LOW,
    # A group's joins and leaves score and drive journeys: refreshed as people wait;
    # the full sync is bulk.
    Job.REFRESH_CUSTOMER_GROUPS: _DEFAULT,
    Job.SYNC_CUSTOMER_GROUPS: _LOW,
    Job.SYNC_ALL_CUSTOMER_GROUPS: _LOW,
    Job.PULL_CORP_TAGS: _LOW,
    Job.IMPORT_ACCOUNTS: _LOW,
    Job.IMPORT_OPPORTUNITIES: _LOW,
    Job.RETAG_TITLES: _LOW,
    Job.REFRESH_WORKSPACE_SCORES: _LOW,
    Job.RESCORE_WORKSPACE: _LOW,
    Job.REFRESH_SCORES: _LOW,
    Job.SYNC_STAFF: _LOW,
    Job.TAG_INACTIVE_CONTACTS: _LOW,
    # Attribution is reporting: it may wait behind everything people wait for.
    Job.ATTRIBUTE_OPPORTUNITIES: _LOW,
    Job.ATTRIBUTE_CHANGED_OPPORTUNITIES: _LOW,
    Job.REATTRIBUTE_ALL: _LOW,
}


@dataclass
class Followups:
    """Jobs a batch of work asks for once it has committed: {(job, channel or workspace id)}."""

    jobs: set[tuple[Job, int]] = field(default_factory=set)

    def add(self, job: Job, key: int) -> None:
        self.jobs.add((job, key))
