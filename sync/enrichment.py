"""Asking the platform who a new follower or customer is, in jobs (never in a callback).

OA: user/info in batches of 100 gives the unionid (which joins the follower to
their WeCom self) and how they came (QR scene). WeCom: externalcontact/get
gives name, company, position, unionid, and each salesperson's remarks and tags.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from core.transient import is_transient
from crm.accounts import assign_account
from crm.contacts import attach_identity, live, set_title, title_dictionary
from crm.relations import follow_relation
from crm.rules import RuleBook, source_tags
from crm.tags import TagBook, apply_tags, remove_tags
from models import (
    AccountSource,
    Channel,
    Contact,
    ContactTag,
    Enrolment,
    Identity,
    IdentityKind,
    TagRemote,
    TagSource,
    utcnow,
)
from wechat.clients import OPENIDS_PER_USER_BATCH, WeChatApiError, user_infos

log = logging.getLogger(__name__)
CustomerHook = Callable[[Session, Channel, Contact, str, Followups], None]
NOT_EXTERNAL_CONTACT = 84061


@dataclass
class EnrichResult:
    looked_up: int = 0
    merged: int = 0
    # Stopped at its share: the caller asks for another run (the worker stays free in
    # between for the high-priority jobs, such as welcomes).
    more: bool = False


def _unenriched(session: Session, channel: Channel, kind: str, limit: int) -> list[Identity]:
    return list(
        session.scalars(
            select(Identity)
            .where(
                Identity.channel_id == channel.id,
                Identity.kind == kind,
                Identity.enriched_at.is_(None),
            )
            .order_by(Identity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def enrich_followers(
    session: Session, channel: Channel, client, followups: Followups, max_batches: int = 5
) -> EnrichResult:
    """user/info for the channel's followers not yet looked up, 100 per call, committed
    per batch so a failure later loses nothing done before."""
    result = EnrichResult()
    book = TagBook(session, channel.workspace_id)
    rules = RuleBook.load(session, channel.workspace_id)
    for _ in range(max_batches):
        identities = _unenriched(session, channel, IdentityKind.OPENID, OPENIDS_PER_USER_BATCH)
        if not identities:
            return result
        infos = _user_infos(client, [i.value for i in identities])
        now = utcnow()
        for identity in identities:
            info = infos.get(identity.value) or {}
            identity.enriched_at = now
            if "error" in info:  # not an openid of this OA (e.g. one a touchpoint named)
                identity.details = info
                continue
            identity.details = {
                k: info[k]
                for k in (
                    "subscribe",
                    "subscribe_time",
                    "subscribe_scene",
                    "qr_scene_str",
                    "tagid_list",
                )
                if k in info
            }
            contact = live(session, identity.contact)
            if info.get("qr_scene_str"):
                source_tags(session, book, rules, contact.id, info["qr_scene_str"], followups)
            if info.get("unionid"):
                kept = attach_identity(
                    session,
                    book,
                    contact,
                    IdentityKind.UNIONID,
                    info["unionid"],
                    followups=followups,
                )
                merged = kept.id != contact.id or contact.merged_into_id is not None
                result.merged += merged
                if merged:
                    release_enrichment_holds(
                        session, channel.workspace_id, {kept.id, contact.id}, followups
                    )
        result.looked_up += len(identities)
        session.commit()
    result.more = True  # its share done; more may wait
    return result


INVALID_OPENID = 40003


def _user_infos(client, openids: list[str]) -> dict[str, dict]:
    """user/info by openid, 100 a call; a batch the platform refuses for an invalid openid
    is asked one by one, so one bad openid (posted through the API, say) never blocks the
    channel's enrichment: its answer is {"error": ...}."""
    try:
        return {info.get("openid"): info for info in user_infos(client, openids)}
    except WeChatApiError as exc:
        if exc.errcode != INVALID_OPENID:
            raise
    infos = {}
    for openid in openids:
        try:
            infos[openid] = client.user.get(openid)
        except WeChatApiError as exc:
            if exc.errcode != INVALID_OPENID:
                raise
            infos[openid] = {"error": f"{exc.errcode} {exc.errmsg}"}
    return infos


def enrich_external_contacts(
    session: Session,
    channel: Channel,
    client,
    followups: Followups,
    *,
    on_customer: CustomerHook,
    max_contacts: int = 50,
) -> EnrichResult:
    """externalcontact/get for the channel's customers added or edited since last time;
    `on_customer(session, channel, contact, external_userid, followups)` runs for each one
    looked up, in its transaction (the sales side tells staff of a target account's add)."""
    result = EnrichResult()
    book = TagBook(session, channel.workspace_id)
    titles = title_dictionary(session, channel.workspace_id)
    corp_tags = _corp_tag_map(session, channel)
    pending = _unenriched(session, channel, IdentityKind.EXTERNAL_USERID, max_contacts + 1)
    result.more = len(pending) > max_contacts
    for identity in pending[:max_contacts]:
        try:
            data = client.external_contact.get(identity.value)
        except WeChatApiError as exc:
            if is_transient(exc):
                raise
            if exc.errcode != NOT_EXTERNAL_CONTACT:
                # WeCom refuses this one (no permission, say): recorded, never asked again,
                # so it does not stop the corp's enrichment for everyone after it.
                log.warning("externalcontact/get refused for identity %s: %s", identity.id, exc)
                identity.enriched_at = utcnow()
                identity.details = {"error": f"{exc.errcode} {exc.errmsg}"}
                people = {identity.contact_id, live(session, identity.contact).id}
                release_enrichment_holds(session, channel.workspace_id, people, followups)
                session.commit()
                continue
            data = {}  # no staff member has them any more: nothing to learn
        identity.enriched_at = utcnow()
        external = data.get("external_contact") or {}
        follows = data.get("follow_user") or []
        identity.details = {
            k: external[k] for k in ("type", "corp_name", "position") if k in external
        }
        contact = looked_up_as = live(session, identity.contact)
        contact.name = external.get("name") or contact.name
        if external.get("unionid"):
            kept = attach_identity(
                session,
                book,
                contact,
                IdentityKind.UNIONID,
                external["unionid"],
                followups=followups,
            )
            result.merged += kept.id != contact.id
            contact = kept
        if external.get("position"):
            set_title(session, book, titles, contact, external["position"], followups=followups)
        if external.get("corp_name"):
            assign_account(
                session,
                book,
                contact,
                source=AccountSource.WECOM,
                company=external["corp_name"],
                followups=followups,
            )
        for follow in follows:
            relation = follow_relation(
                session,
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                external_userid=identity.value,
                staff_userid=follow["userid"],
                contact_id=contact.id,
            )
            relation.contact_id = contact.id
            relation.remark = follow.get("remark") or None
            relation.description = follow.get("description") or None
            relation.remark_corp_name = follow.get("remark_corp_name") or None
            relation.remark_mobiles = follow.get("remark_mobiles") or []
            relation.state = follow.get("state") or relation.state
            relation.add_way = follow.get("add_way")
            relation.tag_ids = [
                t["tag_id"] for t in follow.get("tags") or [] if t.get("type", 1) == 1
            ]
            if relation.remark_corp_name:
                assign_account(
                    session,
                    book,
                    contact,
                    source=AccountSource.WECOM_REMARK,
                    company=relation.remark_corp_name,
                    followups=followups,
                )
            for mobile in relation.remark_mobiles:
                contact = attach_identity(
                    session, book, contact, IdentityKind.PHONE, mobile, followups=followups
                )
            if relation.description and not contact.title:
                set_title(
                    session,
                    book,
                    titles,
                    contact,
                    relation.description,
                    only_if_known=True,
                    followups=followups,
                )
        _reconcile_wecom_tags(session, book, contact.id, follows, corp_tags, followups)
        on_customer(session, channel, contact, identity.value, followups)
        release_enrichment_holds(
            session, channel.workspace_id, {looked_up_as.id, contact.id}, followups
        )
        result.looked_up += 1
        session.commit()
    return result


def release_enrichment_holds(
    session: Session, workspace_id: int, contact_ids: set[int], followups: Followups
) -> int:
    """Journey steps waiting for these people's enrichment (journeys.runner) are due now:
    the enrichment has said who they are. Asks for a journey run when any were."""
    now = utcnow()
    ids = list(contact_ids)
    released = session.execute(
        update(Enrolment)
        .where(
            Enrolment.workspace_id == workspace_id,
            Enrolment.awaits_enrichment.is_(True),
            or_(
                Enrolment.contact_id.in_(ids),
                and_(
                    Enrolment.contact_id.is_(None),
                    Enrolment.entered_because["contact_id"].as_integer().in_(ids),
                ),
            ),
        )
        .values(awaits_enrichment=False, next_run_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released:
        followups.add(Job.RUN_JOURNEYS, workspace_id)
    return released


def _corp_tag_map(session: Session, channel: Channel) -> dict[str, int]:
    """WeCom corp tag id -> Harpoon tag id, for this corp."""
    return dict(
        session.execute(
            select(TagRemote.remote_id, TagRemote.tag_id).where(
                TagRemote.channel_id == channel.id, TagRemote.remote_id.is_not(None)
            )
        ).all()
    )


def _reconcile_wecom_tags(
    session: Session,
    book: TagBook,
    contact_id: int,
    follows: list[dict],
    corp_tags: dict[str, int],
    followups: Followups,
) -> None:
    """The corp tags salespeople set in WeCom become the contact's WeCom-sourced tags."""
    wanted = {
        corp_tags[t["tag_id"]]
        for follow in follows
        for t in follow.get("tags") or []
        if t.get("tag_id") in corp_tags
    }
    current = set(
        session.scalars(
            select(ContactTag.tag_id).where(
                ContactTag.contact_id == contact_id, ContactTag.source == TagSource.WECOM
            )
        )
    )
    add = [tag for t in wanted - current if (tag := book.by_id(t)) is not None]
    gone = [tag for t in current - wanted if (tag := book.by_id(t)) is not None]
    apply_tags(session, book, [contact_id], add, source=TagSource.WECOM, followups=followups)
    remove_tags(session, book, [contact_id], gone, followups=followups)
