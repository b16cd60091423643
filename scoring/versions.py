"""The saved versions of a workspace's scoring model as its history reads them: who saved
each and why, the one in force, and one version's document to restore."""

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from models import ScoringModel, User


def versions_query(workspace_id: int) -> Select:
    """(version, note, created_at, user name or None), newest first."""
    return (
        select(ScoringModel.version, ScoringModel.note, ScoringModel.created_at, User.name)
        .outerjoin(User, User.id == ScoringModel.created_by)
        .where(ScoringModel.workspace_id == workspace_id)
        .order_by(ScoringModel.version.desc())
    )


def version_in_force(session: Session, workspace_id: int) -> Row | None:
    """The latest version as `versions_query` lists it, or None: the shipped model."""
    return session.execute(versions_query(workspace_id).limit(1)).first()


def version_document(session: Session, workspace_id: int, version: int) -> dict | None:
    return session.scalar(
        select(ScoringModel.document).where(
            ScoringModel.workspace_id == workspace_id, ScoringModel.version == version
        )
    )
