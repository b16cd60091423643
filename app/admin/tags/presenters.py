"""What the tags page shows: each tab's context (the tags by group with their holders and
rules, the rules by kind with a line saying what each matches, the title dictionary with
what it makes of a title, each channel's sync), built from crm's reads."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from app.admin.contacts import INTERACTION_LABELS
from app.admin.labels import (
    CODE_GROUPS,
    CONTACT_ROLE_LABELS,
    SENIORITY_LABELS,
    TAG_GROUP_LABELS,
    tag_label,
)
from app.admin.tags.forms import (
    MATCH_LABELS,
    RULE_KIND_LABELS,
    SYNC_CHANNEL_KINDS,
    SynonymForm,
    TagForm,
)
from crm import tag_stats
from crm.channels import workspace_channels
from crm.contacts import title_dictionary
from crm.rules import rules_with_tags
from crm.tags import workspace_tags
from crm.title_synonyms import workspace_synonyms
from crm.titles import ROLE_RULES, SENIORITY_RULES, normalize_title
from models import Channel, RuleKind, SyncStatus, Tag, TagGroup, TagRemote, TagRule

TABS = {
    "tags": _l("Tags"),
    "rules": _l("Rules"),
    "dictionary": _l("Title dictionary"),
    "sync": _l("Sync"),
}
SYNC_STATUS_LABELS = {
    SyncStatus.PENDING: _l("Pending"),
    SyncStatus.DONE: _l("Done"),
    SyncStatus.FAILED: _l("Failed"),
    SyncStatus.OVER_LIMIT: _l("Over the limit"),
}
SYNC_BADGES = {
    SyncStatus.PENDING: "warn",
    SyncStatus.DONE: "ok",
    SyncStatus.FAILED: "error",
    SyncStatus.OVER_LIMIT: "error",
    "ok": "ok",
    "failed": "error",
    "limit": "error",
}
REMOTE_STATUS_LABELS = {"ok": _l("OK"), "failed": _l("Failed"), "limit": _l("Limit reached")}
# Titles that show, on the dictionary tab, what the shipped rules make of real wording.
SAMPLE_TITLES = (
    "首席信息官",
    "信息中心主任",
    "IT经理",
    "集团CIO",
    "技术副总裁",
    "采购部经理",
    "财务总监",
    "高级Java开发工程师",
    "VP of Marketing",
    "Head of IT Infrastructure",
)
PROBLEM_ROWS = 50


def tags_tab(session: Session, ws: int) -> dict:
    """The tags by group, how many contacts hold and rules apply each, the new-tag form."""
    by_group: dict[str, list[Tag]] = {group: [] for group in TagGroup}
    for tag in workspace_tags(session, ws):
        by_group.setdefault(tag.group, []).append(tag)
    return {
        "by_group": by_group,
        "contact_counts": tag_stats.holder_counts(session, ws),
        "rule_counts": tag_stats.rule_counts(session, ws),
        "group_labels": TAG_GROUP_LABELS,
        "code_groups": CODE_GROUPS,
        "tag_label": tag_label,
        "form": TagForm(formdata=None),
        "edit_errors": {},
    }


def rules_tab(session: Session, ws: int) -> dict:
    """The rules by kind, in the order they run, each with its tag and what it matches."""
    by_kind: dict[str, list] = {kind: [] for kind in RuleKind}
    for rule, tag in rules_with_tags(session, ws):
        by_kind.setdefault(rule.kind, []).append((rule, tag, rule_summary(rule)))
    return {
        "by_kind": by_kind,
        "kind_labels": RULE_KIND_LABELS,
        "group_labels": TAG_GROUP_LABELS,
        "tag_label": tag_label,
    }


def dictionary_tab(session: Session, ws: int, title: str) -> dict:
    """The synonyms, the new-synonym form, and what the dictionaries make of `title` and of
    a few sample titles."""
    return {
        "synonyms": workspace_synonyms(session, ws),
        "form": SynonymForm(formdata=None),
        "role_labels": CONTACT_ROLE_LABELS,
        "seniority_labels": SENIORITY_LABELS,
        "title": title,
        "result": tried_title(session, ws, title) if title else None,
        "role_rule_count": len(ROLE_RULES),
        "seniority_rule_count": len(SENIORITY_RULES),
        "samples": [(sample, normalize_title(sample)) for sample in SAMPLE_TITLES],
    }


def tried_title(session: Session, ws: int, title: str) -> dict:
    """What the workspace's dictionary and the shipped one make of a title."""
    return {
        "title": title,
        "yours": title_dictionary(session, ws).normalize(title),
        "shipped": normalize_title(title),
    }


def sync_tab(session: Session, ws: int) -> dict:
    """Each channel with its items by status and the tags it mirrors; the newest problems."""
    counts = tag_stats.sync_counts(session, ws)
    per_channel = channel_rows(
        workspace_channels(session, ws),
        counts,
        tag_stats.synced_tags(session, ws),
        tag_stats.tag_remotes(session, ws),
    )
    return {
        "per_channel": per_channel,
        "problems": tag_stats.sync_problems(session, ws, PROBLEM_ROWS),
        "failed": sum(c.get(SyncStatus.FAILED, 0) for c in counts.values()),
        "sync_statuses": list(SyncStatus),
        "sync_status_labels": SYNC_STATUS_LABELS,
        "remote_status_labels": REMOTE_STATUS_LABELS,
        "sync_badges": SYNC_BADGES,
        "group_labels": TAG_GROUP_LABELS,
        "tag_label": tag_label,
    }


def channel_rows(
    channels: list[Channel],
    counts: dict[int, dict[str, int]],
    synced: list[Tag],
    remotes: dict[tuple[int, int], TagRemote],
) -> list[tuple[Channel, dict[str, int], list[tuple[Tag, TagRemote | None]]]]:
    """Per channel: its items by status, and each tag it mirrors with its remote twin."""
    return [
        (
            channel,
            counts.get(channel.id, {}),
            [
                (tag, remotes.get((channel.id, tag.id)))
                for tag in synced
                if any(
                    getattr(tag, flag)
                    for flag, kind in SYNC_CHANNEL_KINDS.items()
                    if kind == channel.kind
                )
            ],
        )
        for channel in channels
    ]


def rule_summary(rule: TagRule) -> str:
    """The rule's condition in a line; a stored config of another shape still reads."""
    config = rule.config or {}
    match = config.get("match", "")
    if rule.kind == RuleKind.KEYWORD:
        pattern = config.get("pattern", "")
        if match == "regex":
            return _("Message matches /%(pattern)s/", pattern=pattern)
        if match == "exact":
            return _("Message is “%(pattern)s”", pattern=pattern)
        return _("Message contains “%(pattern)s”", pattern=pattern)
    if rule.kind == RuleKind.MENU:
        return _("Menu key %(key)s", key=config.get("key", ""))
    if rule.kind == RuleKind.PROFILE:
        return _("Message matches /%(pattern)s/", pattern=config.get("pattern", ""))
    if rule.kind == RuleKind.SOURCE:
        if match == "prefix":
            return _("Scene or state starts with “%(value)s”", value=config.get("value", ""))
        return _("Scene or state is “%(value)s”", value=config.get("value", ""))
    if rule.kind == RuleKind.BEHAVIOR:
        summary = _(
            "At least %(count)s× %(kinds)s within %(days)s days",
            count=config.get("min_count", ""),
            kinds=", ".join(str(INTERACTION_LABELS.get(k, k)) for k in config.get("kinds", [])),
            days=config.get("days", ""),
        )
        if config.get("property"):
            summary += " " + _(
                "where %(property)s %(match)s “%(value)s”",
                property=config["property"],
                match=str(MATCH_LABELS.get(match, match)).lower(),
                value=config.get("value", ""),
            )
        return summary
    if rule.kind == RuleKind.INACTIVITY:
        return _("No interaction for %(days)s days", days=config.get("days", ""))
    return ""
