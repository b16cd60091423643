"""The scoring model's sections as the admin forms post them, checked before a save.

Each `load_*` takes one section in the shape of its form (nested dicts and lists of
strings, see core.forms.unflatten) and returns what it changes in the Model, or raises a
ValidationError whose messages are keyed like the form's inputs. The `*_form`
functions give the same shapes from a Model, so a form starts from the model in force.
No Flask and no database here; the admin page translates the messages (marked N_).
"""

import re
from collections.abc import Iterable, Mapping

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from core.forms import (
    FormSchema,
    Names,
    Several,
    choice,
    column,
    count,
    field_messages,
    number,
    rows,
    shown,
    text,
)
from core.text import N_
from scoring.model import (
    DEFAULT_RULES,
    PRESETS,
    SENIORITY_ORDER,
    Fit,
    Model,
    MqaRule,
    Scale,
    ScoreRule,
    Signals,
    Stage,
    StageRules,
    Surge,
    TierRule,
    Weights,
)

SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
# The kinds the shipped rules score (a superset of what tag rules may count).
RULE_KINDS = tuple(dict.fromkeys(rule.kind for rule in DEFAULT_RULES))
ROLES = tuple(PRESETS["top_down"].roles)
SIGNALS = ("intent", "engagement")
MATCHES = ("equals", "contains")
# A tier rule's intent / engagement: required (True), absent (False) or either (None).
REQUIREMENTS = {"required": True, "absent": False, "either": None}
TIERS = (1, 2, 3)
MAX_STAGES = 20
MIN_HALF_LIFE_DAYS = 7


# ---- score rules ------------------------------------------------------------------------


class FilterSchema(FormSchema):
    """One "property equals / contains value" condition; an empty row is no condition."""

    property = fields.String(
        validate=validate.Regexp(
            r"^[A-Za-z_][A-Za-z0-9_]{0,39}$",
            error=N_("A property name such as key, topic or url."),
        ),
        error_messages=field_messages(),
    )
    match = choice(MATCHES, N_("Equals or contains."), load_default="equals")
    value = text(N_("At most 200 characters."), high=200)

    # On the input as given, so a mistake in one of the two does not hide the other's absence.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _both_or_neither(self, _data, original, **_kwargs):
        given = {key for key, value in original.items() if str(value).strip()}
        if "value" in given and "property" not in given:
            raise ValidationError(N_("Name the property this value is compared with."), "property")
        if "property" in given and "value" not in given:
            raise ValidationError(N_("Required with a property."), "value")


class ScoreRuleSchema(FormSchema):
    key = fields.String(
        required=True,
        validate=[
            validate.Length(1, 40, error=N_("At most 40 characters.")),
            validate.Regexp(
                SLUG, error=N_("Lower-case letters, digits and _, starting with a letter.")
            ),
        ],
        error_messages=field_messages(),
    )
    kind = fields.String(required=True, error_messages=field_messages())
    where = rows(FilterSchema, load_default=list)
    points = number(N_("From -1000 to 1000."), low=-1000, high=1000)
    per_minute = number(N_("From 0 to 100."), low=0, high=100, default=0.0)
    per_day = count(N_("A whole number, at least 1; empty for no cap."), low=1, optional=True)
    per_contact = count(N_("A whole number, at least 1; empty for no cap."), low=1, optional=True)
    max_points = number(N_("More than 0; empty for no cap."), low=0, above=True, optional=True)
    signal = choice(SIGNALS, N_("Intent, engagement or none."), load_default=None)

    def __init__(self, *, kinds: Iterable[str] = RULE_KINDS, taken_keys: Iterable[str] = ()):
        super().__init__()
        self.kinds = frozenset(kinds)
        self.taken_keys = frozenset(taken_keys)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _known_and_unique(self, data, original, **_kwargs):
        errors = {}
        if "kind" in data and data["kind"] not in self.kinds:
            errors["kind"] = [N_("Not an interaction Harpoon records.")]
        if data.get("key") in self.taken_keys:
            errors["key"] = [N_("Another rule has this key.")]
        properties = column(original.get("where"), "property")
        for index, name in enumerate(properties):
            if name and name in properties[:index]:
                errors.setdefault("where", {})[index] = {"property": [N_("Each property once.")]}
        if errors:
            raise ValidationError(errors)

    @post_load
    def _rule(self, data, **_kwargs) -> ScoreRule:
        where = {
            row["property"]: row["value"]
            if row["match"] == "equals"
            else f"contains:{row['value']}"
            for row in data.pop("where")
            if "property" in row
        }
        return ScoreRule(**data, where=where)


def load_rule(
    data: Mapping, *, kinds: Iterable[str] = RULE_KINDS, taken_keys: Iterable[str] = ()
) -> ScoreRule:
    """A score rule from its form; its key must be none of `taken_keys` (the others')."""
    return ScoreRuleSchema(kinds=kinds, taken_keys=taken_keys).load(data)


def rule_form(rule: ScoreRule | None = None) -> dict:
    if rule is None:
        return {"where": [{"match": "equals"}], "per_minute": "0"}
    where = [
        {"property": name, "match": "contains", "value": value.removeprefix("contains:")}
        if value.startswith("contains:")
        else {"property": name, "match": "equals", "value": value}
        for name, value in rule.where.items()
    ]
    return {
        "key": rule.key,
        "kind": rule.kind,
        "where": [*where, {"match": "equals"}],  # and an empty row for one more
        "points": shown(rule.points),
        "per_minute": shown(rule.per_minute),
        "per_day": shown(rule.per_day),
        "per_contact": shown(rule.per_contact),
        "max_points": shown(rule.max_points),
        "signal": rule.signal or "",
    }


# ---- weights ------------------------------------------------------------------------------


def _weight() -> fields.Float:
    return number(N_("From 0 to 10."), low=0, high=10)


RoleWeights = FormSchema.from_dict({role: _weight() for role in ROLES}, name="RoleWeights")
SeniorityWeights = FormSchema.from_dict(
    {level: _weight() for level in SENIORITY_ORDER}, name="SeniorityWeights"
)


class WeightsSchema(FormSchema):
    preset = choice(PRESETS, N_("Top-down or bottom-up."), required=True)
    roles = fields.Nested(RoleWeights, required=True, error_messages=field_messages())
    seniorities = fields.Nested(SeniorityWeights, required=True, error_messages=field_messages())
    breadth_bonus = number(N_("From 0 to 1000."), low=0, high=1000)
    recency_half_life_days = number(N_("More than 0 days."), low=0, above=True)
    # Ledger weights grow as 2^(days since 2025 / half-life): at 7 days they stay within
    # a float's range until about 2044 (scoring.engine.EPOCH).
    half_life_days = number(
        N_("At least 7 days; empty for no decay."), low=MIN_HALF_LIFE_DAYS, optional=True
    )
    scale_points = number(N_("More than 0 points."), low=0, above=True, default=Scale().points)


def load_weights(data: Mapping) -> dict:
    """The preset, the role and seniority weights and the two half-lives."""
    loaded = WeightsSchema().load(data)
    return {
        "preset": loaded["preset"],
        "half_life_days": loaded["half_life_days"],
        "weights": Weights(
            roles=loaded["roles"],
            seniorities=loaded["seniorities"],
            breadth_bonus=loaded["breadth_bonus"],
            recency_half_life_days=loaded["recency_half_life_days"],
        ),
        "scale": Scale(points=loaded["scale_points"]),
    }


def weights_form(model: Model, preset: str | None = None) -> dict:
    """The weights section; with `preset`, that preset's weights instead of the model's."""
    weights = PRESETS[preset] if preset else model.weights
    return {
        "preset": preset or model.preset,
        "roles": {role: shown(weights.roles.get(role, 0.0)) for role in ROLES},
        "seniorities": {
            level: shown(weights.seniorities.get(level, 1.0)) for level in SENIORITY_ORDER
        },
        "breadth_bonus": shown(weights.breadth_bonus),
        "recency_half_life_days": shown(weights.recency_half_life_days),
        "half_life_days": shown(model.half_life_days),
        "scale_points": shown(model.scale.points),
    }


# ---- MQA rules ----------------------------------------------------------------------------


class MqaRuleSchema(FormSchema):
    name = text(N_("1 to 100 characters."), high=100, required=True)
    window_days = count(N_("From 1 to 365 days."), low=1, high=365)
    min_roles = count(N_("From 0 to 15 roles."), low=0, high=15)
    senior_level = choice(SENIORITY_ORDER, N_("Pick a seniority."), required=True)
    senior_count = count(N_("From 0 to 50 people."), low=0, high=50)
    senior_minutes = number(N_("From 0 to 10000 minutes."), low=0, high=10_000)
    min_account_score = number(
        N_("From 0 to 100; empty for any score."), low=0, high=100, optional=True
    )
    exit_roles = count(
        N_("From 0 to 15 roles; empty for one fewer."), low=0, high=15, optional=True
    )
    exit_account_score = number(
        N_("From 0 to 100; empty for 10 under the entry score."), low=0, high=100, optional=True
    )
    tiers = Several(
        fields.Integer(
            validate=validate.OneOf(TIERS, error=N_("Tier 1, 2 or 3.")),
            error_messages=field_messages(invalid=N_("Tier 1, 2 or 3.")),
        ),
        load_default=list,
    )

    @post_load
    def _rule(self, data, **_kwargs) -> MqaRule:
        return MqaRule(**{**data, "tiers": tuple(sorted(set(data["tiers"])))})


def load_mqa_rule(data: Mapping) -> MqaRule:
    return MqaRuleSchema().load(data)


def mqa_form(rule: MqaRule | None = None) -> dict:
    rule = rule or MqaRule(name="")
    return {
        "name": rule.name,
        "window_days": shown(rule.window_days),
        "min_roles": shown(rule.min_roles),
        "senior_level": rule.senior_level,
        "senior_count": shown(rule.senior_count),
        "senior_minutes": shown(rule.senior_minutes),
        "min_account_score": shown(rule.min_account_score),
        "exit_roles": shown(rule.exit_roles),
        "exit_account_score": shown(rule.exit_account_score),
        "tiers": [str(tier) for tier in rule.tiers],
    }


# ---- tiers, fit and signals ---------------------------------------------------------------


class TierRowSchema(FormSchema):
    """One tier rule; a row without a tier is not in use."""

    tier = count(N_("Tier 1, 2 or 3."), low=1, high=3, optional=True)
    min_fit = number(N_("From 0 to 100."), low=0, high=100, default=0.0)
    min_acv = number(N_("At least 0; empty for any ACV."), low=0, optional=True)
    intent = choice(REQUIREMENTS, N_("Required, absent or either."), load_default="either")
    engagement = choice(REQUIREMENTS, N_("Required, absent or either."), load_default="either")


class FitSchema(FormSchema):
    target_weight = number(N_("From 0 to 100."), low=0, high=100)
    industries = Names(load_default=list)
    industry_weight = number(N_("From 0 to 100."), low=0, high=100)
    regions = Names(load_default=list)
    region_weight = number(N_("From 0 to 100."), low=0, high=100)
    min_employees = count(N_("At least 0; empty for any size."), low=0, optional=True)
    employees_weight = number(N_("From 0 to 100."), low=0, high=100)
    min_revenue = number(N_("At least 0; empty for any revenue."), low=0, optional=True)
    revenue_weight = number(N_("From 0 to 100."), low=0, high=100)


class SignalsSchema(FormSchema):
    intent_days = count(N_("From 1 to 365 days."), low=1, high=365)
    intent_min_points = number(N_("At least 0."), low=0)
    engagement_days = count(N_("From 1 to 365 days."), low=1, high=365)
    engagement_min_points = number(N_("At least 0."), low=0)


class TiersSchema(FormSchema):
    tiers = rows(TierRowSchema, load_default=list)
    fit = fields.Nested(FitSchema, required=True, error_messages=field_messages())
    signals = fields.Nested(SignalsSchema, required=True, error_messages=field_messages())

    # On the input as given, so a duplicate shows with the other mistakes at once.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _each_tier_once(self, _data, original, **_kwargs):
        seen, errors = set(), {}
        for index, tier in enumerate(column(original.get("tiers"), "tier")):
            if tier and tier in seen:
                errors[index] = {"tier": [N_("This tier has a rule already.")]}
            seen.add(tier)
        if errors:
            raise ValidationError({"tiers": errors})


def load_tiers(data: Mapping) -> dict:
    """Tier rules (each of tier 1-3 at most once), the fit criteria and the signal windows."""
    loaded = TiersSchema().load(data)
    tiers = sorted(
        (
            TierRule(
                tier=row["tier"],
                min_fit=row["min_fit"],
                min_acv=row["min_acv"],
                intent=REQUIREMENTS[row["intent"]],
                engagement=REQUIREMENTS[row["engagement"]],
            )
            for row in loaded["tiers"]
            if row["tier"] is not None
        ),
        key=lambda rule: rule.tier,
    )
    fit = loaded["fit"]
    return {
        "tiers": tuple(tiers),
        "fit": Fit(
            **{**fit, "industries": tuple(fit["industries"]), "regions": tuple(fit["regions"])}
        ),
        "signals": Signals(**loaded["signals"]),
    }


def tiers_form(model: Model) -> dict:
    requirement = {value: name for name, value in REQUIREMENTS.items()}
    by_tier = {rule.tier: rule for rule in model.tiers}
    fit, signals = model.fit, model.signals
    return {
        "tiers": [
            {
                "tier": str(tier) if tier in by_tier else "",
                "min_fit": shown(by_tier[tier].min_fit) if tier in by_tier else "",
                "min_acv": shown(by_tier[tier].min_acv) if tier in by_tier else "",
                "intent": requirement[by_tier[tier].intent] if tier in by_tier else "either",
                "engagement": requirement[by_tier[tier].engagement]
                if tier in by_tier
                else "either",
            }
            for tier in TIERS
        ],
        "fit": {
            "target_weight": shown(fit.target_weight),
            "industries": ", ".join(fit.industries),
            "industry_weight": shown(fit.industry_weight),
            "regions": ", ".join(fit.regions),
            "region_weight": shown(fit.region_weight),
            "min_employees": shown(fit.min_employees),
            "employees_weight": shown(fit.employees_weight),
            "min_revenue": shown(fit.min_revenue),
            "revenue_weight": shown(fit.revenue_weight),
        },
        "signals": {
            "intent_days": shown(signals.intent_days),
            "intent_min_points": shown(signals.intent_min_points),
            "engagement_days": shown(signals.engagement_days),
            "engagement_min_points": shown(signals.engagement_min_points),
        },
    }


# ---- stages, stage rules and surge --------------------------------------------------------


class StageRowSchema(FormSchema):
    key = fields.String(
        required=True,
        validate=[
            validate.Length(1, 30, error=N_("At most 30 characters.")),
            validate.Regexp(
                SLUG, error=N_("Lower-case letters, digits and _, starting with a letter.")
            ),
        ],
        error_messages=field_messages(),
    )
    name = text(N_("1 to 40 characters."), high=40, required=True)


class StageRulesSchema(FormSchema):
    """Where the rules move accounts and contacts; empty: that rule moves nobody."""

    aware = fields.String(load_default=None)
    engaged = fields.String(load_default=None)
    engaged_contact_score = number(N_("At least 0."), low=0)
    engaged_account_score = number(N_("From 0 to 100."), low=0, high=100)
    mqa = fields.String(load_default=None)


class SurgeSchema(FormSchema):
    factor = number(N_("At least 1."), low=1, high=1000)
    min_points = number(N_("At least 0."), low=0)
    min_baseline = number(N_("At least 0."), low=0, default=Surge().min_baseline)


class StagesSchema(FormSchema):
    stages = rows(
        StageRowSchema,
        required=True,
        validate=validate.Length(
            2, MAX_STAGES, error=N_("From 2 to 20 stages: a funnel has a start and an end.")
        ),
    )
    stage_rules = fields.Nested(StageRulesSchema, required=True, error_messages=field_messages())
    surge = fields.Nested(SurgeSchema, required=True, error_messages=field_messages())

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _keys_unique_and_targets_kept(self, _data, original, **_kwargs):
        keys = column(original.get("stages"), "key")
        errors: dict = {}
        for index, key in enumerate(keys):
            if key and key in keys[:index]:
                errors.setdefault("stages", {})[index] = {
                    "key": [N_("Another stage has this key.")]
                }
        targets = original.get("stage_rules")
        for rule in ("aware", "engaged", "mqa"):
            target = str(targets.get(rule) or "").strip() if isinstance(targets, Mapping) else ""
            if target and target not in keys:
                errors.setdefault("stage_rules", {})[rule] = [
                    N_("Not one of the stages: pick another, or none.")
                ]
        if errors:
            raise ValidationError(errors)


def load_stages(data: Mapping) -> dict:
    """The ordered stages, the rules that move accounts and contacts along, the surge."""
    loaded = StagesSchema().load(data)
    return {
        "stages": tuple(Stage(**stage) for stage in loaded["stages"]),
        "stage_rules": StageRules(**loaded["stage_rules"]),
        "surge": Surge(**loaded["surge"]),
    }


def stages_form(model: Model) -> dict:
    rules, surge = model.stage_rules, model.surge
    return {
        "stages": [{"key": stage.key, "name": stage.name} for stage in model.stages],
        "stage_rules": {
            "aware": rules.aware or "",
            "engaged": rules.engaged or "",
            "engaged_contact_score": shown(rules.engaged_contact_score),
            "engaged_account_score": shown(rules.engaged_account_score),
            "mqa": rules.mqa or "",
        },
        "surge": {
            "factor": shown(surge.factor),
            "min_points": shown(surge.min_points),
            "min_baseline": shown(surge.min_baseline),
        },
    }
