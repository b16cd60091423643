"""OA menus per tag: the default menu and one conditional menu per Harpoon tag, kept as
versions, checked against WeChat's limits before publishing, published so that the
document's first matching menu wins, previewed per follower and rolled back.

A menu document (models.MenuVersion.document):

    {"default": [button...],
     "conditional": [{"tag_id": <Harpoon tag id>, "buttons": [button...]}...]}

with the conditional menus in matching priority (first wins). A button is a sub-menu
{"name", "sub_button": [button...]} or an action: {"name", "type": "click", "key"},
{"name", "type": "view", "url"} or {"name", "type": "miniprogram", "appid",
"pagepath", "url"}. A click button may also carry "tag_id" and/or "reply": publishing
turns those into the MENU tag rule of its key, so the inbound pipeline tags the
follower who taps it and answers the tap.

A channel has one draft (status draft) that the admin edits; publishing copies it into
a new version, so a refused publish loses no edit.
"""

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.jobs import Followups
from core.references import TAG, Reference, declare, unknown_references
from core.text import N_
from crm.rule_config import MAX_MENU_KEY_BYTES, MAX_REPLY, validate_rule
from crm.tags import TagBook, queue_holders_sync
from models import (
    Channel,
    ChannelKind,
    Contact,
    ContactTag,
    Identity,
    IdentityKind,
    MenuStatus,
    MenuVersion,
    RemoteStatus,
    RuleKind,
    Tag,
    TagRemote,
    TagRule,
    utcnow,
)
from sync.tag_sync import OA_TAGS_PER_ACCOUNT, ensure_remote_tags
from wechat.clients import WeChatApiError

MAX_TOP_BUTTONS = 3
MAX_SUB_BUTTONS = 5
MAX_TOP_NAME_BYTES = 16
MAX_SUB_NAME_BYTES = 60
MAX_URL_BYTES = 1024
BUTTON_TYPES = ("click", "view", "miniprogram")
NO_MENU = 46003  # menu/get, menu/trymatch: the OA has no menu
MAX_RULE_NAME = TagRule.__table__.c.name.type.length

# The admin page translates these (they are in its catalog).
REQUIRED = N_("Required.")
NOT_A_DOCUMENT = N_("Not a menu document.")
TOP_COUNT = N_("A menu has 1 to 3 buttons.")
SUB_COUNT = N_("A sub-menu has 1 to 5 items.")
TOP_NAME_BYTES = N_("At most 16 bytes: 5 Chinese characters, or 16 letters.")
SUB_NAME_BYTES = N_("At most 60 bytes: 20 Chinese characters, or 60 letters.")
BUTTON_TYPE = N_("Click, web page or mini program.")
KEY_BYTES = N_("At most 128 bytes (a Chinese character takes 3).")
URL_BYTES = N_("At most 1024 bytes.")
URL_SCHEME = N_("A web address starting with http:// or https://.")
APPID = N_("The mini program's AppID: wx followed by 16 letters and digits.")
ACTION_ON_CLICK_ONLY = N_("Only a click button tags or replies.")
REPLY_LENGTH = N_("At most 600 characters.")
KEY_ACTIONS_DIFFER = N_(
    "Another button with this key tags or replies differently: give this one another key."
)
KEY_USED_ELSEWHERE = N_(
    "Another Official Account's menu gives this key another tag or reply: use another key."
)
TAG_REQUIRED = N_("Choose the tag whose followers see this menu.")
REFERENCES = declare(
    "menu",
    Reference("default.*.tag_id", TAG),
    Reference("default.*.sub_button.*.tag_id", TAG),
    Reference("conditional.*.tag_id", TAG),
    Reference("conditional.*.buttons.*.tag_id", TAG),
    Reference("conditional.*.buttons.*.sub_button.*.tag_id", TAG),
)
TAG_TWICE = N_("This tag already has a conditional menu above.")
TAG_NO_ROOM = N_(
    "WeChat allows 100 tags per Official Account and all are in use: this tag cannot become one."
)


class MenuInvalid(Exception):
    """The document breaks a limit: {position: message}."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(f"{len(errors)} problems")
        self.errors = errors


@dataclass(frozen=True)
class MenuContext:
    """What checking a channel's document needs from the database."""

    unknown: frozenset[str]  # positions naming a tag the workspace does not hold
    no_room: frozenset[int]  # tags the OA has no room left to create
    # click key -> (tag id, reply) that other OAs' published menus give it (rules are
    # per workspace, so one key does one thing)
    foreign_actions: dict[str, tuple[int | None, str | None]]


@dataclass(frozen=True)
class PublishResult:
    version: MenuVersion
    # After a refusal that came once the old menus were deleted: whether putting the
    # published version back worked (None: the platform's menus were never touched).
    restored: bool | None = None

    @property
    def ok(self) -> bool:
        return self.version.status == MenuStatus.PUBLISHED


# --- the document ----------------------------------------------------------------


def menus_of(document: dict) -> list[tuple[str, int | None, list]]:
    """(error position of its buttons, tag id or None, buttons) of each menu, default
    first then the conditional ones in priority order."""
    menus = [("default", None, document.get("default") or [])]
    for n, menu in enumerate(document.get("conditional") or []):
        if isinstance(menu, dict):
            position = f"conditional.{n}.buttons"
            menus.append((position, menu.get("tag_id"), menu.get("buttons") or []))
    return menus


def leaves(buttons: list) -> Iterator[tuple[int, int | None, dict]]:
    """Every action button as (top position, sub position or None, button)."""
    for i, button in enumerate(buttons if isinstance(buttons, list) else []):
        if not isinstance(button, dict):
            continue
        if not is_submenu(button):
            yield i, None, button
        elif isinstance(button["sub_button"], list):
            for j, sub in enumerate(button["sub_button"]):
                if isinstance(sub, dict):
                    yield i, j, sub


def is_submenu(button: dict) -> bool:
    return "sub_button" in button


def click_actions(document: dict) -> dict[str, tuple[int | None, str | None, str]]:
    """key -> (tag id, reply, button name) of the click buttons that tag or reply; the
    first button of a key names its rule."""
    actions: dict[str, tuple[int | None, str | None, str]] = {}
    for _, _, buttons in menus_of(document):
        for _, _, button in leaves(buttons):
            if button.get("type") == "click" and _action(button) != (None, None):
                actions.setdefault(button["key"], (*_action(button), button.get("name", "")))
    return actions


def _action(button: dict) -> tuple[int | None, str | None]:
    return button.get("tag_id"), button.get("reply") or None


def wechat_buttons(buttons: list) -> list[dict]:
    """The buttons as WeChat takes them: each type's own fields, no tagging or reply."""
    return [
        {"name": b["name"], "sub_button": [_wechat_action(s) for s in b["sub_button"]]}
        if is_submenu(b)
        else _wechat_action(b)
        for b in buttons
    ]


def _wechat_action(button: dict) -> dict:
    kind = button["type"]
    fields = {"click": ("key",), "view": ("url",), "miniprogram": ("url", "appid", "pagepath")}
    return {"type": kind, "name": button["name"], **{f: button[f] for f in fields[kind]}}


# --- checking ----------------------------------------------------------------------


def validate_menu(document, context: MenuContext | None = None) -> dict[str, str]:
    """Every problem at once, {position: message}, e.g. "conditional.0.buttons.1.
    sub_button.2.name"; {} when WeChat would take it. With a `context`, also the checks
    that need the database (tags, keys of other OAs' menus)."""
    if not isinstance(document, dict) or not all(
        isinstance(document.get(part, []), list) for part in ("default", "conditional")
    ):
        return {"": NOT_A_DOCUMENT}
    errors: dict[str, str] = {}
    seen_tags: set = set()
    for n, menu in enumerate(document.get("conditional") or []):
        if not isinstance(menu, dict):
            errors[f"conditional.{n}"] = NOT_A_DOCUMENT
            continue
        _check_menu_tag(menu.get("tag_id"), f"conditional.{n}.tag_id", seen_tags, context, errors)
    for position, _, buttons in menus_of(document):
        _check_buttons(buttons, position, errors)
    _check_keys(document, context, errors)
    return errors


def _check_menu_tag(tag_id, position, seen, context, errors) -> None:
    if tag_id in (None, ""):
        errors[position] = TAG_REQUIRED
    elif tag_id in seen:
        errors[position] = TAG_TWICE
    elif context is not None and _unknown_tag(tag_id, position, context):
        errors[position] = TAG.message
    elif context is not None and tag_id in context.no_room:
        errors[position] = TAG_NO_ROOM
    seen.add(tag_id)


def _check_buttons(buttons, position: str, errors: dict) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_TOP_BUTTONS:
        errors[position] = TOP_COUNT
        if not isinstance(buttons, list):
            return
    for i, button in enumerate(buttons):
        at = f"{position}.{i}"
        if not isinstance(button, dict):
            errors[at] = NOT_A_DOCUMENT
            continue
        _check_name(button, at, MAX_TOP_NAME_BYTES, TOP_NAME_BYTES, errors)
        if not is_submenu(button):
            _check_action(button, at, errors)
            continue
        subs = button["sub_button"]
        if not isinstance(subs, list) or not 1 <= len(subs) <= MAX_SUB_BUTTONS:
            errors[f"{at}.sub_button"] = SUB_COUNT
            if not isinstance(subs, list):
                continue
        for j, sub in enumerate(subs):
            sub_at = f"{at}.sub_button.{j}"
            if not isinstance(sub, dict) or is_submenu(sub):
                errors[sub_at] = NOT_A_DOCUMENT
                continue
            _check_name(sub, sub_at, MAX_SUB_NAME_BYTES, SUB_NAME_BYTES, errors)
            _check_action(sub, sub_at, errors)


def _check_name(button: dict, at: str, limit: int, message: str, errors: dict) -> None:
    name = button.get("name")
    if not isinstance(name, str) or not name.strip():
        errors[f"{at}.name"] = REQUIRED
    elif _bytes(name) > limit:
        errors[f"{at}.name"] = message


def _check_action(button: dict, at: str, errors: dict) -> None:
    kind = button.get("type")
    if kind not in BUTTON_TYPES:
        errors[f"{at}.type"] = BUTTON_TYPE
        return
    if kind == "click":
        key = button.get("key")
        if not isinstance(key, str) or not key.strip():
            errors[f"{at}.key"] = REQUIRED
        elif _bytes(key) > MAX_MENU_KEY_BYTES:
            errors[f"{at}.key"] = KEY_BYTES
        reply = button.get("reply")
        if reply is not None and (not isinstance(reply, str) or len(reply) > MAX_REPLY):
            errors[f"{at}.reply"] = REPLY_LENGTH
    else:
        for field in ("tag_id", "reply"):
            if button.get(field) not in (None, ""):
                errors[f"{at}.{field}"] = ACTION_ON_CLICK_ONLY
        _check_url(button.get("url"), f"{at}.url", errors)
    if kind == "miniprogram":
        appid = button.get("appid")
        if not isinstance(appid, str) or not appid.strip():
            errors[f"{at}.appid"] = REQUIRED
        elif not (len(appid) == 18 and appid.startswith("wx") and appid[2:].isalnum()):
            errors[f"{at}.appid"] = APPID
        pagepath = button.get("pagepath")
        if not isinstance(pagepath, str) or not pagepath.strip():
            errors[f"{at}.pagepath"] = REQUIRED
        elif _bytes(pagepath) > MAX_URL_BYTES:
            errors[f"{at}.pagepath"] = URL_BYTES


def _check_url(url, at: str, errors: dict) -> None:
    if not isinstance(url, str) or not url.strip():
        errors[at] = REQUIRED
    elif _bytes(url) > MAX_URL_BYTES:
        errors[at] = URL_BYTES
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors[at] = URL_SCHEME


def _check_keys(document: dict, context: MenuContext | None, errors: dict) -> None:
    """One key, one action: the rules that tag and reply are looked up by key alone."""
    first: dict[str, tuple] = {}
    for position, _, buttons in menus_of(document):
        for i, j, button in leaves(buttons):
            if button.get("type") != "click":
                continue
            at = f"{position}.{i}" + ("" if j is None else f".sub_button.{j}")
            key, action = button.get("key"), _action(button)
            tag_at = f"{at}.tag_id"
            if (
                context is not None
                and action[0] is not None
                and _unknown_tag(action[0], tag_at, context)
            ):
                errors[tag_at] = TAG.message
            if not isinstance(key, str) or f"{at}.key" in errors:
                continue
            foreign = context.foreign_actions.get(key) if context is not None else None
            if foreign is not None and action != (None, None) and foreign != action:
                errors[f"{at}.key"] = KEY_USED_ELSEWHERE
            elif first.setdefault(key, action) != action:
                errors[f"{at}.key"] = KEY_ACTIONS_DIFFER


def _unknown_tag(tag_id, position: str, context: MenuContext) -> bool:
    return not TAG.accepts(tag_id) or position in context.unknown


def _bytes(text: str) -> int:
    return len(text.encode())


def menu_context(session: Session, channel: Channel, document) -> MenuContext:
    """What checking `document` on this channel needs: the positions of its tags that are
    not the workspace's (core.references), the OA's room for tags, other OAs' keys."""
    unknown = (
        frozenset(unknown_references(session, channel.workspace_id, document, REFERENCES))
        if isinstance(document, dict)
        else frozenset()
    )
    tag_ids = frozenset(
        session.scalars(select(Tag.id).where(Tag.workspace_id == channel.workspace_id))
    )
    mirrored = set(
        session.scalars(
            select(TagRemote.tag_id).where(
                TagRemote.channel_id == channel.id, TagRemote.status == RemoteStatus.OK
            )
        )
    )
    no_room = tag_ids - mirrored if len(mirrored) >= OA_TAGS_PER_ACCOUNT else frozenset()
    foreign: dict[str, tuple[int | None, str | None]] = {}
    others = session.scalars(
        select(MenuVersion).where(
            MenuVersion.workspace_id == channel.workspace_id,
            MenuVersion.channel_id != channel.id,
            MenuVersion.status == MenuStatus.PUBLISHED,
        )
    )
    for version in others:
        for key, (tag_id, reply, _) in click_actions(version.document).items():
            foreign.setdefault(key, (tag_id, reply))
    return MenuContext(unknown, frozenset(no_room), foreign)


# --- versions -------------------------------------------------------------------------


def draft_of(session: Session, channel_id: int) -> MenuVersion | None:
    return session.scalar(
        select(MenuVersion).where(
            MenuVersion.channel_id == channel_id, MenuVersion.status == MenuStatus.DRAFT
        )
    )


def published_of(session: Session, channel_id: int) -> MenuVersion | None:
    """What the channel's followers see now."""
    return session.scalar(
        select(MenuVersion)
        .where(MenuVersion.channel_id == channel_id, MenuVersion.status == MenuStatus.PUBLISHED)
        .order_by(MenuVersion.published_at.desc(), MenuVersion.id.desc())
        .limit(1)
    )


def save_draft(session: Session, channel: Channel, document: dict, user_id: int | None):
    """The channel's one draft, holding `document` (checked only when published)."""
    draft = draft_of(session, channel.id)
    if draft is None:
        draft = MenuVersion(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            status=MenuStatus.DRAFT,
            created_by=user_id,
        )
        session.add(draft)
    draft.document = copy.deepcopy(document)
    session.flush()
    return draft


def new_version(
    channel: Channel, document: dict, user_id: int | None, restored_from: int | None = None
) -> MenuVersion:
    """A version to publish (not yet in the session)."""
    return MenuVersion(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        document=copy.deepcopy(document),
        status=MenuStatus.DRAFT,
        restored_from_id=restored_from,
        created_by=user_id,
        remote_ids={},
    )


# --- publishing ------------------------------------------------------------------------


def publish(
    session: Session,
    channel: Channel,
    client,
    version: MenuVersion,
    user_id: int | None,
    followups: Followups | None = None,
) -> PublishResult:
    """Put `version` live on the OA: its conditional menus' tags made OA tags, the old
    menus deleted, the default created, then the conditional menus newest-last-first
    (WeChat matches the newest first, so the document's first is added last). On a
    refusal the version is failed with the platform's error and nothing else changes;
    the caller commits either way. MenuInvalid (before any call) when a limit is broken."""
    if channel.kind != ChannelKind.OA:
        raise ValueError("menus are for Official Accounts")
    # One publish per OA at a time: two interleaved would mix their menus on the platform.
    session.execute(select(Channel.id).where(Channel.id == channel.id).with_for_update())
    errors = validate_menu(version.document, menu_context(session, channel, version.document))
    if errors:
        raise MenuInvalid(errors)
    session.add(version)
    previous = published_of(session, channel.id)
    try:
        remote_tags = _remote_tag_ids(session, channel, client, version.document)
        client.menu.delete()
    except WeChatApiError as exc:
        return _failed(version, exc, restored=None)
    try:
        menu_ids = _create_menus(client, version.document, remote_tags)
    except WeChatApiError as exc:
        return _failed(version, exc, restored=_put_back(session, channel, client, previous))
    if previous is not None:
        previous.status = MenuStatus.SUPERSEDED
    version.status, version.error = MenuStatus.PUBLISHED, None
    version.published_by, version.published_at = user_id, utcnow()
    rule_ids = _sync_rules(session, channel, version.document, previous)
    version.remote_ids = {"menus": menu_ids, "rules": rule_ids}
    _sync_menu_tags(session, channel, version.document, followups)
    session.flush()
    return PublishResult(version)


def _failed(version: MenuVersion, exc: WeChatApiError, restored: bool | None) -> PublishResult:
    version.status, version.error = MenuStatus.FAILED, str(exc)[:500]
    version.published_at = None
    return PublishResult(version, restored)


def _remote_tag_ids(session: Session, channel: Channel, client, document: dict) -> dict:
    """Harpoon tag id -> the OA tag id of each conditional menu's tag."""
    tag_ids = {tag_id for _, tag_id, _ in menus_of(document) if tag_id is not None}
    if not tag_ids:
        return {}
    remotes = ensure_remote_tags(session, channel, client, tag_ids)
    for tag_id in tag_ids:
        remote = remotes.get(tag_id)
        if remote is None or remote.status != RemoteStatus.OK or not remote.remote_id:
            reason = remote.error if remote is not None else "no such tag"
            raise WeChatApiError(None, f"tag {tag_id} is not an OA tag: {reason}", "tags/create")
    return {tag_id: remotes[tag_id].remote_id for tag_id in tag_ids}


def _create_menus(client, document: dict, remote_tags: dict) -> dict[str, str]:
    client.menu.create({"button": wechat_buttons(document["default"])})
    menu_ids = {}
    for menu in reversed(document.get("conditional") or []):
        answer = client.menu.add_conditional(
            {
                "button": wechat_buttons(menu["buttons"]),
                "matchrule": {"tag_id": str(remote_tags[menu["tag_id"]])},
            }
        )
        menu_ids[str(menu["tag_id"])] = str(answer["menuid"])
    return menu_ids


def _put_back(session: Session, channel: Channel, client, previous: MenuVersion | None) -> bool:
    """After a refusal midway: the published version's menus again (none if there was
    none); False when that failed too and the OA may show no menu or a partial one."""
    try:
        client.menu.delete()
        if previous is None:
            return True
        remote_tags = _remote_tag_ids(session, channel, client, previous.document)
        menu_ids = _create_menus(client, previous.document, remote_tags)
    except WeChatApiError:
        return False
    previous.remote_ids = {**(previous.remote_ids or {}), "menus": menu_ids}
    return True


def _sync_menu_tags(
    session: Session, channel: Channel, document: dict, followups: Followups | None
) -> None:
    """The conditional menus' tags mirror to WeChat, their holders included, so each
    follower's OA tags pick their menu."""
    book = TagBook(session, channel.workspace_id)
    for _, tag_id, _ in menus_of(document):
        tag = book.by_id(tag_id) if tag_id is not None else None
        if tag is not None and not tag.sync_wechat:
            tag.sync_wechat = True
            queue_holders_sync(session, book, tag, followups)


def _sync_rules(
    session: Session, channel: Channel, document: dict, previous: MenuVersion | None
) -> dict[str, int]:
    """The MENU rule of each click key that tags or replies, made or updated; the rules
    the previous version made for keys that no longer do are deleted. Rules made on the
    tags page are never touched. Returns key -> rule id, which the next publish reads."""
    owned = dict(((previous.remote_ids or {}).get("rules") or {}) if previous else {})
    rules = {
        rule.id: rule
        for rule in session.scalars(
            select(TagRule).where(
                TagRule.id.in_([int(rule_id) for rule_id in owned.values()]),
                TagRule.workspace_id == channel.workspace_id,
                TagRule.kind == RuleKind.MENU,
            )
        )
    }
    position = session.scalar(
        select(func.coalesce(func.max(TagRule.position) + 1, 0)).where(
            TagRule.workspace_id == channel.workspace_id, TagRule.kind == RuleKind.MENU
        )
    )
    made: dict[str, int] = {}
    for key, (tag_id, reply, name) in click_actions(document).items():
        config = validate_rule(RuleKind.MENU, {"key": key}, has_tag=tag_id is not None, reply=reply)
        rule = rules.pop(int(owned.pop(key, 0)), None)
        if rule is None:
            rule = TagRule(workspace_id=channel.workspace_id, kind=RuleKind.MENU, position=position)
            position += 1
            session.add(rule)
        rule.name = f"{channel.name} · {name}"[:MAX_RULE_NAME]
        rule.config, rule.tag_id, rule.reply, rule.enabled = config, tag_id, reply, True
        session.flush()
        made[key] = rule.id
    for rule in rules.values():
        session.delete(rule)
    return made


def rollback(
    session: Session,
    channel: Channel,
    client,
    version_id: int,
    user_id: int | None,
    followups: Followups | None = None,
) -> PublishResult:
    """Publish an earlier version's document again, as a new version."""
    earlier = session.scalar(
        select(MenuVersion).where(
            MenuVersion.id == version_id,
            MenuVersion.channel_id == channel.id,
            MenuVersion.status.in_((MenuStatus.PUBLISHED, MenuStatus.SUPERSEDED)),
        )
    )
    if earlier is None:
        raise LookupError(f"no published version {version_id} of channel {channel.id}")
    version = new_version(channel, earlier.document, user_id, restored_from=earlier.id)
    return publish(session, channel, client, version, user_id, followups)


# --- what a follower sees ----------------------------------------------------------------


def try_match(client, openid: str) -> list[dict] | None:
    """The buttons WeChat shows this follower (menu/trymatch); None when the OA has no menu."""
    try:
        return client.menu.try_match(openid)["button"]
    except WeChatApiError as exc:
        if exc.errcode == NO_MENU:
            return None
        raise


def matched_menu(document: dict, buttons: list[dict]) -> tuple[bool, int | None]:
    """Which of the document's menus `buttons` (trymatch's answer) is: (found, tag id or
    None for the default). Compared by names, types, keys and URLs."""
    shown = _shape(buttons)
    default, *conditional = menus_of(document)
    for _, tag_id, menu_buttons in [*conditional, default]:
        if _shape(wechat_buttons(menu_buttons)) == shown:
            return True, tag_id
    return False, None


def _shape(buttons: list[dict]) -> list:
    return [
        (
            b.get("name"),
            b.get("type"),
            b.get("key") or b.get("url"),
            _shape(b.get("sub_button") or []),
        )
        for b in buttons
    ]


# --- what the editor shows beside the menus ------------------------------------------------


def menu_history(session: Session, channel: Channel, limit: int) -> list[MenuVersion]:
    """The channel's versions that went to WeChat (live, replaced or refused), newest first."""
    return list(
        session.scalars(
            select(MenuVersion)
            .where(
                MenuVersion.workspace_id == channel.workspace_id,
                MenuVersion.channel_id == channel.id,
                MenuVersion.status != MenuStatus.DRAFT,
            )
            .order_by(MenuVersion.created_at.desc(), MenuVersion.id.desc())
            .limit(limit)
        )
    )


def follower_counts(session: Session, channel: Channel, document: dict) -> dict[int, int]:
    """How many of the OA's followers hold each conditional menu's tag."""
    tag_ids = [tag_id for _, tag_id, _ in menus_of(document) if isinstance(tag_id, int)]
    if not tag_ids:
        return {}
    rows = session.execute(
        select(ContactTag.tag_id, func.count(func.distinct(Identity.id)))
        .join(Identity, Identity.contact_id == ContactTag.contact_id)
        .where(
            ContactTag.workspace_id == channel.workspace_id,
            ContactTag.tag_id.in_(tag_ids),
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
        )
        .group_by(ContactTag.tag_id)
    )
    return dict(rows.all())


def hand_rules(
    session: Session, workspace_id: int, published: MenuVersion | None
) -> dict[str, list[str]]:
    """Menu-click rules made on the tags page (not by a publish), their names by key: they
    act on a tap too."""
    owned = set(((published.remote_ids or {}).get("rules") or {}).values()) if published else set()
    rules = session.scalars(
        select(TagRule).where(
            TagRule.workspace_id == workspace_id,
            TagRule.kind == RuleKind.MENU,
            TagRule.enabled.is_(True),
        )
    )
    by_key: dict[str, list[str]] = {}
    for rule in rules:
        key = (rule.config or {}).get("key")
        if key and rule.id not in owned:
            by_key.setdefault(key, []).append(rule.name)
    return by_key


def recent_followers(session: Session, channel: Channel, limit: int) -> list:
    """The OA's most recently active followers: (openid, name, company)."""
    return session.execute(
        select(Identity.value, Contact.name, Contact.company)
        .join(Contact, Contact.id == Identity.contact_id)
        .where(
            Identity.workspace_id == channel.workspace_id,
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
            Contact.merged_into_id.is_(None),
        )
        .order_by(Contact.last_seen_at.desc().nulls_last(), Identity.id.desc())
        .limit(limit)
    ).all()


def follower(session: Session, channel: Channel, openid: str) -> Contact | None:
    """The contact behind an openid of the OA."""
    return session.scalar(
        select(Contact)
        .join(Identity, Identity.contact_id == Contact.id)
        .where(
            Identity.workspace_id == channel.workspace_id,
            Identity.channel_id == channel.id,
            Identity.kind == IdentityKind.OPENID,
            Identity.value == openid,
        )
    )


def expected_menu(session: Session, contact: Contact, document: dict) -> int | None:
    """The tag of the first conditional menu the contact's Harpoon tags select, or None."""
    held = set(
        session.scalars(
            select(ContactTag.tag_id).where(
                ContactTag.workspace_id == contact.workspace_id,
                ContactTag.contact_id == contact.id,
            )
        )
    )
    for _position, tag_id, _buttons in menus_of(document)[1:]:
        if tag_id in held:
            return tag_id
    return None
