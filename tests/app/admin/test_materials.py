"""The library pages (素材库): uploads with their field errors (wrong type, too big), the
list by kind with thumbnails, an article's editor and page, "upload now" through the job to
the sandbox, each channel's state on the item's page, and the library in the push and
group-send forms."""

import io

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from models import Material, MaterialUpload, UploadPurpose
from tests.app.admin.helpers import csrf_token, field_errors, in_english
from tests.factories import png_bytes
from tests.helpers import harpoon_of, run_jobs

PAGE = "/admin/materials"
pytestmark = pytest.mark.sandbox


def upload(client, data: bytes, filename: str, kind="image", name=""):
    token = csrf_token(client.get(PAGE).text)
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart(
        {
            "csrf_token": token,
            "kind": kind,
            "name": name,
            "file": FileStorage(io.BytesIO(data), filename),
        }
    )
    return client.post(
        f"{PAGE}/upload", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def materials_of(app) -> list[Material]:
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(Material).order_by(Material.id)))


def test_an_upload_names_what_is_wrong_with_the_file(app, signed_in):
    client = in_english(signed_in("marketer"))
    wrong = upload(client, b"%PDF-1.4 not an image", "看起来像图片.png")
    assert wrong.status_code == 400
    assert field_errors(wrong.text, "file") == ["Not a PNG, JPEG, GIF or BMP image."]
    big = upload(client, b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024), "big.png")
    assert field_errors(big.text, "file") == ["An image may be at most 10 MB."]
    assert materials_of(app) == []


def test_an_uploaded_image_is_listed_with_its_thumbnail(app, signed_in):
    client = signed_in("marketer")
    added = upload(client, png_bytes(120, 60), "cover.png", name="封面")
    assert added.status_code == 302
    [image] = materials_of(app)
    assert (image.name, image.width, image.height, image.mime) == ("封面", 120, 60, "image/png")

    listed = client.get(PAGE).text
    assert "素材库" in listed
    assert f'src="/admin/materials/{image.id}/file"' in listed
    served = client.get(f"/admin/materials/{image.id}/file")
    assert (served.status_code, served.mimetype, served.data) == (
        200,
        "image/png",
        png_bytes(120, 60),
    )
    only_files = client.get(f"{PAGE}?kind=file").text
    assert f"material-{image.id}" not in only_files


def test_an_article_is_written_uploaded_now_and_shows_its_state(app, platform, oa, signed_in):
    client = signed_in("marketer")
    upload(client, png_bytes(), "cover.png", name="封面")
    [cover] = materials_of(app)
    new = f"{PAGE}/new/article"
    token = csrf_token(client.get(new).text)
    article = {
        "csrf_token": token,
        "name": "ABM 实战",
        "title": "ABM 实战：找准采购委员会",
        "author": "市场部",
        "digest": "三步找准采购委员会",
        "body": "第一段\n\n第二段",
        "url": "https://example.com/abm",
        "cover": str(cover.id),
    }
    missing = client.post(new, data={**article, "title": "", "cover": ""})
    assert missing.status_code == 400
    assert field_errors(missing.text, "title") == ["必填。"]
    too_long = client.post(new, data={**article, "author": "作者" * 9})
    assert field_errors(too_long.text, "author") == ["最多 16 个字符。"]
    saved = client.post(new, data=article)
    assert saved.status_code == 302
    article_id = materials_of(app)[-1].id

    token = csrf_token(client.get(f"{PAGE}/{article_id}").text)
    client.post(f"{PAGE}/{article_id}/upload-now", data={"csrf_token": token})
    run_jobs(app)

    with harpoon_of(app).db.session() as session:
        purposes = set(session.scalars(select(MaterialUpload.purpose)))
    assert purposes == {UploadPurpose.OA_IMAGE, UploadPurpose.OA_DRAFT}
    page = client.get(f"{PAGE}/{article_id}").text
    assert "草稿（图文 mpnews）" in page
    assert "已同步" in page
    assert "<p>第一段</p><p>第二段</p>" in page


def test_the_push_and_group_send_forms_offer_the_library(app, oa, signed_in):
    client = signed_in("marketer")
    upload(client, png_bytes(), "cover.png", name="封面图")
    form = client.get("/admin/pushes/new").text
    assert "图片：封面图" in form
