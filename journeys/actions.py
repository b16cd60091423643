"""Journey actions as a registry: each action kind is one function with the same
signature, `(run, enrolment, contact, action) -> (outcome, detail)`, registered under its
kinds by `@register`. The runner calls `perform`. An action whose effect leaves the
database (`external`) calls nothing: it decides what to send and hands it to
`run.send_later` (the outbox), and its step is "queued" until journeys.delivery sends it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from marshmallow import ValidationError
from sqlalchemy import select

from core.jobs import Job
from core.references import scoped_get
from journeys.webhooks import signing_secrets
from models import (
    Account,
    Channel,
    Contact,
    EmailTemplate,
    Enrolment,
    FollowRelation,
    Identity,
    IdentityKind,
    Material,
    MaterialKind,
    TaskSource,
)
from sales.group_send import create_group_send
from sales.notify import notify_owner
from sales.tasks import create_task
from scoring.stages import set_stage
from wechat.clients import WeChatApiError

if TYPE_CHECKING:  # the runner calls the actions; they only read it
    from journeys.runner import Runner

WEBHOOK_NO_SECRET = "webhook not sent: the workspace has no webhook signing secret yet"
WEBHOOK_REFUSED = "webhook not sent: not a public address"
WEBHOOK_UNREACHABLE = "webhook failed: no answer from the address"

Outcome = tuple[str, dict]  # ("done" | "queued" | "failed", what the step log keeps)
Execute = Callable[["Runner", Enrolment, Contact | None, dict], Outcome]


@dataclass(frozen=True)
class Action:
    execute: Execute
    external: bool = False  # its effect is outside the database: sent from the outbox


ACTIONS: dict[str, Action] = {}


def register(*kinds: str, external: bool = False) -> Callable[[Execute], Execute]:
    """Registers the decorated function as the action of these kinds."""

    def add(execute: Execute) -> Execute:
        for kind in kinds:
            ACTIONS[kind] = Action(execute, external)
        return execute

    return add


def is_external(kind: str) -> bool:
    return kind in ACTIONS and ACTIONS[kind].external


def step_key(enrolment: Enrolment) -> str:
    """The acting step's idempotency key: one decision of one visit of one node."""
    return f"journey:{enrolment.id}:{enrolment.version}:{enrolment.node_id}:{enrolment.visit}"


def perform(run: "Runner", enrolment: Enrolment, contact: Contact | None, action: dict) -> Outcome:
    """The action's outcome; a platform's refusal or a rejected request is a failed step."""
    kind = action["kind"]
    try:
        if kind in ACTIONS:
            return ACTIONS[kind].execute(run, enrolment, contact, action)
    except WeChatApiError as exc:
        return "failed", {"error": f"{exc.errcode} {exc.errmsg}"}
    except ValidationError as exc:  # e.g. a group task to someone no longer a customer
        return "failed", {"error": str(exc.messages)[:300]}
    return "failed", {"error": f"unknown action {kind}"}


@register("add_tag", "remove_tag")
def change_tag(run: "Runner", enrolment, contact, action) -> Outcome:
    """Gathered on the run and applied once per batch (`Runner.apply_tag_changes`)."""
    tag = run.book.by_id(action["tag_id"])
    contacts = run.members(enrolment, contact)
    if tag is None or not contacts:
        return "failed", {"error": "no such tag" if tag is None else "no contact"}
    run.tag_changes.setdefault((action["kind"], tag.id), set()).update(contacts)
    return "done", {"tag_id": tag.id}


@register("set_stage")
def move_stage(run: "Runner", enrolment, contact, action) -> Outcome:
    subject = (
        scoped_get(run.session, Account, enrolment.account_id, run.workspace_id)
        if enrolment.contact_id is None
        else contact
    )
    if subject is None:
        return "failed", {"error": "no subject"}
    set_stage(run.session, subject, action["stage"], f"journey {enrolment.journey_id}")
    return "done", {"stage": action["stage"]}


@register("notify_owner", "wecom_message")
def notify_account_owner(run: "Runner", enrolment, contact, action) -> Outcome:
    account_id = enrolment.account_id or (contact.account_id if contact else None)
    account = scoped_get(run.session, Account, account_id, run.workspace_id)
    if account is None or account.owner_id is None:
        return "failed", {"error": "no owner"}
    who = (contact.name or f"#{contact.id}") if contact else account.name
    text = action["text"] if action["kind"] == "notify_owner" else f"请联系 {who}：{action['text']}"
    sent = notify_owner(
        run.session,
        account,
        kind="journey",
        text=f"{who} · {text}",
        dedupe_key=f"journey:{enrolment.id}:{enrolment.visit}",
        followups=run.result.followups,
    )
    return ("done" if sent else "failed"), {"notified": sent}


@register("owner_task")
def owner_task(run: "Runner", enrolment, contact, action) -> Outcome:
    """A task for the owner of the person's account (or the enrolled account), due in the
    action's hours; "{name}" and "{account}" in its title and detail are filled in. Nobody
    owns the account: an unassigned task, for whoever picks it up. Keyed by the step, so a
    rerun of the step creates nothing twice; the owner hears of it in their digest."""
    account_id = enrolment.account_id or (contact.account_id if contact else None)
    account = scoped_get(run.session, Account, account_id, run.workspace_id) if account_id else None
    names = {
        "{name}": (contact.name or f"#{contact.id}") if contact else "",
        "{account}": account.name if account else "",
    }
    title, detail = action["title"], action.get("detail") or None
    for placeholder, value in names.items():
        title = title.replace(placeholder, value)
        detail = detail.replace(placeholder, value) if detail else detail
    now = run.now()
    owner_id = account.owner_id if account else None
    task = create_task(
        run.session,
        workspace_id=run.workspace_id,
        title=title.strip() or action["title"],
        detail=detail,
        due_at=now + timedelta(hours=action["due_hours"]),
        source=TaskSource.JOURNEY,
        account_id=account.id if account else None,
        contact_id=contact.id if contact else None,
        assignee_id=owner_id,
        dedupe_key=step_key(enrolment),
        now=now,
    )
    if task is None:
        return "done", {"task": "created before"}
    if owner_id is None:
        return "done", {"task_id": task.id, "unassigned": True}
    notify_owner(
        run.session,
        account,
        kind="task",
        text=f"新任务：{task.title}",
        summary=f"新任务「{task.title}」",
        dedupe_key=f"task:{task.id}",
        followups=run.result.followups,
    )
    return "done", {"task_id": task.id, "assignee_id": owner_id}


@register("cs_message", "template_message", external=True)
def oa_message(run: "Runner", enrolment, contact, action) -> Outcome:
    """To the person's openid on an OA they follow, through that OA."""
    if contact is None:
        return "failed", {"error": "no contact"}
    identity = run.session.scalar(
        select(Identity)
        .where(
            Identity.workspace_id == run.workspace_id,
            Identity.contact_id == contact.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.isnot(False),
        )
        .order_by(Identity.id)
    )
    channel = (
        scoped_get(run.session, Channel, identity.channel_id, run.workspace_id)
        if identity is not None
        else None
    )
    if channel is None:
        return "failed", {"error": "not a follower"}
    if action["kind"] == "cs_message":
        message = {"msgtype": "text", "text": {"content": action["text"]}}
    else:
        message = {
            "template_id": action["template_id"],
            "url": action.get("url", ""),
            "data": {k: {"value": v} for k, v in action["data"].items()},
        }
    payload = {"channel_id": channel.id, "openid": identity.value, "message": message}
    send = {"kind": action["kind"], "destination": f"oa:{channel.id}", "payload": payload}
    run.send_later(enrolment, contact, send)
    return "queued", {"openid": identity.value}


def _following_openid(run: "Runner", contact: Contact) -> Identity | None:
    return run.session.scalar(
        select(Identity)
        .where(
            Identity.workspace_id == run.workspace_id,
            Identity.contact_id == contact.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.isnot(False),
        )
        .order_by(Identity.id)
    )


@register("send_material", external=True)
def send_material(run: "Runner", enrolment, contact, action) -> Outcome:
    """A library item to the person: a customer-service message on an OA they follow (the
    sender uploads its images first), else their salesperson's 1:1 send in WeCom (a group
    send of that one customer, with the item attached, which the salesperson confirms)."""
    material = scoped_get(run.session, Material, action["material_id"], run.workspace_id)
    if contact is None or material is None or material.archived_at is not None:
        return "failed", {"error": "no contact" if contact is None else "no such library item"}
    identity = _following_openid(run, contact)
    channel = (
        scoped_get(run.session, Channel, identity.channel_id, run.workspace_id)
        if identity is not None
        else None
    )
    if channel is not None and material.kind != MaterialKind.FILE:  # OA messages carry no file
        payload = {"channel_id": channel.id, "openid": identity.value, "material_id": material.id}
        send = {"kind": "send_material", "destination": f"oa:{channel.id}", "payload": payload}
        run.send_later(enrolment, contact, send)
        return "queued", {"openid": identity.value, "material_id": material.id}
    relation = _wecom_relation(run, contact)
    if relation is None:
        return "failed", {"error": "neither a follower nor a WeCom customer"}
    new = create_group_send(
        run.session,
        enrolment.workspace_id,
        relation.channel_id,
        relation.staff_userid,
        material.title or material.name,
        [relation.external_userid],
        None,
        material_ids=[material.id],
    )
    run.result.followups.add(Job.SEND_GROUP_SEND, new.group_send.id)
    return "done", {"group_send_id": new.group_send.id, "material_id": material.id}


def _wecom_relation(run: "Runner", contact: Contact | None) -> FollowRelation | None:
    return run.session.scalar(
        select(FollowRelation)
        .where(
            FollowRelation.workspace_id == run.workspace_id,
            FollowRelation.contact_id == (contact.id if contact else -1),
            FollowRelation.removed_at.is_(None),
        )
        .order_by(FollowRelation.id)
    )


@register("send_email", external=True)
def send_email(run: "Runner", enrolment, contact, action) -> Outcome:
    """An EmailMessage row, planned: the sender (outreach.email_sending) renders and sends
    it after the commit, skipping a suppressed address or a contact without one."""
    if contact is None:
        return "failed", {"error": "no contact"}
    template = scoped_get(run.session, EmailTemplate, action["email_template_id"], run.workspace_id)
    if template is None or template.archived_at is not None:
        return "failed", {"error": "no such email template"}
    send = {"kind": "send_email", "destination": "email", "payload": {"template_id": template.id}}
    run.send_later(enrolment, contact, send)
    return "queued", {"email_template_id": template.id}


@register("wecom_group_task")
def group_task(run: "Runner", enrolment, contact, action) -> Outcome:
    relation = run.session.scalar(
        select(FollowRelation)
        .where(
            FollowRelation.contact_id == (contact.id if contact else -1),
            FollowRelation.removed_at.is_(None),
        )
        .order_by(FollowRelation.id)
    )
    if relation is None:
        return "failed", {"error": "not a WeCom customer"}
    new = create_group_send(
        run.session,
        enrolment.workspace_id,
        relation.channel_id,
        relation.staff_userid,
        action["text"],
        [relation.external_userid],
        None,
    )
    run.result.followups.add(Job.SEND_GROUP_SEND, new.group_send.id)
    return "done", {"group_send_id": new.group_send.id, "staff": relation.staff_userid}


@register("webhook", external=True)
def webhook(run: "Runner", enrolment, contact, action) -> Outcome:
    """POSTed by the sender, signed with the workspace's secrets as they are then; the
    delivery id is the same on every retry, so a receiver drops repeats."""
    if not signing_secrets(run.session, enrolment.workspace_id, run.now()):
        return "failed", {"error": WEBHOOK_NO_SECRET}
    delivery_id = f"{enrolment.id}-{enrolment.visit}"
    body = {
        "delivery_id": delivery_id,  # signed, unlike its header: what receivers dedupe on
        "workspace_id": enrolment.workspace_id,
        "journey_id": enrolment.journey_id,
        "version": enrolment.version,
        "node_id": enrolment.node_id,
        "enrolment_id": enrolment.id,
        "contact_id": contact.id if contact else None,
        "account_id": enrolment.account_id,
    }
    host = urlsplit(action["url"]).netloc.lower() or action["url"]
    send = {
        "kind": "webhook",
        "destination": f"webhook:{host}",
        "payload": {"url": action["url"], "body": body},
    }
    run.send_later(enrolment, contact, send)
    return "queued", {"delivery": delivery_id}
