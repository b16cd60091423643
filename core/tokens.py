"""Signed tokens for every URL that names a person or a sharer, and for cookies.

HMAC-SHA256 over the payload and its issue time (itsdangerous), one salt per
purpose so a token of one kind is never accepted as another. A forged, altered or
expired token is refused before anything is stored, so it never scores.
"""

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DAY = 24 * 3600


class Purpose(StrEnum):
    SHARE = "share"  # who shared a link: a staff member or a reader
    VISITOR = "visitor"  # the reader's openid on an OA, kept in a cookie after OAuth
    OAUTH_STATE = "oauth"  # the state of one OAuth round trip
    VIEW = "view"  # one page view: the beacon and the like button name it
    FORM = "form"  # one rendering of a form: its submission names it
    DEVICE = "device"  # a browser that signed in to an admin account (a cookie)


# How long each kind of token is good for.
MAX_AGE = {
    Purpose.SHARE: 180 * DAY,
    Purpose.VISITOR: 30 * DAY,
    Purpose.OAUTH_STATE: 600,
    Purpose.VIEW: DAY,
    Purpose.FORM: DAY,
    Purpose.DEVICE: 180 * DAY,
}


class TokenError(ValueError):
    """A token that is not ours, was altered, or has expired."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "expired" or "invalid"


@dataclass(frozen=True)
class Signer:
    secret_key: str

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self.secret_key,
            salt=f"harpoon.{purpose}",
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def sign(self, purpose: Purpose, payload: dict) -> str:
        return self._serializer(purpose).dumps(payload)

    def verify(self, purpose: Purpose, token: str | None, max_age: int | None = None) -> dict:
        """The payload of a valid token, else TokenError."""
        if not token:
            raise TokenError("invalid")
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age or MAX_AGE[purpose])
        except SignatureExpired as exc:
            raise TokenError("expired") from exc
        except BadSignature as exc:
            raise TokenError("invalid") from exc
        if not isinstance(payload, dict):
            raise TokenError("invalid")
        return payload


@dataclass(frozen=True)
class Sharer:
    """Who shared a link: a staff member (by id), or a reader (by openid on a channel;
    which contact that is, the drain knows), or a contact (an admin-issued link)."""

    workspace_id: int
    staff_id: int | None = None
    channel_id: int | None = None
    openid: str | None = None
    contact_id: int | None = None

    def payload(self) -> dict:
        fields = {
            "w": self.workspace_id,
            "s": self.staff_id,
            "ch": self.channel_id,
            "o": self.openid,
            "c": self.contact_id,
        }
        return {k: v for k, v in fields.items() if v is not None}

    @classmethod
    def from_payload(cls, payload: dict) -> "Sharer":
        sharer = cls(
            workspace_id=int(payload["w"]),
            staff_id=payload.get("s"),
            channel_id=payload.get("ch"),
            openid=payload.get("o"),
            contact_id=payload.get("c"),
        )
        if not (sharer.staff_id or sharer.openid or sharer.contact_id):
            raise TokenError("invalid")
        return sharer


def share_token(signer: Signer, sharer: Sharer) -> str:
    return signer.sign(Purpose.SHARE, sharer.payload())


def verify_share(signer: Signer, token: str, workspace_id: int) -> Sharer:
    """The sharer a token names; a token of another workspace is invalid here."""
    try:
        sharer = Sharer.from_payload(signer.verify(Purpose.SHARE, token))
    except (KeyError, TypeError, ValueError) as exc:
        raise exc if isinstance(exc, TokenError) else TokenError("invalid") from exc
    if sharer.workspace_id != workspace_id:
        raise TokenError("invalid")
    return sharer
