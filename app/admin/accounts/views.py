"""Accounts: target companies and the ones contacts revealed, with their buying committee."""

from datetime import datetime, timedelta
from math import ceil, isfinite
from zoneinfo import ZoneInfo

from flask import (
    abort,
    flash,
    g,
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
from sqlalchemy import case, distinct, func, null, select
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
from app.admin.access import audit, can, ids_of_workspace, requires, workspace_id
from app.admin.contacts import (
    INTERACTION_LABELS,
    LABELS,
    assign_account_manually,
    key_properties,
)
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS, stage_names
from app.admin.stages import StageForm, ledger, move_stage, scoring_context, stage_form
from app.extensions import harpoon
from core.jobs import Followups
from core.references import CONTACT, USER, Reference, declare
from core.text import N_
from crm.accounts import BUYING_COMMITTEE, tag_account_industry
from crm.tags import TagBook, contact_tags
from crm.titles import SENIORITIES
from models import Account, AccountSnapshot, Channel, Contact, Interaction, User, utcnow
from scoring.engine import Scorer, lead_score_at, load_model
from scoring.model import Member, Model, account_score

PAGE_SIZE = 50
# The list's sort keys (a column each); a first click sorts the best first, names A-Z.
SORTS = ("score", "tier", "stage", "surge", "fit", "name")
DEFAULT_SORT = "score"
FIRST_DIRECTION = {"tier": "asc", "name": "asc"}  # tier 1 is the best
CONTRIBUTORS_SHOWN = 50
TREND_DAYS = 90
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
ACCOUNT_REFERENCES = declare("account", Reference("owner_id", USER))
ATTACH_REFERENCES = declare(
    "account_contact", Reference("contact_id", CONTACT, N_("No contact #%(id)s in this workspace."))
)


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


def _sort_args() -> tuple[str, str]:
    """The list's order from the query string; anything unknown gets the default."""
    sort = request.args.get("sort")
    if sort not in SORTS:
        sort = DEFAULT_SORT
    direction = request.args.get("dir")
    if direction not in ("asc", "desc"):
        direction = FIRST_DIRECTION.get(sort, "desc")
    return sort, direction


def _order_by(sort: str, direction: str, stage_keys: list[str]) -> list:
    """ORDER BY for a sort key, in SQL (the list pages through many thousand accounts);
    accounts without a value go last either way, ties by target first, then name."""

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


def _sort_links(sort: str, direction: str, args: dict) -> dict[str, tuple[str, str | None]]:
    """Each sortable column's header link (keeping the filters; back to page one) and its
    aria-sort value: a second click on the sorted column reverses it."""
    links = {}
    for key in SORTS:
        if key == sort:
            after = "asc" if direction == "desc" else "desc"
            state = "descending" if direction == "desc" else "ascending"
        else:
            after, state = FIRST_DIRECTION.get(key, "desc"), None
        links[key] = (url_for("admin.accounts", **args, sort=key, dir=after), state)
    return links


@bp.get("/accounts")
@requires("contacts.view")
def accounts():
    ws = workspace_id()
    model = load_model(db(), ws)
    names = stage_names(model.stages)
    tiers = sorted({rule.tier for rule in model.tiers})
    filters = {
        name: request.args.get(name, "").strip()
        for name in (
            "q",
            "target",
            "industry",
            "region",
            "owner",
            "tier",
            "stage",
            "mqa",
            "surging",
        )
    }
    # Values the selects do not offer are dropped, so the pager never carries them on.
    if filters["tier"] not in {str(tier) for tier in tiers} | {"none"}:
        filters["tier"] = ""
    if filters["stage"] not in names:
        filters["stage"] = ""
    for flag in ("mqa", "surging"):
        filters[flag] = "1" if filters[flag] == "1" else ""
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
    sort, direction = _sort_args()
    total = db().scalar(select(func.count()).select_from(Account).where(*conditions))
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = (
        db()
        .execute(
            select(Account, User.name)
            .outerjoin(User, (User.id == Account.owner_id) & (User.workspace_id == ws))
            .where(*conditions)
            .order_by(*_order_by(sort, direction, list(names)))
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
    active_filters = {name: value for name, value in filters.items() if value}
    # The order rides along in the pager's links and the filter form when it is not the default.
    order = {} if (sort, direction) == (DEFAULT_SORT, "desc") else {"sort": sort, "dir": direction}
    response = make_response(
        render_template(
            "admin/accounts_table.html" if partial else "admin/accounts.html",
            rows=rows,
            stats=stats,
            filters=filters,
            active_filters=active_filters,
            order=order,
            pager_args={**active_filters, **order},
            sort_links=_sort_links(sort, direction, active_filters),
            stage_names=names,
            tier_options=[(str(tier), _("Tier %(tier)s", tier=tier)) for tier in tiers]
            + [("none", _("No tier"))],
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
    stage_form: StageForm | None = None,
):
    ws = account.workspace_id
    model = load_model(db(), ws)
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
        contributions=_contributions(account, model, of_account),
        ledger=ledger(ws, Contact.account_id == account.id),
        trend=_trend(account, stage_names(model.stages)),
        trend_days=TREND_DAYS,
        **scoring_context(model, "account", account, stage_form),
        **_committee(of_account),
        **LABELS,
    )


def _contributions(account: Account, model: Model, of_account: tuple) -> dict:
    """Which contacts make the account's score: scoring.model.account_score, the engine's
    arithmetic per contact, over lead scores as of the account's last scoring (so the
    parts add up to its score)."""
    at = account.scored_at or utcnow()
    people = db().execute(
        select(
            Contact.id,
            Contact.name,
            Contact.role,
            Contact.seniority,
            Contact.score_mass,
            Contact.last_engaged_at,
        ).where(*of_account, Contact.score_mass > 0)
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
    return {
        "rows": [
            {
                "contact": by_id[contact_id],
                "lead_score": lead[contact_id],
                "weight": model.weights.of(by_id[contact_id].role, by_id[contact_id].seniority),
                "points": points,
                "share": points / before_recency if before_recency else 0.0,
            }
            for contact_id, points in ranked[:CONTRIBUTORS_SHOWN]
        ],
        "total": len(ranked),
        "roles": sorted(scored.engaged_roles),
        "breadth": scored.breadth,
        "breadth_share": scored.breadth / before_recency if before_recency else 0.0,
        "bonus": model.weights.breadth_bonus,
        "recency": scored.recency,
        "half_life": model.weights.recency_half_life_days,
        "score": scored.score,
    }


def _trend(account: Account, names: dict[str, str]) -> list[list]:
    """The account's daily snapshots over the last TREND_DAYS days, for the chart:
    [day, score, tier, stage name, MQA, surging]."""
    today = datetime.now(ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")).date()
    rows = db().execute(
        select(
            AccountSnapshot.day,
            AccountSnapshot.score,
            AccountSnapshot.tier,
            AccountSnapshot.stage,
            AccountSnapshot.mqa,
            AccountSnapshot.surging,
        )
        .where(
            AccountSnapshot.account_id == account.id,
            AccountSnapshot.day > today - timedelta(days=TREND_DAYS),
        )
        .order_by(AccountSnapshot.day)
    )
    return [
        [day.isoformat(), round(score, 1), tier, names.get(stage, stage), mqa, surging]
        for day, score, tier, stage, mqa, surging in rows
    ]


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
    valid = form.validate_on_submit()
    if not ids_of_workspace(db(), form, ACCOUNT_REFERENCES) or not valid:
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
    if form.validate_on_submit() and ids_of_workspace(db(), form, ATTACH_REFERENCES):
        contact = db().get(Contact, form.contact_id.data)
        if contact.merged_into_id is not None:
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


@bp.post("/accounts/<int:account_id>/stage")
@requires("stages.move")
def accounts_move_stage(account_id: int):
    account = _account_or_404(account_id)
    model = load_model(db(), account.workspace_id)
    form = stage_form(model, account.stage, StageForm())
    if not form.validate_on_submit():
        return _account_page(account, stage_form=form)
    names = stage_names(model.stages)
    if not move_stage(account, form):
        flash(_("%(name)s is at %(stage)s already.", name=account.name, stage=names[account.stage]))
        return redirect(url_for("admin.accounts_detail", account_id=account.id))
    db().commit()
    # Re-judged at once: today's snapshot takes the new stage, and the rules see it.
    Scorer.load(db(), account.workspace_id).refresh_accounts([account.id])
    db().commit()
    flash(
        _("Moved %(name)s to %(stage)s.", name=account.name, stage=names[form.stage.data]),
        "success",
    )
    if account.stage != form.stage.data:
        flash(
            _(
                "The scoring rules then moved it on to %(stage)s.",
                stage=names.get(account.stage, account.stage),
            )
        )
    return redirect(url_for("admin.accounts_detail", account_id=account.id))
