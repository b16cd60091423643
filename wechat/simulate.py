"""Callbacks built exactly as WeChat and WeCom send them.

Signed and encrypted with wechatpy's own crypto, so whatever accepts these
accepts the real platform's. Used by the tests, the benches and the sandbox's
follower simulator.
"""

import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from wechatpy.crypto import PrpCrypto as OAPrpCrypto
from wechatpy.work.crypto import PrpCrypto as WeComPrpCrypto

from wechat.callbacks import aes_key_bytes, sign


@dataclass(frozen=True)
class Credentials:
    """What the platform and Harpoon share for one channel."""

    app_id: str  # OA appid or WeCom corp id
    token: str
    aes_key: str | None = None
    original_id: str = "gh_harpoon"  # the OA's ToUserName


@dataclass(frozen=True)
class Callback:
    query: str
    body: bytes

    def path(self, base: str) -> str:
        return f"{base}?{self.query}"


def xml_document(fields: dict[str, object]) -> str:
    """A flat <xml> document; strings in CDATA, numbers bare, as WeChat writes them."""
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, int | float):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def oa_event(openid: str, event: str, *, to: str = "gh_harpoon", at: int | None = None, **extra):
    return xml_document(
        {
            "ToUserName": to,
            "FromUserName": openid,
            "CreateTime": at or int(time.time()),
            "MsgType": "event",
            "Event": event,
            **extra,
        }
    )


def oa_text(openid: str, content: str, msg_id: int, *, to: str = "gh_harpoon", at=None) -> str:
    return xml_document(
        {
            "ToUserName": to,
            "FromUserName": openid,
            "CreateTime": at or int(time.time()),
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def wecom_contact_event(
    corp_id: str,
    change_type: str,
    *,
    user_id: str,
    external_user_id: str,
    at: int | None = None,
    **extra,
) -> str:
    return xml_document(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": at or int(time.time()),
            "MsgType": "event",
            "Event": "change_external_contact",
            "ChangeType": change_type,
            "UserID": user_id,
            "ExternalUserID": external_user_id,
            **extra,
        }
    )


def wecom_tag_event(
    corp_id: str, change_type: str, *, tag_id: str, tag_type: str = "tag", at: int | None = None
) -> str:
    """change_external_tag: a corp tag or tag group created, updated or deleted in the console."""
    return xml_document(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": at or int(time.time()),
            "MsgType": "event",
            "Event": "change_external_tag",
            "Id": tag_id,
            "TagType": tag_type,
            "ChangeType": change_type,
        }
    )


def wecom_chat_event(
    corp_id: str, change_type: str, *, chat_id: str, at: int | None = None, **extra
) -> str:
    """change_external_chat: a customer group created, updated (UpdateDetail add_member with
    JoinScene and MemChangeCnt, del_member with QuitScene, change_owner, change_name,
    change_notice) or dismissed."""
    return xml_document(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": at or int(time.time()),
            "MsgType": "event",
            "Event": "change_external_chat",
            "ChatId": chat_id,
            "ChangeType": change_type,
            **extra,
        }
    )


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


def _encrypt(crypto_class, creds: Credentials, plaintext: str) -> str:
    return crypto_class(aes_key_bytes(creds.aes_key)).encrypt(plaintext, creds.app_id).decode()


def oa_message(
    creds: Credentials, xml: str, *, mode: str = "safe", timestamp: int | None = None
) -> Callback:
    """An OA message callback in plaintext, compatible or safe mode."""
    ts, nonce = str(timestamp or int(time.time())), _nonce()
    params = {"signature": sign(creds.token, ts, nonce), "timestamp": ts, "nonce": nonce}
    openid = _field(xml, "FromUserName")
    if openid:
        params["openid"] = openid
    if mode == "plain":
        return Callback(urlencode(params), xml.encode())
    encrypt = _encrypt(OAPrpCrypto, creds, xml)
    params.update(encrypt_type="aes", msg_signature=sign(creds.token, ts, nonce, encrypt))
    if mode == "compatible":
        body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    else:
        body = xml_document({"ToUserName": creds.original_id, "Encrypt": encrypt})
    return Callback(urlencode(params), body.encode())


def wecom_message(
    creds: Credentials, xml: str, *, agent_id: str = "", timestamp: int | None = None
) -> Callback:
    """A WeCom callback: always encrypted, signed with msg_signature."""
    ts, nonce = str(timestamp or int(time.time())), _nonce()
    encrypt = _encrypt(WeComPrpCrypto, creds, xml)
    params = {
        "msg_signature": sign(creds.token, ts, nonce, encrypt),
        "timestamp": ts,
        "nonce": nonce,
    }
    body = xml_document({"ToUserName": creds.app_id, "AgentID": agent_id, "Encrypt": encrypt})
    return Callback(urlencode(params), body.encode())


def oa_url_check(creds: Credentials, echostr: str, timestamp: int | None = None) -> str:
    ts, nonce = str(timestamp or int(time.time())), _nonce()
    return urlencode(
        {
            "signature": sign(creds.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }
    )


def wecom_url_check(creds: Credentials, plaintext: str, timestamp: int | None = None) -> str:
    """The GET WeCom sends to check a URL; echostr's `+` is left unescaped, as WeCom does."""
    ts, nonce = str(timestamp or int(time.time())), _nonce()
    echostr = _encrypt(WeComPrpCrypto, creds, plaintext)
    signature = sign(creds.token, ts, nonce, echostr)
    return (
        f"msg_signature={signature}&timestamp={ts}&nonce={nonce}"
        f"&echostr={quote(echostr, safe='+/=')}"
    )


def _field(xml: str, name: str) -> str | None:
    start = xml.find(f"<{name}>")
    if start < 0:
        return None
    end = xml.find(f"</{name}>", start)
    value = xml[start + len(name) + 2 : end]
    if value.startswith("<![CDATA[") and value.endswith("]]>"):
        value = value[9:-3]
    return value
