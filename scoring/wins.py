"""What predicts wins, as arithmetic: for a signal (a score rule, an MQA rule, a tier),
how the accounts that had it converted to an opportunity and to a won deal against the
accounts that did not, with counts, rates, lift and 95% intervals; and points per rule
suggested by a logistic regression on won/lost outcomes. Pure: scoring.outcomes reads
the data.

Intervals: a rate's is Wilson's score interval. A lift (the ratio of two rates) gets the
log-ratio (Katz) interval, exp(ln(lift) +- 1.96 * sqrt(1/k1 - 1/n1 + 1/k0 - 1/n0)); when
a group has no conversions, 0.5 is added to every cell of the 2x2 table (Haldane) so the
interval stays finite, and a lift is only reported when both groups have accounts and the
group without has conversions.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from scoring.model import Model

Z95 = 1.959964
MIN_OUTCOMES = 30  # won + lost under which a fit is shown with a warning
MIN_EACH = 2  # won and lost each: fewer and there is nothing to fit
MAX_FACTOR = 5.0  # a suggested rule's points stay within 0..5x its current points


def wilson(hits: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of hits/total; (0, 1) when there is nothing to count."""
    if total <= 0:
        return 0.0, 1.0
    p = hits / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


@dataclass(frozen=True)
class Lift:
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 1: those with the signal convert differently."""
        return self.low > 1.0 or self.high < 1.0


def lift(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> Lift | None:
    """(k1/n1) / (k0/n0) with its log-ratio interval; None when it cannot be told (a group
    empty, or no conversions anywhere)."""
    if n1 <= 0 or n0 <= 0 or k1 + k0 == 0:
        return None
    if k1 == 0 or k0 == 0 or k1 == n1 or k0 == n0:  # Haldane: every cell + 0.5
        a, b, c, d = k1 + 0.5, n1 - k1 + 0.5, k0 + 0.5, n0 - k0 + 0.5
        k1f, n1f, k0f, n0f = a, a + b, c, c + d
    else:
        k1f, n1f, k0f, n0f = float(k1), float(n1), float(k0), float(n0)
    value = (k1f / n1f) / (k0f / n0f)
    se = math.sqrt(1 / k1f - 1 / n1f + 1 / k0f - 1 / n0f)
    log = math.log(value)
    return Lift(value, math.exp(log - z * se), math.exp(log + z * se))


@dataclass(frozen=True)
class Outcome:
    """One outcome (an opportunity, or a won deal) among the accounts with and without."""

    with_hits: int
    with_total: int
    without_hits: int
    without_total: int

    @property
    def with_rate(self) -> float:
        return self.with_hits / self.with_total if self.with_total else 0.0

    @property
    def without_rate(self) -> float:
        return self.without_hits / self.without_total if self.without_total else 0.0

    @property
    def with_interval(self) -> tuple[float, float]:
        return wilson(self.with_hits, self.with_total)

    @property
    def without_interval(self) -> tuple[float, float]:
        return wilson(self.without_hits, self.without_total)

    @property
    def lift(self) -> Lift | None:
        return lift(self.with_hits, self.with_total, self.without_hits, self.without_total)


@dataclass(frozen=True)
class Comparison:
    """A signal's accounts against the rest."""

    kind: str  # "rule", "mqa", "tier"
    key: str  # the rule's key, the MQA rule's name, the tier
    accounts: int  # with the signal
    opportunity: Outcome
    won: Outcome


def compare(
    kind: str,
    key: str,
    having: set[int],
    population: set[int],
    opportunity: set[int],
    won: set[int],
) -> Comparison:
    """Accounts of `population` in `having` against the others, for both outcomes."""
    having = having & population
    rest = population - having

    def outcome(hits: set[int]) -> Outcome:
        return Outcome(len(having & hits), len(having), len(rest & hits), len(rest))

    return Comparison(kind, key, len(having), outcome(opportunity), outcome(won))


@dataclass(frozen=True)
class Facts:
    """What the report reads, per account: the points each score rule gave its people in
    the window before its outcome (or before now), the MQA rules it met before then, its
    tier, and whether it got an opportunity and a won or lost deal."""

    accounts: set[int]
    points: Mapping[int, Mapping[str, float]]  # account -> rule key -> points
    mqa: Mapping[str, set[int]]  # MQA rule name -> accounts that met it
    tiers: Mapping[int, int | None]
    opportunity: set[int]
    won: set[int]
    lost: set[int]  # a lost deal and no won one


@dataclass
class Report:
    comparisons: list[Comparison]
    accounts: int
    opportunities: int
    won: int
    lost: int
    fit: "Fit"


def report(model: Model, facts: Facts) -> Report:
    """Every score rule, MQA rule and tier of `model` against the outcomes."""
    population = facts.accounts
    by_rule: dict[str, set[int]] = {}
    for account_id, earned in facts.points.items():
        for key, points in earned.items():
            if points > 0:
                by_rule.setdefault(key, set()).add(account_id)
    comparisons = []
    for rule in model.rules:
        having = by_rule.get(rule.key, set())
        comparisons.append(
            compare("rule", rule.key, having, population, facts.opportunity, facts.won)
        )
    for rule in model.mqa_rules:
        having = set(facts.mqa.get(rule.name, set()))
        comparisons.append(
            compare("mqa", rule.name, having, population, facts.opportunity, facts.won)
        )
    for tier in sorted({t.tier for t in model.tiers}):
        having = {a for a, t in facts.tiers.items() if t == tier}
        comparisons.append(
            compare("tier", str(tier), having, population, facts.opportunity, facts.won)
        )
    return Report(
        comparisons,
        accounts=len(population),
        opportunities=len(facts.opportunity & population),
        won=len(facts.won & population),
        lost=len(facts.lost & population),
        fit=fit_weights(model, facts),
    )


# ---- suggested weights --------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    key: str
    coefficient: float  # per standard deviation of the rule's points (log-odds of a win)
    current: float
    suggested: float
    accounts: int  # of the fitted accounts, how many got points from the rule


@dataclass
class Fit:
    """A logistic regression of won (vs lost) on each rule's points, per account with a
    closed deal; the rules' points rescaled by what a point of each is worth."""

    won: int
    lost: int
    fitted: bool = False
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def outcomes(self) -> int:
        return self.won + self.lost

    @property
    def too_few(self) -> bool:
        """Fitted, but on fewer outcomes than a marketer should trust."""
        return self.outcomes < MIN_OUTCOMES

    def model(self, current: Model) -> Model:
        """`current` with the suggested points (rules the fit did not see keep theirs)."""
        points = {s.key: s.suggested for s in self.suggestions}
        rules = tuple(
            replace(rule, points=points[rule.key]) if rule.key in points else rule
            for rule in current.rules
        )
        return replace(current, rules=rules)


def fit_weights(model: Model, facts: Facts) -> Fit:
    """Suggested points per rule, fitted on accounts with a won or lost deal; no fit (and
    no error) when there are too few of either."""
    closed = sorted((facts.won | facts.lost) & facts.accounts)
    result = Fit(won=len(facts.won & facts.accounts), lost=len(facts.lost & facts.accounts))
    if result.won < MIN_EACH or result.lost < MIN_EACH:
        return result
    # Rules with positive points that some fitted account got points from.
    keys = [
        rule.key
        for rule in model.rules
        if rule.points > 0 and any(facts.points.get(a, {}).get(rule.key, 0) > 0 for a in closed)
    ]
    if not keys:
        return result
    rows = [[float(facts.points.get(a, {}).get(key, 0.0)) for key in keys] for a in closed]
    labels = [1 if a in facts.won else 0 for a in closed]
    coefficients, scales = _logistic(rows, labels)
    # What one raw point of each rule is worth; rescaled so the rules' points, weighted
    # by how often they are earned, keep their total.
    per_point = [c / s if s > 0 else 0.0 for c, s in zip(coefficients, scales, strict=True)]
    earned = [sum(row[j] for row in rows) for j in range(len(keys))]
    current = [model.rule(key).points for key in keys]
    worth = sum(max(w, 0.0) * e for w, e in zip(per_point, earned, strict=True))
    total = sum(earned)
    for j, key in enumerate(keys):
        if worth <= 0 or total <= 0:
            suggested = current[j]
        else:
            factor = max(per_point[j], 0.0) * total / worth
            suggested = round(current[j] * min(factor, MAX_FACTOR), 1)
        result.suggestions.append(
            Suggestion(
                key,
                round(coefficients[j], 3),
                current[j],
                suggested,
                sum(1 for row in rows if row[j] > 0),
            )
        )
    result.fitted = True
    return result


def _logistic(rows: list[list[float]], labels: list[int]) -> tuple[list[float], list[float]]:
    """Coefficients of an L2-regularised logistic regression on standardised features, and
    each feature's standard deviation. scikit-learn takes a second to import: only here."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(rows, dtype=float)
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), labels)
    scales = [float(s) if v > 0 else 0.0 for s, v in zip(scaler.scale_, scaler.var_, strict=True)]
    return [float(c) for c in regression.coef_[0]], scales


def summarise(comparisons: Iterable[Comparison], kind: str) -> list[Comparison]:
    """One kind's comparisons, those with accounts first, by lift on won deals."""

    def order(c: Comparison):
        won = c.won.lift
        return (c.accounts == 0, -(won.value if won else 0.0), c.key)

    return sorted((c for c in comparisons if c.kind == kind), key=order)
