"""A workspace's own title synonyms (phrase -> role and seniority), as the dictionary tab
lists and adds them; crm.contacts.title_dictionary reads them for normalizing."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import TitleSynonym


def workspace_synonyms(session: Session, workspace_id: int) -> list[TitleSynonym]:
    """The workspace's synonyms, by phrase."""
    return list(
        session.scalars(
            select(TitleSynonym)
            .where(TitleSynonym.workspace_id == workspace_id)
            .order_by(TitleSynonym.phrase)
        )
    )


def phrase_taken(session: Session, workspace_id: int, phrase: str) -> bool:
    """Whether the dictionary has this phrase already, whatever its case."""
    taken = session.scalar(
        select(TitleSynonym.id).where(
            TitleSynonym.workspace_id == workspace_id,
            func.lower(TitleSynonym.phrase) == phrase.lower(),
        )
    )
    return bool(taken)
