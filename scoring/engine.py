"""Scoring over the database, set-based: a drained batch's interactions become ledger
entries (one INSERT), its contacts' lead scores one UPDATE, and its accounts' scores,
MQA, tiers, surges and stages one read and one UPDATE. The daily refresh decays and
re-checks every account the same way, in chunks; nothing rewrites the ledger but a
rescore of history.

Decay without rewriting history: an entry's weight is its points times
2^(days since EPOCH / half-life), fixed when it is written. A contact's `score_mass` is
the plain sum of its weights, and its lead score on any day is that sum times
2^(-days since EPOCH / half-life) -- one multiplication for every contact at once.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from models import (
    Account,
    AccountSnapshot,
    Contact,
    Interaction,
    ScoreEntry,
    ScoringModel,
    Workspace,
    utcnow,
)
from models.base import dialect_insert, insert_ignoring_conflicts
from scoring.model import (
    AccountFacts,
    Model,
    MqaRule,
    Touch,
    advance,
    day_of,
    decayed,
    mqa_status,
    score_touches,
    tier_of,
)
from scoring.stages import record_stage_moves

log = logging.getLogger(__name__)

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 5000  # contacts per step of a rescore of history
# The columns the account UPDATE and the snapshot INSERT send as PostgreSQL arrays.
ACCOUNT_ARRAYS = {
    "id": "bigint",
    "score": "float8",
    "scaled_score": "float8",
    "fit": "float8",
    "tier": "integer",
    "stage": "text",
    "mqa": "boolean",
    "mqa_since": "timestamptz",
    "surging": "boolean",
    "surge_ratio": "float8",
    "intent_points": "float8",
    "engagement_points": "float8",
}
SNAPSHOT_ARRAYS = {
    "account_id": "bigint",
    "score": "float8",
    "scaled_score": "float8",
    "tier": "integer",
    "stage": "text",
    "mqa": "boolean",
    "surging": "boolean",
    "engaged_contacts": "integer",
    "engagement_points": "float8",
}


# --- the model -------------------------------------------------------------------------


def load_model(session: Session, workspace_id: int) -> Model:
    """The workspace's model in force: its latest saved version, or the shipped default."""
    doc = session.scalar(
        select(ScoringModel.document)
        .where(ScoringModel.workspace_id == workspace_id)
        .order_by(ScoringModel.version.desc())
        .limit(1)
    )
    return Model() if doc is None else Model.from_document(doc)


def save_model(
    session: Session, workspace_id: int, model: Model, note: str, user_id: int | None = None
) -> ScoringModel:
    """Store a new version; returns it (the previous versions stay as history). Saves of
    one workspace queue on its row, so two at once never take the same number."""
    session.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())
    latest = session.scalar(
        select(func.max(ScoringModel.version)).where(ScoringModel.workspace_id == workspace_id)
    )
    row = ScoringModel(
        workspace_id=workspace_id,
        version=(latest or 0) + 1,
        document=model.to_document(),
        note=note[:200],
        created_by=user_id,
    )
    session.add(row)
    session.flush()
    return row


def workspace_zone(session: Session, workspace_id: int) -> ZoneInfo:
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return ZoneInfo(name or "Asia/Shanghai")


def weight_of(points: float, occurred_at: datetime, half_life_days: float | None) -> float:
    if not half_life_days:
        return points
    return points * 2 ** ((occurred_at - EPOCH).total_seconds() / 86400 / half_life_days)


def decay_factor(now: datetime, half_life_days: float | None) -> float:
    """What turns a score mass into the lead score as of `now`."""
    if not half_life_days:
        return 1.0
    return 2 ** (-(now - EPOCH).total_seconds() / 86400 / half_life_days)


def lead_score_at(mass: float, now: datetime, half_life_days: float | None) -> float:
    """A contact's lead score today from its score mass (contacts.lead_score is the same
    as of contacts.scored_at)."""
    return max(mass, 0.0) * decay_factor(now, half_life_days)


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerAlert:
    """Something the account's owner should hear of (sent by the caller, after scoring)."""

    account_id: int
    kind: str  # account_mqa / account_surge
    text: str
    dedupe_key: str


@dataclass(frozen=True)
class AccountEntry:
    """An account entered a stage or a tier in this run (for task rules, after scoring)."""

    account_id: int
    on: str  # "stage" / "tier"
    value: str  # the stage's key, or the tier as text ("1")


@dataclass
class ScoreResult:
    entries: int = 0
    contacts: int = 0
    accounts: int = 0
    stage_changes: int = 0
    alerts: list[OwnerAlert] = field(default_factory=list)
    entered: list[AccountEntry] = field(default_factory=list)

    def add(self, other: "ScoreResult") -> None:
        self.entries += other.entries
        self.contacts += other.contacts
        self.accounts += other.accounts
        self.stage_changes += other.stage_changes
        self.alerts += other.alerts
        self.entered += other.entered


@dataclass(frozen=True)
class MqaCheck:
    """One MQA rule against an account: what it asks, what the account has, and whether
    the rule is met (its score threshold and tiers included)."""

    rule: MqaRule
    roles: int  # distinct committee roles engaged in the window
    seniors: int  # engaged people at or above the senior level with enough minutes
    met: bool  # the entry bars
    held: bool  # the exit bars: an MQA stays one while a rule holds


@dataclass
class Scorer:
    """One workspace's model and clock for a run of scoring."""

    session: Session
    workspace_id: int
    model: Model
    zone: ZoneInfo
    now: datetime

    @classmethod
    def load(cls, session: Session, workspace_id: int, now: datetime | None = None) -> "Scorer":
        return cls(
            session,
            workspace_id,
            load_model(session, workspace_id),
            workspace_zone(session, workspace_id),
            now or utcnow(),
        )

    # --- a batch ---------------------------------------------------------------------

    def score_events(self, event_ids: Sequence[int]) -> ScoreResult:
        """Score the interactions a drained batch's inbound events produced."""
        if not event_ids:
            return ScoreResult()
        rows = self.session.execute(
            _interaction_columns().where(
                Interaction.source_event_id.in_(event_ids),
                Interaction.workspace_id == self.workspace_id,
            )
        ).all()
        return self.score_interactions(rows)

    def score_interaction_ids(self, interaction_ids: Sequence[int]) -> ScoreResult:
        """Score these recorded interactions (touchpoints from outside the inbox, tests)."""
        if not interaction_ids:
            return ScoreResult()
        rows = self.session.execute(
            _interaction_columns().where(
                Interaction.id.in_(interaction_ids),
                Interaction.workspace_id == self.workspace_id,
            )
        ).all()
        return self.score_interactions(rows)

    def score_interactions(self, rows: Sequence) -> ScoreResult:
        """Ledger entries for these interactions (caps counted against the ledger), then
        the scores of the contacts and accounts they belong to."""
        result = ScoreResult()
        if not rows:
            return result
        by_contact: dict[int, list[Touch]] = defaultdict(list)
        for row in rows:
            by_contact[row.contact_id].append(
                Touch(row.id, row.kind, row.properties or {}, row.occurred_at, row.minutes)
            )
        earliest = min(row.occurred_at for row in rows)
        prior = self._prior(by_contact.keys(), earliest)
        entries = []
        minutes = {row.id: row.minutes for row in rows}
        for contact_id, touches in by_contact.items():
            for hit in score_touches(self.model.rules, touches, prior.get(contact_id), self.zone):
                rule = self.model.rule(hit.rule_key)
                entries.append(
                    {
                        "workspace_id": self.workspace_id,
                        "contact_id": contact_id,
                        "interaction_id": hit.interaction_id,
                        "rule_key": hit.rule_key,
                        "points": hit.points,
                        "weight": weight_of(hit.points, hit.occurred_at, self.model.half_life_days),
                        "minutes": minutes[hit.interaction_id],
                        "signal": rule.signal if rule else None,
                        "occurred_at": hit.occurred_at,
                    }
                )
        if entries:  # the count is of rows inserted: a replay's entries are already there
            dialect = self.session.get_bind().dialect.name
            inserted = self.session.execute(
                insert_ignoring_conflicts(dialect, ScoreEntry.__table__).returning(ScoreEntry.id),
                entries,
            )
            result.entries = len(inserted.all())
        result.add(self.refresh_contacts(list(by_contact)))
        return result

    def _prior(self, contact_ids: Iterable[int], earliest: datetime) -> dict[int, dict]:
        """What the ledger already holds toward each capped rule: {contact: {(rule, day or
        "ever" or "points"): n}}. Two queries for the whole batch."""
        capped = [r for r in self.model.rules if r.per_day or r.per_contact or r.max_points]
        if not capped:
            return {}
        ids = list(contact_ids)
        prior: dict[int, dict] = defaultdict(lambda: defaultdict(float))
        lifetime = [r.key for r in capped if r.per_contact or r.max_points]
        if lifetime:
            for contact_id, key, hits, points in self.session.execute(
                select(
                    ScoreEntry.contact_id,
                    ScoreEntry.rule_key,
                    func.count(),
                    func.sum(ScoreEntry.points),
                )
                .where(ScoreEntry.contact_id.in_(ids), ScoreEntry.rule_key.in_(lifetime))
                .group_by(ScoreEntry.contact_id, ScoreEntry.rule_key)
            ):
                prior[contact_id][(key, "ever")] = hits
                prior[contact_id][(key, "points")] = points or 0.0
        daily = [r.key for r in capped if r.per_day]
        if daily:
            since = earliest - timedelta(days=1)  # the batch's first local day, whole
            for contact_id, key, occurred_at in self.session.execute(
                select(ScoreEntry.contact_id, ScoreEntry.rule_key, ScoreEntry.occurred_at).where(
                    ScoreEntry.contact_id.in_(ids),
                    ScoreEntry.rule_key.in_(daily),
                    ScoreEntry.occurred_at >= since,
                )
            ):
                prior[contact_id][(key, day_of(occurred_at, self.zone))] += 1
        return prior

    # --- contacts --------------------------------------------------------------------

    def refresh_contacts(self, contact_ids: list[int]) -> ScoreResult:
        """Lead scores summed from the ledger (one UPDATE ... FROM), contact stages, then
        their accounts."""
        result = ScoreResult(contacts=len(contact_ids))
        if not contact_ids:
            return result
        _lock_in_order(self.session, Contact, self.workspace_id, contact_ids)
        before = {
            row.id: row
            for row in self.session.execute(
                select(
                    Contact.id,
                    Contact.lead_score,
                    Contact.score_mass,
                    Contact.stage,
                    Contact.account_id,
                ).where(Contact.id.in_(contact_ids))
            )
        }
        sums = (
            select(
                ScoreEntry.contact_id,
                func.sum(ScoreEntry.weight).label("mass"),
                func.max(case((ScoreEntry.points > 0, ScoreEntry.occurred_at))).label("engaged"),
            )
            .where(ScoreEntry.contact_id.in_(contact_ids))
            .group_by(ScoreEntry.contact_id)
            .subquery()
        )
        factor = decay_factor(self.now, self.model.half_life_days)
        after = dict(
            self.session.execute(
                update(Contact)
                .where(Contact.id == sums.c.contact_id)
                .values(
                    score_mass=sums.c.mass,
                    lead_score=case((sums.c.mass > 0, sums.c.mass * factor), else_=0.0),
                    last_engaged_at=sums.c.engaged,
                    scored_at=self.now,
                )
                .returning(Contact.id, Contact.lead_score)
                .execution_options(synchronize_session=False)
            ).all()
        )
        emptied = [i for i, row in before.items() if i not in after and row.score_mass]
        if emptied:  # their entries are gone (a rescore): back to zero
            self.session.execute(
                update(Contact)
                .where(Contact.id.in_(emptied))
                .values(score_mass=0.0, lead_score=0.0, last_engaged_at=None, scored_at=self.now)
                .execution_options(synchronize_session=False)
            )
        rules, stages = self.model.stage_rules, self.model.stages
        threshold = rules.engaged_contact_score
        moves = []
        for contact_id, lead in after.items():
            row = before[contact_id]
            judgement = _Judgement(row.stage)
            if row.stage is None:
                judgement.advance(stages, rules.aware, "first interaction")
            if (row.lead_score or 0) < threshold <= lead:
                judgement.advance(stages, rules.engaged, f"lead score {lead:.0f} ≥ {threshold:g}")
            moves += [("contact", contact_id, *step) for step in judgement.steps]
        result.stage_changes += record_stage_moves(
            self.session, self.workspace_id, Contact, moves, self.now
        )
        accounts = sorted({row.account_id for row in before.values() if row.account_id})
        result.add(self.refresh_accounts(accounts))
        return result

    # --- accounts --------------------------------------------------------------------

    def refresh_accounts(self, account_ids: list[int] | None) -> ScoreResult:
        """Score, fit, tier, MQA, surge and stage of these accounts (None: all of the
        workspace's): one aggregate read of their contacts' ledger windows, one UPDATE,
        their stage moves and today's snapshots."""
        if account_ids is not None and not account_ids:
            return ScoreResult()
        if account_ids is not None:
            # Locked before the aggregate is read: a drain of another lane scoring the same
            # account waits for this one's commit, then reads its ledger (no lost update).
            _lock_in_order(self.session, Account, self.workspace_id, account_ids)
        scope = (
            Account.workspace_id == self.workspace_id
            if account_ids is None
            else Account.id.in_(account_ids)
        )
        accounts = self.session.execute(
            select(
                Account.id,
                Account.name,
                Account.is_target,
                Account.industry,
                Account.region,
                Account.employees,
                Account.annual_revenue,
                Account.acv,
                Account.stage,
                Account.tier,
                Account.score,
                Account.mqa,
                Account.mqa_since,
                Account.surging,
            ).where(scope, Account.workspace_id == self.workspace_id)
        ).all()
        result = ScoreResult(accounts=len(accounts))
        engagement = self._engagement(account_ids)
        updates, moves, snapshots = [], [], []
        for account in accounts:
            change = self._judge(account, engagement.get(account.id))
            updates.append(change.values)
            moves += [("account", account.id, *step) for step in change.steps]
            result.alerts += change.alerts
            result.entered += [
                AccountEntry(account.id, "stage", to) for _from, to, _reason in change.steps
            ]
            if change.values["tier"] is not None and change.values["tier"] != account.tier:
                result.entered.append(AccountEntry(account.id, "tier", str(change.values["tier"])))
            snapshots.append(change.snapshot)
        self._write_accounts(updates)
        result.stage_changes += record_stage_moves(
            self.session, self.workspace_id, Account, moves, self.now, set_columns=False
        )
        self._snapshot(snapshots)
        return result

    def mqa_checks(self, account) -> list["MqaCheck"]:
        """Why an account is an MQA or not yet: each of the model's MQA rules against what the
        account has in the rule's window (engaged committee roles, engaged seniors with
        enough minutes), from the aggregate the scoring itself reads."""
        row = self._engagement([account.id]).get(account.id)
        scaled = self.model.scale.of(account.score)
        checks = []
        for n, rule in enumerate(self.model.mqa_rules):
            roles = getattr(row, f"mqa_roles_{n}") if row else 0
            seniors = getattr(row, f"mqa_seniors_{n}") if row else 0
            checks.append(
                MqaCheck(
                    rule,
                    roles,
                    seniors,
                    rule.met_counts(roles, seniors, scaled, account.tier),
                    rule.held_counts(roles, seniors, scaled, account.tier),
                )
            )
        return checks

    def _engagement(self, account_ids: list[int] | None) -> dict:
        """One row per account, aggregated in SQL: the weighted sum of its contacts' lead
        scores, its engaged roles, its latest engagement, its ledger sums over the surge,
        intent and engagement windows, and per MQA rule its engaged roles and seniors.
        The same arithmetic as scoring.model.account_score, which explains it per contact."""
        m, now = self.model, self.now
        week = now - timedelta(days=7)
        baseline = now - timedelta(days=35)
        intent = now - timedelta(days=m.signals.intent_days)
        engagement = now - timedelta(days=m.signals.engagement_days)
        windows = sorted({rule.window_days for rule in m.mqa_rules})
        since = min([baseline, intent, engagement] + [now - timedelta(days=d) for d in windows])
        at, points = ScoreEntry.occurred_at, ScoreEntry.points

        def total(condition, value=points):
            return func.coalesce(func.sum(case((condition, value), else_=0.0)), 0.0)

        factor = decay_factor(now, m.half_life_days)
        lead = case((Contact.score_mass > 0, Contact.score_mass * factor), else_=0.0)
        columns = [
            Contact.id,
            Contact.account_id,
            Contact.role,
            Contact.seniority,
            lead.label("lead"),
            Contact.last_engaged_at,
            total(at >= week).label("week"),
            total(and_(at >= baseline, at < week)).label("baseline"),
            total(and_(at >= intent, ScoreEntry.signal == "intent")).label("intent"),
            total(and_(at >= engagement, ScoreEntry.signal == "engagement")).label("engagement"),
        ]
        for days in windows:
            start = now - timedelta(days=days)
            columns.append(total(at >= start, ScoreEntry.minutes).label(f"minutes_{days}"))
            columns.append(total(and_(at >= start, points > 0), 1).label(f"active_{days}"))
        per_contact = (
            select(*columns)
            .outerjoin(
                ScoreEntry,
                and_(ScoreEntry.contact_id == Contact.id, ScoreEntry.occurred_at >= since),
            )
            .where(
                Contact.account_id.is_not(None)
                if account_ids is None
                else Contact.account_id.in_(account_ids),
                Contact.workspace_id == self.workspace_id,
                Contact.merged_into_id.is_(None),
            )
            .group_by(Contact.id)
            .subquery()
        )
        c = per_contact.c
        weights = m.weights
        role_weight = case(
            {role: weight for role, weight in weights.roles.items()},
            value=c.role,
            else_=weights.roles.get("other", 0.5),
        )
        seniority_weight = case(
            (c.seniority.is_(None), weights.seniorities.get("staff", 1.0)),
            *((c.seniority == key, weight) for key, weight in weights.seniorities.items()),
            else_=1.0,
        )
        engaged = c.lead > 0
        committee_role = and_(c.role.is_not(None), c.role != "other")
        aggregates = [
            c.account_id,
            func.sum(case((engaged, c.lead * role_weight * seniority_weight), else_=0.0)).label(
                "weighted"
            ),
            func.count(func.distinct(case((and_(engaged, committee_role), c.role)))).label("roles"),
            func.count(case((engaged, 1))).label("engaged_contacts"),
            func.max(case((engaged, c.last_engaged_at))).label("latest"),
            func.max(c.last_engaged_at).label("ever_engaged"),
            func.sum(c.week).label("week"),
            func.sum(c.baseline).label("baseline"),
            func.sum(c.intent).label("intent"),
            func.sum(c.engagement).label("engagement"),
        ]
        for n, rule in enumerate(m.mqa_rules):
            active = c[f"active_{rule.window_days}"] > 0
            senior = and_(
                active,
                c.seniority.in_(rule.senior_levels()),
                c[f"minutes_{rule.window_days}"] >= rule.senior_minutes,
            )
            aggregates.append(
                func.count(func.distinct(case((and_(active, committee_role), c.role)))).label(
                    f"mqa_roles_{n}"
                )
            )
            aggregates.append(func.count(case((senior, 1))).label(f"mqa_seniors_{n}"))
        rows = self.session.execute(select(*aggregates).group_by(c.account_id)).all()
        return {row.account_id: row for row in rows}

    def _judge(self, account, row) -> "_Judgement":
        """Everything about one account from its aggregate row (None: no contacts)."""
        m, now = self.model, self.now
        weighted = (row.weighted or 0.0) if row else 0.0
        roles = row.roles if row else 0
        latest = row.latest if row else None
        recency = 0.0
        if latest is not None:
            age = (now - latest).total_seconds() / 86400
            recency = decayed(1.0, age, m.weights.recency_half_life_days)
        score = round((weighted + m.weights.breadth_bonus * roles) * recency, 2)
        scaled = m.scale.of(score)
        week = row.week if row else 0.0
        baseline = row.baseline if row else 0.0
        surging, ratio = m.surge.check(week, baseline)
        intent_points = row.intent if row else 0.0
        engagement_points = row.engagement if row else 0.0
        facts = AccountFacts(
            is_target=bool(account.is_target),
            industry=account.industry,
            region=account.region,
            employees=account.employees,
            revenue=account.annual_revenue,
            acv=account.acv,
        )
        fit = m.fit.score(facts)
        facts = replace(
            facts,
            fit=fit,
            intent=intent_points >= m.signals.intent_min_points or surging,
            engaged=engagement_points >= m.signals.engagement_min_points,
        )
        tier = tier_of(m.tiers, facts)
        counts = [
            (getattr(row, f"mqa_roles_{n}"), getattr(row, f"mqa_seniors_{n}")) if row else (0, 0)
            for n in range(len(m.mqa_rules))
        ]
        mqa, met = mqa_status(m.mqa_rules, counts, scaled, tier, bool(account.mqa))
        judgement = _Judgement(stage=account.stage)
        stages, rules = m.stages, m.stage_rules
        # Rules act on crossings, so a person's move back sticks until the next crossing.
        first = stages[0].key
        if account.stage is None and account.is_target:
            judgement.advance(stages, first, "on the target-account list")
        # Aware at the first engagement (an account that had no score), not whenever a
        # person moved it back to the first stage.
        fresh = judgement.stage is None or not account.score
        if fresh and row is not None and row.ever_engaged:
            judgement.advance(stages, rules.aware, "first interaction")
        # The thresholds are on the 0-100 scale; the score before, read on today's scale.
        if m.scale.of(account.score) < rules.engaged_account_score <= scaled:
            judgement.advance(
                stages,
                rules.engaged,
                f"account score {scaled:.0f}/100 ≥ {rules.engaged_account_score:g}",
            )
        if met is not None and not account.mqa:
            judgement.advance(stages, rules.mqa, f"MQA rule: {met.name}")
            judgement.alerts.append(
                OwnerAlert(
                    account.id,
                    "account_mqa",
                    f"{_kind(account)}「{account.name}」达到 MQA（{met.name}），"
                    f"账户得分 {scaled:.0f}/100（{score:,.0f} 分），{roles} 个角色参与。",
                    f"mqa:{account.id}:{now.date().isoformat()}",
                )
            )
        # Stage and flag never disagree: an account at the MQA stage is an MQA. One that
        # no rule holds any more goes back to the engaged stage (later stages -- meeting,
        # opportunity -- are sales' and stay).
        if rules.mqa and judgement.stage == rules.mqa and not mqa:
            keys = [st.key for st in stages]
            at = keys.index(rules.mqa)
            back = rules.engaged if rules.engaged in keys[:at] else (keys[at - 1] if at else None)
            reason = (
                "MQA 退出：没有 MQA 规则仍然满足" if account.mqa else "MQA 退出：MQA 规则未满足"
            )
            judgement.retreat(back, reason)
        if surging and not account.surging:
            compared = (
                f"是近 4 周周均的 {ratio:g} 倍"
                if ratio is not None
                else "新活跃：此前 4 周几乎没有互动"
            )
            judgement.alerts.append(
                OwnerAlert(
                    account.id,
                    "account_surge",
                    f"{_kind(account)}「{account.name}」本周互动激增：{week:.0f} 分，{compared}。",
                    f"surge:{account.id}:{now.isocalendar().year}-{now.isocalendar().week}",
                )
            )
        judgement.values = {
            "id": account.id,
            "score": score,
            "scaled_score": scaled,
            "fit": fit,
            "tier": tier,
            "stage": judgement.stage,
            "mqa": mqa,
            "mqa_since": (account.mqa_since or now) if mqa else None,
            "surging": surging,
            "surge_ratio": ratio,
            "intent_points": round(intent_points, 2),
            "engagement_points": round(engagement_points, 2),
        }
        judgement.snapshot = {
            "account_id": account.id,
            "score": score,
            "scaled_score": scaled,
            "tier": tier,
            "stage": judgement.stage,
            "mqa": mqa,
            "surging": surging,
            "engaged_contacts": row.engaged_contacts if row else 0,
            "engagement_points": round(engagement_points, 2),
        }
        return judgement

    def _write_accounts(self, rows: list[dict]) -> None:
        """The judged accounts in one statement: on PostgreSQL an UPDATE ... FROM unnest()
        of one array per column; elsewhere an executemany."""
        if not rows:
            return
        if self.session.get_bind().dialect.name != "postgresql":
            for row in rows:
                row["scored_at"] = self.now
            self.session.execute(update(Account), rows)
            return
        arrays = {name: [row[name] for row in rows] for name in ACCOUNT_ARRAYS}
        self.session.execute(
            text(
                "UPDATE accounts SET "
                + ", ".join(f"{name} = v.{name}" for name in ACCOUNT_ARRAYS if name != "id")
                + ", scored_at = :now FROM (SELECT "
                + ", ".join(
                    f"unnest(CAST(:{name} AS {kind}[])) AS {name}"
                    for name, kind in ACCOUNT_ARRAYS.items()
                )
                + ") AS v WHERE accounts.id = v.id"
            ),
            {**arrays, "now": self.now},
        )

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def _snapshot(self, rows: list[dict]) -> None:
        """Today's snapshot of each account, overwritten as the day goes on."""
        if not rows:
            return
        columns = tuple(name for name in SNAPSHOT_ARRAYS if name != "account_id")
        if self.session.get_bind().dialect.name == "postgresql":
            arrays = {name: [row[name] for row in rows] for name in SNAPSHOT_ARRAYS}
            self.session.execute(
                text(
                    "INSERT INTO account_snapshots (workspace_id, day, "
                    + ", ".join(SNAPSHOT_ARRAYS)
                    + ") SELECT :ws, :day, "
                    + ", ".join(
                        f"unnest(CAST(:{name} AS {kind}[]))"
                        for name, kind in SNAPSHOT_ARRAYS.items()
                    )
                    + " ON CONFLICT (account_id, day) DO UPDATE SET "
                    + ", ".join(f"{name} = excluded.{name}" for name in columns)
                ),
                {**arrays, "ws": self.workspace_id, "day": self.today},
            )
            return
        stmt = dialect_insert(self.session.get_bind().dialect.name, AccountSnapshot.__table__)
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["account_id", "day"],
                set_={name: stmt.excluded[name] for name in columns},
            ),
            [{**row, "workspace_id": self.workspace_id, "day": self.today} for row in rows],
        )

    # --- the whole workspace ---------------------------------------------------------

    def refresh_workspace(self) -> ScoreResult:
        """The daily pass: every account re-judged in chunks (decay, surges, tiers, MQA),
        with today's snapshots. Contacts are not rewritten: their decay is one factor."""
        return self._refresh_all_accounts()

    def recompute(self) -> ScoreResult:
        """Every lead score summed again from the ledger, then every account: what repairs
        scores if anything ever drifted from the ledger. Rows already right are not
        rewritten."""
        sums = (
            select(
                ScoreEntry.contact_id,
                func.sum(ScoreEntry.weight).label("mass"),
                func.max(case((ScoreEntry.points > 0, ScoreEntry.occurred_at))).label("engaged"),
            )
            .where(ScoreEntry.workspace_id == self.workspace_id)
            .group_by(ScoreEntry.contact_id)
            .subquery()
        )
        factor = decay_factor(self.now, self.model.half_life_days)
        self.session.execute(
            update(Contact)
            .where(
                Contact.id == sums.c.contact_id,
                or_(
                    Contact.score_mass != sums.c.mass,
                    Contact.last_engaged_at.is_distinct_from(sums.c.engaged),
                ),
            )
            .values(
                score_mass=sums.c.mass,
                lead_score=case((sums.c.mass > 0, sums.c.mass * factor), else_=0.0),
                last_engaged_at=sums.c.engaged,
                scored_at=self.now,
            )
            .execution_options(synchronize_session=False)
        )
        has_entries = select(ScoreEntry.id).where(ScoreEntry.contact_id == Contact.id).exists()
        self.session.execute(
            update(Contact)
            .where(
                Contact.workspace_id == self.workspace_id,
                Contact.score_mass != 0,
                ~has_entries,
            )
            .values(score_mass=0.0, lead_score=0.0, last_engaged_at=None, scored_at=self.now)
            .execution_options(synchronize_session=False)
        )
        return self._refresh_all_accounts()

    def _refresh_all_accounts(self) -> ScoreResult:
        """Every account in one pass: one aggregate over the workspace's ledger window
        costs far less than the same query per chunk of accounts."""
        return self.refresh_accounts(None)

    def rescore_history(self) -> ScoreResult:
        """Rebuild the ledger from every interaction under the model in force (after its
        rules or half-life changed), then refresh every account."""
        contacts = self.session.scalars(
            select(Contact.id)
            .where(Contact.workspace_id == self.workspace_id, Contact.merged_into_id.is_(None))
            .order_by(Contact.id)
        )
        result = self.rescore_contacts(list(contacts))
        result.add(self.refresh_workspace())
        return result

    def rescore_contacts(self, contact_ids: list[int]) -> ScoreResult:
        """Rebuild these contacts' ledger entries from their interactions, chunk by chunk,
        with their lead scores and their accounts."""
        result = ScoreResult()
        for start in range(0, len(contact_ids), CHUNK):
            chunk = contact_ids[start : start + CHUNK]
            self.session.execute(delete(ScoreEntry).where(ScoreEntry.contact_id.in_(chunk)))
            rows = self.session.execute(
                _interaction_columns().where(Interaction.contact_id.in_(chunk))
            ).all()
            result.add(self.score_interactions(rows))
            untouched = sorted(set(chunk) - {row.contact_id for row in rows})
            result.add(self.refresh_contacts(untouched))  # no interactions left: back to zero
        return result


@dataclass
class _Judgement:
    stage: str | None
    steps: list[tuple[str | None, str, str]] = field(default_factory=list)  # from, to, why
    alerts: list[OwnerAlert] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)

    def advance(self, stages, candidate: str | None, reason: str) -> None:
        """Move on if the rule may; each step is recorded, so the history has no gaps."""
        if advance(stages, self.stage, candidate):
            self.steps.append((self.stage, candidate, reason))
            self.stage = candidate

    def retreat(self, to: str | None, reason: str) -> None:
        """The one backward move a rule makes (an MQA's exit), recorded like the others."""
        if to != self.stage:
            self.steps.append((self.stage, to, reason))
            self.stage = to


def _lock_in_order(session: Session, model, workspace_id: int, ids: Iterable[int]) -> None:
    """Row locks on these contacts or accounts, taken in id order: drains of two lanes
    touching the same rows queue up instead of deadlocking (a no-op on SQLite)."""
    session.execute(
        select(model.id)
        .where(model.workspace_id == workspace_id, model.id.in_(sorted(set(ids))))
        .order_by(model.id)
        # FOR NO KEY UPDATE: a row another transaction references in a new row (an
        # interaction naming the account, a tag on the contact) takes FOR KEY SHARE, which
        # this does not wait for; FOR UPDATE would deadlock two lanes every time.
        .with_for_update(key_share=True)
    )


def _kind(account) -> str:
    return "目标客户" if account.is_target else "客户"


def _interaction_columns():
    return select(
        Interaction.id,
        Interaction.contact_id,
        Interaction.kind,
        Interaction.properties,
        Interaction.engagement_minutes.label("minutes"),
        Interaction.occurred_at,
    )


def refresh_accounts(session: Session, workspace_id: int, account_ids: list[int]) -> None:
    """Judge these accounts now (fit, tier, stage): an import's hook, in its transaction."""
    Scorer.load(session, workspace_id).refresh_accounts(account_ids)
