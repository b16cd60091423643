"""Tags: the workspace's tags by group, the rules that apply them, the title dictionary, sync."""

import logging
from dataclasses import dataclass

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import load_only
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts import INTERACTION_LABELS
from app.admin.labels import (
    CODE_GROUPS,
    CONTACT_ROLE_LABELS,
    SENIORITY_LABELS,
    TAG_GROUP_LABELS,
    error_messages,
    tag_label,
)
from app.extensions import harpoon
from core.jobs import Followups, Job
from core.references import TAG
from crm.contacts import title_dictionary
from crm.rule_config import (
    DEFAULT_PROFILE_PATTERN,
    INTERACTION_KINDS,
    REPLY_KINDS,
    TAGLESS_KINDS,
    rule_tag,
    validate_rule,
)
from crm.tags import COLUMN_GROUPS, MAX_TAG_NAME, TagBook, queue_holders_sync
from crm.titles import ROLE_RULES, SENIORITY_RULES, normalize_title
from models import (
    Channel,
    ChannelKind,
    Contact,
    ContactTag,
    RuleKind,
    SyncStatus,
    Tag,
    TagGroup,
    TagRemote,
    TagRule,
    TagSyncItem,
    TitleSynonym,
    utcnow,
)

log = logging.getLogger(__name__)
TABS = {
    "tags": _l("Tags"),
    "rules": _l("Rules"),
    "dictionary": _l("Title dictionary"),
    "sync": _l("Sync"),
}
RULE_KIND_LABELS = {
    RuleKind.KEYWORD: _l("Keyword"),
    RuleKind.MENU: _l("Menu click"),
    RuleKind.PROFILE: _l("Profile (“我是…”)"),
    RuleKind.SOURCE: _l("Source (QR scene / Contact Me)"),
    RuleKind.BEHAVIOR: _l("Behavior"),
    RuleKind.INACTIVITY: _l("Inactivity"),
}
MATCH_LABELS = {
    "contains": _l("Contains"),
    "exact": _l("Is exactly"),
    "regex": _l("Matches the regular expression"),
    "prefix": _l("Starts with"),
    "equals": _l("Equals"),
}
SYNC_STATUS_LABELS = {
    SyncStatus.PENDING: _l("Pending"),
    SyncStatus.DONE: _l("Done"),
    SyncStatus.FAILED: _l("Failed"),
    SyncStatus.OVER_LIMIT: _l("Over the limit"),
}
SYNC_BADGES = {
    SyncStatus.PENDING: "warn",
    SyncStatus.DONE: "ok",
    SyncStatus.FAILED: "error",
    SyncStatus.OVER_LIMIT: "error",
    "ok": "ok",
    "failed": "error",
    "limit": "error",
}
REMOTE_STATUS_LABELS = {"ok": _l("OK"), "failed": _l("Failed"), "limit": _l("Limit reached")}
# Titles that show, on the dictionary tab, what the shipped rules make of real wording.
SAMPLE_TITLES = (
    "首席信息官",
    "信息中心主任",
    "IT经理",
    "集团CIO",
    "技术副总裁",
    "采购部经理",
    "财务总监",
    "高级Java开发工程师",
    "VP of Marketing",
    "Head of IT Infrastructure",
)
PROBLEM_ROWS = 50
# The tag's sync flag -> the channels it mirrors the tag on.
SYNC_CHANNEL_KINDS = {"sync_wechat": ChannelKind.OA, "sync_wecom": ChannelKind.WECOM}
PROBLEM_STATUSES = (SyncStatus.FAILED, SyncStatus.OVER_LIMIT)


@dataclass(frozen=True)
class ConfigField:
    """One kind-specific input of the rule form; its key is the config key it fills."""

    key: str
    label: str
    widget: str  # text, textarea, number, select, checkboxes
    choices: tuple = ()
    hint: str | None = None


RULE_FIELDS: dict[str, tuple[ConfigField, ...]] = {
    RuleKind.KEYWORD: (
        ConfigField("match", _l("Match"), "select", ("contains", "exact", "regex")),
        ConfigField(
            "pattern",
            _l("Keyword"),
            "text",
            hint=_l("Up to 200 characters; a regular expression in Python syntax for “regex”."),
        ),
    ),
    RuleKind.MENU: (
        ConfigField(
            "key",
            _l("Menu key"),
            "text",
            hint=_l("The key of a click menu item (at most 128 bytes; a Chinese character is 3)."),
        ),
    ),
    RuleKind.PROFILE: (
        ConfigField(
            "pattern",
            _l("Pattern"),
            "textarea",
            hint=_l(
                "A regular expression that captures (?P<title>…) and/or (?P<company>…) "
                "from a follower's message."
            ),
        ),
    ),
    RuleKind.SOURCE: (
        ConfigField("match", _l("Match"), "select", ("exact", "prefix")),
        ConfigField(
            "value",
            _l("QR scene or Contact Me state"),
            "text",
            hint=_l("Up to 64 characters."),
        ),
    ),
    RuleKind.BEHAVIOR: (
        ConfigField("kinds", _l("Interactions"), "checkboxes", tuple(INTERACTION_KINDS)),
        ConfigField("min_count", _l("At least this many times"), "number", hint=_l("1 to 1000.")),
        ConfigField("days", _l("Within the last days"), "number", hint=_l("1 to 365.")),
        ConfigField(
            "property",
            _l("Only where the property"),
            "text",
            hint=_l("Optional, e.g. key (menu), url (link) or content (message)."),
        ),
        ConfigField("match", _l("Compared by"), "select", ("equals", "contains")),
        ConfigField("value", _l("Value"), "text", hint=_l("Needed with a property.")),
    ),
    RuleKind.INACTIVITY: (
        ConfigField(
            "days",
            _l("No interaction for days"),
            "number",
            hint=_l("1 to 730. The tag comes off at the contact's next interaction."),
        ),
    ),
}
# What a new rule's form starts with.
RULE_DEFAULTS = {
    RuleKind.KEYWORD: {"match": "contains"},
    RuleKind.PROFILE: {"pattern": DEFAULT_PROFILE_PATTERN},
    RuleKind.SOURCE: {"match": "exact"},
    RuleKind.BEHAVIOR: {"match": "equals", "min_count": "3", "days": "30"},
    RuleKind.INACTIVITY: {"days": "90"},
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _group_choices() -> list[tuple[str, str]]:
    return [(group.value, label) for group, label in TAG_GROUP_LABELS.items()]


class TagForm(FlaskForm):
    group = SelectField(_l("Group"), choices=_group_choices, default=TagGroup.INTEREST)
    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=MAX_TAG_NAME)]
    )
    description = StringField(_l("Description"), filters=[_strip], validators=[Length(max=200)])


class TagEditForm(FlaskForm):
    name = StringField(
        _l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=MAX_TAG_NAME)]
    )
    description = StringField(_l("Description"), filters=[_strip], validators=[Length(max=200)])


class RuleForm(FlaskForm):
    """What every rule has; the kind's own settings are checked by crm.rule_config."""

    kind = SelectField(
        _l("Kind"), choices=lambda: list(RULE_KIND_LABELS.items()), default=RuleKind.KEYWORD
    )
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    # Checked against the workspace's tags in _pick_tag: a tagless kind leaves it out.
    tag_id = SelectField(_l("Tag"), choices=[], validate_choice=False)
    new_tag_group = SelectField(
        _l("Or a new tag in group"), choices=_group_choices, default=TagGroup.INTEREST
    )
    new_tag_name = StringField(
        _l("New tag name"), filters=[_strip], validators=[Length(max=MAX_TAG_NAME)]
    )
    reply = TextAreaField(_l("Reply"), filters=[_strip])
    enabled = BooleanField(_l("Enabled"), default=True)
    position = IntegerField(
        _l("Position"), validators=[Optional(), NumberRange(0, 9999)], render_kw={"min": 0}
    )


class SynonymForm(FlaskForm):
    phrase = StringField(
        _l("Phrase in the title"), filters=[_strip], validators=[DataRequired(), Length(max=60)]
    )
    role = SelectField(_l("Role"), choices=lambda: list(CONTACT_ROLE_LABELS.items()))
    seniority = SelectField(
        _l("Seniority"),
        choices=lambda: [("", _l("From the rest of the title")), *SENIORITY_LABELS.items()],
    )


# ---- the page and its tabs -------------------------------------------------------------


@bp.get("/tags")
@requires("view")
def tags():
    tab = request.args.get("tab", "tags")
    if tab not in TABS:
        tab = "tags"
    return _render_tab(tab)


def _render_tab(tab: str, **context):
    builders = {
        "tags": _tags_context,
        "rules": _rules_context,
        "dictionary": _dictionary_context,
        "sync": _sync_context,
    }
    return render_template("admin/tags.html", tab=tab, tabs=TABS, **{**builders[tab](), **context})


def _tags_context() -> dict:
    ws = workspace_id()
    all_tags = db().scalars(select(Tag).where(Tag.workspace_id == ws).order_by(Tag.name))
    by_group: dict[str, list[Tag]] = {group: [] for group in TagGroup}
    for tag in all_tags:
        by_group.setdefault(tag.group, []).append(tag)
    contact_counts = dict(
        db()
        .execute(
            select(ContactTag.tag_id, func.count())
            .where(ContactTag.workspace_id == ws)
            .group_by(ContactTag.tag_id)
        )
        .all()
    )
    rule_counts = dict(
        db()
        .execute(
            select(TagRule.tag_id, func.count())
            .where(TagRule.workspace_id == ws, TagRule.tag_id.is_not(None))
            .group_by(TagRule.tag_id)
        )
        .all()
    )
    return {
        "by_group": by_group,
        "contact_counts": contact_counts,
        "rule_counts": rule_counts,
        "group_labels": TAG_GROUP_LABELS,
        "code_groups": CODE_GROUPS,
        "tag_label": tag_label,
        "form": TagForm(formdata=None),
        "edit_errors": {},
    }


def _rules_context() -> dict:
    ws = workspace_id()
    rows = db().execute(
        select(TagRule, Tag)
        .outerjoin(Tag, Tag.id == TagRule.tag_id)
        .where(TagRule.workspace_id == ws)
        .order_by(TagRule.position, TagRule.id)
    )
    by_kind: dict[str, list] = {kind: [] for kind in RuleKind}
    for rule, tag in rows:
        by_kind.setdefault(rule.kind, []).append((rule, tag, rule_summary(rule)))
    return {
        "by_kind": by_kind,
        "kind_labels": RULE_KIND_LABELS,
        "group_labels": TAG_GROUP_LABELS,
        "tag_label": tag_label,
    }


def _dictionary_context() -> dict:
    ws = workspace_id()
    synonyms = db().scalars(
        select(TitleSynonym).where(TitleSynonym.workspace_id == ws).order_by(TitleSynonym.phrase)
    )
    title = _typed_title()
    return {
        "synonyms": list(synonyms),
        "form": SynonymForm(formdata=None),
        "role_labels": CONTACT_ROLE_LABELS,
        "seniority_labels": SENIORITY_LABELS,
        "title": title,
        "result": _try_title(title) if title else None,
        "role_rule_count": len(ROLE_RULES),
        "seniority_rule_count": len(SENIORITY_RULES),
        "samples": [(sample, normalize_title(sample)) for sample in SAMPLE_TITLES],
    }


def _sync_context() -> dict:
    ws = workspace_id()
    channels = list(
        db().scalars(
            select(Channel)
            .options(load_only(Channel.name, Channel.kind, Channel.created_at))
            .where(Channel.workspace_id == ws)
            .order_by(Channel.created_at, Channel.id)
        )
    )
    counts: dict[int, dict[str, int]] = {}
    for channel_id, status, count in db().execute(
        select(TagSyncItem.channel_id, TagSyncItem.status, func.count())
        .where(TagSyncItem.workspace_id == ws)
        .group_by(TagSyncItem.channel_id, TagSyncItem.status)
    ):
        counts.setdefault(channel_id, {})[status] = count
    synced = list(
        db().scalars(
            select(Tag)
            .where(Tag.workspace_id == ws, or_(Tag.sync_wechat, Tag.sync_wecom))
            .order_by(Tag.group, Tag.name)
        )
    )
    remotes = {
        (remote.channel_id, remote.tag_id): remote
        for remote in db().scalars(select(TagRemote).where(TagRemote.workspace_id == ws))
    }
    per_channel = [
        (
            channel,
            counts.get(channel.id, {}),
            [
                (tag, remotes.get((channel.id, tag.id)))
                for tag in synced
                if any(
                    getattr(tag, flag)
                    for flag, kind in SYNC_CHANNEL_KINDS.items()
                    if kind == channel.kind
                )
            ],
        )
        for channel in channels
    ]
    problems = db().execute(
        select(TagSyncItem, Tag, Channel.name)
        .join(Tag, Tag.id == TagSyncItem.tag_id)
        .join(Channel, Channel.id == TagSyncItem.channel_id)
        .where(TagSyncItem.workspace_id == ws, TagSyncItem.status.in_(PROBLEM_STATUSES))
        .order_by(TagSyncItem.updated_at.desc(), TagSyncItem.id.desc())
        .limit(PROBLEM_ROWS)
    )
    return {
        "per_channel": per_channel,
        "problems": list(problems),
        "failed": sum(c.get(SyncStatus.FAILED, 0) for c in counts.values()),
        "sync_statuses": list(SyncStatus),
        "sync_status_labels": SYNC_STATUS_LABELS,
        "remote_status_labels": REMOTE_STATUS_LABELS,
        "sync_badges": SYNC_BADGES,
        "group_labels": TAG_GROUP_LABELS,
        "tag_label": tag_label,
    }


# ---- tags --------------------------------------------------------------------------------


def _tag_or_404(tag_id: int) -> Tag:
    tag = db().scalar(select(Tag).where(Tag.id == tag_id, Tag.workspace_id == workspace_id()))
    if tag is None:
        abort(404)
    return tag


def _name_problem(group: str, name: str, *, except_id: int | None = None) -> str | None:
    """Why a tag may not take this name in its group, or None."""
    codes = CODE_GROUPS.get(group)
    if codes is not None and name not in codes:
        return _code_names(group)
    taken = db().scalar(
        select(Tag.id).where(
            Tag.workspace_id == workspace_id(),
            Tag.group == group,
            Tag.name == name,
            Tag.id != (except_id or 0),
        )
    )
    if taken:
        return _("This group already has a tag with this name.")
    return None


def _code_names(group: str) -> str:
    return _(
        "%(group)s tags are named by a code: %(codes)s.",
        group=TAG_GROUP_LABELS[group],
        codes=", ".join(CODE_GROUPS[group]),
    )


def _back_to_tag(tag_id: int | None = None):
    anchor = f"#tag-{tag_id}" if tag_id else ""
    return redirect(url_for("admin.tags", tab="tags") + anchor)


@bp.post("/tags/new")
@requires("tags.manage")
def tags_create():
    form = TagForm()
    if form.validate() and (problem := _name_problem(form.group.data, form.name.data)):
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
    tag = _tag_or_404(tag_id)
    form = TagEditForm()
    if tag.group in CODE_GROUPS:
        form.name.data = tag.name  # code-named: the role/seniority columns mirror the name
    if form.validate() and (problem := _name_problem(tag.group, form.name.data, except_id=tag.id)):
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
    tag = _tag_or_404(tag_id)
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
    if stopped:  # what has not been sent yet is no longer wanted
        channels = select(Channel.id).where(
            Channel.workspace_id == workspace_id(), Channel.kind.in_(stopped)
        )
        db().execute(
            delete(TagSyncItem).where(
                TagSyncItem.tag_id == tag.id,
                TagSyncItem.channel_id.in_(channels),
                TagSyncItem.status.in_((SyncStatus.PENDING, SyncStatus.FAILED)),
            )
        )
    audit(db(), "tag.sync", "tag", tag.id, changes)
    db().commit()
    _enqueue_sync(followups.jobs)
    flash(_("Sync settings of %(name)s saved.", name=tag_label(tag)), "success")
    return _back_to_tag(tag.id)


@bp.post("/tags/<int:tag_id>/delete")
@requires("tags.manage")
def tags_delete(tag_id: int):
    tag = _tag_or_404(tag_id)
    if tag.sync_wechat or tag.sync_wecom:
        flash(
            _("Turn off the WeChat and WeCom sync of %(name)s first.", name=tag_label(tag)), "error"
        )
        return _back_to_tag(tag.id)
    ws = workspace_id()
    column = COLUMN_GROUPS.get(tag.group)
    if column:  # the contacts' role/seniority column mirrors the tag
        holders = select(ContactTag.contact_id).where(ContactTag.tag_id == tag.id)
        db().execute(
            update(Contact)
            .where(
                Contact.workspace_id == ws,
                Contact.id.in_(holders),
                getattr(Contact, column) == tag.name,
            )
            .values({column: None})
            .execution_options(synchronize_session=False)
        )
    contacts = db().execute(delete(ContactTag).where(ContactTag.tag_id == tag.id)).rowcount
    rules = db().execute(delete(TagRule).where(TagRule.tag_id == tag.id)).rowcount
    db().execute(delete(TagSyncItem).where(TagSyncItem.tag_id == tag.id))
    db().execute(delete(TagRemote).where(TagRemote.tag_id == tag.id))
    audit(
        db(),
        "tag.delete",
        "tag",
        tag.id,
        {"group": tag.group, "name": tag.name, "contacts": contacts, "rules": rules},
    )
    db().delete(tag)
    db().commit()
    flash(_("Tag %(name)s deleted.", name=tag_label(tag)), "success")
    return _back_to_tag()


# ---- rules -------------------------------------------------------------------------------


def rule_summary(rule: TagRule) -> str:
    """The rule's condition in a line; a stored config of another shape still reads."""
    config = rule.config or {}
    match = config.get("match", "")
    if rule.kind == RuleKind.KEYWORD:
        pattern = config.get("pattern", "")
        if match == "regex":
            return _("Message matches /%(pattern)s/", pattern=pattern)
        if match == "exact":
            return _("Message is “%(pattern)s”", pattern=pattern)
        return _("Message contains “%(pattern)s”", pattern=pattern)
    if rule.kind == RuleKind.MENU:
        return _("Menu key %(key)s", key=config.get("key", ""))
    if rule.kind == RuleKind.PROFILE:
        return _("Message matches /%(pattern)s/", pattern=config.get("pattern", ""))
    if rule.kind == RuleKind.SOURCE:
        if match == "prefix":
            return _("Scene or state starts with “%(value)s”", value=config.get("value", ""))
        return _("Scene or state is “%(value)s”", value=config.get("value", ""))
    if rule.kind == RuleKind.BEHAVIOR:
        summary = _(
            "At least %(count)s× %(kinds)s within %(days)s days",
            count=config.get("min_count", ""),
            kinds=", ".join(str(INTERACTION_LABELS.get(k, k)) for k in config.get("kinds", [])),
            days=config.get("days", ""),
        )
        if config.get("property"):
            summary += " " + _(
                "where %(property)s %(match)s “%(value)s”",
                property=config["property"],
                match=str(MATCH_LABELS.get(match, match)).lower(),
                value=config.get("value", ""),
            )
        return summary
    if rule.kind == RuleKind.INACTIVITY:
        return _("No interaction for %(days)s days", days=config.get("days", ""))
    return ""


def _rule_or_404(rule_id: int) -> TagRule:
    rule = db().scalar(
        select(TagRule).where(TagRule.id == rule_id, TagRule.workspace_id == workspace_id())
    )
    if rule is None:
        abort(404)
    return rule


def _tag_choices() -> list[tuple[str, str]]:
    rows = db().scalars(
        select(Tag).where(Tag.workspace_id == workspace_id()).order_by(Tag.group, Tag.name)
    )
    return [("", _("— none —"))] + [
        (str(tag.id), f"{TAG_GROUP_LABELS.get(tag.group, tag.group)} · {tag_label(tag)}")
        for tag in rows
    ]


def _config_values(kind: str, formdata) -> dict:
    """The kind's settings as typed: an empty input is left out, so it reads as missing."""
    values = {}
    for spec in RULE_FIELDS.get(kind, ()):
        name = f"config-{spec.key}"
        if spec.widget == "checkboxes":
            values[spec.key] = formdata.getlist(name)
        elif value := formdata.get(name, "").strip():
            values[spec.key] = value
    return values


def _rule_kind(form: RuleForm) -> str:
    return form.kind.data if form.kind.data in RULE_FIELDS else RuleKind.KEYWORD


def _render_rule_form(form: RuleForm, rule: TagRule | None, values: dict, errors: dict):
    return render_template(
        "admin/tags_rule.html",
        rule=rule,
        **_rule_fields_context(_rule_kind(form), form, values, errors),
    )


def _rule_fields_context(kind: str, form: RuleForm, values: dict, errors: dict) -> dict:
    return {
        "kind": kind,
        "fields": RULE_FIELDS[kind],
        "values": values,
        "config_errors": errors,
        "takes_tag": kind not in TAGLESS_KINDS,
        "takes_reply": kind in REPLY_KINDS,
        "match_labels": MATCH_LABELS,
        "interaction_labels": INTERACTION_LABELS,
        "form": form,
    }


def _pick_tag(form: RuleForm, kind: str) -> tuple[Tag | None, bool]:
    """The existing tag the form picks (None for a typed new one), and whether it names one."""
    if kind in TAGLESS_KINDS:
        return None, False
    if form.new_tag_name.data:
        group, name = form.new_tag_group.data, form.new_tag_name.data
        codes = CODE_GROUPS.get(group)
        if codes is not None and name not in codes:
            _add_error(form.new_tag_name, _code_names(group))
        return None, True
    if form.tag_id.data:
        picked = form.tag_id.data
        # Only the ASCII digits the picker offers: int() would also read "１２".
        if not (picked.isascii() and picked.isdigit()):
            _add_error(form.tag_id, _(TAG.message))
            return None, True
        try:
            return rule_tag(db(), workspace_id(), int(picked)), True
        except ValidationError as exc:
            for message in exc.messages["tag_id"]:
                _add_error(form.tag_id, _(message))
            return None, True
    return None, False


def _add_error(field, message: str) -> None:
    field.errors = [*field.errors, message]


def _save_rule(rule: TagRule | None):
    """The new/edit form: GET shows it, POST saves it or shows it with its errors."""
    form = RuleForm(obj=rule)
    form.tag_id.choices = _tag_choices()
    if request.method == "GET" and rule is None and request.args.get("kind") in RULE_FIELDS:
        form.kind.data = request.args["kind"]
    kind = _rule_kind(form)
    if request.method == "GET":
        values = _stored_values(rule.config) if rule else dict(RULE_DEFAULTS.get(kind, {}))
        return _render_rule_form(form, rule, values, {})
    values = _config_values(kind, request.form)
    if request.form.get("action") == "reload":  # the kind changed without JavaScript
        return _render_rule_form(form, rule, values or dict(RULE_DEFAULTS.get(kind, {})), {})
    form.validate()
    tag, has_tag = _pick_tag(form, kind)
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
            target = {"tag": _tag_field(form), "reply": form.reply}.get(key, form.kind)
            for message in error_messages(messages):
                _add_error(target, message)
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
        position = _next_position(kind)
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


def _tag_field(form: RuleForm):
    return form.new_tag_name if form.new_tag_name.data else form.tag_id


def _stored_values(config: dict) -> dict:
    return {key: value if isinstance(value, list) else str(value) for key, value in config.items()}


def _next_position(kind: str) -> int:
    last = db().scalar(
        select(func.max(TagRule.position)).where(
            TagRule.workspace_id == workspace_id(), TagRule.kind == kind
        )
    )
    return 0 if last is None else last + 1


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
    return _save_rule(_rule_or_404(rule_id))


@bp.get("/tags/rules/fields")
@requires("tags.manage")
def tags_rule_fields():
    """The kind's own inputs, swapped in by htmx when the kind select changes."""
    form = RuleForm(formdata=request.args)
    form.tag_id.choices = _tag_choices()
    kind = _rule_kind(form)
    context = _rule_fields_context(kind, form, dict(RULE_DEFAULTS.get(kind, {})), {})
    return render_template("admin/tags_rule_fields.html", **context)


@bp.post("/tags/rules/<int:rule_id>/toggle")
@requires("tags.manage")
def tags_rule_toggle(rule_id: int):
    rule = _rule_or_404(rule_id)
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
    rule = _rule_or_404(rule_id)
    audit(db(), "tag_rule.delete", "tag_rule", rule.id, _rule_audit(rule))
    db().delete(rule)
    _commit_rules()
    flash(_("Rule %(name)s deleted.", name=rule.name), "success")
    return redirect(url_for("admin.tags", tab="rules"))


# ---- title dictionary --------------------------------------------------------------------


def _typed_title() -> str:
    return request.args.get("title", "").strip()[: Contact.__table__.c.title.type.length]


def _try_title(title: str) -> dict:
    return {
        "title": title,
        "yours": title_dictionary(db(), workspace_id()).normalize(title),
        "shipped": normalize_title(title),
    }


@bp.post("/tags/dictionary")
@requires("tags.manage")
def tags_synonym_create():
    form = SynonymForm()
    if form.validate():
        taken = db().scalar(
            select(TitleSynonym.id).where(
                TitleSynonym.workspace_id == workspace_id(),
                func.lower(TitleSynonym.phrase) == form.phrase.data.lower(),
            )
        )
        if taken:
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
    synonym = db().scalar(
        select(TitleSynonym).where(
            TitleSynonym.id == synonym_id, TitleSynonym.workspace_id == workspace_id()
        )
    )
    if synonym is None:
        abort(404)
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
            result=_try_title(title) if title else None,
            role_labels=CONTACT_ROLE_LABELS,
            seniority_labels=SENIORITY_LABELS,
        )
    else:
        page = _render_tab("dictionary")
    response = make_response(page)
    response.vary.add("HX-Request")
    return response


# ---- sync --------------------------------------------------------------------------------


def _workspace_channel_ids() -> list[int]:
    return list(db().scalars(select(Channel.id).where(Channel.workspace_id == workspace_id())))


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
    channel_ids = _workspace_channel_ids()
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
    retried = (
        db()
        .execute(
            update(TagSyncItem)
            .where(TagSyncItem.workspace_id == ws, TagSyncItem.status == SyncStatus.FAILED)
            .values(status=SyncStatus.PENDING, attempts=0, error=None, next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        .rowcount
    )
    audit(db(), "tag_sync.retry", "workspace", ws, {"items": retried})
    db().commit()
    if _enqueue_sync({(Job.SYNC_TAGS, channel_id) for channel_id in _workspace_channel_ids()}):
        flash(
            ngettext(
                "%(num)s failed item queued again.", "%(num)s failed items queued again.", retried
            ),
            "success",
        )
    return redirect(url_for("admin.tags", tab="sync"))
