"""The callback protocol of WeChat OA and WeCom: signatures, decryption, dedupe keys.

Pure functions over bytes and strings; the web layer decides what to do with
a CallbackRejected (status + reason) and what to store.
"""

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import unquote

import xmltodict
from wechatpy.crypto import PrpCrypto as OAPrpCrypto
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import TextReply
from wechatpy.work.crypto import PrpCrypto as WeComPrpCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

OA = "oa"
WECOM = "wecom"
_DEDUPE_KEY_MAX = 200


class CallbackRejected(Exception):
    """A callback we refuse: `status` is the HTTP answer, `reason` the log line."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class CallbackQuery:
    signature: str = ""
    msg_signature: str = ""
    timestamp: str = ""
    nonce: str = ""
    echostr: str = ""
    encrypt_type: str = ""
    openid: str = ""


def parse_query(raw_query: bytes | str) -> CallbackQuery:
    """Parse the query string with percent-decoding only.

    `echostr` and `Encrypt` are base64 and may carry a literal `+`; form
    decoding would turn it into a space and break the signature.
    """
    if isinstance(raw_query, bytes):
        raw_query = raw_query.decode("latin-1")
    values = {}
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if name in CallbackQuery.__dataclass_fields__:
            values[name] = unquote(value)
    return CallbackQuery(**values)


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(expected_parts: tuple[str, ...], given: str) -> None:
    # Bytes: compare_digest refuses non-ASCII str, and a forged query may carry any.
    if not given or not hmac.compare_digest(sign(*expected_parts).encode(), given.encode()):
        raise CallbackRejected(403, "bad signature")


def check_fresh(timestamp: str, max_age_seconds: int, now: float | None = None) -> None:
    """Refuse a timestamp outside the window: a replay of an old, signed request."""
    try:
        sent = int(timestamp)
    except ValueError:
        raise CallbackRejected(400, "timestamp missing or not a number") from None
    now = time.time() if now is None else now
    if abs(now - sent) > max_age_seconds:
        raise CallbackRejected(403, f"stale timestamp ({int(now - sent)} s old)")


def refuse_unsafe_xml(body: bytes) -> None:
    """No DTDs, no entities: the billion-laughs and XXE family never reach a parser."""
    upper = body.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise CallbackRejected(400, "DOCTYPE or ENTITY in XML")


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The flat <xml> document WeChat sends, as a dict of strings."""
    raw = body.encode() if isinstance(body, str) else body
    refuse_unsafe_xml(raw)
    try:
        doc = xmltodict.parse(raw, disable_entities=True)
    except Exception as exc:  # expat raises several types for malformed input
        raise CallbackRejected(400, f"malformed XML: {exc}") from None
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise CallbackRejected(400, "XML has no <xml> root")
    repeated = [name for name, value in root.items() if isinstance(value, list)]
    if repeated:
        raise CallbackRejected(400, f"repeated element <{repeated[0]}>")
    return root


def verify_oa_url(token: str, query: CallbackQuery) -> str:
    """OA URL check: the answer is echostr as given."""
    check_signature((token, query.timestamp, query.nonce), query.signature)
    return query.echostr


def verify_wecom_url(
    token: str, aes_keys: tuple[str, ...], corp_id: str, query: CallbackQuery
) -> str:
    """WeCom URL check: the answer is the decrypted echostr, nothing around it."""
    check_signature((token, query.timestamp, query.nonce, query.echostr), query.msg_signature)
    return _decrypt(WeComPrpCrypto, query.echostr, aes_keys, corp_id)


def open_oa_message(
    body: bytes,
    query: CallbackQuery,
    *,
    token: str,
    aes_keys: tuple[str, ...],
    app_id: str,
    mode: str,
) -> str:
    """Verify an OA message callback and return its plaintext XML.

    Every mode carries `signature`, which covers the query only; safe and
    compatible mode add `encrypt_type=aes` and `msg_signature` over the
    Encrypt field. A plaintext body is accepted only from a plaintext-mode
    channel: otherwise one leaked signed query would let anyone post any body.
    """
    check_signature((token, query.timestamp, query.nonce), query.signature)
    if query.encrypt_type != "aes":
        if mode != "plain":
            raise CallbackRejected(400, f"plaintext message on a {mode}-mode channel")
        refuse_unsafe_xml(body)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected(400, "body is not UTF-8") from None
    if not aes_keys:
        raise CallbackRejected(400, "encrypted message on a channel without EncodingAESKey")
    encrypt = parse_xml(body).get("Encrypt") or ""
    check_signature((token, query.timestamp, query.nonce, encrypt), query.msg_signature)
    return _decrypt(OAPrpCrypto, encrypt, aes_keys, app_id)


def open_wecom_message(
    body: bytes, query: CallbackQuery, *, token: str, aes_keys: tuple[str, ...], corp_id: str
) -> str:
    """Verify a WeCom callback (always encrypted) and return its plaintext XML."""
    encrypt = parse_xml(body).get("Encrypt") or ""
    check_signature((token, query.timestamp, query.nonce, encrypt), query.msg_signature)
    return _decrypt(WeComPrpCrypto, encrypt, aes_keys, corp_id)


def _decrypt(crypto_class, ciphertext: str, aes_keys: tuple[str, ...], receive_id: str) -> str:
    """Try the current key, then the previous one (EncodingAESKey rotation)."""
    wrong_receiver = False
    for aes_key in aes_keys:
        try:
            key = aes_key_bytes(aes_key)
            plaintext = crypto_class(key).decrypt(ciphertext, receive_id)
        except (InvalidAppIdException, InvalidCorpIdException):
            wrong_receiver = True
            continue
        except Exception:  # bad base64, padding or UTF-8: this key cannot open it
            continue
        refuse_unsafe_xml(plaintext.encode())
        return plaintext
    if wrong_receiver:
        raise CallbackRejected(403, "receive id (appid / corp id) does not match the channel")
    raise CallbackRejected(400, "cannot decrypt with the channel's EncodingAESKey")


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must be 43 characters")
    return key


def dedupe_key(platform: str, fields: dict[str, str], payload: str) -> str:
    """The natural key of one callback, so WeChat's retries are stored once.

    Messages: MsgId. OA events: FromUserName + CreateTime + Event + EventKey
    (+ MsgID on push results).
    WeCom customer-contact events all come from `sys`, so they key on
    ChangeType + UserID + ExternalUserID + CreateTime: two customers added in
    the same second stay two events. Anything else: a digest of the payload,
    which WeChat repeats byte for byte when it retries.
    """
    msg_id = fields.get("MsgId")
    event = (fields.get("Event") or "").lower()
    if msg_id:
        parts = ("msg", msg_id)
    elif platform == WECOM and event == "change_external_contact":
        parts = ("ext", *_get(fields, "ChangeType", "UserID", "ExternalUserID", "CreateTime"))
    elif platform == WECOM and event == "change_external_tag":
        parts = ("tag", *_get(fields, "ChangeType", "TagType", "Id", "CreateTime"))
    elif platform == WECOM and event == "change_external_chat":
        parts = ("chat", *_get(fields, "ChangeType", "ChatId", "UpdateDetail", "CreateTime"))
    elif platform == OA and event:
        parts = ("evt", *_get(fields, "FromUserName", "CreateTime", "Event", "EventKey"))
        if fields.get("MsgID"):  # push results: one per job, several jobs a second
            parts = (*parts, str(fields["MsgID"]))
    else:
        parts = ("raw", hashlib.sha256(payload.encode()).hexdigest())
    key = "|".join(parts)
    if len(key) > _DEDUPE_KEY_MAX:
        key = f"{parts[0]}|sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _get(fields: dict[str, str], *names: str) -> tuple[str, ...]:
    return tuple(str(fields.get(name) or "") for name in names)


def oa_text_reply(
    fields: dict[str, str],
    content: str,
    *,
    token: str,
    aes_key: str | None,
    app_id: str,
    encrypted: bool,
    timestamp: int | None = None,
) -> str:
    """A passive text reply to an OA message, encrypted back when the message was."""
    reply = TextReply(
        source=fields.get("ToUserName", ""),
        target=fields.get("FromUserName", ""),
        content=content,
        time=timestamp or int(time.time()),
    ).render()
    if not encrypted:
        return reply
    return WeChatCrypto(token, aes_key, app_id).encrypt_message(
        reply, str(secrets.randbelow(10**10)), timestamp or int(time.time())
    )
