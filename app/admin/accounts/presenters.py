"""What the account pages show: the list's sort links, an account's buying committee by
role and seniority, its score trend for the chart, and its interactions in words."""

from flask import url_for

from app.admin.accounts.forms import FIRST_DIRECTION, SORTS
from app.admin.contacts.presenters import key_properties
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS
from crm.accounts import BUYING_COMMITTEE
from crm.titles import SENIORITIES
from models import Contact


def sort_links(sort: str, direction: str, args: dict) -> dict[str, tuple[str, str | None]]:
    """Each sortable column's header link (keeping the filters; back to page one) and its
    aria-sort value: a second click on the sorted column reverses it."""
    links = {}
    for key in SORTS:
        if key == sort:
            after = "asc" if direction == "desc" else "desc"
            state = "descending" if direction == "desc" else "ascending"
        else:
            after, state = FIRST_DIRECTION.get(key, "desc"), None
        links[key] = (url_for("admin.accounts", **args, sort=key, dir=after), state)
    return links


def value_options(values: list[str]) -> list[tuple[str, str]]:
    """Values the accounts hold, as (value, label) options."""
    return [(value, value) for value in values]


def interaction_rows(interactions: list) -> list[tuple]:
    """(interaction, contact name, channel name) -> the same and its key properties."""
    return [
        (interaction, contact_name, channel_name, key_properties(interaction.properties))
        for interaction, contact_name, channel_name in interactions
    ]


def trend_points(snapshots: list, names: dict[str, str]) -> list[list]:
    """The account's daily snapshots, for the chart: [day, score, tier, stage name, MQA,
    surging]."""
    return [
        [day.isoformat(), round(score, 1), tier, names.get(stage, stage), mqa, surging]
        for day, score, tier, stage, mqa, surging in snapshots
    ]


def committee(members: list[Contact], seniorities: list[str | None]) -> dict:
    """Who the account's buying committee is known to be, role by role, and how senior."""
    by_role: dict[str, list[Contact]] = {}
    for contact in members:
        by_role.setdefault(contact.role, []).append(contact)
    coverage = [
        (role, CONTACT_ROLE_LABELS[role], sorted(by_role.get(role, []), key=_seniority_rank))
        for role in BUYING_COMMITTEE
    ]
    ranks = [SENIORITIES.index(level) for level in seniorities if level in SENIORITIES]
    return {
        "coverage": coverage,
        "roles_known": len(by_role),
        "highest_seniority": SENIORITY_LABELS[SENIORITIES[min(ranks)]] if ranks else None,
    }


def _seniority_rank(contact: Contact) -> tuple[int, str]:
    rank = SENIORITIES.index(contact.seniority) if contact.seniority in SENIORITIES else 99
    return rank, contact.name or ""
