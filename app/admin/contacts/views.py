"""The contact pages' routes: the list with its search, filter and bulk tagging; one
contact's page with its tags, account and stage."""

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.admin import bp, db
from app.admin.access import (
    MINE,
    audit,
    can,
    list_scope,
    requires,
    scope_args,
    workspace_id,
)
from app.admin.auth import safe_path
from app.admin.contacts.forms import MAX_BULK, AccountNameForm, BulkTagForm, TagForm, tag_choices
from app.admin.contacts.presenters import (
    INTERACTION_LABELS,
    LABELS,
    tag_filter_options,
    timeline_rows,
)
from app.admin.labels import ADD_WAY_LABELS, stage_names, tag_label
from app.admin.lookups import paginate, scoped_or_404
from app.admin.masking import reveal_for
from app.admin.stages import StageForm, ledger, move_stage, scoring_context, stage_form
from app.admin.tasks.views import task_form_for_page
from app.extensions import harpoon
from core.jobs import Followups
from crm import directory
from crm.accounts import account_named, assign_account
from crm.accounts import detach_account as detach_from_account
from crm.tags import TagBook, apply_tags, contact_tags, remove_tags
from models import Account, AccountSource, Contact, ScoreEntry, Tag, TagSource, utcnow
from sales.notify import notify_owners
from sales.ownership import owned_contacts_clause
from sales.staff import contact_relations
from sales.task_rules import tasks_for_scoring
from sales.tasks import tasks_query
from scoring.engine import Scorer, lead_score_at, load_model

PAGE_SIZE = 50
TIMELINE_SIZE = 100
ACCOUNT_NAME_HINTS = 500
# Tags, the account and the stage are changed on the contact a merge kept, never on one merged.
NOT_MERGED = Contact.merged_into_id.is_(None)


@bp.get("/contacts")
@requires("contacts.view")
def contacts():
    return _contacts_page()


def _contacts_page(bulk_form: BulkTagForm | None = None, selected: frozenset[int] = frozenset()):
    """The list, filtered by the query string (the bulk form posts it back unchanged)."""
    ws = workspace_id()
    q = request.args.get("q", "").strip()
    tag_id = request.args.get("tag", type=int)
    scope = list_scope()
    query = directory.contacts_query(ws, q, tag_id)
    if scope == MINE:
        query = query.where(owned_contacts_clause(ws, current_user.id))
    listed = paginate(query, PAGE_SIZE)
    ids = [contact.id for contact, _account in listed.rows]
    book = TagBook(db(), ws)
    if bulk_form is None and can("contacts.tag"):
        bulk_form = BulkTagForm(formdata=None)
    if bulk_form is not None:
        bulk_form.tag.choices = tag_choices(book)
    # The search box asks for the table alone; a history restore needs the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "admin/contacts_table.html" if partial else "admin/contacts.html"
    response = make_response(
        render_template(
            template,
            rows=listed.rows,
            counts=directory.interaction_counts(db(), ws, ids),
            q=q,
            page=listed.page,
            pages=listed.pages,
            total=listed.total,
            tags=contact_tags(db(), ids),
            tag_id=tag_id,
            scope=scope,
            scope_arg=scope_args(scope).get("scope"),
            tag_filter=tag_filter_options(book),
            bulk_form=bulk_form,
            selected=selected,
            **LABELS,
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.get("/contacts/<int:contact_id>")
@requires("contacts.view")
def contacts_detail(contact_id: int):
    contact = scoped_or_404(Contact, contact_id)
    if contact.merged_into_id is not None:
        return redirect(url_for("admin.contacts_detail", contact_id=contact.merged_into_id))
    return _contact_page(contact)


def _contact_page(
    contact: Contact,
    tag_form: TagForm | None = None,
    account_form: AccountNameForm | None = None,
    stage_form: StageForm | None = None,
):
    ws = workspace_id()
    model = load_model(db(), ws)
    return render_template(
        "admin/contact.html",
        contact_tasks=db().execute(tasks_query(ws, contact_id=contact.id).limit(20)).all(),
        task_form=task_form_for_page(),
        identities=directory.identities_of(db(), ws, contact.id),
        reveal=reveal_for(db(), ws, current_user, [contact.id]),
        timeline=timeline_rows(directory.timeline(db(), ws, contact.id, TIMELINE_SIZE)),
        interaction_labels=INTERACTION_LABELS,
        wecom_relations=contact_relations(db(), contact.workspace_id, contact.id),
        add_way_labels=ADD_WAY_LABELS,
        lead_score=lead_score_at(contact.score_mass, utcnow(), model.half_life_days),
        ledger=ledger(ws, ScoreEntry.contact_id == contact.id),
        **scoring_context(model, "contact", contact, stage_form),
        **_profile_context(contact, tag_form, account_form),
    )


def _profile_context(
    contact: Contact,
    tag_form: TagForm | None = None,
    account_form: AccountNameForm | None = None,
) -> dict:
    """What the contact's two top cards show: its fields and account, and its tags."""
    ws = workspace_id()
    if account_form is None and can("accounts.manage"):
        account_form = AccountNameForm(formdata=None)
    if tag_form is None and can("contacts.tag"):
        tag_form = TagForm(formdata=None)
    if tag_form is not None:
        tag_form.tag.choices = tag_choices(TagBook(db(), contact.workspace_id))
    return {
        "contact": contact,
        "account": db().get(Account, contact.account_id) if contact.account_id else None,
        "total": directory.interaction_total(db(), ws, contact.id),
        "account_form": account_form,
        "account_names": directory.account_names(db(), ws, ACCOUNT_NAME_HINTS)
        if account_form is not None
        else [],
        "held_tags": directory.held_tags(db(), contact.workspace_id, contact.id),
        "tag_form": tag_form,
        **LABELS,
    }


# ---- tags and the account, edited by hand: the list's bulk form and the contact's forms ----


def _tag_audit(tag: Tag, **changes) -> dict:
    return {"tag": f"{tag.group}:{tag.name}", **changes}


def _list_args() -> dict:
    return {
        name: value for name in ("q", "tag", "scope", "page") if (value := request.args.get(name))
    }


@bp.post("/contacts/tags")
@requires("contacts.tag")
def contacts_bulk_tag():
    ws = workspace_id()
    book = TagBook(db(), ws)
    form = BulkTagForm()
    form.tag.choices = tag_choices(book)
    requested = set(request.form.getlist("contact_ids", type=int))
    contact_ids = directory.live_contact_ids(db(), ws, list(requested)[: MAX_BULK + 1])
    valid = form.validate_on_submit()
    if not contact_ids:
        flash(_("Select at least one contact."), "error")
    elif len(contact_ids) > MAX_BULK:
        flash(_("At most %(max)s contacts at a time.", max=MAX_BULK), "error")
    elif valid:
        adding = form.operation.data == "add"
        tag = form.chosen(book, create=adding)
        followups = Followups()
        if adding:
            changed = apply_tags(
                db(), book, contact_ids, [tag], source=TagSource.MANUAL, followups=followups
            )
            message = ngettext(
                "Tagged %(num)s contact with “%(tag)s”.",
                "Tagged %(num)s contacts with “%(tag)s”.",
                len(contact_ids),
                tag=tag_label(tag),
            )
        else:
            changed = remove_tags(db(), book, contact_ids, [tag], followups=followups) if tag else 0
            message = ngettext(
                "Removed the tag from %(num)s contact.",
                "Removed the tag from %(num)s contacts.",
                changed,
            )
        if tag is not None:
            audit(
                db(),
                f"contacts.tag_{form.operation.data}",
                "tag",
                tag.id,
                _tag_audit(tag, contacts=len(contact_ids), changed=changed),
            )
        db().commit()
        harpoon().queue.enqueue_followups(followups.jobs)
        flash(message, "success")
        return redirect(url_for("admin.contacts", **_list_args()))
    return _contacts_page(bulk_form=form, selected=frozenset(requested))


def _after_tag_change(contact: Contact, tag_form: TagForm | None = None):
    """htmx swaps the profile cards in place; a plain form goes back to the page."""
    if request.headers.get("HX-Request"):
        return render_template("admin/contact_profile.html", **_profile_context(contact, tag_form))
    if tag_form is not None:
        return _contact_page(contact, tag_form=tag_form)
    return redirect(url_for("admin.contacts_detail", contact_id=contact.id))


@bp.post("/contacts/<int:contact_id>/tags")
@requires("contacts.tag")
def contacts_add_tag(contact_id: int):
    contact = scoped_or_404(Contact, contact_id, NOT_MERGED)
    book = TagBook(db(), contact.workspace_id)
    form = TagForm()
    form.tag.choices = tag_choices(book)
    if not form.validate_on_submit():
        return _after_tag_change(contact, form)
    tag = form.chosen(book)
    followups = Followups()
    apply_tags(db(), book, [contact.id], [tag], source=TagSource.MANUAL, followups=followups)
    audit(db(), "contact.tag_add", "contact", contact.id, _tag_audit(tag))
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return _after_tag_change(contact)


@bp.post("/contacts/<int:contact_id>/tags/<int:tag_id>/remove")
@requires("contacts.tag")
def contacts_remove_tag(contact_id: int, tag_id: int):
    contact = scoped_or_404(Contact, contact_id, NOT_MERGED)
    book = TagBook(db(), contact.workspace_id)
    tag = book.by_id(tag_id)
    if tag is None:
        abort(404)
    followups = Followups()
    if remove_tags(db(), book, [contact.id], [tag], followups=followups):
        audit(db(), "contact.tag_remove", "contact", contact.id, _tag_audit(tag))
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)
    return _after_tag_change(contact)


def assign_account_manually(contact: Contact, account: Account) -> None:
    """A person's hand-picked account: it wins over every automatic source, now and later."""
    before = contact.account_id
    followups = Followups()
    assign_account(
        db(),
        TagBook(db(), contact.workspace_id),
        contact,
        source=AccountSource.MANUAL,
        account=account,
        followups=followups,
    )
    audit(
        db(),
        "contact.assign_account",
        "contact",
        contact.id,
        {"account_id": [before, account.id], "account": account.name},
    )
    _rejudge(contact.workspace_id, followups, before, account.id)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)


def _rejudge(workspace_id: int, followups: Followups, *account_ids: int | None) -> None:
    """The accounts a person left or joined: their scores, tiers and MQA at once (an
    owner hears of an MQA this makes, as from the drain)."""
    db().flush()
    scorer = Scorer.load(db(), workspace_id)
    result = scorer.refresh_accounts([i for i in account_ids if i is not None])
    notify_owners(db(), result.alerts, followups)
    tasks_for_scoring(db(), workspace_id, result)


def detach_account(contact: Contact) -> None:
    before = detach_from_account(db(), contact)
    audit(db(), "contact.detach_account", "contact", contact.id, {"account_id": [before, None]})
    followups = Followups()
    _rejudge(contact.workspace_id, followups, before)
    db().commit()
    harpoon().queue.enqueue_followups(followups.jobs)


@bp.post("/contacts/<int:contact_id>/account")
@requires("accounts.manage")
def contacts_assign_account(contact_id: int):
    contact = scoped_or_404(Contact, contact_id, NOT_MERGED)
    form = AccountNameForm()
    if form.validate_on_submit():
        account = account_named(db(), contact.workspace_id, form.account_name.data)
        if account is None:
            form.account_name.errors.append(_("Enter a company name."))
        else:
            assign_account_manually(contact, account)
            flash(_("Assigned to %(account)s.", account=account.name), "success")
            return redirect(url_for("admin.contacts_detail", contact_id=contact.id))
    return _contact_page(contact, account_form=form)


@bp.post("/contacts/<int:contact_id>/account/detach")
@requires("accounts.manage")
def contacts_detach_account(contact_id: int):
    contact = scoped_or_404(Contact, contact_id, NOT_MERGED)
    if contact.account_id is not None:
        detach_account(contact)
        flash(_("Detached from the account."), "success")
    back = request.form.get("next")
    if not safe_path(back, "/admin/"):
        back = url_for("admin.contacts_detail", contact_id=contact.id)
    return redirect(back)


@bp.post("/contacts/<int:contact_id>/stage")
@requires("stages.move")
def contacts_move_stage(contact_id: int):
    contact = scoped_or_404(Contact, contact_id, NOT_MERGED)
    model = load_model(db(), contact.workspace_id)
    form = stage_form(model, contact.stage, StageForm())
    if not form.validate_on_submit():
        return _contact_page(contact, stage_form=form)
    names = stage_names(model.stages)
    label = contact.name or f"#{contact.id}"
    if move_stage(contact, form):
        db().commit()
        flash(
            _("Moved %(name)s to %(stage)s.", name=label, stage=names[form.stage.data]), "success"
        )
    else:
        flash(_("%(name)s is at %(stage)s already.", name=label, stage=names[contact.stage]))
    return redirect(url_for("admin.contacts_detail", contact_id=contact.id))
