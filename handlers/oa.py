"""What Harpoon does with each Official Account event and message."""

from sqlalchemy.orm import Session

from core.jobs import Job
from crm.accounts import assign_account
from crm.contacts import set_title
from crm.rules import apply_matching
from handlers.interactions import record_interaction
from handlers.registry import EventContext, handles
from models import AccountSource, Contact, Identity, IdentityKind, RuleKind
from outreach.qr_scans import scene_tags


def follower(session: Session, ctx: EventContext) -> Identity:
    """The follower's openid identity on this OA (a new contact on first sight)."""
    identity = ctx.identities.resolve(
        session,
        IdentityKind.OPENID,
        ctx.channel_id,
        ctx.event.subject,
        ctx.event.occurred_at,
    )
    if identity.enriched_at is None:  # user/info, in batches of 100, after the commit
        ctx.batch.followups.add(Job.ENRICH_FOLLOWERS, ctx.channel_id)
    return identity


@handles("wechat.unfollow")
def on_unfollow(session: Session, ctx: EventContext) -> None:
    identity = follower(session, ctx)
    identity.set_following(False, ctx.event.occurred_at)
    record_interaction(session, ctx, identity.contact)
    ctx.batch.touch(identity.contact_id, ctx.event.kind)


@handles(
    "wechat.follow",
    "wechat.scan",
    "wechat.menu_click",
    "wechat.menu_view",
    "wechat.menu_scan",
    "wechat.message",
    "wechat.location",
)
def on_touch(session: Session, ctx: EventContext) -> None:
    """Following, or acting as only a follower can: scan, tap, message, share location."""
    identity = follower(session, ctx)
    identity.set_following(True, ctx.event.occurred_at)
    record_interaction(session, ctx, identity.contact)
    ctx.batch.touch(identity.contact_id, ctx.event.kind)
    apply_rules(session, ctx, identity.contact)


def apply_rules(session: Session, ctx: EventContext, contact: Contact) -> None:
    """Keyword, self-identification (menu "我是..." or "我是XX，来自YY"), and a scene's tags
    (its channel QR code's, and source rules)."""
    event, batch = ctx.event, ctx.batch
    rules, followups = batch.rules(session), batch.followups
    match event.kind:
        case "wechat.message":
            text = event.properties.get("content") or event.properties.get("recognition")
            if not text:
                return
            book = batch.tags(session)
            apply_matching(
                session, book, rules.matching(RuleKind.KEYWORD, text), contact.id, followups
            )
            for rule in rules.matching(RuleKind.PROFILE, text)[:1]:
                stated = rule.matches(text).groupdict()
                if stated.get("title"):
                    set_title(
                        session,
                        book,
                        batch.titles(session),
                        contact,
                        stated["title"],
                        only_if_known=True,
                        followups=followups,
                        later=batch.title_tags,
                    )
                if stated.get("company"):
                    assign_account(
                        session,
                        book,
                        contact,
                        source=AccountSource.SELF,
                        company=stated["company"],
                        followups=followups,
                        known_accounts=batch.accounts,
                        later=batch.account_moves,
                    )
        case "wechat.menu_click":
            book = batch.tags(session)
            matched = rules.matching(RuleKind.MENU, event.properties.get("key"))
            apply_matching(session, book, matched, contact.id, followups)
        case "wechat.follow" | "wechat.scan":
            scene = event.properties.get("scene")
            if scene:
                code = batch.qr_codes(session).get(ctx.channel_id, str(scene))
                book = batch.tags(session)
                scene_tags(session, book, rules, code, contact.id, str(scene), followups)
