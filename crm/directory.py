"""The workspace's contacts and accounts as its lists and profile pages read them: search
and filters, counts per row, a person's identities and timeline, an account's people."""

from collections.abc import Mapping

from sqlalchemy import Select, case, distinct, func, null, or_, select
from sqlalchemy.orm import Session, selectinload

from crm.accounts import BUYING_COMMITTEE
from models import (
    Account,
    Channel,
    Contact,
    ContactTag,
    Identity,
    IdentityKind,
    Interaction,
    Tag,
    User,
)

# A search term equal to one of these finds its contact.
SEARCHABLE_KINDS = (IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID, IdentityKind.UNIONID)

# ---- contacts --------------------------------------------------------------------------


def contacts_query(workspace_id: int, search: str = "", tag_id: int | None = None) -> Select:
    """(contact, account name) of the live contacts whose name holds `search` (or with an
    openid, external_userid or unionid equal to it), holding `tag_id` if given; the most
    recently seen first, their identities loaded."""
    # A merged contact lives on in the one it was merged into.
    conditions = [Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None)]
    if search:
        by_identity = select(Identity.contact_id).where(
            Identity.workspace_id == workspace_id,
            Identity.kind.in_(SEARCHABLE_KINDS),
            Identity.value == search,
        )
        conditions.append(
            or_(Contact.name.icontains(search, autoescape=True), Contact.id.in_(by_identity))
        )
    if tag_id:
        conditions.append(
            Contact.id.in_(
                select(ContactTag.contact_id).where(
                    ContactTag.workspace_id == workspace_id, ContactTag.tag_id == tag_id
                )
            )
        )
    return (
        select(Contact, Account.name)
        .outerjoin(
            Account, (Account.id == Contact.account_id) & (Account.workspace_id == workspace_id)
        )
        .where(*conditions)
        .options(selectinload(Contact.identities))
        .order_by(Contact.last_seen_at.desc(), Contact.id.desc())
    )


def live_contact_ids(session: Session, workspace_id: int, contact_ids: list[int]) -> list[int]:
    """Those of `contact_ids` that are the workspace's and not merged into another."""
    return list(
        session.scalars(
            select(Contact.id).where(
                Contact.workspace_id == workspace_id,
                Contact.merged_into_id.is_(None),
                Contact.id.in_(contact_ids),
            )
        )
    )


def interaction_counts(session: Session, workspace_id: int, contact_ids: list[int]) -> dict:
    """contact id -> how many interactions it has (contacts without any are left out)."""
    return dict(
        session.execute(
            select(Interaction.contact_id, func.count())
            .where(
                Interaction.workspace_id == workspace_id, Interaction.contact_id.in_(contact_ids)
            )
            .group_by(Interaction.contact_id)
        ).all()
    )


def interaction_total(session: Session, workspace_id: int, contact_id: int) -> int:
    return session.scalar(
        select(func.count()).where(
            Interaction.contact_id == contact_id, Interaction.workspace_id == workspace_id
        )
    )


def identities_of(session: Session, workspace_id: int, contact_id: int) -> list:
    """(identity, channel name or None), oldest first."""
    return session.execute(
        select(Identity, Channel.name)
        .outerjoin(Channel, Channel.id == Identity.channel_id)
        .where(Identity.contact_id == contact_id, Identity.workspace_id == workspace_id)
        .order_by(Identity.created_at, Identity.id)
    ).all()


def timeline(session: Session, workspace_id: int, contact_id: int, limit: int) -> list:
    """The contact's latest interactions: (interaction, channel name or None), newest first."""
    return session.execute(
        select(Interaction, Channel.name)
        .outerjoin(Channel, Channel.id == Interaction.channel_id)
        .where(Interaction.contact_id == contact_id, Interaction.workspace_id == workspace_id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
    ).all()


def held_tags(session: Session, workspace_id: int, contact_id: int) -> list:
    """(tag, how the contact came to hold it), by group then name."""
    return session.execute(
        select(Tag, ContactTag.source)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact_id, Tag.workspace_id == workspace_id)
        .order_by(Tag.group, Tag.name)
    ).all()


def contacts_by_openid(session: Session, workspace_id: int, openids: list[str]) -> dict[str, int]:
    """openid -> its contact, for those of `openids` the workspace knows."""
    return dict(
        session.execute(
            select(Identity.value, Identity.contact_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == IdentityKind.OPENID,
                Identity.value.in_(openids),
            )
        ).all()
    )


def openids_of(session: Session, workspace_id: int, contact_ids: list[int]) -> list[str]:
    """The openids of these contacts (any OA), sorted."""
    return list(
        session.scalars(
            select(Identity.value)
            .where(
                Identity.workspace_id == workspace_id,
                Identity.contact_id.in_(contact_ids),
                Identity.kind == IdentityKind.OPENID,
            )
            .order_by(Identity.value)
        )
    )


# ---- accounts --------------------------------------------------------------------------


def account_names(session: Session, workspace_id: int, limit: int) -> list[str]:
    """Suggestions for an account field: target accounts first."""
    return list(
        session.scalars(
            select(Account.name)
            .where(Account.workspace_id == workspace_id)
            .order_by(Account.is_target.desc(), Account.name)
            .limit(limit)
        )
    )


def accounts_query(workspace_id: int, filters: Mapping[str, str], order: list) -> Select:
    """(account, owner name) of the accounts the list's filters keep, in `order`
    (account_order). `filters`, each "" when unused: q (in the name), target ("1"),
    industry, region, owner (a user id, or "none"), tier (a tier, or "none"), stage, mqa
    and surging ("1")."""
    conditions = [Account.workspace_id == workspace_id]
    if filters["q"]:
        conditions.append(Account.name.icontains(filters["q"], autoescape=True))
    if filters["target"] == "1":
        conditions.append(Account.is_target.is_(True))
    if filters["industry"]:
        conditions.append(Account.industry == filters["industry"])
    if filters["region"]:
        conditions.append(Account.region == filters["region"])
    if filters["owner"] == "none":
        conditions.append(Account.owner_id.is_(None))
    elif filters["owner"].isdigit():
        conditions.append(Account.owner_id == int(filters["owner"]))
    if filters["tier"] == "none":
        conditions.append(Account.tier.is_(None))
    elif filters["tier"]:
        conditions.append(Account.tier == int(filters["tier"]))
    if filters["stage"]:
        conditions.append(Account.stage == filters["stage"])
    if filters["mqa"]:
        conditions.append(Account.mqa.is_(True))
    if filters["surging"]:
        conditions.append(Account.surging.is_(True))
    return (
        select(Account, User.name)
        .outerjoin(User, (User.id == Account.owner_id) & (User.workspace_id == workspace_id))
        .where(*conditions)
        .order_by(*order)
    )


def account_order(sort: str, direction: str, stage_keys: list[str]) -> list:
    """ORDER BY for a sort key (score, tier, stage, surge, fit or name), in SQL (the list
    pages through many thousand accounts); accounts without a value go last either way,
    ties by target first, then name."""

    def ordered(column, *, nulls_last=True):
        order = column.desc() if direction == "desc" else column.asc()
        return [column.is_(None), order] if nulls_last else [order]

    if sort == "name":
        return ordered(Account.name, nulls_last=False) + ordered(Account.id, nulls_last=False)
    if sort == "stage":
        # The model's order, not the keys' alphabetical one; unknown stages sort as none.
        ranks = {key: n for n, key in enumerate(stage_keys)}
        columns = ordered(case(ranks, value=Account.stage, else_=None) if ranks else null())
    elif sort == "surge":
        columns = ordered(Account.surging, nulls_last=False) + ordered(
            func.coalesce(Account.surge_ratio, 0.0), nulls_last=False
        )
    else:
        # score and fit are never NULL: plain ORDER BY, so the score index serves the default.
        columns = ordered(getattr(Account, sort), nulls_last=Account.__table__.c[sort].nullable)
    return [*columns, Account.is_target.desc(), Account.name, Account.id]


def committee_stats(session: Session, workspace_id: int, account_ids: list[int]) -> dict:
    """account id -> (live contacts, buying-committee roles they hold, last seen)."""
    committee_role = case((Contact.role.in_(BUYING_COMMITTEE), Contact.role))
    return {
        account_id: (contacts, roles, last_seen)
        for account_id, contacts, roles, last_seen in session.execute(
            select(
                Contact.account_id,
                func.count(Contact.id),
                func.count(distinct(committee_role)),
                func.max(Contact.last_seen_at),
            )
            .where(
                Contact.workspace_id == workspace_id,
                Contact.account_id.in_(account_ids),
                Contact.merged_into_id.is_(None),
            )
            .group_by(Contact.account_id)
        )
    }


def account_values(session: Session, workspace_id: int, column, *conditions) -> list[str]:
    """The values the workspace's accounts hold in a column (and match `conditions`)."""
    return list(
        session.scalars(
            select(column)
            .where(Account.workspace_id == workspace_id, column.is_not(None), *conditions)
            .distinct()
            .order_by(column)
        )
    )


def of_account(account: Account) -> tuple:
    """The conditions on Contact for the account's live people."""
    return (
        Contact.workspace_id == account.workspace_id,
        Contact.account_id == account.id,
        Contact.merged_into_id.is_(None),
    )


def account_contact_count(session: Session, account: Account) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(*of_account(account)))


def account_contacts(session: Session, account: Account, limit: int) -> list[Contact]:
    """The account's people, the most recently seen first."""
    return list(
        session.scalars(
            select(Contact)
            .where(*of_account(account))
            .order_by(Contact.last_seen_at.desc(), Contact.id.desc())
            .limit(limit)
        )
    )


def account_interactions(session: Session, account: Account, limit: int) -> list:
    """The account's latest interactions: (interaction, contact name, channel name)."""
    return session.execute(
        select(Interaction, Contact.name, Channel.name)
        .join(Contact, Contact.id == Interaction.contact_id)
        .outerjoin(Channel, Channel.id == Interaction.channel_id)
        .where(
            Interaction.workspace_id == account.workspace_id, Interaction.account_id == account.id
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
    ).all()


def committee_members(session: Session, account: Account) -> list[Contact]:
    """The account's people in a buying-committee role."""
    return list(
        session.scalars(
            select(Contact).where(*of_account(account), Contact.role.in_(BUYING_COMMITTEE))
        )
    )


def account_seniorities(session: Session, account: Account) -> list[str | None]:
    """The seniorities the account's people hold, each once."""
    return list(session.scalars(select(Contact.seniority).where(*of_account(account)).distinct()))


def account_names_by_id(session: Session, workspace_id: int, account_ids) -> dict[int, str]:
    return dict(
        session.execute(
            select(Account.id, Account.name).where(
                Account.workspace_id == workspace_id, Account.id.in_(account_ids)
            )
        ).all()
    )


def accounts_per_owner(session: Session, workspace_id: int) -> dict[int, int]:
    """user id -> how many of the workspace's accounts they own."""
    return dict(
        session.execute(
            select(Account.owner_id, func.count())
            .where(Account.workspace_id == workspace_id, Account.owner_id.is_not(None))
            .group_by(Account.owner_id)
        ).all()
    )
