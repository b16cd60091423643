"""Branch conditions as a registry: each condition kind is one function with the same
signature, `(run, enrolment, contact, condition) -> bool`, registered under its kind by
`@register`. A branch takes the first of its conditions that `holds`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from core.references import scoped_get
from journeys.model import EventFilter, event_filter
from models import Account, Contact, ContactTag, Enrolment, Interaction

if TYPE_CHECKING:  # the runner asks the conditions; they only read it
    from journeys.runner import Runner

Condition = Callable[["Runner", Enrolment, Contact | None, dict], bool]

CONDITIONS: dict[str, Condition] = {}


def register(kind: str) -> Callable[[Condition], Condition]:
    """Registers the decorated function as the condition of this kind."""

    def add(condition: Condition) -> Condition:
        CONDITIONS[kind] = condition
        return condition

    return add


def holds(run: "Runner", enrolment: Enrolment, condition: dict) -> bool:
    """Whether the condition holds for the enrolment now; a kind unknown never does."""
    contact = run.contact(enrolment)
    check = CONDITIONS.get(condition["kind"])
    return check is not None and check(run, enrolment, contact, condition)


@register("has_tag")
def has_tag(run: "Runner", enrolment, contact, condition) -> bool:
    members = run.members(enrolment, contact)
    return bool(
        members
        and run.session.scalar(
            select(ContactTag.contact_id)
            .where(
                ContactTag.workspace_id == run.workspace_id,
                ContactTag.contact_id.in_(members),
                ContactTag.tag_id == condition["tag_id"],
            )
            .limit(1)
        )
    )


@register("score_at_least")
def score_at_least(run: "Runner", enrolment, contact, condition) -> bool:
    if condition["of"] == "account":
        account_id = enrolment.account_id or (contact.account_id if contact else None)
        account = scoped_get(run.session, Account, account_id, run.workspace_id)
        return bool(account and (account.score or 0) >= condition["at_least"])
    return bool(contact and (contact.lead_score or 0) >= condition["at_least"])


@register("stage_in")
def stage_in(run: "Runner", enrolment, contact, condition) -> bool:
    subject = (
        contact
        if enrolment.contact_id
        else scoped_get(run.session, Account, enrolment.account_id, run.workspace_id)
    )
    return bool(subject and subject.stage in condition["stages"])


@register("interacted")
def interacted(run: "Runner", enrolment, contact, condition) -> bool:
    event = event_filter(condition["event"])
    if "within_days" in condition:
        since = run.now() - timedelta(days=condition["within_days"])
    elif condition.get("since", "enrolment") == "enrolment":
        since = enrolment.entered_at
    else:
        since = None
    return any(
        event.matches(kind, props) for kind, props in run.interactions(enrolment, event.kind, since)
    )


@register("first_event")
def first_event(run: "Runner", enrolment, contact, condition) -> bool:
    first_a = _first(run, enrolment, event_filter(condition["a"]))
    first_b = _first(run, enrolment, event_filter(condition["b"]))
    return first_a is not None and (first_b is None or first_a <= first_b)


def _first(run: "Runner", enrolment: Enrolment, event: EventFilter) -> datetime | None:
    """When the enrolment's subject first did the event since it entered."""
    query = select(Interaction.occurred_at, Interaction.properties).where(
        Interaction.kind == event.kind, Interaction.occurred_at >= enrolment.entered_at
    )
    if enrolment.contact_id is not None:
        query = query.where(Interaction.contact_id == enrolment.contact_id)
    else:
        query = query.where(Interaction.account_id == enrolment.account_id)
    for occurred_at, properties in run.session.execute(query.order_by(Interaction.occurred_at)):
        if event.matches(event.kind, properties):
            return occurred_at
    return None
