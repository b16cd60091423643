"""The admin's 海报 pages: uploading a design (refused by its bytes, with the field's
message), placing the code with the server's preview, each salesperson's poster and the
zip of all of them, who may edit, and another workspace's content refused."""

import io
import zipfile

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from models import Poster, PosterRender, TrackedLink
from outreach import posters
from tests.app.admin.helpers import csrf_token, field_errors, in_english, post_with_token
from tests.factories import (
    make_content,
    make_form,
    make_poster,
    make_staff,
    poster_background,
)
from tests.helpers import all_rows, audit_actions, session_of


def _post_new(client, data: dict, background: bytes | None, filename="poster.png"):
    token = csrf_token(client.get("/admin/posters/new").text)
    files = {"background": FileStorage(io.BytesIO(background), filename)} if background else {}
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart({**data, **files, "csrf_token": token})
    return client.post(
        "/admin/posters/new", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def _inputs(content_id, **changes) -> dict:
    return {**posters.poster_form(), "name": "年度大会", "content_id": str(content_id), **changes}


@pytest.fixture
def marketer(signed_in):
    return in_english(signed_in("marketer"))


@pytest.mark.parametrize(
    ("background", "message"),
    [
        (b"name,company\n1,2\n", "Not a PNG or JPEG image."),
        (b"\x89PNG\r\n\x1a\n" + b"bogus" * 50, "The image cannot be read"),
        (b"\xff\xd8\xff" + b"\0" * (posters.MAX_BACKGROUND_BYTES + 10), "larger than 5 MB"),
        (None, "Choose a PNG or JPEG image."),
    ],
    ids=["not-an-image", "bogus-magic", "too-big", "none"],
)
def test_an_upload_that_is_no_usable_image_is_a_field_error(app, marketer, background, message):
    content_id = make_content(app)
    page = _post_new(marketer, _inputs(content_id), background)
    assert page.status_code == 400
    [error] = field_errors(page.text, "background")
    assert message in error
    assert all_rows(app, Poster) == []


def test_a_body_far_past_the_limit_is_refused_unread(app, marketer):
    page = _post_new(marketer, _inputs(make_content(app)), b"\x89PNG" + b"\0" * 7_000_000)
    assert page.status_code == 413
    assert all_rows(app, Poster) == []


def test_a_marketer_uploads_a_design_then_places_the_code_with_the_preview(app, marketer):
    content_id = make_content(app)
    created = _post_new(marketer, _inputs(content_id), poster_background(750, 1334))
    assert created.status_code == 302
    [poster] = all_rows(app, Poster)
    assert created.location == f"/admin/posters/{poster.id}/edit"
    # Placed where designs leave room: centred near the bottom, the text above it.
    assert (poster.qr_x, poster.qr_size, poster.width, poster.height) == (255, 240, 750, 1334)
    assert poster.qr_y + poster.qr_size <= 1334 and poster.text_y < poster.qr_y
    [link] = all_rows(app, TrackedLink)
    assert (link.id, link.content_id, link.medium) == (poster.link_id, content_id, "qr")

    editor = marketer.get(created.location).text
    assert f'src="/admin/posters/{poster.id}/preview.png?' in editor
    preview = marketer.get(f"/admin/posters/{poster.id}/preview.png?qr_x=10&qr_y=20&qr_size=300")
    assert preview.status_code == 200 and preview.mimetype == "image/png"
    image = Image.open(io.BytesIO(preview.data)).convert("RGB")
    assert image.getpixel((12, 22)) == (255, 255, 255)  # the code's box moved as typed
    assert image.getpixel((poster.qr_x + 2, poster.qr_y + 2)) != (255, 255, 255)
    outside = marketer.get(f"/admin/posters/{poster.id}/preview.png?qr_x=999999&qr_size=9")
    assert outside.status_code == 200  # a layout that does not check out shows the saved one

    form_id = make_form(app)
    token = csrf_token(editor)
    moved = marketer.post(
        f"/admin/posters/{poster.id}/edit",
        data={
            **posters.poster_form(poster),
            "target": "form",
            "form_id": str(form_id),
            "qr_x": "500",
            "csrf_token": token,
        },
        content_type="multipart/form-data",
    )
    assert moved.status_code == 302
    with session_of(app) as session:
        saved = session.get(Poster, poster.id)
        assert (saved.qr_x, saved.form_id, saved.content_id, saved.version) == (
            500,
            form_id,
            None,
            2,
        )
        assert session.get(TrackedLink, saved.link_id).form_id == form_id

    refused = marketer.post(
        f"/admin/posters/{poster.id}/edit",
        data={**posters.poster_form(poster), "qr_x": "600", "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400
    assert field_errors(refused.text, "qr_size") == ["The QR code's box must lie inside the image."]


def test_another_workspaces_content_is_refused_on_the_field(app, marketer):
    theirs = make_content(app, workspace="globex")
    page = _post_new(marketer, _inputs(theirs), poster_background())
    assert page.status_code == 400
    assert field_errors(page.text, "content_id") == ["Not content of this workspace."]
    assert all_rows(app, Poster) == []


def test_every_salesperson_has_their_poster_and_all_of_them_come_in_a_zip(app, marketer):
    poster_id = make_poster(app)
    zhang = make_staff(app, "张三", "zhangsan")
    make_staff(app, "李四", "lisi")
    make_staff(app, "离职的人", "gone", active=False)
    page = marketer.get(f"/admin/posters/{poster_id}").text
    assert "张三" in page and "李四" in page and "离职的人" not in page

    one = marketer.get(f"/admin/posters/{poster_id}/staff/{zhang}.png?download=1")
    assert one.status_code == 200 and one.mimetype == "image/png"
    assert "attachment" in one.headers["Content-Disposition"]
    assert Image.open(io.BytesIO(one.data)).size == (750, 1334)

    archive = marketer.get(f"/admin/posters/{poster_id}/staff.zip")
    assert archive.mimetype == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(archive.data)).namelist())
    assert names == ["张三-zhangsan.png", "李四-lisi.png"]
    assert sorted(r.person for r in all_rows(app, PosterRender)) == [
        f"staff:{zhang}",
        f"staff:{zhang + 1}",
    ]


def test_another_workspaces_poster_or_staff_is_not_found(app, marketer):
    theirs = make_poster(app, workspace="globex")
    ours = make_poster(app)
    zhang = make_staff(app, "张三", "zhangsan")
    assert marketer.get(f"/admin/posters/{theirs}").status_code == 404
    assert marketer.get(f"/admin/posters/{theirs}/preview.png").status_code == 404
    assert marketer.get(f"/admin/posters/{theirs}/staff/{zhang}.png").status_code == 404
    assert marketer.get(f"/admin/posters/{ours}/staff/{zhang + 999}.png").status_code == 404


def test_sales_see_posters_but_do_not_edit_them(app, signed_in):
    poster_id = make_poster(app)
    sales = signed_in("sales")
    assert sales.get("/admin/posters").status_code == 200
    assert sales.get("/admin/posters/new").status_code == 403
    assert post_with_token(sales, f"/admin/posters/{poster_id}/archive").status_code == 403


def test_an_archived_poster_leaves_the_list(app, marketer):
    poster_id = make_poster(app, name="春季活动")
    assert "春季活动" in marketer.get("/admin/posters").text
    assert post_with_token(marketer, f"/admin/posters/{poster_id}/archive").status_code == 302
    assert f'id="poster-{poster_id}"' not in marketer.get("/admin/posters").text
    assert f'id="poster-{poster_id}"' in marketer.get("/admin/posters?archived=1").text
    assert "poster.archive" in audit_actions(app)


def test_a_contact_me_poster_whose_code_picture_cannot_be_had_says_so(app, marketer):
    from models import ContactWay, Staff

    poster_id = make_poster(app, target="contact_way")
    zhang = make_staff(app, "张三", "zhangsan")
    with session_of(app) as session:
        staff = session.get(Staff, zhang)
        session.add(
            ContactWay(
                workspace_id=staff.workspace_id,
                channel_id=staff.channel_id,
                name="张三的码",
                state="zs",
                staff_userids=["zhangsan"],
                qr_code="http://169.254.169.254/latest/meta-data",  # no WeCom host: not fetched
            )
        )
        session.commit()
    one = marketer.get(f"/admin/posters/{poster_id}/staff/{zhang}.png")
    assert one.status_code == 503 and one.mimetype == "image/png"
    box = Image.open(io.BytesIO(one.data)).convert("RGB").crop((255, 900, 495, 1140))
    assert any(
        pixel[0] > 150 and pixel[1] < 100 for pixel in box.get_flattened_data()
    )  # red message
    archive = marketer.get(f"/admin/posters/{poster_id}/staff.zip")
    assert zipfile.ZipFile(io.BytesIO(archive.data)).namelist() == []
    assert not all_rows(app, PosterRender)
