"""What a proposed scoring model would do to a workspace's accounts, judged for real inside
a savepoint that is rolled back: tier and MQA moves, the mean score, the biggest changes."""

from dataclasses import dataclass, field

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from models import Account, Contact, utcnow
from scoring.engine import Scorer, workspace_zone
from scoring.forms import TIERS
from scoring.model import Model

EXAMPLES = 10  # accounts a preview lists
PREVIEW_SAMPLE = 5000  # accounts a preview judges; a larger workspace is sampled evenly


@dataclass(frozen=True)
class AccountState:
    name: str
    tier: int | None
    mqa: bool
    score: float  # on the 0-100 scale, as people read it


@dataclass
class Impact:
    """What a proposed model does to the workspace's accounts."""

    accounts: int
    rescored: bool  # the ledger was rebuilt (rules or half-life changed)
    sampled_from: int | None = None  # the workspace's accounts, when only a sample was judged
    tier_up: int = 0
    tier_down: int = 0
    mqa_in: int = 0
    mqa_out: int = 0
    mean_before: float = 0.0
    mean_after: float = 0.0
    examples: list[tuple[AccountState, AccountState]] = field(default_factory=list)


def rescores(before: Model, after: Model) -> bool:
    """The ledger depends on the rules and the lead half-life: a change rebuilds it."""
    return before.rules != after.rules or before.half_life_days != after.half_life_days


def preview_impact(session: Session, workspace_id: int, current: Model, proposed: Model) -> Impact:
    """Score the workspace under `proposed` inside a savepoint, read the accounts' tier,
    MQA and score, and roll everything back. A workspace of more than PREVIEW_SAMPLE
    accounts is judged on an even sample of them, so the preview stays a request."""
    ids = list(
        session.scalars(
            select(Account.id).where(Account.workspace_id == workspace_id).order_by(Account.id)
        )
    )
    sample = None
    if len(ids) > PREVIEW_SAMPLE:
        step = len(ids) / PREVIEW_SAMPLE
        sample = [ids[int(n * step)] for n in range(PREVIEW_SAMPLE)]
    before = _account_states(session, workspace_id, sample)
    rescored = rescores(current, proposed)
    scorer = Scorer(
        session, workspace_id, proposed, workspace_zone(session, workspace_id), utcnow()
    )
    savepoint = session.begin_nested()
    try:
        if sample is None and rescored:
            scorer.rescore_history()
        elif sample is None:
            scorer.refresh_workspace()
        else:
            if rescored:
                contacts = session.scalars(
                    select(Contact.id).where(
                        Contact.workspace_id == workspace_id,
                        Contact.account_id.in_(sample),
                        Contact.merged_into_id.is_(None),
                    )
                )
                scorer.rescore_contacts(list(contacts))
            scorer.refresh_accounts(sample)
        after = _account_states(session, workspace_id, sample)
    finally:
        savepoint.rollback()
        session.rollback()  # the request's transaction too: no lock outlives the preview
    impact = _compare(before, after, rescored)
    impact.sampled_from = len(ids) if sample is not None else None
    return impact


def _account_states(
    session: Session, workspace_id: int, sample: list[int] | None
) -> dict[int, AccountState]:
    scope = Account.workspace_id == workspace_id
    rows = session.execute(
        select(Account.id, Account.name, Account.tier, Account.mqa, Account.scaled_score).where(
            scope if sample is None else and_(scope, Account.id.in_(sample))
        )
    )
    return {
        row.id: AccountState(row.name, row.tier, bool(row.mqa), row.scaled_score or 0.0)
        for row in rows
    }


def _compare(
    before: dict[int, AccountState], after: dict[int, AccountState], rescored: bool
) -> Impact:
    impact = Impact(accounts=len(before), rescored=rescored)
    changed = []
    for account_id, old in before.items():
        new = after.get(account_id, old)
        rank_old, rank_new = _tier_rank(old.tier), _tier_rank(new.tier)
        impact.tier_up += rank_new < rank_old
        impact.tier_down += rank_new > rank_old
        impact.mqa_in += new.mqa and not old.mqa
        impact.mqa_out += old.mqa and not new.mqa
        moved = old.tier != new.tier or old.mqa != new.mqa
        if moved or abs(new.score - old.score) >= 0.1:
            changed.append((old, new, (not moved, -abs(new.score - old.score), old.name)))
    if before:
        impact.mean_before = sum(s.score for s in before.values()) / len(before)
        impact.mean_after = sum(after.get(i, s).score for i, s in before.items()) / len(before)
    # Tier and MQA moves first, then the biggest score changes.
    changed.sort(key=lambda change: change[2])
    impact.examples = [(old, new) for old, new, _order in changed[:EXAMPLES]]
    return impact


def _tier_rank(tier: int | None) -> int:
    """Tier 1 ranks first; no tier ranks after tier 3."""
    return tier if tier is not None else len(TIERS) + 1
