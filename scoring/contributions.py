"""Which contacts make an account's score: scoring.model.account_score, the engine's
arithmetic per contact, over lead scores as of the account's last scoring (so the parts
add up to its score)."""

from dataclasses import dataclass

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from crm.directory import of_account
from models import Account, Contact, utcnow
from scoring.engine import lead_score_at
from scoring.model import Member, Model, account_score


@dataclass(frozen=True)
class Contribution:
    contact: Row  # id, name, role, seniority, score_mass, last_engaged_at
    lead_score: float
    weight: float
    points: float
    share: float  # of the score before recency


@dataclass(frozen=True)
class Contributions:
    rows: list[Contribution]  # the largest first, at most `shown`
    total: int  # contacts that contribute
    roles: list[str]  # committee roles engaged
    breadth: float
    breadth_share: float
    bonus: float
    recency: float
    half_life: float
    score: float


def account_contributions(
    session: Session, account: Account, model: Model, shown: int
) -> Contributions:
    at = account.scored_at or utcnow()
    people = session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.role,
            Contact.seniority,
            Contact.score_mass,
            Contact.last_engaged_at,
        ).where(*of_account(account), Contact.score_mass > 0)
    )
    by_id = {person.id: person for person in people}
    lead = {
        person.id: lead_score_at(person.score_mass, at, model.half_life_days)
        for person in by_id.values()
    }
    scored = account_score(
        (Member(p.id, p.role, p.seniority, lead[p.id], p.last_engaged_at) for p in by_id.values()),
        model.weights,
        at,
    )
    before_recency = sum(scored.contributions.values()) + scored.breadth
    ranked = sorted(scored.contributions.items(), key=lambda item: (-item[1], item[0]))
    return Contributions(
        rows=[
            Contribution(
                contact=by_id[contact_id],
                lead_score=lead[contact_id],
                weight=model.weights.of(by_id[contact_id].role, by_id[contact_id].seniority),
                points=points,
                share=points / before_recency if before_recency else 0.0,
            )
            for contact_id, points in ranked[:shown]
        ],
        total=len(ranked),
        roles=sorted(scored.engaged_roles),
        breadth=scored.breadth,
        breadth_share=scored.breadth / before_recency if before_recency else 0.0,
        bonus=model.weights.breadth_bonus,
        recency=scored.recency,
        half_life=model.weights.recency_half_life_days,
        score=scored.score,
    )
