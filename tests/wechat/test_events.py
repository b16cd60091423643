import pytest

from wechat import simulate
from wechat.callbacks import parse_xml
from wechat.events import Unnormalizable, normalize, normalize_fields

AT = 1_700_000_000


@pytest.mark.parametrize(
    "xml, kind, properties",
    [
        (simulate.oa_event("o", "subscribe", at=AT), "wechat.follow", {}),
        (
            simulate.oa_event("o", "subscribe", at=AT, EventKey="qrscene_expo", Ticket="T"),
            "wechat.follow",
            {"scene": "expo", "ticket": "T"},
        ),
        (simulate.oa_event("o", "unsubscribe", at=AT), "wechat.unfollow", {}),
        (
            simulate.oa_event("o", "SCAN", at=AT, EventKey="booth", Ticket="T"),
            "wechat.scan",
            {"scene": "booth", "ticket": "T"},
        ),
        (simulate.oa_event("o", "CLICK", at=AT, EventKey="K"), "wechat.menu_click", {"key": "K"}),
        (
            simulate.oa_event("o", "VIEW", at=AT, EventKey="https://a"),
            "wechat.menu_view",
            {"url": "https://a"},
        ),
        (
            simulate.oa_text("o", "hi", 9, at=AT),
            "wechat.message",
            {"msg_type": "text", "msg_id": "9", "content": "hi"},
        ),
        (
            simulate.xml_document(
                {
                    "ToUserName": "gh",
                    "FromUserName": "o",
                    "CreateTime": AT,
                    "MsgType": "image",
                    "PicUrl": "http://p",
                    "MediaId": "m1",
                    "MsgId": 10,
                }
            ),
            "wechat.message",
            {"msg_type": "image", "msg_id": "10", "media_id": "m1"},
        ),
        (
            simulate.oa_event("o", "TEMPLATESENDJOBFINISH", at=AT, MsgID=5, Status="success"),
            "wechat.template_send_finished",
            {"msg_id": 5, "status": "success"},
        ),
        (
            simulate.oa_event(
                "mphelper",
                "MASSSENDJOBFINISH",
                at=AT,
                MsgID=7,
                Status="send success",
                TotalCount=3,
                FilterCount=2,
                SentCount=2,
                ErrorCount=0,
            ),
            "wechat.mass_send_finished",
            {
                "msg_id": 7,
                "status": "send success",
                "total_count": 3,
                "filter_count": 2,
                "sent_count": 2,
                "error_count": 0,
            },
        ),
        (
            simulate.wecom_contact_event(
                "ww",
                "del_external_contact",
                user_id="u",
                external_user_id="wm",
                at=AT,
                Source="DELETE_BY_TRANSFER",
            ),
            "wecom.contact_removed",
            {
                "change_type": "del_external_contact",
                "removed_by": "staff",
                "source": "DELETE_BY_TRANSFER",
            },
        ),
        (
            simulate.wecom_contact_event(
                "ww", "add_half_external_contact", user_id="u", external_user_id="wm", at=AT
            ),
            "wecom.contact_added",
            {"change_type": "add_half_external_contact", "half": True},
        ),
        (
            simulate.wecom_contact_event(
                "ww",
                "transfer_fail",
                user_id="u",
                external_user_id="wm",
                at=AT,
                FailReason="customer_refused",
            ),
            "wecom.transfer_failed",
            {"change_type": "transfer_fail", "fail_reason": "customer_refused"},
        ),
    ],
)
def test_normalize(xml, kind, properties):
    platform = "wecom" if "change_external_contact" in xml else "oa"
    event = normalize(platform, xml)
    assert event.kind == kind
    assert event.properties == properties
    assert event.occurred_at.timestamp() == AT


@pytest.mark.parametrize(
    "xml",
    [
        simulate.oa_text("o", "x", 9, at=AT).replace("<![CDATA[x]]>", "<b>x</b>"),
        simulate.oa_event("o", "CLICK", at=AT, EventKey="k").replace("<![CDATA[k]]>", "<k/>"),
        simulate.oa_event("o", "VIEW", at=AT).replace("<ToUserName>", '<ToUserName id="1">'),
        simulate.oa_event("", "subscribe", at=AT),
        simulate.oa_event("o", "subscribe", at=AT).replace(f"<CreateTime>{AT}", "<CreateTime>x"),
        simulate.oa_event("o", "subscribe", at=AT).replace(f"<CreateTime>{AT}", "<CreateTime>"),
        simulate.oa_event("o", "subscribe", at=AT).replace(str(AT), "9" * 12),
        simulate.oa_text("o", "hi", 9, at=AT).replace("<MsgId>9", "<MsgId>nine"),
        simulate.oa_event("o", "LOCATION", at=AT, Latitude="north", Longitude=1, Precision=1),
        "<xml><MsgType>text</MsgType>",
        "<xml/>",
        *(
            simulate.oa_event("o", "scancode_push", at=AT).replace("</xml>", f"{inside}</xml>")
            for inside in (
                "<ScanCodeInfo><ScanResult><c>y</c></ScanResult></ScanCodeInfo>",
                '<ScanCodeInfo a="1"><ScanResult>y</ScanResult></ScanCodeInfo>',
                "<ScanCodeInfo>x<ScanResult>y</ScanResult></ScanCodeInfo>",
                "<SendPicsInfo><PicList><item><PicMd5Sum><b/></PicMd5Sum></item></PicList>"
                "</SendPicsInfo>",
                "<SendPicsInfo><PicList><item>a</item><item><x><y/></x></item></PicList>"
                "</SendPicsInfo>",
            )
        ),
    ],
)
def test_what_cannot_be_normalized_says_so(xml):
    with pytest.raises(Unnormalizable):
        normalize("oa", xml)


def test_a_menu_scan_keeps_its_nested_result():
    xml = simulate.oa_event("o", "scancode_waitmsg", at=AT, EventKey="badge").replace(
        "</xml>",
        "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>B-42</ScanResult></ScanCodeInfo></xml>",
    )
    event = normalize("oa", xml)
    assert (event.kind, event.properties) == (
        "wechat.menu_scan",
        {"key": "badge", "result": "B-42"},
    )


def test_normalizing_parsed_fields_reads_them_as_the_xml_and_leaves_them_as_they_were():
    """The callback parses once and keeps using its fields (dedupe key, a QR welcome)."""
    xml = simulate.oa_event("o", "subscribe", at=AT, EventKey="qrscene_expo", Ticket="T")
    fields = parse_xml(xml)
    event = normalize_fields("oa", fields)
    assert event == normalize("oa", xml)
    assert (event.kind, event.properties) == ("wechat.follow", {"scene": "expo", "ticket": "T"})
    assert fields == parse_xml(xml)
