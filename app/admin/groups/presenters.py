"""What the group pages show: members grouped by account, and the scenes' names."""

from models import GroupMemberType


def members_by_account(rows: list) -> list[tuple]:
    """(account or None, [(member, contact)]) of the present members: customers by account
    (those of no known account last), staff apart (account None, staff True)."""
    staff, by_account, unknown = [], {}, []
    for member, contact, account in rows:
        if member.left_at is not None:
            continue
        if member.member_type == GroupMemberType.STAFF:
            staff.append((member, contact))
        elif account is not None:
            by_account.setdefault(account.id, (account, []))[1].append((member, contact))
        else:
            unknown.append((member, contact))
    groups = [(account, people, False) for account, people in by_account.values()]
    if unknown:
        groups.append((None, unknown, False))
    if staff:
        groups.append((None, staff, True))
    return groups


def departed(rows: list) -> list[tuple]:
    """(member, contact, account) of those who left, most recent first."""
    gone = [(m, c, a) for m, c, a in rows if m.left_at is not None]
    return sorted(gone, key=lambda row: row[0].left_at, reverse=True)
