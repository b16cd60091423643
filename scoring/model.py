"""The scoring model as data, and its arithmetic: rules and caps, decay, role-weighted
account scores, MQA rules, fit and tiers, intent surges and stages. Pure functions:
scoring.engine runs them over the ledger, batch by batch.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, tzinfo

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
    max_points: float | None = None  # points per contact from this rule, lifetime
    signal: str | None = None  # "intent" (researching) or "engagement" (talking to us)

    def matches(self, kind: str, properties: dict) -> bool:
        return kind == self.kind and properties_match(self.where, properties)

    def points_for(self, minutes: float) -> float:
        return self.points + self.per_minute * max(minutes, 0.0)


def properties_match(where: dict[str, str], properties: dict) -> bool:
    """Every filtered property equals its value; a value "contains:x" matches a substring.
    A list property (a content item's topics) matches when one of its items does."""
    for name, wanted in where.items():
        value = properties.get(name, "")
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if wanted.startswith("contains:"):
            needle = wanted.removeprefix("contains:")
            if not any(needle in v for v in values):
                return False
        elif wanted not in values:
            return False
    return True


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


def matching_rule(rules: Iterable[ScoreRule], kind: str, properties: dict) -> ScoreRule | None:
    """The most specific rule wins (the one with the most filters), so "menu click on
    PRICING" beats "any menu click"; `rules` come in the model's order."""
    best = None
    for rule in rules:
        if rule.matches(kind, properties) and (best is None or len(rule.where) > len(best.where)):
            best = rule
    return best


def day_of(moment: datetime, tz: tzinfo) -> str:
    """The calendar day a per-day cap counts in (the workspace's time zone)."""
    return moment.astimezone(tz).date().isoformat()


def score_touches(
    rules: Iterable[ScoreRule],
    touches: Iterable[Touch],
    prior: dict[tuple[str, str], float] | None = None,
    tz: tzinfo = UTC,
) -> list[Hit]:
    """One contact's hits, caps applied in time order. `prior` holds what the ledger
    already has: {(rule key, day): hits, (rule key, "ever"): hits, (rule key, "points"):
    points}."""
    rules = list(rules)
    counts: dict[tuple[str, str], float] = defaultdict(float, prior or {})
    hits = []
    for touch in sorted(touches, key=lambda t: (t.occurred_at, t.id)):
        rule = matching_rule(rules, touch.kind, touch.properties)
        if rule is None:
            continue
        day = day_of(touch.occurred_at, tz)
        if rule.per_day is not None and counts[(rule.key, day)] >= rule.per_day:
            continue
        if rule.per_contact is not None and counts[(rule.key, "ever")] >= rule.per_contact:
            continue
        points = rule.points_for(touch.minutes)
        if rule.max_points is not None and points > 0:
            points = min(points, rule.max_points - counts[(rule.key, "points")])
            if points <= 0:
                continue
        counts[(rule.key, day)] += 1
        counts[(rule.key, "ever")] += 1
        counts[(rule.key, "points")] += points
        hits.append(Hit(rule.key, touch.id, points, touch.occurred_at))
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
class Scale:
    """The account score people read: raw points saturating into 0-100,
    100 * (1 - e^(-raw / points)). `points` raw points read as 63, twice as many as 86,
    three times as many as 95. Stable (one account's reading depends on its own points
    only, never on the other accounts) and monotone; the raw points stay the explanation."""

    points: float = 300.0

    def of(self, raw: float | None) -> float:
        if not raw or raw <= 0 or self.points <= 0:
            return 0.0
        return round(100 * (1 - math.exp(-raw / self.points)), 1)

    def raw_for(self, scaled: float) -> float:
        """The raw points that read as `scaled` (below 100)."""
        scaled = min(max(scaled, 0.0), 99.9)
        return -self.points * math.log(1 - scaled / 100)


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

    name: str = "Buying committee engaged"
    window_days: int = 90
    min_roles: int = 3
    senior_level: str = "vp"
    senior_count: int = 1
    senior_minutes: float = 60.0
    min_account_score: float | None = None  # on the 0-100 scale (Scale)
    tiers: tuple[int, ...] = ()  # only accounts of these tiers (none: any)
    # Hysteresis: an MQA stays one while it holds these lower bars, so an account on the
    # edge does not flap in and out. None: one role fewer than min_roles (at least 1), and
    # 10 points under min_account_score.
    exit_roles: int | None = None
    exit_account_score: float | None = None

    @property
    def roles_to_stay(self) -> int:
        if self.exit_roles is not None:
            return min(self.exit_roles, self.min_roles)
        return max(self.min_roles - 1, 1)

    @property
    def score_to_stay(self) -> float | None:
        if self.min_account_score is None:
            return None
        if self.exit_account_score is not None:
            return min(self.exit_account_score, self.min_account_score)
        return max(self.min_account_score - 10, 0.0)

    def senior_levels(self) -> tuple[str, ...]:
        """The seniorities that count as senior: the level and those above it."""
        return SENIORITY_ORDER[SENIORITY_ORDER.index(self.senior_level) :]

    def met(
        self, engaged: Iterable[Engagement], account_score: float = 0.0, tier: int | None = None
    ) -> bool:
        engaged = list(engaged)
        roles = {e.role for e in engaged if e.role and e.role != "other"}
        seniors = [
            e
            for e in engaged
            if e.seniority in self.senior_levels() and e.minutes >= self.senior_minutes
        ]
        return self.met_counts(len(roles), len(seniors), account_score, tier)

    def met_counts(
        self, roles: int, seniors: int, account_score: float = 0.0, tier: int | None = None
    ) -> bool:
        """`met`, from counts: distinct engaged committee roles, and engaged seniors with
        enough minutes (what the per-batch SQL counts)."""
        if self.min_account_score is not None and account_score < self.min_account_score:
            return False
        if self.tiers and tier not in self.tiers:
            return False
        return roles >= self.min_roles and seniors >= self.senior_count

    def held_counts(
        self, roles: int, seniors: int, account_score: float = 0.0, tier: int | None = None
    ) -> bool:
        """Whether an account that is an MQA by this rule stays one: the exit bars (fewer
        roles, a lower score), the same seniors and tiers."""
        floor = self.score_to_stay
        if floor is not None and account_score < floor:
            return False
        if self.tiers and tier not in self.tiers:
            return False
        return roles >= self.roles_to_stay and seniors >= self.senior_count


def mqa_status(
    rules: Iterable[MqaRule],
    counts: Iterable[tuple[int, int]],
    account_score: float,
    tier: int | None,
    was_mqa: bool,
) -> tuple[bool, MqaRule | None]:
    """(MQA now, the rule that made it one this time or None). An account enters when a
    rule is met, and an MQA leaves only when no rule holds it at the exit bars."""
    pairs = list(zip(rules, counts, strict=True))
    entered = next(
        (r for r, (roles, seniors) in pairs if r.met_counts(roles, seniors, account_score, tier)),
        None,
    )
    if entered is not None:
        return True, entered
    if was_mqa:
        held = any(
            r.held_counts(roles, seniors, account_score, tier) for r, (roles, seniors) in pairs
        )
        return held, None
    return False, None


@dataclass(frozen=True)
class Fit:
    """ICP fit, 0-100: the weight of the attributes an account matches, out of the weight
    of those configured."""

    target_weight: float = 40.0  # on the imported target-account list
    industries: tuple[str, ...] = ()
    industry_weight: float = 20.0
    regions: tuple[str, ...] = ()
    region_weight: float = 10.0
    min_employees: int | None = None
    employees_weight: float = 15.0
    min_revenue: float | None = None
    revenue_weight: float = 15.0

    def score(self, account: "AccountFacts") -> float:
        checks = [(self.target_weight, account.is_target)]
        if self.industries:
            checks.append((self.industry_weight, account.industry in self.industries))
        if self.regions:
            checks.append((self.region_weight, account.region in self.regions))
        if self.min_employees is not None:
            checks.append((self.employees_weight, (account.employees or 0) >= self.min_employees))
        if self.min_revenue is not None:
            checks.append((self.revenue_weight, (account.revenue or 0) >= self.min_revenue))
        total = sum(weight for weight, _ in checks)
        if not total:
            return 0.0
        return round(100 * sum(weight for weight, ok in checks if ok) / total, 1)


@dataclass(frozen=True)
class AccountFacts:
    """What fit, tiers and MQA read about an account."""

    is_target: bool = False
    industry: str | None = None
    region: str | None = None
    employees: int | None = None
    revenue: float | None = None
    acv: float | None = None
    fit: float = 0.0
    intent: bool = False  # intent points in the window, or surging
    engaged: bool = False  # engagement points in the window


@dataclass(frozen=True)
class TierRule:
    """The "Goldilocks" tiers: an account gets the first tier whose rule it meets.
    `intent` / `engagement`: True = required, False = must be absent, None = either."""

    tier: int
    min_fit: float = 0.0
    min_acv: float | None = None
    intent: bool | None = None
    engagement: bool | None = None

    def met(self, account: AccountFacts) -> bool:
        if account.fit < self.min_fit:
            return False
        if self.min_acv is not None and (account.acv or 0) < self.min_acv:
            return False
        if self.intent is not None and account.intent != self.intent:
            return False
        return self.engagement is None or account.engaged == self.engagement


def tier_of(rules: Iterable[TierRule], account: AccountFacts) -> int | None:
    return next((r.tier for r in sorted(rules, key=lambda r: r.tier) if r.met(account)), None)


@dataclass(frozen=True)
class Signals:
    """Windows and floors for an account's intent and engagement."""

    intent_days: int = 30
    intent_min_points: float = 10.0
    engagement_days: int = 30
    engagement_min_points: float = 15.0


@dataclass(frozen=True)
class Surge:
    """This week's points vs the weekly mean of the 4 weeks before."""

    factor: float = 2.0
    min_points: float = 20.0  # a week this quiet is no surge, whatever the ratio
    # Points in the 4 weeks before under which there is no ratio: against next to nothing
    # any week reads "↑1701×". Such a week, busy enough, is "new activity".
    min_baseline: float = 20.0

    def check(self, this_week: float, prior_four_weeks: float) -> tuple[bool, float | None]:
        """(surging, ratio); the ratio is None without a baseline (new activity)."""
        busy = this_week >= self.min_points
        if prior_four_weeks < max(self.min_baseline, 0.0) or prior_four_weeks <= 0:
            return busy, None
        ratio = round(this_week / (prior_four_weeks / 4), 2)
        return busy and ratio >= self.factor, ratio


@dataclass(frozen=True)
class Stage:
    key: str
    name: str


DEFAULT_STAGES = (
    Stage("target", "Target"),
    Stage("aware", "Aware"),
    Stage("engaged", "Engaged"),
    Stage("mqa", "MQA"),
    Stage("meeting", "Meeting"),
    Stage("opportunity", "Opportunity"),
    Stage("customer", "Customer"),
    Stage("expansion", "Expansion"),
)


@dataclass(frozen=True)
class StageRules:
    """Rules move stages forward only; people move them anywhere."""

    aware: str | None = "aware"  # on the first interaction
    engaged: str | None = "engaged"  # at the score thresholds
    engaged_contact_score: float = 30.0
    engaged_account_score: float = 30.0  # on the 0-100 scale (Scale)
    mqa: str | None = "mqa"  # when an MQA rule is met


def advance(stages: tuple[Stage, ...], current: str | None, candidate: str | None) -> bool:
    """Whether a rule may move `current` to `candidate`: only to a later stage."""
    keys = [stage.key for stage in stages]
    if candidate not in keys:
        return False
    return current not in keys or keys.index(candidate) > keys.index(current)


# The shipped model: every interaction kind Harpoon records scores something.
DEFAULT_RULES = (
    ScoreRule("follow", "wechat.follow", 5, per_contact=1),
    ScoreRule("unfollow", "wechat.unfollow", -10),
    ScoreRule("qr_scan", "wechat.scan", 3, per_day=3),
    ScoreRule(
        "menu_pricing",
        "wechat.menu_click",
        8,
        where={"key": "PRICING"},
        per_day=1,
        signal="intent",
    ),
    ScoreRule(
        "menu_demo", "wechat.menu_click", 15, where={"key": "BOOK_DEMO"}, signal="engagement"
    ),
    ScoreRule("menu_click", "wechat.menu_click", 2, per_day=5, signal="intent"),
    ScoreRule("menu_view", "wechat.menu_view", 3, per_day=5, signal="intent"),
    ScoreRule("menu_scan", "wechat.menu_scan", 2, per_day=3),
    ScoreRule("message", "wechat.message", 4, per_day=5, signal="engagement"),
    ScoreRule("location", "wechat.location", 1, per_day=1),
    ScoreRule("wecom_added", "wecom.contact_added", 15, signal="engagement"),
    ScoreRule("wecom_edited", "wecom.contact_edited", 0),
    ScoreRule("wecom_removed", "wecom.contact_removed", -15),
    ScoreRule("wecom_transfer_failed", "wecom.transfer_failed", 0),
    # Joining a customer group is engagement; leaving it takes a little back.
    ScoreRule("wecom_group_join", "wecom.group_join", 10, signal="engagement"),
    ScoreRule("wecom_group_leave", "wecom.group_leave", -5),
    ScoreRule(
        "content_pricing",
        "content.view",
        10,
        where={"topics": "pricing"},
        per_day=2,
        signal="intent",
    ),
    ScoreRule(
        "content_view",
        "content.view",
        3,
        per_minute=0.5,
        per_day=10,
        max_points=200,
        signal="intent",
    ),
    # Reading time the page's beacon reports: points per minute only.
    ScoreRule(
        "content_read",
        "content.read",
        0,
        per_minute=0.5,
        max_points=60,
        signal="engagement",
    ),
    ScoreRule("content_like", "content.like", 2, per_day=5, signal="engagement"),
    ScoreRule("content_comment", "content.comment", 3, per_day=5, signal="engagement"),
    ScoreRule("content_share", "content.share", 5, per_day=5, signal="engagement"),
    ScoreRule("form_submit", "form.submit", 20, signal="engagement"),
    ScoreRule("email_open", "email.open", 1, per_day=1),
    ScoreRule("email_click", "email.click", 3, per_day=3, signal="intent"),
    ScoreRule("email_unsubscribe", "email.unsubscribe", -10),
    ScoreRule("email_bounce", "email.bounce", 0),
    ScoreRule("email_complaint", "email.complaint", -20),
    ScoreRule("live_join", "live.join", 2, per_day=1, signal="engagement"),
    ScoreRule("live_leave", "live.leave", 0),  # the minutes come with live.watch
    ScoreRule("live_watch", "live.watch", 5, per_minute=0.5, signal="engagement"),
    ScoreRule("webinar_register", "webinar.register", 10, signal="engagement"),
    ScoreRule("webinar_attend", "webinar.attend", 15, per_minute=0.5, signal="engagement"),
    ScoreRule("event_register", "event.register", 10, signal="engagement"),
    ScoreRule("event_checkin", "event.checkin", 25, signal="engagement"),
    ScoreRule("meeting", "sales.meeting", 30, signal="engagement"),
    ScoreRule("sales_call", "sales.call", 15, per_day=1, signal="engagement"),
    # A salesperson closed a task for the person as done (sales.tasks.close_task): a sales
    # touch, not the buyer's own engagement.
    ScoreRule("sales_task_done", "sales.task_done", 5, per_day=1),
    # A salesperson's note on them, and content sent into their chat from the sidebar: on
    # the timeline and usable by journeys, no points (their reading it scores).
    ScoreRule("sales_note", "sales.note", 0),
    ScoreRule("sales_chat_send", "sales.chat_send", 0),
    # An NPS answer (revenue.kpis reads the score): on the timeline, no points.
    ScoreRule("survey_nps", "survey.nps", 0),
)

DEFAULT_TIERS = (
    TierRule(1, min_fit=70, min_acv=500_000, intent=True, engagement=True),
    TierRule(2, min_fit=70, intent=True),
    TierRule(3, min_fit=70),
)


@dataclass(frozen=True)
class Model:
    """A workspace's whole scoring model; stored as a document, one version per save."""

    rules: tuple[ScoreRule, ...] = DEFAULT_RULES
    half_life_days: float | None = 30.0  # lead scores; None: no decay
    preset: str = "top_down"
    weights: Weights = PRESETS["top_down"]
    mqa_rules: tuple[MqaRule, ...] = (MqaRule(),)
    fit: Fit = Fit()
    tiers: tuple[TierRule, ...] = DEFAULT_TIERS
    signals: Signals = Signals()
    surge: Surge = Surge()
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    stage_rules: StageRules = StageRules()
    scale: Scale = Scale()

    def rule(self, key: str) -> ScoreRule | None:
        return next((rule for rule in self.rules if rule.key == key), None)

    def to_document(self) -> dict:
        return asdict(self)

    @classmethod
    def from_document(cls, doc: dict) -> "Model":
        """The model a stored document describes; what it leaves out keeps the default.
        A document from before the 0-100 scale (no "scale") compared raw points: its
        account-score thresholds are carried onto the default scale."""
        default = cls()
        if "scale" not in doc:
            doc = _onto_scale(doc, default.scale)
        parts = {
            "rules": lambda v: tuple(ScoreRule(**_known(ScoreRule, r)) for r in v),
            "weights": lambda v: Weights(**_known(Weights, v)),
            "mqa_rules": lambda v: tuple(
                MqaRule(**{**_known(MqaRule, r), "tiers": tuple(r.get("tiers") or ())}) for r in v
            ),
            "fit": lambda v: Fit(
                **{
                    **_known(Fit, v),
                    "industries": tuple(v.get("industries") or ()),
                    "regions": tuple(v.get("regions") or ()),
                }
            ),
            "tiers": lambda v: tuple(TierRule(**_known(TierRule, r)) for r in v),
            "signals": lambda v: Signals(**_known(Signals, v)),
            "surge": lambda v: Surge(**_known(Surge, v)),
            "stages": lambda v: tuple(Stage(**_known(Stage, s)) for s in v),
            "stage_rules": lambda v: StageRules(**_known(StageRules, v)),
            "scale": lambda v: Scale(**_known(Scale, v)),
        }
        changes = {
            name: parts[name](value) if name in parts else value
            for name, value in doc.items()
            if name in {f.name for f in fields(cls)}
        }
        return replace(default, **changes)


def _known(cls, values: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _onto_scale(doc: dict, scale: Scale) -> dict:
    """A pre-scale document's raw account-score thresholds, read on `scale`."""
    doc = dict(doc)
    if isinstance(doc.get("stage_rules"), dict) and "engaged_account_score" in doc["stage_rules"]:
        rules = dict(doc["stage_rules"])
        rules["engaged_account_score"] = scale.of(rules["engaged_account_score"])
        doc["stage_rules"] = rules
    if isinstance(doc.get("mqa_rules"), list):
        doc["mqa_rules"] = [
            {**r, "min_account_score": scale.of(r["min_account_score"])}
            if isinstance(r, dict) and r.get("min_account_score") is not None
            else r
            for r in doc["mqa_rules"]
        ]
    return doc
