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
    # per workspace, asked for as follow-ups
    SEND_FORM_FOLLOWUPS = "send_form_followups"
    RUN_JOURNEYS = "run_journeys"
    DELIVER_OUTBOX = "deliver_outbox"
    REFRESH_WORKSPACE_SCORES = "refresh_workspace_scores"
    RESCORE_WORKSPACE = "rescore_workspace"
    # one row each
    SEND_GROUP_SEND = "send_group_send"
    FETCH_GROUP_SEND_RESULTS = "fetch_group_send_results"
    SEND_PUSH = "send_push"
    IMPORT_ACCOUNTS = "import_accounts"
    RETAG_TITLES = "retag_titles"
    SYNC_STAFF = "sync_staff"
    # periodic
    TAG_INACTIVE_CONTACTS = "tag_inactive_contacts"
    REFRESH_SCORES = "refresh_scores"
    REFRESH_GROUP_SEND_RESULTS = "refresh_group_send_results"
    SEND_DUE_PUSHES = "send_due_pushes"
    RUN_DUE_JOURNEYS = "run_due_journeys"


# Jobs with a deadline: WeCom's welcome message must go out within 20 s of the add; a
# form's download while the visitor still looks at their phone. Journey steps and their
# deliveries go on the default queue: a busy journey never delays a welcome.
HIGH_PRIORITY = frozenset({Job.SEND_WELCOMES, Job.SEND_FORM_FOLLOWUPS})


@dataclass
class Followups:
    """Jobs a batch of work asks for once it has committed: {(job, channel or workspace id)}."""

    jobs: set[tuple[Job, int]] = field(default_factory=set)

    def add(self, job: Job, key: int) -> None:
        self.jobs.add((job, key))
