"""What the segment editor shows: each input's options, labelled (a value the form holds
that is no longer offered shows too), and the labels of the preview's sample."""

from flask_babel import gettext as _

from app.admin.channels import KIND_LABELS
from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS, stage_names
from app.admin.segments.forms import kinds
from crm.titles import SENIORITIES
from outreach.segments import LIST_FILTERS
from scoring.forms import TIERS
from scoring.model import Model

# Every input whose mistakes the live preview shows beside it.
ERROR_INPUTS = (
    *LIST_FILTERS,
    "lead_score.min",
    "lead_score.max",
    "account_score.min",
    "account_score.max",
    "mqa",
    "target_accounts",
    "min_employees",
    "min_acv",
    "active_within_days",
    "inactive_for_days",
    "interactions.kinds",
    "interactions.min",
    "interactions.within_days",
)


def options(
    model: Model,
    values: dict,
    tag_filter: list,
    channels: list,
    regions: list[str],
    industries: list[str],
) -> dict:
    """What each input offers, labelled; a value the form holds that is no longer offered
    (a deleted tag, a renamed stage) shows too, so its mistake has something to point at.
    `tag_filter`: the tags by group (tag_filter_options); `channels`: (id, name, kind)."""
    stages = list(stage_names(model.stages).items())
    tag_groups = [
        (str(group), [(str(tag_id), label) for tag_id, label in tags]) for group, tags in tag_filter
    ]
    offered_tags = {value for _group, tags in tag_groups for value, _label in tags}
    missing_tags = {
        value
        for name in ("tags_all", "tags_any", "tags_none")
        for value in values.get(name, [])
        if value not in offered_tags
    }
    if missing_tags:
        tag_groups.append(
            (
                _("Not a tag any more"),
                [(value, _("Tag #%(id)s", id=value)) for value in sorted(missing_tags)],
            )
        )
    offered = {
        "roles": [(code, str(label)) for code, label in CONTACT_ROLE_LABELS.items()],
        "seniorities": [(level, str(SENIORITY_LABELS[level])) for level in SENIORITIES],
        "stages": stages,
        "account_stages": stages,
        "tiers": [(str(tier), _("Tier %(tier)s", tier=tier)) for tier in TIERS],
        "regions": [(value, value) for value in regions],
        "industries": [(value, value) for value in industries],
        "channel_ids": [
            (str(channel_id), f"{name} · {KIND_LABELS.get(kind, kind)}")
            for channel_id, name, kind in channels
        ],
        "interactions.kinds": [
            (kind, str(INTERACTION_LABELS[kind]) if kind in INTERACTION_LABELS else kind)
            for kind in kinds()
        ],
    }
    for name, listed in offered.items():
        known = {value for value, _label in listed}
        offered[name] = listed + [
            (value, _("%(value)s (unknown)", value=value))
            for value in values.get(name, [])
            if value not in known
        ]
    return {"tag_groups": tag_groups, "options": offered}


def sample_labels(model: Model) -> dict:
    return {"role_labels": CONTACT_ROLE_LABELS, "stage_labels": stage_names(model.stages)}
