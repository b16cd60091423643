"""The scoring model as data, and its arithmetic: rules and caps, decay, role-weighted
account scores, and the MQA rule. Pure functions: the ledger, the per-batch SQL and
the admin editor build on them (Step 6).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

SENIORITY_ORDER = ("staff", "manager", "director", "vp", "c_level")


@dataclass(frozen=True)
class ScoreRule:
    """Interaction kind + property filter -> points, with caps."""

    key: str  # stable: the ledger is keyed by (rule key, interaction)
    kind: str
    points: float
    # Property equals value; a value starting with "contains:" matches a substring.
    where: dict[str, str] = field(default_factory=dict)
    per_minute: float = 0.0  # extra points per engagement minute (live, reading time)
    per_day: int | None = None  # scoring hits per contact per calendar day
    per_contact: int | None = None  # scoring hits per contact, ever

    def matches(self, kind: str, properties: dict) -> bool:
        if kind != self.kind:
            return False
        for name, wanted in self.where.items():
            value = str(properties.get(name, ""))
            if wanted.startswith("contains:"):
                if wanted.removeprefix("contains:") not in value:
                    return False
            elif value != wanted:
                return False
        return True

    def points_for(self, minutes: float) -> float:
        return self.points + self.per_minute * max(minutes, 0.0)


@dataclass(frozen=True)
class Touch:
    """One interaction as scoring sees it."""

    id: int
    kind: str
    properties: dict
    occurred_at: datetime
    minutes: float = 0.0


@dataclass(frozen=True)
class Hit:
    rule_key: str
    interaction_id: int
    points: float
    occurred_at: datetime


def score_touches(
    rules: Iterable[ScoreRule],
    touches: Iterable[Touch],
    prior: dict[tuple[str, str], int] | None = None,
) -> list[Hit]:
    """One contact's hits, caps applied in time order. The most specific rule wins per
    interaction (the one with the most filters), so "menu click on PRICING" beats "any
    menu click". `prior` holds the counts already in the ledger: {(rule key, day or
    "ever"): hits}."""
    rules = sorted(rules, key=lambda rule: -len(rule.where))
    counts: dict[tuple[str, str], int] = defaultdict(int, prior or {})
    hits = []
    for touch in sorted(touches, key=lambda t: (t.occurred_at, t.id)):
        rule = next((r for r in rules if r.matches(touch.kind, touch.properties)), None)
        if rule is None:
            continue
        day = touch.occurred_at.date().isoformat()
        if rule.per_day is not None and counts[(rule.key, day)] >= rule.per_day:
            continue
        if rule.per_contact is not None and counts[(rule.key, "ever")] >= rule.per_contact:
            continue
        counts[(rule.key, day)] += 1
        counts[(rule.key, "ever")] += 1
        hits.append(Hit(rule.key, touch.id, rule.points_for(touch.minutes), touch.occurred_at))
    return hits


def decayed(points: float, age_days: float, half_life_days: float | None) -> float:
    """Points lose half their weight every half-life; no half-life, no decay."""
    if not half_life_days or age_days <= 0:
        return points
    return points * 0.5 ** (age_days / half_life_days)


def lead_score(hits: Iterable[Hit], now: datetime, half_life_days: float | None) -> float:
    """The decayed sum of a contact's hits (negative rules included), never below zero."""
    total = sum(
        decayed(hit.points, (now - hit.occurred_at).total_seconds() / 86400, half_life_days)
        for hit in hits
    )
    return max(total, 0.0)


@dataclass(frozen=True)
class Weights:
    """How much a role and a seniority count in an account's score."""

    roles: dict[str, float]
    seniorities: dict[str, float]
    breadth_bonus: float = 10.0  # per distinct engaged committee role
    recency_half_life_days: float = 30.0  # the account cools when nobody acts

    def of(self, role: str | None, seniority: str | None) -> float:
        return self.roles.get(role or "other", self.roles.get("other", 0.5)) * (
            self.seniorities.get(seniority or "staff", 1.0)
        )


# Decision makers weigh more; or the buyers who decide bottom-up do (engineers).
PRESETS = {
    "top_down": Weights(
        roles={
            "ceo": 2.0,
            "cio": 2.0,
            "cto": 2.0,
            "cfo": 1.8,
            "ciso": 1.6,
            "it_manager": 1.4,
            "procurement": 1.3,
            "finance": 1.0,
            "engineer": 0.8,
            "other": 0.5,
        },
        seniorities={"c_level": 2.0, "vp": 1.7, "director": 1.4, "manager": 1.2, "staff": 1.0},
    ),
    "bottom_up": Weights(
        roles={
            "engineer": 2.0,
            "it_manager": 1.8,
            "cto": 1.4,
            "cio": 1.2,
            "ciso": 1.2,
            "procurement": 1.0,
            "ceo": 0.8,
            "cfo": 0.8,
            "finance": 0.7,
            "other": 0.5,
        },
        seniorities={"c_level": 1.0, "vp": 1.0, "director": 1.1, "manager": 1.2, "staff": 1.3},
    ),
}


@dataclass(frozen=True)
class Member:
    """A contact as the account score sees them."""

    contact_id: int
    role: str | None
    seniority: str | None
    score: float
    last_active: datetime | None


@dataclass(frozen=True)
class AccountScore:
    score: float
    contributions: dict[int, float]  # contact id -> weighted points (the explanation)
    engaged_roles: frozenset[str]
    breadth: float
    recency: float  # the multiplier for how recently anyone acted


def account_score(members: Iterable[Member], weights: Weights, now: datetime) -> AccountScore:
    """Role- and seniority-weighted contact scores, plus breadth (distinct engaged roles),
    times recency (the latest activity, decayed): never a plain sum."""
    members = [m for m in members if m.score > 0]
    contributions = {m.contact_id: m.score * weights.of(m.role, m.seniority) for m in members}
    roles = frozenset(m.role for m in members if m.role and m.role != "other")
    breadth = weights.breadth_bonus * len(roles)
    latest = max((m.last_active for m in members if m.last_active), default=None)
    age = (now - latest).total_seconds() / 86400 if latest else None
    recency = decayed(1.0, age, weights.recency_half_life_days) if age is not None else 0.0
    score = (sum(contributions.values()) + breadth) * recency
    return AccountScore(round(score, 2), contributions, roles, breadth, recency)


@dataclass(frozen=True)
class Engagement:
    """A committee member's engagement inside the MQA window."""

    role: str | None
    seniority: str | None
    minutes: float


@dataclass(frozen=True)
class MqaRule:
    """E.g. "in the last 90 days >= 3 distinct roles engaged, including >= 1 VP-or-above
    with >= 60 engagement minutes", optionally with an account score threshold."""

    window_days: int = 90
    min_roles: int = 3
    senior_level: str = "vp"
    senior_count: int = 1
    senior_minutes: float = 60.0
    min_account_score: float | None = None

    def met(self, engaged: Iterable[Engagement], account_score: float = 0.0) -> bool:
        engaged = list(engaged)
        roles = {e.role for e in engaged if e.role and e.role != "other"}
        floor = SENIORITY_ORDER.index(self.senior_level)
        seniors = [
            e
            for e in engaged
            if e.seniority in SENIORITY_ORDER
            and SENIORITY_ORDER.index(e.seniority) >= floor
            and e.minutes >= self.senior_minutes
        ]
        if self.min_account_score is not None and account_score < self.min_account_score:
            return False
        return len(roles) >= self.min_roles and len(seniors) >= self.senior_count


# The shipped model: every interaction kind Harpoon records scores something.
DEFAULT_RULES = (
    ScoreRule("follow", "wechat.follow", 5, per_contact=1),
    ScoreRule("unfollow", "wechat.unfollow", -10),
    ScoreRule("qr_scan", "wechat.scan", 3, per_day=3),
    ScoreRule("menu_pricing", "wechat.menu_click", 8, where={"key": "PRICING"}, per_day=1),
    ScoreRule("menu_demo", "wechat.menu_click", 15, where={"key": "BOOK_DEMO"}, per_day=1),
    ScoreRule("menu_click", "wechat.menu_click", 2, per_day=5),
    ScoreRule("menu_view", "wechat.menu_view", 3, per_day=5),
    ScoreRule("menu_scan", "wechat.menu_scan", 2, per_day=3),
    ScoreRule("message", "wechat.message", 4, per_day=5),
    ScoreRule("location", "wechat.location", 1, per_day=1),
    ScoreRule("wecom_added", "wecom.contact_added", 15),
    ScoreRule("wecom_edited", "wecom.contact_edited", 0),
    ScoreRule("wecom_removed", "wecom.contact_removed", -15),
    ScoreRule("wecom_transfer_failed", "wecom.transfer_failed", 0),
    ScoreRule("content_pricing", "content.view", 10, where={"topic": "pricing"}, per_day=2),
    ScoreRule("content_view", "content.view", 3, per_minute=0.5, per_day=10),
    ScoreRule("content_like", "content.like", 2, per_day=5),
    ScoreRule("content_share", "content.share", 5, per_day=5),
    ScoreRule("form_submit", "form.submit", 20),
    ScoreRule("email_open", "email.open", 1, per_day=1),
    ScoreRule("email_click", "email.click", 3, per_day=3),
    ScoreRule("live_watch", "live.watch", 5, per_minute=0.5),
    ScoreRule("event_register", "event.register", 10),
    ScoreRule("event_checkin", "event.checkin", 25),
    ScoreRule("meeting", "sales.meeting", 30),
)
