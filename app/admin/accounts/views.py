"""The account pages' routes: the list with its filters and order, one account's page with
its people, score and stage, its edit and the contacts attached by hand."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.admin import bp, db
from app.admin.access import (
    MINE,
    audit,
    can,
    ids_of_workspace,
    list_scope,
    requires,
    scope_args,
    workspace_id,
)
from app.admin.accounts import presenters
from app.admin.accounts.forms import (
    ACCOUNT_REFERENCES,
    ATTACH_REFERENCES,
    DEFAULT_SORT,
    EDITABLE,
    AccountForm,
    AttachContactForm,
    list_filters,
    owner_choices,
    sort_args,
)
from app.admin.contacts.presenters import INTERACTION_LABELS, LABELS
from app.admin.contacts.views import assign_account_manually
from app.admin.labels import stage_names
from app.admin.lookups import paginate, scoped_or_404
from app.admin.opportunities.views import account_section
from app.admin.programs.views import program_section
from app.admin.routing.presenters import EVENT_LABELS
from app.admin.stages import StageForm, ledger, move_stage, scoring_context, stage_form
from app.admin.tasks.views import task_form_for_page
from app.extensions import harpoon
from core.jobs import Followups
from crm import directory
from crm.accounts import BUYING_COMMITTEE, tag_account_industry
from crm.tags import TagBook, contact_tags
from crm.users import assignable_users, users_by_name, workspace_user
from models import Account, Contact
from sales.ownership import owned_accounts_clause
from sales.routing import account_timeline
from sales.tasks import tasks_query
from scoring.contributions import account_contributions
from scoring.engine import Scorer, load_model
from scoring.metrics import account_trend

PAGE_SIZE = 50
CONTRIBUTORS_SHOWN = 50
TREND_DAYS = 90
CONTACTS_SHOWN = 200
INTERACTIONS_SHOWN = 50
SALES_EVENTS_SHOWN = 50


@bp.get("/accounts")
@requires("contacts.view")
def accounts():
    ws = workspace_id()
    model = load_model(db(), ws)
    names = stage_names(model.stages)
    tiers = sorted({rule.tier for rule in model.tiers})
    filters = list_filters({str(tier) for tier in tiers}, names)
    sort, direction = sort_args()
    order = directory.account_order(sort, direction, list(names))
    scope = list_scope()
    query = directory.accounts_query(ws, filters, order)
    if scope == MINE:
        query = query.where(owned_accounts_clause(ws, current_user.id))
    listed = paginate(query, PAGE_SIZE)
    account_ids = [account.id for account, _owner in listed.rows]
    # The search box and the selects ask for the table alone; a history restore needs the page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    active_filters = {name: value for name, value in filters.items() if value}
    # Links keep the list's scope (mine / all) with its filters.
    list_args = {**active_filters, **scope_args(scope)}
    # The order rides along in the pager's links and the filter form when it is not the default.
    order_args = (
        {} if (sort, direction) == (DEFAULT_SORT, "desc") else {"sort": sort, "dir": direction}
    )
    response = make_response(
        render_template(
            "admin/accounts_table.html" if partial else "admin/accounts.html",
            rows=listed.rows,
            stats=directory.committee_stats(db(), ws, account_ids),
            filters=filters,
            active_filters=active_filters,
            order=order_args,
            pager_args={**list_args, **order_args},
            sort_links=presenters.sort_links(sort, direction, list_args),
            scope=scope,
            stage_names=names,
            tier_options=[(str(tier), _("Tier %(tier)s", tier=tier)) for tier in tiers]
            + [("none", _("No tier"))],
            page=listed.page,
            pages=listed.pages,
            total=listed.total,
            committee_size=len(BUYING_COMMITTEE),
            industries=presenters.value_options(
                directory.account_values(db(), ws, Account.industry)
            ),
            regions=presenters.value_options(directory.account_values(db(), ws, Account.region)),
            users=users_by_name(db(), ws),
            show_import=can("accounts.import"),
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.get("/accounts/<int:account_id>")
@requires("contacts.view")
def accounts_detail(account_id: int):
    return _account_page(scoped_or_404(Account, account_id))


def _account_page(
    account: Account,
    form: AccountForm | None = None,
    attach_form: AttachContactForm | None = None,
    stage_form: StageForm | None = None,
):
    ws = account.workspace_id
    scorer = Scorer.load(db(), ws)
    model = scorer.model
    if can("accounts.manage"):
        form = form or AccountForm(formdata=None, obj=account)
        form.owner_id.choices = owner_choices(assignable_users(db(), ws, account.owner_id))
        attach_form = attach_form or AttachContactForm(formdata=None)
    contacts = directory.account_contacts(db(), account, CONTACTS_SHOWN)
    names = stage_names(model.stages)
    today = datetime.now(ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")).date()
    snapshots = account_trend(db(), account, today - timedelta(days=TREND_DAYS), model.scale)
    return render_template(
        "admin/account.html",
        account=account,
        owner=workspace_user(db(), ws, account.owner_id),
        account_tasks=db().execute(tasks_query(ws, account_id=account.id).limit(20)).all(),
        task_form=task_form_for_page(),
        form=form,
        attach_form=attach_form,
        contacts=contacts,
        contacts_total=directory.account_contact_count(db(), account),
        tags=contact_tags(db(), [contact.id for contact in contacts]),
        interactions=presenters.interaction_rows(
            directory.account_interactions(db(), account, INTERACTIONS_SHOWN)
        ),
        interaction_labels=INTERACTION_LABELS,
        contributions=account_contributions(db(), account, model, CONTRIBUTORS_SHOWN),
        mqa_checks=scorer.mqa_checks(account),
        ledger=ledger(ws, Contact.account_id == account.id),
        trend=presenters.trend_points(snapshots, names),
        trend_days=TREND_DAYS,
        **scoring_context(model, "account", account, stage_form),
        **presenters.committee(
            directory.committee_members(db(), account),
            directory.account_seniorities(db(), account),
        ),
        sales_timeline=account_timeline(db(), ws, account.id, SALES_EVENTS_SHOWN),
        sales_event_labels=EVENT_LABELS,
        **program_section(account),
        **account_section(account),
        **LABELS,
    )


@bp.post("/accounts/<int:account_id>/edit")
@requires("accounts.manage")
def accounts_edit(account_id: int):
    account = scoped_or_404(Account, account_id)
    form = AccountForm()
    form.owner_id.choices = owner_choices(
        assignable_users(db(), account.workspace_id, account.owner_id)
    )
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
    account = scoped_or_404(Account, account_id)
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
    account = scoped_or_404(Account, account_id)
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
