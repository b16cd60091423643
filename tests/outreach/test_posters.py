"""Posters: the uploaded design checked by its bytes, the QR code composed where the
layout says (checked module by module against segno's matrix of the URL), the Chinese
text line drawn with the CJK font, each person's URL, and the cache of renders."""

import io
import logging

import pytest
from marshmallow import ValidationError
from PIL import Image

from core.tokens import Signer
from models import ContactWay, Poster, PosterRender, Staff, TrackedLink
from outreach import posters
from tests.factories import make_poster, make_staff, poster_background
from tests.helpers import all_rows, qr_modules_match, session_of

URL = "https://harpoon.example.com/t/AbCdEf23?s=eyJ3IjoxLCJzIjo3fQ.Z1abcd.signature-of-the-token"
LAYOUT = posters.Layout(255, 900, 240, "{name} 邀请您", 80, 820, 40, "#333333")
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
BACKGROUND = (250, 236, 214)


def test_the_qr_box_holds_the_urls_code_and_the_rest_is_the_design():
    png = posters.compose(poster_background(), URL, LAYOUT, "张三", CJK_FONT)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (750, 1334)
    assert qr_modules_match(png, URL, 255, 900, 240)
    assert not qr_modules_match(png, URL.replace("AbCdEf23", "Zz999999"), 255, 900, 240)
    assert not qr_modules_match(png, URL, 245, 900, 240)  # not where the layout does not say
    rgb = image.convert("RGB")
    assert rgb.getpixel((256, 901)) == (255, 255, 255)  # the white quiet zone
    assert rgb.getpixel((10, 10)) == BACKGROUND
    assert rgb.getpixel((749, 1333)) == BACKGROUND


def _text_region(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("L").crop((80, 820, 400, 880)).tobytes()


def test_the_text_line_draws_each_chinese_character_not_a_box():
    """Missing glyphs draw the same box for every character: 张三 and 李四 would match."""
    zhang = posters.compose(poster_background(), URL, LAYOUT, "张三", CJK_FONT)
    li = posters.compose(poster_background(), URL, LAYOUT, "李四", CJK_FONT)
    region = _text_region(zhang)
    dark = sum(1 for value in region if value < 128)
    assert dark > 500  # drawn, in the text colour
    assert region != _text_region(li)
    plain = posters.compose(
        poster_background(), URL, posters.Layout(255, 900, 240), "张三", CJK_FONT
    )
    assert all(value > 200 for value in _text_region(plain))  # no text line: nothing drawn


def test_a_missing_font_falls_back_to_pillows_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="outreach.posters")
    png = posters.compose(poster_background(), URL, LAYOUT, "Zhang", "/nonexistent/font.ttc")
    assert qr_modules_match(png, URL, 255, 900, 240)
    assert "/nonexistent/font.ttc not found" in caplog.text
    assert "HARPOON_POSTER_FONT" in caplog.text


def test_a_jpeg_design_is_accepted_and_composed_to_png():
    background = posters.read_background(poster_background(800, 1200, fmt="JPEG"))
    assert (background.mime, background.width, background.height) == ("image/jpeg", 800, 1200)
    png = posters.compose(background.data, URL, LAYOUT, "张三", CJK_FONT)
    assert png.startswith(b"\x89PNG") and qr_modules_match(png, URL, 255, 900, 240)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", posters.NO_FILE),
        (b"name,company\n", posters.NOT_AN_IMAGE),
        (b"GIF89a" + b"\0" * 100, posters.NOT_AN_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10, posters.UNREADABLE),
        (b"\xff\xd8\xff\xe0" + b"garbage" * 10, posters.UNREADABLE),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * posters.MAX_BACKGROUND_BYTES, posters.TOO_BIG),
        (poster_background(150, 150), posters.BAD_SIDES),
        (poster_background(4100, 300), posters.BAD_SIDES),
    ],
    ids=["empty", "csv", "gif", "png-magic-only", "jpeg-magic-only", "over-5mb", "tiny", "huge"],
)
def test_a_background_is_checked_by_its_bytes(data, message):
    with pytest.raises(ValidationError) as refused:
        posters.read_background(data)
    assert refused.value.messages == {"background": [message]}


def test_the_layout_must_fit_the_image():
    values = {**posters.poster_form(), "name": "x", "content_id": "3"}
    fits = {**values, "qr_x": "510", "qr_y": "1094", "qr_size": "240", "text_x": "0"}
    fits["text_y"] = "0"
    assert posters.load_poster(fits, 750, 1334)["qr_size"] == 240
    cases = {
        "qr_size": ({**fits, "qr_x": "511"}, posters.QR_OUTSIDE),
        "qr_y": ({**fits, "qr_y": "-1"}, posters.NOT_A_NUMBER),
        "text_color": ({**fits, "text_color": "red"}, posters.NOT_A_COLOR),
        "text_size": ({**fits, "text_size": "500"}, posters.TEXT_SIZE_RANGE),
        "content_id": ({**fits, "content_id": ""}, posters.NO_CONTENT),
        "target": ({**fits, "target": "elsewhere"}, posters.NOT_A_TARGET),
        "text_x": ({**fits, "text_x": "750"}, posters.TEXT_OUTSIDE),
    }
    for field, (inputs, message) in cases.items():
        with pytest.raises(ValidationError) as refused:
            posters.load_poster(inputs, 750, 1334)
        assert refused.value.messages == {field: [message]}, field
    small = {**fits, "qr_size": "60"}
    with pytest.raises(ValidationError) as refused:
        posters.load_poster(small, 750, 1334)
    assert refused.value.messages == {"qr_size": [posters.QR_TOO_SMALL]}


def test_a_poster_gets_its_own_qr_link_and_a_new_version_on_every_save(app):
    poster_id = make_poster(app)
    with session_of(app) as session:
        poster = session.get(Poster, poster_id)
        link = session.get(TrackedLink, poster.link_id)
        assert (link.content_id, link.medium, poster.version) == (poster.content_id, "qr", 1)
        checked = posters.load_poster(
            {**posters.poster_form(poster), "qr_size": "300"}, poster.width, poster.height
        )
        posters.save_poster(
            session, poster.workspace_id, checked, background=None, user_id=None, poster=poster
        )
        session.commit()
        assert (poster.version, poster.link_id, poster.qr_size) == (2, link.id, 300)


def test_each_person_is_composed_once_per_version(app, monkeypatch):
    poster_id = make_poster(app)
    staff_id = make_staff(app, "张三", "zhangsan")
    composed = []
    real = posters.compose

    def counting(*args):
        composed.append(args[1])
        return real(*args)

    monkeypatch.setattr(posters, "compose", counting)
    signer = Signer("test-secret-key")
    settings = {"signer": signer, "base_url": "https://h.example", "font_path": CJK_FONT}
    with session_of(app) as session:
        poster = session.get(Poster, poster_id)
        person = posters.staff_person(session.get(Staff, staff_id))
        first = posters.poster_png(session, poster, person, **settings)
        session.commit()
        assert posters.poster_png(session, poster, person, **settings) == first
        assert len(composed) == 1
        assert composed[0].startswith("https://h.example/t/") and "?s=" in composed[0]
        poster.version += 1
        posters.poster_png(session, poster, person, **settings)
        session.commit()
    assert len(composed) == 2
    [render] = all_rows(app, PosterRender)
    assert (render.person, render.version) == (f"staff:{staff_id}", 2)


def test_a_contact_way_poster_carries_the_salespersons_own_code(app):
    poster_id = make_poster(app, target="contact_way")
    zhang = make_staff(app, "张三", "zhangsan")
    li = make_staff(app, "李四", "lisi")
    with session_of(app) as session:
        staff = session.get(Staff, zhang)
        for name, userids, url in (
            ("团队码", ["zhangsan", "lisi"], "https://wework.qpic.cn/team.png"),
            ("张三的码", ["zhangsan"], "https://wework.qpic.cn/zhangsan.png"),
        ):
            session.add(
                ContactWay(
                    workspace_id=staff.workspace_id,
                    channel_id=staff.channel_id,
                    name=name,
                    state=name,
                    staff_userids=userids,
                    qr_code=url,
                )
            )
        session.commit()
        poster = session.get(Poster, poster_id)
        settings = {"signer": Signer("k"), "base_url": "https://h.example"}
        assert poster.link_id is None
        zhangsan = posters.staff_person(staff)
        assert posters.personal_way(session, poster, zhangsan).name == "张三的码"
        assert posters.personal_url(session, poster, zhangsan, **settings) is None  # no link
        lisi = posters.staff_person(session.get(Staff, li))
        assert posters.personal_way(session, poster, lisi) is None  # only a team code
        assert not posters.usable_by(session, poster, session.get(Staff, li))
        customer = posters.PosterPerson(posters.PersonKind.CONTACT, 1, "王芳")
        assert posters.personal_way(session, poster, customer) is None
