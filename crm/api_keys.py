"""Keys for the touchpoint API: shown once, stored as SHA-256; an optional HMAC signature
of the request body, with a timestamp so a captured request cannot be replayed later.

Signature header: `X-Harpoon-Signature: t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(signing secret, "<t>." + body). Each signature is accepted once: a request
seen again within the tolerance is a replay (whether or not its items carry external_id).
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from redis import Redis
from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from models import ApiKey, User, utcnow

KEY_PREFIX = "hk_"
SECRET_PREFIX = "hs_"
SHOWN_PREFIX_LENGTH = 10
SIGNATURE_TOLERANCE_SECONDS = 300
# ASCII only: a header is the client's to fill, and compare_digest refuses non-ASCII text.
SIGNATURE_PARTS = {"t": re.compile(r"[0-9]{1,12}"), "v1": re.compile(r"[0-9a-f]{64}")}
MALFORMED_SIGNATURE = "malformed signature: expected t=<unix seconds>,v1=<64 lowercase hex digits>"


@dataclass(frozen=True)
class NewKey:
    """A key as created: the only time its full value exists outside the caller."""

    row: ApiKey
    key: str
    signing_secret: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session,
    workspace_id: int,
    name: str,
    *,
    require_signature: bool = False,
    created_by: int | None = None,
) -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    signing_secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id,
        name=name[:100],
        prefix=key[:SHOWN_PREFIX_LENGTH],
        key_hash=hash_key(key),
        signing_secret=signing_secret,
        require_signature=require_signature,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return NewKey(row, key, signing_secret)


def revoke_api_key(session: Session, workspace_id: int, key_id: int) -> bool:
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
        .where(ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return done.rowcount == 1


def workspace_keys(session: Session, workspace_id: int) -> list[Row]:
    """(key, its creator's name) of the workspace: live keys first, newest first."""
    return session.execute(
        select(ApiKey, User.name)
        .outerjoin(User, User.id == ApiKey.created_by)
        .where(ApiKey.workspace_id == workspace_id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()


def key_for(session: Session, presented: str | None) -> ApiKey | None:
    """The live key a request presents, or None."""
    if not presented or not presented.startswith(KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(presented)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def signature_digest(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>." + body: the v1 of a signature header."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for a body (what a client computes)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature_digest(secret, timestamp, body)}"


def signature_problem(secret: str, header: str | None, body: bytes) -> str | None:
    """Why a signature header does not vouch for the body; None when it does."""
    if not header:
        return "missing signature"
    parts = _signature_parts(header)
    if not all(form.fullmatch(parts.get(name, "")) for name, form in SIGNATURE_PARTS.items()):
        return MALFORMED_SIGNATURE
    timestamp, given = int(parts["t"]), parts["v1"]
    if abs(time.time() - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return "signature timestamp too old or in the future"
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        return "signature does not match the body"
    return None


def _signature_parts(header: str) -> dict[str, str]:
    """The header's parts by name: one parser for the check and the replay record, so the
    digest recorded is the one that was verified."""
    return dict(part.strip().partition("=")[::2] for part in header.split(","))


def first_use_of_signature(connection: Redis, prefix: str, key_id: int, header: str) -> bool:
    """Record a signature signature_problem accepted; False when it was seen before.

    Its digest names one timestamp and body however the header around it is written, and
    stays recorded for as long as any clock within the tolerance could accept it."""
    digest = _signature_parts(header)["v1"]
    recorded = connection.set(
        f"{prefix}:api-signature:{key_id}:{digest}", 1, nx=True, ex=2 * SIGNATURE_TOLERANCE_SECONDS
    )
    return bool(recorded)
