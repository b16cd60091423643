"""The tags page's routes: its four tabs (tags, rules, the title dictionary, sync) and
what they change. A rule change reaches this process's passive replies at once."""

import logging

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.labels import (
    CODE_GROUPS,
    CONTACT_ROLE_LABELS,
    SENIORITY_LABELS,
    error_messages,
    tag_label,
)
from app.admin.lookups import scoped_or_404
from app.admin.tags.forms import (
    RULE_DEFAULTS,
    RULE_FIELDS,
    SYNC_CHANNEL_KINDS,
    RuleForm,
    SynonymForm,
    TagEditForm,
    TagForm,
    add_error,
    config_values,
    name_problem,
    pick_tag,
    rule_fields_context,
    rule_kind,
    stored_values,
    tag_choices,
    tag_field,
)
from app.admin.tags.presenters import (
    TABS,
    dictionary_tab,
    rules_tab,
    sync_tab,
    tags_tab,
    tried_title,
)
from app.extensions import harpoon
from core.jobs import Followups, Job
from crm.channels import workspace_channel_ids
from crm.rule_config import REPLY_KINDS, validate_rule
from crm.rules import next_rule_position
from crm.tags import (
    TagBook,
    delete_tag,
    drop_unsent_sync,
    queue_holders_sync,
    retry_failed_sync,
)
from crm.title_synonyms import phrase_taken
from models import Contact, Tag, TagRule, TitleSynonym

log = logging.getLogger(__name__)


@bp.get("/tags")
@requires("view")
def tags():
    tab = request.args.get("tab", "tags")
    if tab not in TABS:
        tab = "tags"
    return _render_tab(tab)


def _render_tab(tab: str, **context):
    """The page on this tab; `context` replaces what the tab shows by default (a form with
    its mistakes)."""
    session, ws = db(), workspace_id()
    builders = {
        "tags": lambda: tags_tab(session, ws),
        "rules": lambda: rules_tab(session, ws),
        "dictionary": lambda: dictionary_tab(session, ws, _typed_title()),
        "sync": lambda: sync_tab(session, ws),
    }
    return render_template("admin/tags.html", tab=tab, tabs=TABS, **{**builders[tab](), **context})


def _back_to_tag(tag_id: int | None = None):
    anchor = f"#tag-{tag_id}" if tag_id else ""
    return redirect(url_for("admin.tags", tab="tags") + anchor)


@bp.post("/tags/new")
@requires("tags.manage")
def tags_create():
    form = TagForm()
    if form.validate() and (
        problem := name_problem(db(), workspace_id(), form.group.data, form.name.data)
    ):
        form.name.errors.append(problem)
    if form.errors:
        return _render_tab("tags", form=form)
    tag = Tag(
        workspace_id=workspace_id(),
        group=form.group.data,
        name=form.name.data,
        description=form.description.data,
    )
    db().add(tag)
    try:
        db().flush()
    except IntegrityError:  # the same name submitted twice at once
        db().rollback()
        form.name.errors.append(_("This group already has a tag with this name."))
        return _render_tab("tags", form=form)
    audit(db(), "tag.create", "tag", tag.id, {"group": tag.group, "name": tag.name})
    db().commit()
    flash(_("Tag %(name)s created.", name=tag_label(tag)), "success")
    return _back_to_tag(tag.id)


@bp.post("/tags/<int:tag_id>/edit")
@requires("tags.manage")
def tags_update(tag_id: int):
    tag = scoped_or_404(Tag, tag_id)
    form = TagEditForm()
    if tag.group in CODE_GROUPS:
        form.name.data = tag.name  # code-named: the role/seniority columns mirror the name
    if form.validate() and (
        problem := name_problem(db(), workspace_id(), tag.group, form.name.data, except_id=tag.id)
    ):
        form.name.errors.append(problem)
    if form.errors:
        return _render_tab("tags", edit_errors={tag.id: form})
    changes = {
        field: [getattr(tag, field), value]
        for field, value in (("name", form.name.data), ("description", form.description.data))
        if getattr(tag, field) != value
    }
    if changes:
        tag.name, tag.description = form.name.data, form.description.data
        try:
            db().flush()
        except IntegrityError:  # renamed to the same name twice at once
            db().rollback()
            form.name.errors.append(_("This group already has a tag with this name."))
            return _render_tab("tags", edit_errors={tag_id: form})
        audit(db(), "tag.update", "tag", tag.id, changes)
        db().commit()
        flash(_("Tag %(name)s saved.", name=tag_label(tag)), "success")
    return _back_to_tag(tag.id)


@bp.post("/tags/<int:tag_id>/sync")
@requires("tags.manage")
def tags_sync_flags(tag_id: int):
    tag = scoped_or_404(Tag, tag_id)
    wanted = {flag: request.form.get(flag) == "y" for flag in SYNC_CHANNEL_KINDS}
    changes = {
        flag: [getattr(tag, flag), value]
        for flag, value in wanted.items()
        if getattr(tag, flag) != value
    }
    if not changes:
        return _back_to_tag(tag.id)
    for flag, value in wanted.items():
        setattr(tag, flag, value)
    followups = Followups()
    if any(value for _old, value in changes.values()):
        # The book loads this same row (one object per id in a session): it sees the new flags.
        queue_holders_sync(db(), TagBook(db(), workspace_id()), tag, followups)
    stopped = [SYNC_CHANNEL_KINDS[name] for name, (_old, value) in changes.items() if not value]
    if stopped:
        drop_unsent_sync(db(), workspace_id(), tag.id, stopped)
    audit(db(), "tag.sync", "tag", tag.id, changes)
    db().commit()
    _enqueue_sync(followups.jobs)
    flash(_("Sync settings of %(name)s saved.", name=tag_label(tag)), "success")
    return _back_to_tag(tag.id)


@bp.post("/tags/<int:tag_id>/delete")
@requires("tags.manage")
def tags_delete(tag_id: int):
    tag = scoped_or_404(Tag, tag_id)
    if tag.sync_wechat or tag.sync_wecom:
        flash(
            _("Turn off the WeChat and WeCom sync of %(name)s first.", name=tag_label(tag)), "error"
        )
        return _back_to_tag(tag.id)
    contacts, rules = delete_tag(db(), tag)
    audit(
        db(),
        "tag.delete",
        "tag",
        tag.id,
        {"group": tag.group, "name": tag.name, "contacts": contacts, "rules": rules},
    )
    db().commit()
    flash(_("Tag %(name)s deleted.", name=tag_label(tag)), "success")
    return _back_to_tag()


def _render_rule_form(form: RuleForm, rule: TagRule | None, values: dict, errors: dict):
    return render_template(
        "admin/tags_rule.html",
        rule=rule,
        **rule_fields_context(rule_kind(form), form, values, errors),
    )


def _save_rule(rule: TagRule | None):
    """The new/edit form: GET shows it, POST saves it or shows it with its errors."""
    form = RuleForm(obj=rule)
    form.tag_id.choices = tag_choices(db(), workspace_id())
    if request.method == "GET" and rule is None and request.args.get("kind") in RULE_FIELDS:
        form.kind.data = request.args["kind"]
    kind = rule_kind(form)
    if request.method == "GET":
        values = stored_values(rule.config) if rule else dict(RULE_DEFAULTS.get(kind, {}))
        return _render_rule_form(form, rule, values, {})
    values = config_values(kind, request.form)
    if request.form.get("action") == "reload":  # the kind changed without JavaScript
        return _render_rule_form(form, rule, values or dict(RULE_DEFAULTS.get(kind, {})), {})
    form.validate()
    tag, has_tag = pick_tag(db(), workspace_id(), form, kind)
    errors: dict[str, list[str]] = {}
    reply = form.reply.data if kind in REPLY_KINDS else None
    try:
        config = validate_rule(kind, values, has_tag=has_tag, reply=reply or None)
    except ValidationError as exc:
        shown = {spec.key for spec in RULE_FIELDS[kind]}
        for key, messages in exc.messages.items():
            if key in shown:
                errors[key] = error_messages(messages)
                continue
            # Anything without an input of its own shows on the kind, never silently.
            target = {"tag": tag_field(form), "reply": form.reply}.get(key, form.kind)
            for message in error_messages(messages):
                add_error(target, message)
    if form.errors or errors:
        return _render_rule_form(form, rule, values, errors)
    if has_tag and tag is None:
        tag = _tag_named(form.new_tag_group.data, form.new_tag_name.data)
    before = _rule_audit(rule) if rule else {}
    if form.position.data is not None:
        position = form.position.data
    elif rule is not None and rule.kind == kind:
        position = rule.position
    else:  # before the new rule is added: a flush would count it
        position = next_rule_position(db(), workspace_id(), kind)
    if rule is None:
        rule = TagRule(workspace_id=workspace_id())
        db().add(rule)
    rule.kind, rule.name, rule.config = kind, form.name.data, config
    rule.tag_id = tag.id if tag else None
    rule.reply = reply or None
    rule.enabled = form.enabled.data
    rule.position = position
    db().flush()
    after = _rule_audit(rule)
    if before:
        changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        action = "tag_rule.update"
    else:
        changes, action = after, "tag_rule.create"
    if changes:
        audit(db(), action, "tag_rule", rule.id, changes)
    _commit_rules()
    flash(_("Rule %(name)s saved.", name=rule.name), "success")
    return redirect(url_for("admin.tags", tab="rules") + f"#rule-{rule.id}")


def _tag_named(group: str, name: str) -> Tag:
    """The group's tag of this name, created (and audited) when it is new."""
    book = TagBook(db(), workspace_id())
    known = {tag.id for tag in book.in_group(group)}
    tag = book.get(db(), group, name)
    if tag.id not in known:
        audit(db(), "tag.create", "tag", tag.id, {"group": tag.group, "name": tag.name})
    return tag


def _commit_rules() -> None:
    """Commit a rule change; this process's passive replies see it at once (others
    within the cache's few seconds)."""
    db().commit()
    harpoon().replies.invalidate(workspace_id())


def _rule_audit(rule: TagRule) -> dict:
    return {
        "kind": rule.kind,
        "name": rule.name,
        "tag_id": rule.tag_id,
        "config": rule.config,
        "reply": rule.reply,
        "enabled": rule.enabled,
        "position": rule.position,
    }


@bp.route("/tags/rules/new", methods=["GET", "POST"])
@requires("tags.manage")
def tags_rule_new():
    return _save_rule(None)


@bp.route("/tags/rules/<int:rule_id>", methods=["GET", "POST"])
@requires("tags.manage")
def tags_rule_edit(rule_id: int):
    return _save_rule(scoped_or_404(TagRule, rule_id))


@bp.get("/tags/rules/fields")
@requires("tags.manage")
def tags_rule_fields():
    """The kind's own inputs, swapped in by htmx when the kind select changes."""
    form = RuleForm(formdata=request.args)
    form.tag_id.choices = tag_choices(db(), workspace_id())
    kind = rule_kind(form)
    context = rule_fields_context(kind, form, dict(RULE_DEFAULTS.get(kind, {})), {})
    return render_template("admin/tags_rule_fields.html", **context)


@bp.post("/tags/rules/<int:rule_id>/toggle")
@requires("tags.manage")
def tags_rule_toggle(rule_id: int):
    rule = scoped_or_404(TagRule, rule_id)
    rule.enabled = not rule.enabled
    action = "tag_rule.enable" if rule.enabled else "tag_rule.disable"
    audit(db(), action, "tag_rule", rule.id, {"name": rule.name})
    _commit_rules()
    if rule.enabled:
        flash(_("Rule %(name)s enabled.", name=rule.name), "success")
    else:
        flash(_("Rule %(name)s disabled.", name=rule.name), "success")
    return redirect(url_for("admin.tags", tab="rules") + f"#rule-{rule.id}")


@bp.post("/tags/rules/<int:rule_id>/delete")
@requires("tags.manage")
def tags_rule_delete(rule_id: int):
    rule = scoped_or_404(TagRule, rule_id)
    audit(db(), "tag_rule.delete", "tag_rule", rule.id, _rule_audit(rule))
    db().delete(rule)
    _commit_rules()
    flash(_("Rule %(name)s deleted.", name=rule.name), "success")
    return redirect(url_for("admin.tags", tab="rules"))


def _typed_title() -> str:
    return request.args.get("title", "").strip()[: Contact.__table__.c.title.type.length]


@bp.post("/tags/dictionary")
@requires("tags.manage")
def tags_synonym_create():
    form = SynonymForm()
    if form.validate() and phrase_taken(db(), workspace_id(), form.phrase.data):
        form.phrase.errors.append(_("This phrase is already in the dictionary."))
    if form.errors:
        return _render_tab("dictionary", form=form)
    synonym = TitleSynonym(
        workspace_id=workspace_id(),
        phrase=form.phrase.data,
        role=form.role.data,
        seniority=form.seniority.data or None,
    )
    db().add(synonym)
    try:
        db().flush()
    except IntegrityError:  # the same phrase submitted twice at once
        db().rollback()
        form.phrase.errors.append(_("This phrase is already in the dictionary."))
        return _render_tab("dictionary", form=form)
    audit(
        db(),
        "title_synonym.create",
        "title_synonym",
        synonym.id,
        {"phrase": synonym.phrase, "role": synonym.role, "seniority": synonym.seniority},
    )
    db().commit()
    _retag_titles()
    flash(_("“%(phrase)s” added to the dictionary.", phrase=synonym.phrase), "success")
    return redirect(url_for("admin.tags", tab="dictionary"))


def _retag_titles() -> None:
    """Contacts' recorded titles are re-read with the new dictionary, in a job."""
    ws = workspace_id()
    harpoon().queue.enqueue(Job.RETAG_TITLES, ws, job_id=f"retag_titles-{ws}")


@bp.post("/tags/dictionary/<int:synonym_id>/delete")
@requires("tags.manage")
def tags_synonym_delete(synonym_id: int):
    synonym = scoped_or_404(TitleSynonym, synonym_id)
    audit(
        db(),
        "title_synonym.delete",
        "title_synonym",
        synonym.id,
        {"phrase": synonym.phrase, "role": synonym.role, "seniority": synonym.seniority},
    )
    db().delete(synonym)
    db().commit()
    _retag_titles()
    flash(_("“%(phrase)s” removed from the dictionary.", phrase=synonym.phrase), "success")
    return redirect(url_for("admin.tags", tab="dictionary"))


@bp.get("/tags/dictionary/try")
@requires("view")
def tags_try_title():
    """What the dictionary makes of a title: htmx swaps the result in, else the tab shows it."""
    if request.headers.get("HX-Request"):
        title = _typed_title()
        page = render_template(
            "admin/tags_title_result.html",
            result=tried_title(db(), workspace_id(), title) if title else None,
            role_labels=CONTACT_ROLE_LABELS,
            seniority_labels=SENIORITY_LABELS,
        )
    else:
        page = _render_tab("dictionary")
    response = make_response(page)
    response.vary.add("HX-Request")
    return response


def _enqueue_sync(jobs: set[tuple[str, int]]) -> bool:
    """Ask for the sync jobs; the items stay pending in the database if Redis is away."""
    try:
        harpoon().queue.enqueue_followups(jobs)
    except RedisError as exc:
        log.warning("tag sync request failed for channels %s: %s", sorted(jobs), exc)
        flash(_("The job queue is unreachable: the sync starts with its next run."), "error")
        return False
    return True


@bp.post("/tags/sync/run")
@requires("tags.manage")
def tags_sync_run():
    channel_ids = workspace_channel_ids(db(), workspace_id())
    if channel_ids:
        audit(db(), "tag_sync.run", "workspace", workspace_id(), {"channels": channel_ids})
        db().commit()
    if not channel_ids:
        flash(_("No channel is connected yet."), "error")
    elif _enqueue_sync({(Job.SYNC_TAGS, channel_id) for channel_id in channel_ids}):
        flash(
            ngettext(
                "Sync started for %(num)s channel.",
                "Sync started for %(num)s channels.",
                len(channel_ids),
            ),
            "success",
        )
    return redirect(url_for("admin.tags", tab="sync"))


@bp.post("/tags/sync/retry")
@requires("tags.manage")
def tags_sync_retry():
    ws = workspace_id()
    retried = retry_failed_sync(db(), ws)
    audit(db(), "tag_sync.retry", "workspace", ws, {"items": retried})
    db().commit()
    if _enqueue_sync(
        {(Job.SYNC_TAGS, channel_id) for channel_id in workspace_channel_ids(db(), ws)}
    ):
        flash(
            ngettext(
                "%(num)s failed item queued again.", "%(num)s failed items queued again.", retried
            ),
            "success",
        )
    return redirect(url_for("admin.tags", tab="sync"))
