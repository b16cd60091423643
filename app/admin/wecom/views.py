"""The WeCom pages' routes: 联系我 codes with their adds, the staff who receive them, 群活码
with their joins, and group welcome messages."""

from flask import Response, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError as InputError

from app.admin import bp, db
from app.admin.access import audit, ids_of_workspace, requires, workspace_id
from app.admin.labels import ADD_WAY_LABELS, TAG_GROUP_LABELS, tag_label
from app.admin.lookups import paginate, scoped_or_404
from app.admin.wecom.forms import (
    AUDITED_FIELDS,
    JOIN_WAY_AUDITED_FIELDS,
    STAFF_USER_REFERENCES,
    ContactWayForm,
    GroupWelcomeForm,
    JoinWayForm,
    StaffUserForm,
    placeholder_list,
    show_input_errors,
    show_join_way_errors,
    user_choices,
)
from app.admin.wecom.presenters import (
    adds_chart,
    member_rows,
    rotation_summary,
    sync_error_text,
    wecom_refusal,
)
from app.extensions import harpoon
from core.jobs import Job
from core.references import USER
from crm.channels import channels_of
from crm.directory import accounts_per_owner
from crm.tags import TagBook
from models import (
    ROLE_RANK,
    Channel,
    ChannelKind,
    ContactWay,
    GroupJoinWay,
    GroupWelcomeTemplate,
    Staff,
    User,
    Workspace,
    utcnow,
)
from sales.contact_way_rotation import adds_per_member, wanted_config
from sales.contact_ways import (
    MAX_STAFF,
    WELCOME_PLACEHOLDERS,
    adds_per_code,
    contact_ways_of,
    create_contact_way,
    delete_contact_way,
    staff_to_choose,
    update_contact_way,
)
from sales.group_welcome import (
    NICKNAME,
    create_group_welcome,
    delete_group_welcome,
    group_welcomes_of,
    update_group_welcome,
)
from sales.join_ways import (
    MAX_CHATS,
    create_join_way,
    delete_join_way,
    group_names,
    groups_to_choose,
    join_ways_of,
    joins_per_way,
    qr_picture,
    update_join_way,
    way_joins,
)
from sales.member_sign_in import forget_refused, refused_sign_ins
from sales.staff import (
    customer_counts,
    customers_query,
    lost_counts,
    mappable_users,
    staff_accounts,
    staff_names,
    staff_with_users,
)
from wechat.clients import WeChatApiError

ADDS_DAYS = 30
CUSTOMERS_PAGE_SIZE = 50
IS_WECOM = Channel.kind == ChannelKind.WECOM
NOT_DELETED = ContactWay.deleted_at.is_(None)


def _client(channel: Channel):
    return harpoon().wechat.wecom(channel.app_id, channel.secret)


# --- 联系我 codes -------------------------------------------------------------


@bp.get("/contact-ways")
@requires("channels.view")
def contact_ways():
    ws = workspace_id()
    channels = channels_of(db(), ws, ChannelKind.WECOM)
    ways = contact_ways_of(db(), ws)
    tz = g.get("workspace_timezone") or "Asia/Shanghai"
    days, daily, total = adds_per_code(db(), ws, tz, ADDS_DAYS)
    recent, chart = adds_chart(ways, days, daily)
    return render_template(
        "admin/contact_ways.html",
        channels=channels,
        channel_names={channel.id: channel.name for channel in channels},
        ways=ways,
        staff_names=staff_names(db(), ws),
        book=TagBook(db(), ws),
        recent=recent,
        total=total,
        chart=chart,
        adds_days=ADDS_DAYS,
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
    )


def _form_for(channel: Channel, way: ContactWay | None) -> ContactWayForm:
    """The form with this channel's staff (active ones, and whoever the code has now)."""
    current = [*way.staff_userids, *way.backup_userids] if way else []
    staff = staff_to_choose(db(), channel, current)
    return ContactWayForm(obj=way, staff=staff, book=TagBook(db(), channel.workspace_id))


def _save(channel: Channel, way: ContactWay | None):
    """The new/edit form: GET shows it, POST saves it in WeCom and here or shows why not."""
    form = _form_for(channel, way)
    if form.validate_on_submit():
        before = {name: getattr(way, name) for name in AUDITED_FIELDS} if way else {}
        try:
            if way is None:
                way = create_contact_way(db(), channel, _client(channel), form.values())
                replaced = False
            else:
                replaced = update_contact_way(db(), way, _client(channel), form.values())
        except InputError as exc:
            db().rollback()
            show_input_errors(form, exc.messages)
        except WeChatApiError as exc:
            db().rollback()
            form.form_errors.append(wecom_refusal(exc))
        else:
            after = {name: getattr(way, name) for name in AUDITED_FIELDS}
            if before:
                changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
                action = "contact_way.update"
            else:
                changes = {**after, "channel_id": channel.id}
                action = "contact_way.create"
            if replaced:
                changes["config_id"] = "replaced"
            if changes:
                audit(db(), action, "contact_way", way.id, changes)
            db().commit()
            flash(_("Contact Me code %(name)s saved.", name=way.name), "success")
            if replaced:
                flash(
                    _(
                        "WeCom cannot switch a code between one and several staff members, "
                        "so it has a new QR code: replace the old one wherever it is printed."
                    ),
                    "error",
                )
            return redirect(url_for("admin.contact_way_detail", way_id=way.id))
    return render_template(
        "admin/contact_way_form.html",
        form=form,
        channel=channel,
        way=way,
        placeholders=placeholder_list(WELCOME_PLACEHOLDERS),
        max_staff=MAX_STAFF,
    )


@bp.get("/contact-ways/<int:way_id>")
@requires("channels.view")
def contact_way_detail(way_id: int):
    """One code: who receives its adds now and why, its adds per member, and what WeCom
    was last told."""
    way = scoped_or_404(ContactWay, way_id)
    channel = scoped_or_404(Channel, way.channel_id, IS_WECOM)
    tz = g.get("workspace_timezone") or "Asia/Shanghai"
    now = utcnow()
    wanted = wanted_config(db(), way, now, tz) if way.deleted_at is None else None
    names = staff_names(db(), way.workspace_id)
    return render_template(
        "admin/contact_way.html",
        way=way,
        channel=channel,
        members=member_rows(way, wanted, adds_per_member(db(), way, now, tz), names),
        applied=[names.get((way.channel_id, u), u) for u in way.applied_userids or []],
        settings=rotation_summary(way),
        wanted=wanted,
        sync_error=sync_error_text(way.sync_error),
        wanted_names=[names.get((way.channel_id, u), u) for u in wanted.userids] if wanted else [],
    )


@bp.route("/contact-ways/new/<int:channel_id>", methods=["GET", "POST"])
@requires("wecom.manage")
def contact_ways_new(channel_id: int):
    return _save(scoped_or_404(Channel, channel_id, IS_WECOM), None)


@bp.route("/contact-ways/<int:way_id>/edit", methods=["GET", "POST"])
@requires("wecom.manage")
def contact_ways_edit(way_id: int):
    way = scoped_or_404(ContactWay, way_id, NOT_DELETED)
    return _save(scoped_or_404(Channel, way.channel_id, IS_WECOM), way)


@bp.post("/contact-ways/<int:way_id>/delete")
@requires("wecom.manage")
def contact_ways_delete(way_id: int):
    way = scoped_or_404(ContactWay, way_id, NOT_DELETED)
    channel = scoped_or_404(Channel, way.channel_id, IS_WECOM)
    try:
        delete_contact_way(db(), way, _client(channel))
    except WeChatApiError as exc:
        db().rollback()
        flash(wecom_refusal(exc), "error")
    else:
        audit(
            db(),
            "contact_way.delete",
            "contact_way",
            way.id,
            {"name": way.name, "state": way.state},
        )
        db().commit()
        flash(_("Contact Me code %(name)s deleted.", name=way.name), "success")
    return redirect(url_for("admin.contact_ways"))


# --- staff ------------------------------------------------------------------


@bp.get("/staff")
@requires("contacts.view")
def staff():
    ws = workspace_id()
    channels = channels_of(db(), ws, ChannelKind.WECOM)
    by_channel: dict[int, list] = {channel.id: [] for channel in channels}
    for member, user_name in staff_with_users(db(), ws):
        by_channel.setdefault(member.channel_id, []).append((member, user_name))
    return render_template(
        "admin/staff.html",
        channels=channels,
        by_channel=by_channel,
        customers=customer_counts(db(), ws),
        lost=lost_counts(db(), ws),
        owned=accounts_per_owner(db(), ws),
        user_choices=user_choices(mappable_users(db(), ws)),
        refused=refused_sign_ins(db(), ws),
        channel_names={channel.id: channel.name for channel in channels},
    )


@bp.post("/staff/sync/<int:channel_id>")
@requires("wecom.manage")
def staff_sync(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_WECOM)
    harpoon().queue.enqueue(Job.SYNC_STAFF, channel.id, job_id=f"sync_staff-{channel.id}")
    flash(
        _("Syncing the staff of %(name)s: reload the page in a moment.", name=channel.name),
        "success",
    )
    return redirect(url_for("admin.staff"))


@bp.post("/staff/<int:staff_id>/user")
@requires("wecom.manage")
def staff_map_user(staff_id: int):
    member = scoped_or_404(Staff, staff_id)
    form = StaffUserForm()
    form.user_id.choices = user_choices(mappable_users(db(), member.workspace_id))
    valid = form.validate_on_submit()
    if not ids_of_workspace(db(), form, STAFF_USER_REFERENCES):
        flash(_(USER.message), "error")
        return redirect(url_for("admin.staff"))
    if not valid:
        flash(_("Choose a user of this workspace."), "error")
        return redirect(url_for("admin.staff"))
    before = member.user_id
    chosen = db().get(User, form.user_id.data) if form.user_id.data else None
    if chosen is not None and ROLE_RANK[chosen.role] > ROLE_RANK[current_user.role]:
        # The member would act with the higher role in WeCom: not the acting user's to give.
        flash(_("You cannot link a WeCom member to a user whose role is above yours."), "error")
        return redirect(url_for("admin.staff"))
    if form.user_id.data != before:
        member.user_id = form.user_id.data
        audit(
            db(),
            "staff.map_user",
            "staff",
            member.id,
            {"userid": member.userid, "user_id": [before, member.user_id]},
        )
        if member.user_id is not None:
            forget_refused(db(), member.workspace_id, member.channel_id, member.userid)
        db().commit()
    flash(_("%(name)s's admin user saved.", name=member.name), "success")
    return redirect(url_for("admin.staff"))


@bp.get("/staff/<int:staff_id>")
@requires("contacts.view")
def staff_detail(staff_id: int):
    member = scoped_or_404(Staff, staff_id)
    customers = paginate(customers_query(member), CUSTOMERS_PAGE_SIZE)
    return render_template(
        "admin/staff_detail.html",
        member=member,
        channel=db().get(Channel, member.channel_id),
        user=db().get(User, member.user_id) if member.user_id else None,
        customers=customers.rows,
        total=customers.total,
        page=customers.page,
        pages=customers.pages,
        accounts=staff_accounts(db(), member),
        workspace_digest_minutes=db().get(Workspace, member.workspace_id).digest_minutes,
        add_way_labels=ADD_WAY_LABELS,
    )


# --- 群活码 -------------------------------------------------------------------------------

JOINS_DAYS = 30


@bp.get("/join-ways")
@requires("channels.view")
def join_ways():
    ws = workspace_id()
    channels = channels_of(db(), ws, ChannelKind.WECOM)
    ways = join_ways_of(db(), ws)
    return render_template(
        "admin/join_ways.html",
        channels=channels,
        channel_names={channel.id: channel.name for channel in channels},
        ways=ways,
        joins=joins_per_way(db(), ws),
        groups=group_names(db(), ws, [c for way in ways for c in way.chat_ids]),
        book=TagBook(db(), ws),
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
    )


@bp.get("/join-ways/<int:way_id>")
@requires("channels.view")
def join_way_detail(way_id: int):
    way = scoped_or_404(GroupJoinWay, way_id)
    tz = g.get("workspace_timezone") or "Asia/Shanghai"
    per_group, days, daily = way_joins(db(), way, tz, JOINS_DAYS)
    return render_template(
        "admin/join_way.html",
        way=way,
        channel=db().get(Channel, way.channel_id),
        groups=group_names(db(), way.workspace_id, way.chat_ids),
        per_group=per_group,
        chart={
            "days": days,
            "series": [{"name": way.name, "counts": [daily.get(d, 0) for d in days]}],
        },
        joins_days=JOINS_DAYS,
        book=TagBook(db(), way.workspace_id),
        group_labels=TAG_GROUP_LABELS,
        tag_label=tag_label,
    )


@bp.get("/join-ways/<int:way_id>/qr")
@requires("channels.view")
def join_ways_qr(way_id: int):
    """The QR code's picture, fetched from WeCom's image host: the admin's pages show
    images of their own origin only."""
    way = scoped_or_404(GroupJoinWay, way_id)
    picture = qr_picture(way.qr_code, harpoon().settings.wechat_api_url)
    if picture is None:
        abort(404)
    content, kind = picture
    response = Response(content, mimetype=kind)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def _save_join_way(channel: Channel, way: GroupJoinWay | None):
    """The new/edit form: GET shows it, POST saves it in WeCom and here or shows why not."""
    groups = groups_to_choose(db(), channel, way.chat_ids if way else [])
    form = JoinWayForm(obj=way, groups=groups, book=TagBook(db(), channel.workspace_id))
    if form.validate_on_submit():
        before = {name: getattr(way, name) for name in JOIN_WAY_AUDITED_FIELDS} if way else {}
        try:
            if way is None:
                way = create_join_way(
                    db(), channel, _client(channel), form.values(), current_user.id
                )
            else:
                update_join_way(db(), way, _client(channel), form.values())
        except InputError as exc:
            db().rollback()
            show_join_way_errors(form, exc.messages)
        except WeChatApiError as exc:
            db().rollback()
            form.form_errors.append(wecom_refusal(exc))
        else:
            after = {name: getattr(way, name) for name in JOIN_WAY_AUDITED_FIELDS}
            if before:
                changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
                action = "join_way.update"
            else:
                changes = {**after, "channel_id": channel.id}
                action = "join_way.create"
            if changes:
                audit(db(), action, "join_way", way.id, changes)
            db().commit()
            flash(_("Group join code %(name)s saved.", name=way.name), "success")
            return redirect(url_for("admin.join_way_detail", way_id=way.id))
    return render_template(
        "admin/join_way_form.html", form=form, channel=channel, way=way, max_chats=MAX_CHATS
    )


@bp.route("/join-ways/new/<int:channel_id>", methods=["GET", "POST"])
@requires("wecom.manage")
def join_ways_new(channel_id: int):
    return _save_join_way(scoped_or_404(Channel, channel_id, IS_WECOM), None)


@bp.route("/join-ways/<int:way_id>/edit", methods=["GET", "POST"])
@requires("wecom.manage")
def join_ways_edit(way_id: int):
    way = scoped_or_404(GroupJoinWay, way_id, GroupJoinWay.deleted_at.is_(None))
    return _save_join_way(scoped_or_404(Channel, way.channel_id, IS_WECOM), way)


@bp.post("/join-ways/<int:way_id>/delete")
@requires("wecom.manage")
def join_ways_delete(way_id: int):
    way = scoped_or_404(GroupJoinWay, way_id, GroupJoinWay.deleted_at.is_(None))
    channel = scoped_or_404(Channel, way.channel_id, IS_WECOM)
    try:
        delete_join_way(db(), way, _client(channel))
    except WeChatApiError as exc:
        db().rollback()
        flash(wecom_refusal(exc), "error")
    else:
        audit(db(), "join_way.delete", "join_way", way.id, {"name": way.name, "state": way.state})
        db().commit()
        flash(_("Group join code %(name)s deleted.", name=way.name), "success")
    return redirect(url_for("admin.join_ways"))


# --- group welcome messages --------------------------------------------------------------


@bp.get("/group-welcomes")
@requires("channels.view")
def group_welcomes():
    ws = workspace_id()
    channels = channels_of(db(), ws, ChannelKind.WECOM)
    return render_template(
        "admin/group_welcomes.html",
        channels=channels,
        channel_names={channel.id: channel.name for channel in channels},
        templates=group_welcomes_of(db(), ws),
        nickname=NICKNAME,
    )


def _save_group_welcome(channel: Channel, template: GroupWelcomeTemplate | None):
    form = GroupWelcomeForm(obj=template)
    if form.validate_on_submit():
        try:
            if template is None:
                template = create_group_welcome(
                    db(), channel, _client(channel), form.values(), current_user.id
                )
                action = "group_welcome.create"
            else:
                update_group_welcome(db(), template, _client(channel), form.values())
                action = "group_welcome.update"
        except WeChatApiError as exc:
            db().rollback()
            form.form_errors.append(wecom_refusal(exc))
        else:
            audit(db(), action, "group_welcome", template.id, {"name": template.name})
            db().commit()
            flash(_("Group welcome message %(name)s saved.", name=template.name), "success")
            return redirect(url_for("admin.group_welcomes"))
    return render_template(
        "admin/group_welcome_form.html",
        form=form,
        channel=channel,
        template=template,
        nickname=NICKNAME,
    )


@bp.route("/group-welcomes/new/<int:channel_id>", methods=["GET", "POST"])
@requires("wecom.manage")
def group_welcomes_new(channel_id: int):
    return _save_group_welcome(scoped_or_404(Channel, channel_id, IS_WECOM), None)


@bp.route("/group-welcomes/<int:template_id>/edit", methods=["GET", "POST"])
@requires("wecom.manage")
def group_welcomes_edit(template_id: int):
    template = scoped_or_404(GroupWelcomeTemplate, template_id)
    return _save_group_welcome(scoped_or_404(Channel, template.channel_id, IS_WECOM), template)


@bp.post("/group-welcomes/<int:template_id>/delete")
@requires("wecom.manage")
def group_welcomes_delete(template_id: int):
    template = scoped_or_404(GroupWelcomeTemplate, template_id)
    channel = scoped_or_404(Channel, template.channel_id, IS_WECOM)
    name = template.name
    try:
        delete_group_welcome(db(), template, _client(channel))
    except WeChatApiError as exc:
        db().rollback()
        flash(wecom_refusal(exc), "error")
    else:
        audit(db(), "group_welcome.delete", "group_welcome", template_id, {"name": name})
        db().commit()
        flash(_("Group welcome message %(name)s deleted.", name=name), "success")
    return redirect(url_for("admin.group_welcomes"))
