"""A salesperson's relation with a WeCom customer: one per (corp, customer, staff member),
opened by an add, closed by a delete and kept as history."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import FollowRelation


def follow_relation(
    session: Session,
    *,
    workspace_id: int,
    channel_id: int,
    external_userid: str,
    staff_userid: str,
    contact_id: int,
    create: bool = True,
) -> FollowRelation | None:
    """A staff member's relation with a customer, made on first sight if `create`."""
    relation = session.scalars(
        select(FollowRelation).where(
            FollowRelation.channel_id == channel_id,
            FollowRelation.external_userid == external_userid,
            FollowRelation.staff_userid == staff_userid,
        )
    ).one_or_none()
    if relation is None and create:
        relation = FollowRelation(
            workspace_id=workspace_id,
            channel_id=channel_id,
            contact_id=contact_id,
            external_userid=external_userid,
            staff_userid=staff_userid,
        )
        session.add(relation)
    return relation
