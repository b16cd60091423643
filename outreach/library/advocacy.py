"""Advocacy: who brought readers and leads by sharing the library's content, staff
through their personal links and customers by forwarding what they read, in one ranking
(`leaderboard`, one statement). Readers are counted as the statistics count them: a
merged contact is the one it was merged into.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, distinct, func, null, select, union_all
from sqlalchemy.orm import Session, aliased

from models import Account, Contact, FormSubmission, PageView, Staff
from outreach.library.stats import kept_of, recorded_and_kept


class SharerKind:
    STAFF = "staff"
    CONTACT = "contact"


@dataclass(frozen=True)
class Advocate:
    """One sharer's reach in the window: staff (staff_id) or a customer contact."""

    staff_id: int | None
    contact_id: int | None
    name: str | None
    title: str | None  # a contact's
    account: str | None
    views: int  # views through their shares
    readers: int  # distinct people who read through them
    leads: int  # distinct people who became known through their shares or submitted a form
    accounts: int  # distinct accounts of the people reached

    @property
    def kind(self) -> str:
        return SharerKind.STAFF if self.staff_id is not None else SharerKind.CONTACT


def _shared_rows(model, workspace_id: int, since: datetime, when, *, view: bool):
    """One row per view or submission through a share: its sharer (staff, else the kept
    contact), the person reached, their account, and whether it makes a lead."""
    recorded, kept = recorded_and_kept()
    sharer_recorded = aliased(Contact)
    by_staff = model.sharer_staff_id.is_not(None)
    lead = model.new_lead.is_(True) if view else model.id.is_not(None)
    return (
        select(
            model.sharer_staff_id.label("staff_id"),
            case(
                (
                    ~by_staff,
                    func.coalesce(sharer_recorded.merged_into_id, model.sharer_contact_id),
                )
            ).label("contact_id"),
            (model.id if view else null()).label("view_id"),
            kept.id.label("person_id"),
            kept.account_id.label("account_id"),
            case((lead, kept.id)).label("lead_id"),
        )
        .select_from(model)
        .outerjoin(sharer_recorded, sharer_recorded.id == model.sharer_contact_id)
        .outerjoin(recorded, recorded.id == model.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .where(
            model.workspace_id == workspace_id,
            when >= since,
            (model.sharer_staff_id.is_not(None)) | (model.sharer_contact_id.is_not(None)),
        )
    )


def leaderboard(
    session: Session,
    workspace_id: int,
    since: datetime,
    *,
    kind: str | None = None,
    limit: int = 100,
) -> list[Advocate]:
    """Who brought readers and leads through their shares since `since`: staff and customer
    contacts in one ranking, most leads first, then most views. One statement."""
    shared = union_all(
        _shared_rows(PageView, workspace_id, since, PageView.started_at, view=True),
        _shared_rows(FormSubmission, workspace_id, since, FormSubmission.submitted_at, view=False),
    ).subquery()
    sharer = aliased(Contact)
    account = aliased(Account)
    views = func.count(shared.c.view_id)
    readers = func.count(distinct(case((shared.c.view_id.is_not(None), shared.c.person_id))))
    leads = func.count(distinct(shared.c.lead_id))
    query = (
        select(
            shared.c.staff_id,
            shared.c.contact_id,
            func.coalesce(Staff.name, sharer.name),
            sharer.title,
            account.name,
            views,
            readers,
            leads,
            func.count(distinct(shared.c.account_id)),
        )
        .outerjoin(Staff, Staff.id == shared.c.staff_id)
        .outerjoin(sharer, sharer.id == shared.c.contact_id)
        .outerjoin(account, account.id == sharer.account_id)
        .group_by(shared.c.staff_id, shared.c.contact_id, Staff.id, sharer.id, account.id)
        .order_by(leads.desc(), views.desc(), readers.desc())
        .limit(limit)
    )
    if kind == SharerKind.STAFF:
        query = query.where(shared.c.staff_id.is_not(None))
    elif kind == SharerKind.CONTACT:
        query = query.where(shared.c.staff_id.is_(None))
    return [Advocate(*row) for row in session.execute(query)]
