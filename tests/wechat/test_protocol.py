"""The callback protocol, checked against wechatpy's own implementation."""

import pytest
from wechatpy.utils import check_signature as wechatpy_check_signature

from wechat import callbacks, simulate
from wechat.callbacks import CallbackRejected, dedupe_key, parse_query


def test_signature_matches_wechatpy():
    signature = callbacks.sign("token", "1700000000", "123456")
    wechatpy_check_signature("token", signature, "1700000000", "123456")  # raises if different


def test_parse_query_keeps_plus_and_decodes_percent():
    query = parse_query(b"echostr=ab+c%2Bd%3D&timestamp=1&nonce=2&msg_signature=s&ignored=x")
    assert query.echostr == "ab+c+d="
    assert (query.timestamp, query.nonce, query.msg_signature) == ("1", "2", "s")


@pytest.mark.parametrize(
    "age, ok", [(0, True), (299, True), (-299, True), (301, False), (-301, False)]
)
def test_timestamp_window(age, ok):
    now = 1_800_000_000
    if ok:
        callbacks.check_fresh(str(now - age), 300, now=now)
    else:
        with pytest.raises(CallbackRejected) as raised:
            callbacks.check_fresh(str(now - age), 300, now=now)
        assert raised.value.status == 403


def test_timestamp_must_be_a_number():
    with pytest.raises(CallbackRejected) as raised:
        callbacks.check_fresh("", 300)
    assert raised.value.status == 400


def test_entities_never_reach_the_parser():
    with pytest.raises(CallbackRejected):
        callbacks.parse_xml(b'<?xml version="1.0"?><!doctype x [<!entity a "b">]><xml/>')


def test_dedupe_keys():
    fields = {"FromUserName": "o1", "CreateTime": "1700000000", "Event": "CLICK", "EventKey": "K"}
    assert dedupe_key("oa", fields, "") == "evt|o1|1700000000|CLICK|K"
    assert dedupe_key("oa", {"MsgId": "42", "FromUserName": "o1"}, "") == "msg|42"
    add = {
        "FromUserName": "sys",
        "CreateTime": "1700000000",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "zhang",
    }
    a = dedupe_key("wecom", {**add, "ExternalUserID": "wmA"}, "")
    b = dedupe_key("wecom", {**add, "ExternalUserID": "wmB"}, "")
    assert a != b
    assert a == "ext|add_external_contact|zhang|wmA|1700000000"


def test_long_event_keys_are_hashed_to_fit():
    fields = {
        "FromUserName": "o1",
        "CreateTime": "1",
        "Event": "VIEW",
        "EventKey": "https://x/" + "a" * 1000,
    }
    key = dedupe_key("oa", fields, "")
    assert key.startswith("evt|sha256:") and len(key) < 100
    assert key == dedupe_key("oa", dict(fields), "")


def test_unknown_wecom_events_key_on_the_payload():
    assert dedupe_key("wecom", {"Event": "x"}, "<xml>1</xml>") != dedupe_key(
        "wecom", {"Event": "x"}, "<xml>2</xml>"
    )


def test_simulated_safe_mode_decrypts_with_wechatpy():
    from wechatpy.crypto import WeChatCrypto

    creds = simulate.Credentials("wxappid", "tok", "k" * 43)
    xml = simulate.oa_text("o1", "你好", 1)
    callback = simulate.oa_message(creds, xml)
    query = parse_query(callback.query)
    plaintext = WeChatCrypto("tok", "k" * 43, "wxappid").decrypt_message(
        callback.body, query.msg_signature, query.timestamp, query.nonce
    )
    assert plaintext == xml
