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

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.orm import Session

from models import (
    Account,
    AccountSnapshot,
    Contact,
    Interaction,
    ScoreEntry,
    ScoringModel,
    StageChange,
    Workspace,
    utcnow,
)
from models.base import dialect_insert, insert_ignoring_conflicts
from scoring.model import (
    AccountFacts,
    Engagement,
    Member,
    Model,
    Touch,
    account_score,
    advance,
    day_of,
    score_touches,
    tier_of,
)

log = logging.getLogger(__name__)

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 2000  # accounts or contacts per statement in the whole-workspace passes


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
    """Store a new version; returns it (the previous versions stay as history)."""
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


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerAlert:
    """Something the account's owner should hear of (sent by the caller, after scoring)."""

    account_id: int
    kind: str  # account_mqa / account_surge
    text: str
    dedupe_key: str


@dataclass
class ScoreResult:
    entries: int = 0
    contacts: int = 0
    accounts: int = 0
    stage_changes: int = 0
    alerts: list[OwnerAlert] = field(default_factory=list)

    def add(self, other: "ScoreResult") -> None:
        self.entries += other.entries
        self.contacts += other.contacts
        self.accounts += other.accounts
        self.stage_changes += other.stage_changes
        self.alerts += other.alerts


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
        if entries:
            dialect = self.session.get_bind().dialect.name
            self.session.execute(insert_ignoring_conflicts(dialect, ScoreEntry.__table__), entries)
        result.entries = len(entries)
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
        """Lead scores from the ledger (one UPDATE), contact stages, then their accounts."""
        result = ScoreResult(contacts=len(contact_ids))
        if not contact_ids:
            return result
        mass = (
            select(func.coalesce(func.sum(ScoreEntry.weight), 0.0))
            .where(ScoreEntry.contact_id == Contact.id)
            .scalar_subquery()
        )
        engaged = (
            select(func.max(ScoreEntry.occurred_at))
            .where(ScoreEntry.contact_id == Contact.id, ScoreEntry.points > 0)
            .scalar_subquery()
        )
        before = dict(
            self.session.execute(
                select(Contact.id, Contact.lead_score).where(Contact.id.in_(contact_ids))
            ).all()
        )
        factor = decay_factor(self.now, self.model.half_life_days)
        self.session.execute(
            update(Contact)
            .where(Contact.id.in_(contact_ids))
            .values(
                score_mass=mass,
                lead_score=case((mass > 0, mass * factor), else_=0.0),
                last_engaged_at=engaged,
                scored_at=self.now,
            )
            .execution_options(synchronize_session=False)
        )
        rows = self.session.execute(
            select(Contact.id, Contact.stage, Contact.lead_score, Contact.account_id).where(
                Contact.id.in_(contact_ids)
            )
        ).all()
        rules = self.model.stage_rules
        moves = []
        for row in rows:
            judgement = _Judgement(row.stage)
            if row.stage is None:
                judgement.advance(self.model.stages, rules.aware, "first interaction")
            threshold = rules.engaged_contact_score
            if (before.get(row.id) or 0) < threshold <= row.lead_score:
                judgement.advance(
                    self.model.stages,
                    rules.engaged,
                    f"lead score {row.lead_score:.0f} ≥ {threshold:g}",
                )
            if judgement.stage != row.stage:
                moves.append(("contact", row.id, row.stage, judgement.stage, judgement.reason))
        result.stage_changes += self._move(Contact, moves)
        accounts = sorted({row.account_id for row in rows if row.account_id})
        result.add(self.refresh_accounts(accounts))
        return result

    # --- accounts --------------------------------------------------------------------

    def refresh_accounts(self, account_ids: list[int]) -> ScoreResult:
        """Score, fit, tier, MQA, surge and stage of these accounts: one read of their
        contacts' ledger windows, one UPDATE, their stage moves and today's snapshots."""
        result = ScoreResult(accounts=len(account_ids))
        if not account_ids:
            return result
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
                Account.score,
                Account.mqa,
                Account.mqa_since,
                Account.surging,
            ).where(Account.id.in_(account_ids), Account.workspace_id == self.workspace_id)
        ).all()
        members = self._members(account_ids)
        updates, moves, snapshots = [], [], []
        for account in accounts:
            change = self._judge(account, members.get(account.id, []))
            updates.append(change.values)
            if change.stage != account.stage:
                moves.append(("account", account.id, account.stage, change.stage, change.reason))
            result.alerts += change.alerts
            snapshots.append(change.snapshot)
        if updates:
            self.session.execute(update(Account), updates)
        result.stage_changes += self._move(Account, moves, set_columns=False)
        self._snapshot(snapshots)
        return result

    def _members(self, account_ids: list[int]) -> dict[int, list]:
        """Each account's contacts with their ledger sums over the windows that matter."""
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

        columns = [
            Contact.id,
            Contact.account_id,
            Contact.role,
            Contact.seniority,
            Contact.lead_score,
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
        rows = self.session.execute(
            select(*columns)
            .outerjoin(
                ScoreEntry,
                and_(ScoreEntry.contact_id == Contact.id, ScoreEntry.occurred_at >= since),
            )
            .where(Contact.account_id.in_(account_ids), Contact.merged_into_id.is_(None))
            .group_by(Contact.id)
        ).all()
        members: dict[int, list] = defaultdict(list)
        for row in rows:
            members[row.account_id].append(row)
        return members

    def _judge(self, account, members: list) -> "_Judgement":
        m, now = self.model, self.now
        scored = account_score(
            (Member(r.id, r.role, r.seniority, r.lead_score, r.last_engaged_at) for r in members),
            m.weights,
            now,
        )
        week = sum(r.week for r in members)
        surging, ratio = m.surge.check(week, sum(r.baseline for r in members))
        intent_points = sum(r.intent for r in members)
        engagement_points = sum(r.engagement for r in members)
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
        met = next(
            (
                rule
                for rule in m.mqa_rules
                if rule.met(
                    (
                        Engagement(r.role, r.seniority, getattr(r, f"minutes_{rule.window_days}"))
                        for r in members
                        if getattr(r, f"active_{rule.window_days}")
                    ),
                    scored.score,
                    tier,
                )
            ),
            None,
        )
        judgement = _Judgement(stage=account.stage)
        stages, rules = m.stages, m.stage_rules
        # Rules act on crossings, so a person's move back sticks until the next crossing.
        first = stages[0].key
        if account.stage is None and account.is_target:
            judgement.advance(stages, first, "on the target-account list")
        if judgement.stage in (None, first) and any(r.last_engaged_at for r in members):
            judgement.advance(stages, rules.aware, "first interaction")
        if (account.score or 0) < rules.engaged_account_score <= scored.score:
            judgement.advance(
                stages,
                rules.engaged,
                f"account score {scored.score:.0f} ≥ {rules.engaged_account_score:g}",
            )
        if met is not None and not account.mqa:
            judgement.advance(stages, rules.mqa, f"MQA rule: {met.name}")
            judgement.alerts.append(
                OwnerAlert(
                    account.id,
                    "account_mqa",
                    f"目标客户「{account.name}」达到 MQA（{met.name}），"
                    f"账户得分 {scored.score:.0f}，{len(scored.engaged_roles)} 个角色参与。",
                    f"mqa:{account.id}:{now.date().isoformat()}",
                )
            )
        if surging and not account.surging:
            judgement.alerts.append(
                OwnerAlert(
                    account.id,
                    "account_surge",
                    f"客户「{account.name}」本周互动激增：{week:.0f} 分，"
                    f"是近 4 周周均的 {ratio:g} 倍。",
                    f"surge:{account.id}:{now.isocalendar().year}-{now.isocalendar().week}",
                )
            )
        mqa = met is not None
        judgement.values = {
            "id": account.id,
            "score": scored.score,
            "fit": fit,
            "tier": tier,
            "stage": judgement.stage,
            "mqa": mqa,
            "mqa_since": (account.mqa_since or now) if mqa else None,
            "surging": surging,
            "surge_ratio": ratio,
            "intent_points": round(intent_points, 2),
            "engagement_points": round(engagement_points, 2),
            "scored_at": now,
        }
        judgement.snapshot = {
            "workspace_id": self.workspace_id,
            "account_id": account.id,
            "day": self.today,
            "score": scored.score,
            "tier": tier,
            "stage": judgement.stage,
            "mqa": mqa,
            "surging": surging,
            "engaged_contacts": len(scored.contributions),
        }
        return judgement

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def _move(self, model, moves: list[tuple], *, set_columns: bool = True) -> int:
        """Record stage moves (and, for contacts, set the column; accounts set it in their
        own UPDATE)."""
        if not moves:
            return 0
        if set_columns:
            self.session.execute(
                update(model),
                [{"id": subject_id, "stage": to} for _, subject_id, _, to, _ in moves],
            )
        self.session.execute(
            StageChange.__table__.insert(),
            [
                {
                    "workspace_id": self.workspace_id,
                    "subject": subject,
                    "subject_id": subject_id,
                    "from_stage": before,
                    "to_stage": to,
                    "reason": reason,
                    "changed_at": self.now,
                }
                for subject, subject_id, before, to, reason in moves
            ],
        )
        return len(moves)

    def _snapshot(self, rows: list[dict]) -> None:
        """Today's snapshot of each account, overwritten as the day goes on."""
        if not rows:
            return
        stmt = dialect_insert(self.session.get_bind().dialect.name, AccountSnapshot.__table__)
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["account_id", "day"],
                set_={
                    name: stmt.excluded[name]
                    for name in ("score", "tier", "stage", "mqa", "surging", "engaged_contacts")
                },
            ),
            rows,
        )

    # --- the whole workspace ---------------------------------------------------------

    def refresh_workspace(self) -> ScoreResult:
        """The daily pass: every lead score decayed to today (one UPDATE), then every
        account re-judged in chunks (surges, tiers, MQA), with today's snapshots."""
        factor = decay_factor(self.now, self.model.half_life_days)
        self.session.execute(
            update(Contact)
            .where(Contact.workspace_id == self.workspace_id, Contact.score_mass != 0)
            .values(
                lead_score=case((Contact.score_mass > 0, Contact.score_mass * factor), else_=0.0),
                scored_at=self.now,
            )
            .execution_options(synchronize_session=False)
        )
        result = ScoreResult()
        for chunk in self._chunks(
            select(Account.id).where(Account.workspace_id == self.workspace_id)
        ):
            result.add(self.refresh_accounts(chunk))
        return result

    def rescore_history(self) -> ScoreResult:
        """Rebuild the ledger from every interaction under the model in force (after its
        rules or half-life changed), contact chunk by chunk, then refresh everything."""
        result = ScoreResult()
        contacts = select(Contact.id).where(
            Contact.workspace_id == self.workspace_id, Contact.merged_into_id.is_(None)
        )
        for chunk in self._chunks(contacts):
            self.session.execute(delete(ScoreEntry).where(ScoreEntry.contact_id.in_(chunk)))
            rows = self.session.execute(
                _interaction_columns().where(Interaction.contact_id.in_(chunk))
            ).all()
            scored = self.score_interactions(rows)
            result.entries += scored.entries
            untouched = sorted(set(chunk) - {row.contact_id for row in rows})
            self.refresh_contacts(untouched)  # no interactions left: back to zero
        result.add(self.refresh_workspace())
        return result

    def _chunks(self, ids_query) -> Iterable[list[int]]:
        ids = list(self.session.scalars(ids_query.order_by(*ids_query.selected_columns)))
        for start in range(0, len(ids), CHUNK):
            yield ids[start : start + CHUNK]


@dataclass
class _Judgement:
    stage: str | None
    reason: str | None = None
    alerts: list[OwnerAlert] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)

    def advance(self, stages, candidate: str | None, reason: str) -> None:
        if advance(stages, self.stage, candidate):
            self.stage, self.reason = candidate, reason


def _interaction_columns():
    return select(
        Interaction.id,
        Interaction.contact_id,
        Interaction.kind,
        Interaction.properties,
        Interaction.engagement_minutes.label("minutes"),
        Interaction.occurred_at,
    )


def set_stage(
    session: Session,
    subject: Account | Contact,
    stage: str,
    reason: str,
    user_id: int | None = None,
) -> bool:
    """A person's move, to any stage, forward or back; False if it is the stage already."""
    if subject.stage == stage:
        return False
    session.add(
        StageChange(
            workspace_id=subject.workspace_id,
            subject="account" if isinstance(subject, Account) else "contact",
            subject_id=subject.id,
            from_stage=subject.stage,
            to_stage=stage,
            reason=reason[:300],
            user_id=user_id,
        )
    )
    subject.stage = stage
    return True
