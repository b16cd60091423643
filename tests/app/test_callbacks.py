"""Callback endpoints, driven with callbacks built as WeChat and WeCom build them."""

import time

import pytest
from sqlalchemy import select

from models import InboundEvent
from tests.factories import make_channel, workspace_id
from tests.helpers import OA_CREDS, WECOM_CREDS, harpoon_of, queued_jobs, run_jobs
from wechat import simulate
from wechat.simulate import Credentials


def inbox_rows(app):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


def post(client, path, callback):
    return client.post(
        callback.path(path), data=callback.body, headers={"Content-Type": "text/xml"}
    )


def follow_xml(openid="o_follower_1", at=None):
    return simulate.oa_event(openid, "subscribe", at=at, EventKey="qrscene_expo2026", Ticket="T1")


@pytest.mark.parametrize("mode", ["safe", "compatible", "plain"])
def test_oa_message_modes_are_accepted_and_stored(app, client, mode):
    channel_id = make_channel(app, "oa", OA_CREDS, message_mode=mode)
    xml = follow_xml()
    response = post(
        client, f"/callbacks/wechat/{channel_id}", simulate.oa_message(OA_CREDS, xml, mode=mode)
    )
    assert response.status_code == 200
    assert response.data == b"success"
    [row] = inbox_rows(app)
    assert row.payload == xml
    assert row.status == "pending"
    assert row.platform == "oa"
    assert row.dedupe_key.startswith("evt|o_follower_1|")


def test_oa_url_verification_echoes_echostr(app, client, oa_channel):
    query = simulate.oa_url_check(OA_CREDS, "8431957214")
    response = client.get(f"/callbacks/wechat/{oa_channel}?{query}")
    assert response.status_code == 200
    assert response.data == b"8431957214"


def test_wecom_url_verification_returns_plaintext_even_with_plus_in_echostr(
    app, client, wecom_channel
):
    # Find a plaintext whose encryption contains '+', the case form decoding breaks.
    for attempt in range(200):
        plaintext = f"echo-{attempt}-7281"
        query = simulate.wecom_url_check(WECOM_CREDS, plaintext)
        if "+" in query:
            break
    assert "+" in query
    response = client.get(f"/callbacks/wecom/{wecom_channel}?{query}")
    assert response.status_code == 200
    assert response.data == plaintext.encode()  # no quotes, BOM or newline


def test_bad_signature_is_refused_and_nothing_stored(app, client, oa_channel, caplog):
    forged = Credentials(OA_CREDS.app_id, "not-the-token", OA_CREDS.aes_key)
    response = post(
        client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(forged, follow_xml())
    )
    assert response.status_code == 403
    assert inbox_rows(app) == []
    assert "reason=bad signature" in caplog.text


def test_bad_wecom_url_signature_is_refused(client, wecom_channel):
    query = simulate.wecom_url_check(
        Credentials(WECOM_CREDS.app_id, "wrong", WECOM_CREDS.aes_key), "x"
    )
    assert client.get(f"/callbacks/wecom/{wecom_channel}?{query}").status_code == 403


def test_wrong_appid_suffix_is_refused(app, client, oa_channel, caplog):
    other_app = Credentials("wx0000000000000000", OA_CREDS.token, OA_CREDS.aes_key)
    response = post(
        client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(other_app, follow_xml())
    )
    assert response.status_code == 403
    assert inbox_rows(app) == []
    assert "receive id" in caplog.text


def test_wrong_corp_id_is_refused(app, client, wecom_channel):
    xml = simulate.wecom_contact_event(
        "wwother", "add_external_contact", user_id="u", external_user_id="wm1"
    )
    other_corp = Credentials("wwother", WECOM_CREDS.token, WECOM_CREDS.aes_key)
    response = post(
        client, f"/callbacks/wecom/{wecom_channel}", simulate.wecom_message(other_corp, xml)
    )
    assert response.status_code == 403
    assert inbox_rows(app) == []


def test_stale_timestamp_is_refused(app, client, oa_channel):
    old = int(time.time()) - 3600
    callback = simulate.oa_message(OA_CREDS, follow_xml(), timestamp=old)
    assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 403
    assert inbox_rows(app) == []


def test_timestamp_window_is_configurable(make_app):
    app = make_app(callback_max_age_seconds=7200)
    channel_id = make_channel(app, "oa", OA_CREDS)
    callback = simulate.oa_message(OA_CREDS, follow_xml(), timestamp=int(time.time()) - 3600)
    assert post(app.test_client(), f"/callbacks/wechat/{channel_id}", callback).status_code == 200


def test_duplicate_and_replayed_callbacks_are_stored_once(app, client, oa_channel):
    xml = follow_xml(at=int(time.time()))
    for _ in range(3):  # WeChat retries: same message, new nonce and signature each time
        response = post(
            client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml)
        )
        assert response.status_code == 200 and response.data == b"success"
    callback = simulate.oa_message(OA_CREDS, xml)
    assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 200
    assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 200  # replay
    assert len(inbox_rows(app)) == 1


def test_messages_dedupe_on_msgid(app, client, oa_channel):
    now = int(time.time())
    for msg_id, content in [(1001, "hello"), (1001, "hello"), (1002, "hello")]:
        xml = simulate.oa_text("o_a", content, msg_id, at=now)
        assert (
            post(
                client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml)
            ).status_code
            == 200
        )
    assert [row.dedupe_key for row in inbox_rows(app)] == ["msg|1001", "msg|1002"]


def test_same_second_wecom_adds_are_two_events(app, client, wecom_channel):
    now = int(time.time())
    for external_user_id in ("wmAAA", "wmBBB"):
        xml = simulate.wecom_contact_event(
            WECOM_CREDS.app_id,
            "add_external_contact",
            user_id="zhangsan",
            external_user_id=external_user_id,
            at=now,
            State="expo",
            WelcomeCode="WC",
        )
        callback = simulate.wecom_message(WECOM_CREDS, xml)
        assert post(client, f"/callbacks/wecom/{wecom_channel}", callback).status_code == 200
    rows = inbox_rows(app)
    assert len(rows) == 2
    assert {row.dedupe_key.split("|")[3] for row in rows} == {"wmAAA", "wmBBB"}


def test_oversized_body_is_refused(make_app):
    app = make_app(callback_max_bytes=2048)
    channel_id = make_channel(app, "oa", OA_CREDS)
    xml = simulate.oa_text("o_big", "长" * 2000, 9001)
    response = post(
        app.test_client(), f"/callbacks/wechat/{channel_id}", simulate.oa_message(OA_CREDS, xml)
    )
    assert response.status_code == 413
    assert inbox_rows(app) == []


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_doctype_is_refused(app, client, mode):
    channel_id = make_channel(app, "oa", OA_CREDS, message_mode=mode)
    xml = '<!DOCTYPE xml [<!ENTITY boom "boom">]>' + simulate.oa_text("o_x", "&boom;", 77)
    response = post(
        client, f"/callbacks/wechat/{channel_id}", simulate.oa_message(OA_CREDS, xml, mode=mode)
    )
    assert response.status_code == 400
    assert inbox_rows(app) == []


def test_safe_mode_channel_refuses_plaintext(app, client, oa_channel):
    callback = simulate.oa_message(OA_CREDS, follow_xml(), mode="plain")
    assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 400
    assert inbox_rows(app) == []


def test_malformed_xml_is_refused(app, client):
    channel_id = make_channel(app, "oa", OA_CREDS, message_mode="plain")
    callback = simulate.oa_message(OA_CREDS, "<xml><MsgType>text", mode="plain")
    assert post(client, f"/callbacks/wechat/{channel_id}", callback).status_code == 400


def test_unknown_channel_and_wrong_platform_are_404(client, oa_channel):
    callback = simulate.oa_message(OA_CREDS, follow_xml())
    assert post(client, "/callbacks/wechat/9999", callback).status_code == 404
    assert post(client, f"/callbacks/wecom/{oa_channel}", callback).status_code == 404


def test_previous_aes_key_still_decrypts_after_rotation(app, client, oa_channel):
    from models import Channel

    new_key = "N" * 43
    with harpoon_of(app).db.session() as session:
        channel = session.get(Channel, oa_channel)
        channel.previous_aes_key, channel.aes_key = channel.aes_key, new_key
        session.commit()
    harpoon_of(app).channels.invalidate(oa_channel)
    rotated = Credentials(OA_CREDS.app_id, OA_CREDS.token, new_key)
    for creds, openid in ((OA_CREDS, "o_old_key"), (rotated, "o_new_key")):
        callback = simulate.oa_message(creds, follow_xml(openid))
        assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 200
    assert len(inbox_rows(app)) == 2


def test_secrets_are_encrypted_at_rest(app, oa_channel):
    from sqlalchemy import text

    with harpoon_of(app).db.engine.connect() as conn:
        token, aes_key = conn.execute(
            text("SELECT token, aes_key FROM channels WHERE id = :id"), {"id": oa_channel}
        ).one()
    assert OA_CREDS.token not in token and OA_CREDS.aes_key not in aes_key
    with harpoon_of(app).db.session() as session:
        from models import Channel

        assert session.get(Channel, oa_channel).token == OA_CREDS.token


def test_one_drain_job_per_lane_per_burst(app, client, oa_channel):
    for n in range(20):
        xml = simulate.oa_text(f"o_{n}", "hi", 5000 + n)
        assert (
            post(
                client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml)
            ).status_code
            == 200
        )
    queue = harpoon_of(app).queue
    queue.drain_requests.flush()
    with harpoon_of(app).db.session() as session:
        lanes = list(session.scalars(select(InboundEvent.lane)))
    assert len(lanes) == 20
    assert len(set(lanes)) > 1  # 20 followers spread over the lanes
    assert sorted(args for _name, args in queued_jobs(app, "high")) == [
        (workspace_id(app), lane) for lane in sorted(set(lanes))
    ]


def test_drain_request_is_sent_by_the_background_thread(app, client, oa_channel):
    xml = simulate.oa_text("o_bg", "hi", 6001)
    post(client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml))
    queue = harpoon_of(app).queue
    deadline = time.monotonic() + 10
    while queue.high.count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.high.count == 1


def test_bad_msg_signature_is_refused_in_safe_mode(app, client, oa_channel):
    callback = simulate.oa_message(OA_CREDS, follow_xml())
    query = callback.query.replace("msg_signature=", "msg_signature=0")
    response = client.post(f"/callbacks/wechat/{oa_channel}?{query}", data=callback.body)
    assert response.status_code == 403
    assert inbox_rows(app) == []


def test_bad_msg_signature_is_refused_for_wecom(app, client, wecom_channel):
    xml = simulate.wecom_contact_event(
        WECOM_CREDS.app_id, "add_external_contact", user_id="u", external_user_id="wm1"
    )
    callback = simulate.wecom_message(WECOM_CREDS, xml)
    query = callback.query.replace("msg_signature=", "msg_signature=0")
    assert (
        client.post(f"/callbacks/wecom/{wecom_channel}?{query}", data=callback.body).status_code
        == 403
    )
    assert inbox_rows(app) == []


def test_non_ascii_signature_is_a_403_not_a_crash(client, oa_channel):
    callback = simulate.oa_message(OA_CREDS, follow_xml())
    query = callback.query.replace("signature=", "signature=%E4%B8%AD", 1)
    assert (
        client.post(f"/callbacks/wechat/{oa_channel}?{query}", data=callback.body).status_code
        == 403
    )


def test_compatible_mode_channel_refuses_a_plaintext_body(app, client):
    channel_id = make_channel(app, "oa", OA_CREDS, message_mode="compatible")
    callback = simulate.oa_message(OA_CREDS, follow_xml(), mode="plain")
    assert post(client, f"/callbacks/wechat/{channel_id}", callback).status_code == 400
    assert inbox_rows(app) == []


def test_repeated_elements_are_refused(app, client, oa_channel):
    xml = simulate.oa_text("o_rep", "hi", 31).replace("</xml>", "<MsgId>32</MsgId></xml>")
    assert (
        post(
            client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml)
        ).status_code
        == 400
    )
    assert inbox_rows(app) == []


def test_push_results_in_the_same_second_are_distinct(app, client, oa_channel):
    now = int(time.time())
    for msg_id in (1000001, 1000002):
        xml = simulate.oa_event(
            "gh_harpoon", "MASSSENDJOBFINISH", at=now, MsgID=msg_id, Status="send success"
        )
        assert (
            post(
                client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, xml)
            ).status_code
            == 200
        )
    assert len(inbox_rows(app)) == 2


def test_callbacks_carry_no_admin_machinery(client, oa_channel):
    """No session cookie, no rate-limit headers: the admin's extensions stay on the admin."""
    response = post(
        client, f"/callbacks/wechat/{oa_channel}", simulate.oa_message(OA_CREDS, follow_xml())
    )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert not any(name.lower().startswith("x-ratelimit") for name, _ in response.headers)


def _without(xml: str, name: str) -> str:
    start, end = xml.index(f"<{name}>"), xml.index(f"</{name}>") + len(name) + 3
    return xml[:start] + xml[end:]


TEXT = simulate.oa_text("o_odd", "x", 51)
CLICK = simulate.oa_event("o_odd", "CLICK", EventKey="k")
ADD = simulate.wecom_contact_event(
    WECOM_CREDS.app_id, "add_external_contact", user_id="zhangsan", external_user_id="wm_odd"
)


def _with(xml: str, element: str) -> str:
    return xml.replace("</xml>", f"{element}</xml>")


MENU_SCAN = simulate.oa_event("o_scan", "scancode_push", EventKey="scan_badge")
MENU_PHOTOS = simulate.oa_event("o_pics", "pic_weixin", EventKey="photos")
BATCH_JOB = simulate.xml_document(
    {
        "ToUserName": WECOM_CREDS.app_id,
        "FromUserName": "sys",
        "CreateTime": int(time.time()),
        "MsgType": "event",
        "Event": "batch_job_result",
    }
)
UNNORMALIZABLE_OA = {
    "nested Content": TEXT.replace("<![CDATA[x]]>", "<b>x</b>"),
    "nested EventKey": CLICK.replace("<![CDATA[k]]>", "<b>k</b>"),
    "an attribute": TEXT.replace("<Content>", '<Content lang="zh">'),
    "empty FromUserName": simulate.oa_event("", "subscribe"),
    "no FromUserName": _without(CLICK, "FromUserName"),
    "non-numeric CreateTime": CLICK.replace("<CreateTime>", "<CreateTime>soon"),
    "no CreateTime": _without(TEXT, "CreateTime"),
    "non-numeric MsgId": TEXT.replace("<MsgId>51", "<MsgId>x51"),
    "an event without Event": _without(CLICK, "Event"),
    "nested inside ScanCodeInfo": _with(
        MENU_SCAN, "<ScanCodeInfo><ScanResult><c>y</c></ScanResult></ScanCodeInfo>"
    ),
    "an attribute inside ScanCodeInfo": _with(
        MENU_SCAN, '<ScanCodeInfo><ScanResult a="1">y</ScanResult></ScanCodeInfo>'
    ),
    "a repeated text element in ScanCodeInfo": _with(
        MENU_SCAN,
        "<ScanCodeInfo><ScanResult>y</ScanResult><ScanResult>z</ScanResult></ScanCodeInfo>",
    ),
    "nested inside a PicList item": _with(
        MENU_PHOTOS,
        "<SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><b>x</b></PicMd5Sum></item>"
        "</PicList></SendPicsInfo>",
    ),
}
UNNORMALIZABLE_WECOM = {
    "nested ExternalUserID": ADD.replace("<![CDATA[wm_odd]]>", "<i>wm_odd</i>"),
    "nested inside BatchJob": _with(BATCH_JOB, "<BatchJob><JobId><id>1</id></JobId></BatchJob>"),
    "no FromUserName": _without(ADD, "FromUserName"),
    "non-numeric CreateTime": ADD.replace("<CreateTime>", "<CreateTime>-"),
}


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("xml", UNNORMALIZABLE_OA.values(), ids=UNNORMALIZABLE_OA.keys())
def test_a_signed_oa_callback_that_cannot_be_normalized_is_refused(app, client, caplog, mode, xml):
    channel_id = make_channel(app, "oa", OA_CREDS, message_mode=mode)
    callback = simulate.oa_message(OA_CREDS, xml, mode=mode)
    response = post(client, f"/callbacks/wechat/{channel_id}", callback)
    assert response.status_code == 400
    assert response.text.startswith("cannot be normalized")
    assert inbox_rows(app) == []
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].startswith("callback refused"), refusals


@pytest.mark.parametrize("xml", UNNORMALIZABLE_WECOM.values(), ids=UNNORMALIZABLE_WECOM.keys())
def test_a_signed_wecom_callback_that_cannot_be_normalized_is_refused(
    app, client, wecom_channel, xml
):
    callback = simulate.wecom_message(WECOM_CREDS, xml)
    response = post(client, f"/callbacks/wecom/{wecom_channel}", callback)
    assert response.status_code == 400
    assert inbox_rows(app) == []


NESTED_BY_DESIGN = {
    "a menu scan": _with(
        MENU_SCAN,
        "<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>"
        "<ScanResult><![CDATA[BADGE-0042]]></ScanResult></ScanCodeInfo>",
    ),
    "a menu's photos": _with(
        MENU_PHOTOS,
        "<SendPicsInfo><Count>2</Count><PicList>"
        "<item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item>"
        "<item><PicMd5Sum><![CDATA[5f7c231b5bf75682a53e7b6d163e1851]]></PicMd5Sum></item>"
        "</PicList></SendPicsInfo>",
    ),
    "a push's copyright check": _with(
        simulate.oa_event("mphelper", "MASSSENDJOBFINISH", MsgID=7, Status="send success"),
        "<CopyrightCheckResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx>"
        "<UserDeclareState>0</UserDeclareState></item></ResultList>"
        "<CheckState>2</CheckState></CopyrightCheckResult>",
    ),
}


@pytest.mark.parametrize("xml", NESTED_BY_DESIGN.values(), ids=NESTED_BY_DESIGN.keys())
def test_elements_the_platform_nests_by_design_are_accepted(app, client, oa_channel, xml):
    callback = simulate.oa_message(OA_CREDS, xml)
    assert post(client, f"/callbacks/wechat/{oa_channel}", callback).status_code == 200
    assert [row.payload for row in inbox_rows(app)] == [xml]


def test_a_wecom_approval_with_its_lists_is_accepted(app, client, wecom_channel):
    approval = _with(
        BATCH_JOB.replace("batch_job_result", "sys_approval_change"),
        "<ApprovalInfo><SpNo>202001140001</SpNo><SpStatus>1</SpStatus>"
        "<Applyer><UserId><![CDATA[zhangsan]]></UserId><Party>1</Party></Applyer>"
        "<SpRecord><SpStatus>1</SpStatus><Details><Approver><UserId>lisi</UserId></Approver>"
        "<Speech></Speech><SpTime>0</SpTime></Details></SpRecord>"
        "<SpRecord><SpStatus>1</SpStatus><Details><Approver><UserId>wangwu</UserId></Approver>"
        "</Details></SpRecord>"
        "<Notifyer><UserId>zhaoliu</UserId></Notifyer><Notifyer><UserId>qianqi</UserId></Notifyer>"
        "<StatuChangeEvent>1</StatuChangeEvent></ApprovalInfo>",
    )
    callback = simulate.wecom_message(WECOM_CREDS, approval)
    assert post(client, f"/callbacks/wecom/{wecom_channel}", callback).status_code == 200
    assert [row.payload for row in inbox_rows(app)] == [approval]


def test_an_unnormalizable_event_already_in_the_inbox_dies_at_once(app, oa_channel):
    """One stored before the callback refused such input: a retry would read it the same."""
    h = harpoon_of(app)
    workspace_id = h.channels.get(oa_channel).workspace_id
    payload = UNNORMALIZABLE_OA["nested Content"]
    h.inbox.store(
        workspace_id=workspace_id,
        channel_id=oa_channel,
        platform="oa",
        dedupe_key="msg|51",
        payload=payload,
    )
    h.queue.drain_requests.mark(workspace_id, 0)
    run_jobs(app)
    [row] = inbox_rows(app)
    assert (row.status, row.attempts) == ("dead", 1)
    assert "nested elements" in row.last_error
