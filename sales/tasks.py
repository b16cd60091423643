"""Tasks, notes and the account's sales timeline.

What a salesperson does (closes a task, writes a note, sends content from the sidebar) is
a touchpoint of the person it was for: it goes into the inbox like a reader's page view,
so the drain turns it into an interaction that scores and drives journeys.
"""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.timeline import record_account_event
from crm.touchpoints import IDENTITY_ORDER, store_web_touchpoint
from models import (
    Account,
    AccountEventKind,
    Contact,
    Identity,
    IdentityKind,
    ProgramOrder,
    SalesNote,
    Task,
    TaskSource,
    TaskStatus,
    User,
    utcnow,
)
from models.base import insert_ignoring_conflicts

TASK_DONE = "sales.task_done"
NOTE = "sales.note"
CHAT_SEND = "sales.chat_send"
PROGRAM_FOLLOW_UP_DAYS = 2  # the owner's task after a program ran is due this many days later


def create_task(
    session: Session,
    *,
    workspace_id: int,
    title: str,
    due_at: datetime,
    source: TaskSource = TaskSource.MANUAL,
    account_id: int | None = None,
    contact_id: int | None = None,
    assignee_id: int | None = None,
    detail: str | None = None,
    dedupe_key: str | None = None,
    created_by: int | None = None,
    now: datetime | None = None,
) -> Task | None:
    """A new open task; None when one with this dedupe key exists (asking twice is harmless).

    The caller has checked that the account, contact and assignee are the workspace's."""
    now = now or utcnow()
    task_id = session.execute(
        insert_ignoring_conflicts(session.get_bind().dialect.name, Task.__table__)
        .values(
            workspace_id=workspace_id,
            account_id=account_id,
            contact_id=contact_id,
            assignee_id=assignee_id,
            source=source,
            title=title[:200],
            detail=detail[:1000] if detail else None,
            due_at=due_at,
            status=TaskStatus.OPEN,
            dedupe_key=dedupe_key,
            created_by=created_by,
            created_at=now,
        )
        .returning(Task.id)
    ).scalar()
    if task_id is None:
        return None
    if account_id is not None:
        record_account_event(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            contact_id=contact_id,
            kind=AccountEventKind.TASK_CREATED,
            user_id=created_by,
            text=title,
            data={"task_id": task_id, "source": str(source)},
            now=now,
        )
    return session.get(Task, task_id)


def follow_up_program(
    session: Session,
    order: ProgramOrder,
    *,
    title: str,
    created_by: int | None = None,
    now: datetime | None = None,
) -> Task | None:
    """A program ran for an account: its owner follows it up (one task per order); None
    for an account without an owner."""
    now = now or utcnow()
    owner_id = session.scalar(
        select(Account.owner_id).where(
            Account.workspace_id == order.workspace_id, Account.id == order.account_id
        )
    )
    if owner_id is None:
        return None
    return create_task(
        session,
        workspace_id=order.workspace_id,
        title=title,
        due_at=now + timedelta(days=PROGRAM_FOLLOW_UP_DAYS),
        account_id=order.account_id,
        assignee_id=owner_id,
        dedupe_key=f"program-executed:{order.id}",
        created_by=created_by,
        now=now,
    )


def close_task(
    session: Session,
    task: Task,
    *,
    status: TaskStatus,
    outcome: str | None,
    user_id: int | None,
    lanes: int,
    now: datetime | None = None,
) -> bool:
    """Mark an open task done or skipped; a done task for a person is their touchpoint.
    False when it was closed already."""
    if task.status != TaskStatus.OPEN or status == TaskStatus.OPEN:
        return False
    now = now or utcnow()
    task.status, task.outcome, task.closed_at, task.closed_by = status, outcome, now, user_id
    if task.account_id is not None:
        record_account_event(
            session,
            workspace_id=task.workspace_id,
            account_id=task.account_id,
            contact_id=task.contact_id,
            kind=AccountEventKind.TASK_CLOSED,
            user_id=user_id,
            text=f"{task.title}: {outcome}" if outcome else task.title,
            data={"task_id": task.id, "status": str(status)},
            now=now,
        )
    if status == TaskStatus.DONE and task.contact_id is not None:
        record_sales_touch(
            session,
            task.workspace_id,
            task.contact_id,
            TASK_DONE,
            dedupe_key=f"task-done:{task.id}",
            properties={"task_id": task.id, "source": task.source, "user_id": user_id},
            lanes=lanes,
            now=now,
        )
    return True


def add_note(
    session: Session,
    *,
    workspace_id: int,
    text: str,
    author_id: int | None,
    lanes: int,
    account_id: int | None = None,
    contact_id: int | None = None,
    now: datetime | None = None,
) -> SalesNote:
    """A salesperson's note on a person (and their account) or an account alone."""
    now = now or utcnow()
    note = SalesNote(
        workspace_id=workspace_id,
        account_id=account_id,
        contact_id=contact_id,
        author_id=author_id,
        text=text[:2000],
        created_at=now,
    )
    session.add(note)
    session.flush()
    if account_id is not None:
        record_account_event(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            contact_id=contact_id,
            kind=AccountEventKind.NOTE,
            user_id=author_id,
            text=text,
            data={"note_id": note.id},
            now=now,
        )
    if contact_id is not None:
        record_sales_touch(
            session,
            workspace_id,
            contact_id,
            NOTE,
            dedupe_key=f"note:{note.id}",
            properties={"note_id": note.id, "user_id": author_id},
            lanes=lanes,
            now=now,
        )
    return note


def record_sales_touch(
    session: Session,
    workspace_id: int,
    contact_id: int,
    kind: str,
    *,
    dedupe_key: str,
    properties: dict,
    lanes: int,
    now: datetime | None = None,
) -> bool:
    """A salesperson's action on a person, into the inbox as that person's touchpoint (named
    by their strongest identity, so it lands in their lane); False for a person with no
    identity or when the inbox had it already."""
    now = now or utcnow()
    identity = person_identity(session, workspace_id, contact_id)
    if identity is None:
        return False
    payload = {
        "kind": kind,
        "occurred_at": now.isoformat(),
        "identity": identity,
        "properties": properties,
        "minutes": 0.0,
    }
    return store_web_touchpoint(
        session, workspace_id, identity.get("channel_id"), dedupe_key, payload, now, lanes
    )


def person_identity(session: Session, workspace_id: int, contact_id: int) -> dict | None:
    """The touchpoint identity that names this contact: their strongest identity."""
    contact = session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        return None
    rows = session.scalars(
        select(Identity).where(
            Identity.workspace_id == workspace_id, Identity.contact_id == contact_id
        )
    ).all()
    for kind in IDENTITY_ORDER:
        identity = next((row for row in rows if row.kind == kind), None)
        if identity is None:
            continue
        named = {str(kind): identity.value}
        if kind in (IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID):
            named["channel_id"] = identity.channel_id
        return named
    return None


# --- reading them back -------------------------------------------------------------------

UNASSIGNED = "none"


def tasks_query(
    workspace_id: int,
    *,
    status: str | None = TaskStatus.OPEN,
    assignee: int | str | None = None,
    overdue: bool = False,
    account_id: int | None = None,
    contact_id: int | None = None,
    now: datetime | None = None,
):
    """The workspace's tasks with their account's and contact's names and the assignee's:
    (task, account name, contact name, assignee name), open ones by due time first.
    `assignee`: a user id, UNASSIGNED, or None for anyone's; `overdue`: open and past due."""
    stmt = (
        select(Task, Account.name, Contact.name, User.name)
        .outerjoin(Account, Account.id == Task.account_id)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(User, User.id == Task.assignee_id)
        .where(Task.workspace_id == workspace_id)
    )
    if status:
        stmt = stmt.where(Task.status == status)
    if assignee == UNASSIGNED:
        stmt = stmt.where(Task.assignee_id.is_(None))
    elif assignee is not None:
        stmt = stmt.where(Task.assignee_id == assignee)
    if overdue:
        stmt = stmt.where(Task.status == TaskStatus.OPEN, Task.due_at < (now or utcnow()))
    if account_id is not None:
        stmt = stmt.where(Task.account_id == account_id)
    if contact_id is not None:
        stmt = stmt.where(Task.contact_id == contact_id)
    return stmt.order_by((Task.status != TaskStatus.OPEN), Task.due_at, Task.id)
