"""The QR codes pages against the sandbox: the list per account with totals and status,
the form and its field errors, WeChat's refusals, the detail page with image, downloads
and chart, edits that the callback's welcome sees at once, archive and renew."""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from wechatpy.crypto import PrpCrypto

from models import AuditLog, QrCode, utcnow
from tests.app.admin.helpers import (
    field_errors,
    in_english,
    post_form,
    post_with_token,
)
from tests.factories import make_qr_code, tag_ids, touches
from tests.helpers import OA_CREDS, all_of, audit_actions, post_oa, session_of
from tests.oa_platform import connect_oa, sandbox_codes
from wechat import simulate
from wechat.callbacks import aes_key_bytes, parse_xml
from wechat.sandbox.core import Fault

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    return connect_oa(app, platform)


def code_form(**changes):
    return {
        "name": "2026 展会",
        "validity": "temporary",
        "expire_days": "7",
        "scene_kind": "text",
        "scene": "expo2026",
        "welcome_reply": "欢迎来到展台！",
        **changes,
    }


def the_code(app) -> QrCode:
    (code,) = all_of(app, QrCode)
    return code


def subscribe_reply(client, channel_id, event_key: str) -> str | None:
    """A subscribe callback through a code, and the text the callback answers with."""
    xml = simulate.oa_event("o_new", "subscribe", EventKey=event_key, Ticket="t")
    answer = post_oa(client, channel_id, xml).data
    if answer == b"success":
        return None
    plain = PrpCrypto(aes_key_bytes(OA_CREDS.aes_key)).decrypt(
        parse_xml(answer)["Encrypt"], OA_CREDS.app_id
    )
    return parse_xml(plain)["Content"]


# --- creating ------------------------------------------------------------------------


def test_a_marketer_creates_a_code_and_sees_its_page(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    (source, interest) = tag_ids(app, "source:展会", "interest:AI")
    form = client.get(f"/admin/qr-codes/new/{channel_id}").text
    assert 'placeholder="1"' in form and "展会" in form

    response = post_form(
        client,
        f"/admin/qr-codes/new/{channel_id}",
        code_form(tag_ids=[str(source), str(interest)]),
    )

    code = the_code(app)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/qr-codes/{code.id}")
    remote = sandbox_codes(platform)[code.ticket]
    assert (remote.action_name, remote.scene_str) == ("QR_STR_SCENE", "expo2026")
    assert code.tag_ids == [source, interest] and code.welcome_reply == "欢迎来到展台！"
    assert code.expires_at - utcnow() > timedelta(days=6, hours=23)
    assert audit_actions(app) == ["qr_code.create"]

    page = client.get(f"/admin/qr-codes/{code.id}").text
    assert "QR code 2026 展会 created." in page
    assert f'src="/admin/qr-codes/{code.id}/qr.svg"' in page
    assert f"showqrcode?ticket={code.ticket}" in page
    assert f"/admin/qr-codes/{code.id}/qr.png?download=1" in page
    assert code.url in page and "欢迎来到展台！" in page and ">Active<" in page
    svg = client.get(f"/admin/qr-codes/{code.id}/qr.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    png = client.get(f"/admin/qr-codes/{code.id}/qr.png?download=1")
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    assert png.headers["Content-Disposition"].startswith("attachment;")
    assert "expo2026.png" in png.headers["Content-Disposition"]


def test_an_empty_number_scene_takes_the_next_free_one(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    make_qr_code(app, channel_id, scene=1)
    post_form(
        client,
        f"/admin/qr-codes/new/{channel_id}",
        code_form(validity="permanent", scene_kind="number", scene="", expire_days="30"),
    )
    code = all_of(app, QrCode)[-1]
    assert (code.scene, code.scene_is_int, code.permanent, code.expires_at) == (
        "2",
        True,
        True,
        None,
    )
    assert sandbox_codes(platform)[code.ticket].action_name == "QR_LIMIT_SCENE"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": " "}, "name", "Required."),
        ({"scene": "x" * 65}, "scene", "A text scene has 1 to 64 characters."),
        ({"scene": ""}, "scene", "A text scene has 1 to 64 characters."),
        ({"scene_kind": "number", "scene": "abc"}, "scene", "A number scene is a whole number."),
        (
            {"validity": "permanent", "scene_kind": "number", "scene": "100001"},
            "scene",
            "A permanent code's number is 1 to 100000.",
        ),
        (
            {"expire_days": "31"},
            "expire_days",
            "A temporary code is valid from 60 seconds to 30 days.",
        ),
        ({"expire_days": ""}, "expire_days", "A temporary code needs its validity."),
        ({"welcome_reply": "欢" * 601}, "welcome_reply", "At most 600 characters."),
        ({"tag_ids": ["999999"]}, "tag_ids", "999999"),
        ({"validity": "forever"}, "validity", "Not a valid choice."),
    ],
)
def test_bad_input_shows_on_its_field_and_reaches_no_api(
    app, platform, signed_in, channel_id, changes, field, message
):
    client = in_english(signed_in("marketer"))
    response = post_form(client, f"/admin/qr-codes/new/{channel_id}", code_form(**changes))
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response.text, field))
    if "name" not in changes:
        assert 'value="2026 展会"' in response.text  # what was typed stays
    assert sandbox_codes(platform) == {} and all_of(app, QrCode) == []


def test_a_scene_in_use_is_refused_on_its_field(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    make_qr_code(app, channel_id, scene="expo2026")
    response = post_form(client, f"/admin/qr-codes/new/{channel_id}", code_form())
    assert field_errors(response.text, "scene") == [
        "Another code of this channel uses this scene (expired and archived codes keep theirs)."
    ]
    assert len(all_of(app, QrCode)) == 1


def test_a_wechat_refusal_shows_on_the_form(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    platform.state.add_fault(Fault("/oa/cgi-bin/qrcode/create", errcode=48001))
    response = post_form(client, f"/admin/qr-codes/new/{channel_id}", code_form())
    assert response.status_code == 200
    assert (
        "WeChat refused the code (48001): Only a verified service account may create "
        "parametric QR codes." in response.text
    )
    assert 'value="expo2026"' in response.text
    assert all_of(app, QrCode) == [] and audit_actions(app) == []


def test_viewers_read_but_do_not_manage(app, platform, signed_in, channel_id):
    code = make_qr_code(app, channel_id, scene="expo2026")
    client = in_english(signed_in("viewer"))
    listing = client.get("/admin/qr-codes").text
    assert "2026 展会" in listing and "New QR code" not in listing
    page = client.get(f"/admin/qr-codes/{code.id}").text
    assert "Archive" not in page and "Edit" not in page
    assert client.get(f"/admin/qr-codes/new/{channel_id}").status_code == 403
    assert post_with_token(client, f"/admin/qr-codes/{code.id}/archive").status_code == 403
    assert client.get(f"/admin/qr-codes/{code.id}/edit").status_code == 403


def test_another_workspace_cannot_see_a_code(app, platform, signed_in, channel_id):
    code = make_qr_code(app, channel_id, scene="expo2026")
    client = signed_in("marketer", workspace="other")
    assert client.get(f"/admin/qr-codes/{code.id}").status_code == 404
    assert client.get(f"/admin/qr-codes/{code.id}/qr.svg").status_code == 404
    assert client.get(f"/admin/qr-codes/new/{channel_id}").status_code == 404
    assert "2026 展会" not in client.get("/admin/qr-codes").text


# --- the list ------------------------------------------------------------------------


def test_the_list_shows_totals_and_status_per_account(app, platform, signed_in, channel_id):
    expo = make_qr_code(app, channel_id, scene="expo2026", tag_ids=tag_ids(app, "source:展会"))
    old = make_qr_code(app, channel_id, name="旧海报", permanent=False, scene=5, expire_seconds=60)
    gone = make_qr_code(app, channel_id, name="已归档", scene="gone")
    with session_of(app) as session:
        session.get(QrCode, old.id).expires_at = utcnow() - timedelta(minutes=1)
        session.get(QrCode, gone.id).archived = True
        session.commit()
    now = utcnow()
    touches(
        app,
        channel_id,
        [
            ("wechat.follow", "expo2026", "li", now - timedelta(days=20)),
            ("wechat.scan", "expo2026", "li", now - timedelta(hours=1)),
            ("wechat.follow", "expo2026", "wang", now - timedelta(hours=2)),
            ("wechat.scan", "gone", "wang", now - timedelta(hours=2)),
        ],
    )
    client = in_english(signed_in("viewer"))
    page = client.get("/admin/qr-codes").text

    row = re.search(rf'<tr id="qr-{expo.id}".*?</tr>', page, re.S).group(0)
    assert ">Active<" in row and "expo2026" in row and 'class="chip tag-source"' in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["1", "2", "2", "2"]
    old_row = re.search(rf'<tr id="qr-{old.id}".*?</tr>', page, re.S).group(0)
    assert ">Expired<" in old_row
    assert f'id="qr-{gone.id}"' not in page and "Show archived codes (1)" in page

    archived = client.get("/admin/qr-codes?archived=1").text
    gone_row = re.search(rf'<tr id="qr-{gone.id}".*?</tr>', archived, re.S).group(0)
    assert ">Archived<" in gone_row
    assert re.findall(r'<td class="num">(\d+)</td>', gone_row) == ["1", "0", "1", "1"]


def test_the_detail_chart_has_scans_and_follows_per_day(app, platform, signed_in, channel_id):
    code = make_qr_code(app, channel_id, scene="expo2026")
    now = utcnow()
    touches(
        app,
        channel_id,
        [
            ("wechat.follow", "expo2026", "li", now - timedelta(minutes=5)),
            ("wechat.scan", "expo2026", "wang", now - timedelta(minutes=4)),
            ("wechat.scan", "expo2026", "wang", now - timedelta(days=10)),
        ],
    )
    client = in_english(signed_in("viewer"))
    for days in (7, 30):
        page = client.get(f"/admin/qr-codes/{code.id}?days={days}").text
        chart = json.loads(re.search(r'id="scans-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        assert len(chart["days"]) == days
        assert (chart["follows"][-1], chart["scans"][-1], chart["people"][-1]) == (1, 1, 2)
        assert sum(chart["scans"]) == (1 if days == 7 else 2)
        assert chart["names"] == {"scans": "Scans", "follows": "Follows", "people": "People"}
    assert "echarts.min.js" in page and "charts.js" in page
    assert 'data-chart="qr-scans" data-source="scans-data"' in page


# --- changing ------------------------------------------------------------------------


def test_an_edit_reaches_the_callbacks_welcome_at_once(
    app, client, platform, signed_in, channel_id
):
    code = make_qr_code(app, channel_id, scene="expo2026", welcome_reply="旧的欢迎语")
    assert subscribe_reply(client, channel_id, "qrscene_expo2026") == "旧的欢迎语"  # cached now
    admin = in_english(signed_in("marketer"))
    form = admin.get(f"/admin/qr-codes/{code.id}/edit").text
    assert "expo2026" in form and 'name="scene"' not in form  # fixed by WeChat

    response = post_form(
        admin,
        f"/admin/qr-codes/{code.id}/edit",
        {
            "name": "展台 A",
            "welcome_reply": "新的欢迎语",
            "tag_ids": [str(tag_ids(app, "source:展台")[0])],
        },
    )

    assert response.status_code == 302
    assert subscribe_reply(client, channel_id, "qrscene_expo2026") == "新的欢迎语"
    assert subscribe_reply(client, channel_id, "qrscene_elsewhere") is None
    edited = the_code(app)
    assert (edited.name, edited.ticket) == ("展台 A", code.ticket)
    (entry,) = [e for e in all_of(app, AuditLog) if e.action == "qr_code.update"]
    assert entry.changes["welcome_reply"] == ["旧的欢迎语", "新的欢迎语"]

    refused = post_form(
        admin, f"/admin/qr-codes/{code.id}/edit", {"name": "", "welcome_reply": "x"}
    )
    assert field_errors(refused.text, "name") == ["Required."]


def test_archive_restore_and_renew(app, platform, signed_in, channel_id):
    code = make_qr_code(app, channel_id, permanent=False, scene=9, expire_seconds=3600)
    client = in_english(signed_in("marketer"))

    archived = post_with_token(client, f"/admin/qr-codes/{code.id}/archive")
    assert archived.headers["Location"].endswith("/admin/qr-codes")
    assert the_code(app).archived
    page = client.get(f"/admin/qr-codes/{code.id}").text
    assert ">Archived<" in page and "Restore" in page
    post_with_token(client, f"/admin/qr-codes/{code.id}/restore")
    assert not the_code(app).archived

    post_with_token(client, f"/admin/qr-codes/{code.id}/renew", {"expire_days": "30"})
    renewed = the_code(app)
    assert renewed.ticket != code.ticket and renewed.expires_at > utcnow() + timedelta(days=29)
    page = client.get(f"/admin/qr-codes/{code.id}").text
    assert "its image changed" in page
    post_with_token(client, f"/admin/qr-codes/{code.id}/renew", {"expire_days": "31"})
    assert (
        "A temporary code is valid from 60 seconds to 30 days."
        in client.get(f"/admin/qr-codes/{code.id}").text
    )
    assert the_code(app).ticket == renewed.ticket
    assert audit_actions(app) == ["qr_code.archive", "qr_code.restore", "qr_code.renew"]
    with session_of(app) as session:
        assert session.scalar(select(QrCode.scene)) == "9"
