"""Tag rules: which rule fires on which event, and what it does to the contact; the
workspace's rules as the admin lists and orders them.

The matching is pure (the callback request uses it to pick a passive reply);
applying the tags happens in the drain, through crm.tags.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.jobs import Followups
from crm.tags import TagBook, apply_tags, remove_tags
from models import Contact, Interaction, RuleKind, Tag, TagGroup, TagRule, TagSource, utcnow


@dataclass(frozen=True)
class Rule:
    id: int
    kind: str
    tag_id: int | None
    config: dict
    reply: str | None
    matches: Callable[[str], re.Match | bool | None]


def _text_matcher(config: dict) -> Callable[[str], re.Match | bool | None]:
    pattern = config.get("pattern") or config.get("value") or config.get("key") or ""
    match config.get("match"):
        case "regex":
            compiled = re.compile(pattern)
            return compiled.search
        case "exact" | "equals":
            return lambda text: text.strip().casefold() == pattern.casefold()
        case "prefix":
            return lambda text: text.casefold().startswith(pattern.casefold())
        case _:  # contains
            return lambda text: pattern.casefold() in text.casefold()


def compile_rule(row: TagRule) -> Rule:
    config = dict(row.config or {})
    if row.kind == RuleKind.PROFILE:
        matcher = re.compile(config["pattern"]).search
    elif row.kind == RuleKind.MENU:
        key = config["key"]
        matcher = lambda text: text == key  # noqa: E731
    else:
        matcher = _text_matcher(config)
    return Rule(row.id, row.kind, row.tag_id, config, row.reply, matcher)


class RuleBook:
    """A workspace's enabled rules, compiled once per batch (or per cache period)."""

    def __init__(self, rules: Iterable[Rule]):
        self.by_kind: dict[str, list[Rule]] = {}
        for rule in rules:
            self.by_kind.setdefault(rule.kind, []).append(rule)

    @classmethod
    def load(cls, session: Session, workspace_id: int) -> "RuleBook":
        rows = session.scalars(
            select(TagRule)
            .where(TagRule.workspace_id == workspace_id, TagRule.enabled.is_(True))
            .order_by(TagRule.position, TagRule.id)
        )
        return cls(compile_rule(row) for row in rows)

    def matching(self, kind: str, text: str | None) -> list[Rule]:
        if not text:
            return []
        return [rule for rule in self.by_kind.get(kind, ()) if rule.matches(text)]

    def reply_to(self, event_kind: str, text: str | None) -> str | None:
        """The passive reply for a message or a menu click: the first matching rule's."""
        kinds = {
            "wechat.message": (RuleKind.KEYWORD, RuleKind.PROFILE),
            "wechat.menu_click": (RuleKind.MENU,),
        }.get(event_kind, ())
        for kind in kinds:
            for rule in self.matching(kind, text):
                if rule.reply:
                    return rule.reply
        return None


def rules_with_tags(session: Session, workspace_id: int) -> list[tuple[TagRule, Tag | None]]:
    """Every rule of the workspace, enabled or not, in the order they run, with its tag."""
    return list(
        session.execute(
            select(TagRule, Tag)
            .outerjoin(Tag, Tag.id == TagRule.tag_id)
            .where(TagRule.workspace_id == workspace_id)
            .order_by(TagRule.position, TagRule.id)
        )
    )


def next_rule_position(session: Session, workspace_id: int, kind: str) -> int:
    """The position after the last of the kind's rules: a new rule runs after them."""
    last = session.scalar(
        select(func.max(TagRule.position)).where(
            TagRule.workspace_id == workspace_id, TagRule.kind == kind
        )
    )
    return 0 if last is None else last + 1


def apply_matching(
    session: Session,
    book: TagBook,
    rules: list[Rule],
    contact_id: int,
    followups: Followups | None,
) -> None:
    for rule in rules:
        tag = book.by_id(rule.tag_id) if rule.tag_id else None
        if tag is not None:
            apply_tags(
                session,
                book,
                [contact_id],
                [tag],
                source=TagSource.RULE,
                rule_id=rule.id,
                followups=followups,
            )


def source_tags(
    session: Session,
    book: TagBook,
    rules: RuleBook,
    contact_id: int,
    value: str | None,
    followups: Followups | None,
) -> None:
    """A QR scene or 联系我 state: the rules' tags, else a source tag named after it."""
    if not value:
        return
    matched = rules.matching(RuleKind.SOURCE, value)
    if matched:
        apply_matching(session, book, matched, contact_id, followups)
        return
    tag = book.get(session, TagGroup.SOURCE, value)
    apply_tags(session, book, [contact_id], [tag], source=TagSource.RULE, followups=followups)


def evaluate_behavior(
    session: Session,
    book: TagBook,
    rules: RuleBook,
    touched: dict[int, set[str]],
    followups: Followups | None,
    now: datetime | None = None,
) -> None:
    """After a batch: behavior rules for the contacts it touched, one query per rule; and
    inactivity tags come off whoever acted."""
    if not touched:
        return
    now = now or utcnow()
    for rule in rules.by_kind.get(RuleKind.BEHAVIOR, ()):
        kinds = set(rule.config.get("kinds") or ())
        candidates = [c for c, seen in touched.items() if seen & kinds]
        tag = book.by_id(rule.tag_id) if rule.tag_id else None
        if not candidates or tag is None:
            continue
        qualified = session.scalars(
            select(Interaction.contact_id)
            .where(
                Interaction.contact_id.in_(candidates),
                Interaction.kind.in_(kinds),
                Interaction.occurred_at >= now - timedelta(days=rule.config["days"]),
                *_property_filter(rule.config),
            )
            .group_by(Interaction.contact_id)
            .having(func.count() >= rule.config["min_count"])
        ).all()
        apply_tags(
            session,
            book,
            qualified,
            [tag],
            source=TagSource.RULE,
            rule_id=rule.id,
            followups=followups,
        )
    inactive_tags = [
        tag
        for rule in rules.by_kind.get(RuleKind.INACTIVITY, ())
        if rule.tag_id and (tag := book.by_id(rule.tag_id)) is not None
    ]
    remove_tags(session, book, touched, inactive_tags, followups=followups)


def _property_filter(config: dict) -> list:
    name, value = config.get("property"), config.get("value")
    if not name or value is None:
        return []
    field = Interaction.properties[name].as_string()
    if config.get("match") == "contains":
        return [field.contains(value, autoescape=True)]
    return [field == value]


def tag_inactive(
    session: Session,
    workspace_id: int,
    followups: Followups | None = None,
    now: datetime | None = None,
) -> int:
    """Daily: tag contacts with no interaction for a rule's number of days."""
    now = now or utcnow()
    book = TagBook(session, workspace_id)
    rules = RuleBook.load(session, workspace_id)
    tagged = 0
    for rule in rules.by_kind.get(RuleKind.INACTIVITY, ()):
        tag = book.by_id(rule.tag_id) if rule.tag_id else None
        if tag is None:
            continue
        dormant = session.scalars(
            select(Contact.id).where(
                and_(
                    Contact.workspace_id == workspace_id,
                    Contact.merged_into_id.is_(None),
                    Contact.last_seen_at < now - timedelta(days=rule.config["days"]),
                )
            )
        ).all()
        tagged += apply_tags(
            session,
            book,
            dormant,
            [tag],
            source=TagSource.RULE,
            rule_id=rule.id,
            followups=followups,
        )
    return tagged
