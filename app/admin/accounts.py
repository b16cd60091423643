"""Accounts: target companies and the ones contacts revealed, with their buying committee."""

from math import ceil, isfinite

from flask import (
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import case, distinct, func, select
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.contacts import (
    INTERACTION_LABELS,
    LABELS,
    assign_account_manually,
    key_properties,
)
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS
from app.extensions import harpoon
from handlers.accounts import BUYING_COMMITTEE, tag_account_industry
from handlers.tags import Followups, TagBook, contact_tags
from handlers.titles import SENIORITIES
from models import Account, Channel, Contact, Interaction, User

PAGE_SIZE = 50
CONTACTS_SHOWN = 200
INTERACTIONS_SHOWN = 50
# What the edit form changes, named as on the model (and in the audit trail).
EDITABLE = (
    "industry",
    "region",
    "employees",
    "annual_revenue",
    "acv",
    "domain",
    "owner_id",
    "is_target",
)
MAX_CONTACT_ID = 2**63 - 1


def _text(value):
    """Pasted values often carry spaces; an empty field clears the value."""
    return (value.strip() or None) if isinstance(value, str) else value


def _domain(value):
    value = _text(value)
    return value.lower().removeprefix("www.") if value else value


def _optional_id(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _finite(_form, field):
    if field.data is not None and not isfinite(field.data):
        raise ValidationError(_l("Enter a number."))


class AccountForm(FlaskForm):
    industry = StringField(_l("Industry"), filters=[_text], validators=[Optional(), Length(max=50)])
    region = StringField(_l("Region"), filters=[_text], validators=[Optional(), Length(max=50)])
    employees = IntegerField(
        _l("Employees"), validators=[Optional(), NumberRange(min=0, max=10_000_000)]
    )
    annual_revenue = FloatField(
        _l("Annual revenue"), validators=[Optional(), _finite, NumberRange(min=0, max=10**15)]
    )
    acv = FloatField(
        _l("Expected ACV"), validators=[Optional(), _finite, NumberRange(min=0, max=10**12)]
    )
    domain = StringField(
        _l("Email domain"),
        filters=[_domain],
        validators=[
            Optional(),
            Length(max=100),
            Regexp(
                r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
                message=_l("A domain such as huaxin.com."),
            ),
        ],
    )
    owner_id = SelectField(_l("Account owner"), coerce=_optional_id, choices=[])
    is_target = BooleanField(_l("Target account (on the ICP list)"))


class AttachContactForm(FlaskForm):
    contact_id = IntegerField(
        _l("Contact ID"), validators=[InputRequired(), NumberRange(min=1, max=MAX_CONTACT_ID)]
    )


def _account_or_404(account_id: int) -> Account:
    account = db().scalar(
        select(Account).where(Account.id == account_id, Account.workspace_id == workspace_id())
    )
    if account is None:
        abort(404)
    return account


def _owner_choices(ws: int, current_owner_id: int | None) -> list[SelectChoice]:
    users = db().execute(
        select(User.id, User.name)
        .where(User.workspace_id == ws, User.active.is_(True) | (User.id == current_owner_id))
        .order_by(User.name, User.id)
    )
    return [SelectChoice("", _("No owner"))] + [
        SelectChoice(str(user_id), name) for user_id, name in users
    ]


@bp.get("/accounts")
@requires("contacts.view")
def accounts():
    ws = workspace_id()
    filters = {
        name: request.args.get(name, "").strip()
        for name in ("q", "target", "industry", "region", "owner")
    }
    conditions = [Account.workspace_id == ws]
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
    total = db().scalar(select(func.count()).select_from(Account).where(*conditions))
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = (
        db()
        .execute(
            select(Account, User.name)
            .outerjoin(User, (User.id == Account.owner_id) & (User.workspace_id == ws))
            .where(*conditions)
            .order_by(Account.is_target.desc(), Account.name, Account.id)
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
        .all()
    )
    committee_role = case((Contact.role.in_(BUYING_COMMITTEE), Contact.role))
    stats = {
        account_id: (contacts, roles, last_seen)
        for account_id, contacts, roles, last_seen in db().execute(
            select(
                Contact.account_id,
                func.count(Contact.id),
                func.count(distinct(committee_role)),
                func.max(Contact.last_seen_at),
            )
            .where(
                Contact.workspace_id == ws,
                Contact.account_id.in_([account.id for account, _owner in rows]),
                Contact.merged_into_id.is_(None),
            )
            .group_by(Contact.account_id)
        )
    }
    # The search box and the selects ask for the table alone; a history restore needs the page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    response = make_response(
        render_template(
            "admin/accounts_table.html" if partial else "admin/accounts.html",
            rows=rows,
            stats=stats,
            filters=filters,
            active_filters={name: value for name, value in filters.items() if value},
            page=page,
            pages=pages,
            total=total,
            committee_size=len(BUYING_COMMITTEE),
            industries=_value_options(ws, Account.industry),
            regions=_value_options(ws, Account.region),
            users=db()
            .execute(select(User.id, User.name).where(User.workspace_id == ws).order_by(User.name))
            .all(),
            show_import=can("accounts.import"),
        )
    )
    response.vary.add("HX-Request")
    return response


def _value_options(ws: int, column) -> list[tuple[str, str]]:
    """The values the workspace's accounts hold in a column, as (value, label) options."""
    values = db().scalars(
        select(column)
        .where(Account.workspace_id == ws, column.is_not(None))
        .distinct()
        .order_by(column)
    )
    return [(value, value) for value in values]


@bp.get("/accounts/<int:account_id>")
@requires("contacts.view")
def accounts_detail(account_id: int):
    return _account_page(_account_or_404(account_id))


def _account_page(
    account: Account,
    form: AccountForm | None = None,
    attach_form: AttachContactForm | None = None,
):
    ws = account.workspace_id
    if can("accounts.manage"):
        form = form or AccountForm(formdata=None, obj=account)
        form.owner_id.choices = _owner_choices(ws, account.owner_id)
        attach_form = attach_form or AttachContactForm(formdata=None)
    owner = db().scalar(select(User).where(User.id == account.owner_id, User.workspace_id == ws))
    of_account = (
        Contact.workspace_id == ws,
        Contact.account_id == account.id,
        Contact.merged_into_id.is_(None),
    )
    contacts_total = db().scalar(select(func.count()).select_from(Contact).where(*of_account))
    contacts = list(
        db().scalars(
            select(Contact)
            .where(*of_account)
            .order_by(Contact.last_seen_at.desc(), Contact.id.desc())
            .limit(CONTACTS_SHOWN)
        )
    )
    interactions = db().execute(
        select(Interaction, Contact.name, Channel.name)
        .join(Contact, Contact.id == Interaction.contact_id)
        .outerjoin(Channel, Channel.id == Interaction.channel_id)
        .where(Interaction.workspace_id == ws, Interaction.account_id == account.id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(INTERACTIONS_SHOWN)
    )
    return render_template(
        "admin/account.html",
        account=account,
        owner=owner,
        form=form,
        attach_form=attach_form,
        contacts=contacts,
        contacts_total=contacts_total,
        tags=contact_tags(db(), [contact.id for contact in contacts]),
        interactions=[
            (interaction, contact_name, channel_name, key_properties(interaction.properties))
            for interaction, contact_name, channel_name in interactions
        ],
        interaction_labels=INTERACTION_LABELS,
        **_committee(of_account),
        **LABELS,
    )


def _committee(of_account: tuple) -> dict:
    """Who the account's buying committee is known to be, role by role, and how senior."""
    members = db().scalars(select(Contact).where(*of_account, Contact.role.in_(BUYING_COMMITTEE)))
    by_role: dict[str, list[Contact]] = {}
    for contact in members:
        by_role.setdefault(contact.role, []).append(contact)
    coverage = [
        (role, CONTACT_ROLE_LABELS[role], sorted(by_role.get(role, []), key=_seniority_rank))
        for role in BUYING_COMMITTEE
    ]
    seniorities = db().scalars(select(Contact.seniority).where(*of_account).distinct())
    ranks = [SENIORITIES.index(level) for level in seniorities if level in SENIORITIES]
    return {
        "coverage": coverage,
        "roles_known": len(by_role),
        "highest_seniority": SENIORITY_LABELS[SENIORITIES[min(ranks)]] if ranks else None,
    }


def _seniority_rank(contact: Contact) -> tuple[int, str]:
    rank = SENIORITIES.index(contact.seniority) if contact.seniority in SENIORITIES else 99
    return rank, contact.name or ""


@bp.post("/accounts/<int:account_id>/edit")
@requires("accounts.manage")
def accounts_edit(account_id: int):
    account = _account_or_404(account_id)
    form = AccountForm()
    form.owner_id.choices = _owner_choices(account.workspace_id, account.owner_id)
    if not form.validate_on_submit():
        return _account_page(account, form=form)
    before = {name: getattr(account, name) for name in EDITABLE}
    for name in EDITABLE:
        setattr(account, name, form[name].data)
    changes = {
        name: [before[name], getattr(account, name)]
        for name in EDITABLE
        if before[name] != getattr(account, name)
    }
    if not changes:
        flash(_("Nothing changed."), "success")
        return redirect(url_for("admin.accounts_detail", account_id=account.id))
    followups = Followups()
    tagged = 0
    if "industry" in changes:
        # Its people take the new industry tag (the group is exclusive: it replaces the old).
        book = TagBook(db(), account.workspace_id)
        tagged = tag_account_industry(db(), book, account, followups)
    audit(db(), "account.update", "account", account.id, {"name": account.name, **changes})
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    flash(_("Saved %(name)s.", name=account.name), "success")
    if tagged:
        flash(
            ngettext(
                "%(num)s contact took the industry tag “%(industry)s”.",
                "%(num)s contacts took the industry tag “%(industry)s”.",
                tagged,
                industry=account.industry,
            ),
            "success",
        )
    return redirect(url_for("admin.accounts_detail", account_id=account.id))


@bp.post("/accounts/<int:account_id>/contacts")
@requires("accounts.manage")
def accounts_attach_contact(account_id: int):
    account = _account_or_404(account_id)
    form = AttachContactForm()
    if form.validate_on_submit():
        contact = db().scalar(
            select(Contact).where(
                Contact.id == form.contact_id.data, Contact.workspace_id == account.workspace_id
            )
        )
        if contact is None:
            form.contact_id.errors.append(
                _("No contact #%(id)s in this workspace.", id=form.contact_id.data)
            )
        elif contact.merged_into_id is not None:
            form.contact_id.errors.append(
                _(
                    "Contact #%(id)s was merged into #%(kept)s: attach that one.",
                    id=contact.id,
                    kept=contact.merged_into_id,
                )
            )
        else:
            assign_account_manually(contact, account)
            flash(
                _(
                    "%(contact)s now belongs to %(account)s.",
                    contact=contact.name or f"#{contact.id}",
                    account=account.name,
                ),
                "success",
            )
            return redirect(url_for("admin.accounts_detail", account_id=account.id))
    return _account_page(account, attach_form=form)
