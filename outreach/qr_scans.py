"""Channel QR codes as inbound events meet them: the code a follow's or scan's scene names,
the tags it gives and the welcome it answers with. (outreach.qr_codes creates the codes.)

Archived codes still count: WeChat cannot revoke a printed code, so its scans keep
their attribution.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jobs import Followups
from crm.rules import RuleBook, source_tags
from crm.tags import TagBook, apply_tags
from models import QrCode, TagSource

# A follow through a code carries EventKey "qrscene_<scene>"; a follower's scan the raw scene.
FOLLOW_SCENE_PREFIX = "qrscene_"


@dataclass(frozen=True)
class ScannedCode:
    tag_ids: tuple[int, ...]
    welcome_reply: str | None


class QrCodeBook:
    """A workspace's channel QR codes by (channel id, scene), loaded with one query."""

    def __init__(self, codes: dict[tuple[int, str], ScannedCode]):
        self._codes = codes

    @classmethod
    def load(cls, session: Session, workspace_id: int) -> "QrCodeBook":
        rows = session.execute(
            select(QrCode.channel_id, QrCode.scene, QrCode.tag_ids, QrCode.welcome_reply).where(
                QrCode.workspace_id == workspace_id
            )
        )
        return cls(
            {
                (channel_id, scene): ScannedCode(tuple(tag_ids or ()), welcome or None)
                for channel_id, scene, tag_ids, welcome in rows
            }
        )

    def get(self, channel_id: int, scene: str | None) -> ScannedCode | None:
        if not scene:
            return None
        return self._codes.get((channel_id, scene))

    def welcome(self, channel_id: int, event: str | None, event_key: str | None) -> str | None:
        """The passive reply to a callback's subscribe or SCAN event through a code."""
        code = self.get(channel_id, scene_of(event, event_key))
        return code.welcome_reply if code else None


def scene_of(event: str | None, event_key: str | None) -> str | None:
    """The scene of a raw subscribe (EventKey qrscene_<scene>) or SCAN (the scene) event."""
    if not event_key:
        return None
    if event == "subscribe":
        if event_key.startswith(FOLLOW_SCENE_PREFIX):
            return event_key[len(FOLLOW_SCENE_PREFIX) :] or None
        return None
    return event_key if event == "SCAN" else None


def scene_tags(
    session: Session,
    book: TagBook,
    rules: RuleBook,
    code: ScannedCode | None,
    contact_id: int,
    scene: str,
    followups: Followups | None,
) -> None:
    """A follow or scan with a scene: the code's tags, plus what the scene gives without a
    code (source rules for it, else a `source:<scene>` tag), as for 联系我 codes; so a
    segment written against a scene keeps matching once the scene has a code."""
    if code is not None:
        tags = [tag for tag_id in code.tag_ids if (tag := book.by_id(tag_id)) is not None]
        apply_tags(session, book, [contact_id], tags, source=TagSource.RULE, followups=followups)
    source_tags(session, book, rules, contact_id, scene, followups)
