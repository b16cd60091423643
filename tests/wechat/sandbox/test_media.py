"""The sandbox's media: OA permanent materials (types judged by their bytes, size limits,
get, delete, counts), article pictures, drafts and their errcodes, mass sends of mpnews
naming only a draft; WeCom temporary media forgotten after 3 days (a group send naming it
answers 40007) and lasting image URLs."""

import io

import pytest

from tests.factories import add_customer, png_bytes
from tests.wechat.sandbox.helpers import CONTACT_SECRET, CORP_ID
from wechat.sandbox import media, wecom
from wechat.sandbox.media import TEMPORARY_SECONDS

OA = "/oa/cgi-bin"
WECOM = "/wecom/cgi-bin"


def upload(api, path, token, data: bytes, filename="a.png", **params):
    query = {"access_token": token, **params}
    return api.post(path, query_string=query, data={"media": (io.BytesIO(data), filename)}).json


def post(api, path, token, payload):
    return api.post(path, query_string={"access_token": token}, json=payload).json


def jpeg_bytes(size=(16, 16)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("media_type", "data", "errcode"),
    [
        ("image", b"%PDF-1.4 named a.png", 40005),
        ("image", b"\x89PNG\r\n\x1a\n" + bytes(4096), 40009),
        ("thumb", png_bytes(), 40005),  # thumbnails are JPEG only
        ("thumb", b"\xff\xd8\xff" + bytes(64 * 1024), 40009),
        ("news", png_bytes(), 40004),
        ("image", b"GIF", 40006),
    ],
)
def test_add_material_refuses_by_type_and_size(
    api, oa_token, monkeypatch, media_type, data, errcode
):
    monkeypatch.setattr(media, "OA_IMAGE_MAX", 2048)  # 10 MB in the module: a smaller body
    answer = upload(api, f"{OA}/material/add_material", oa_token, data, type=media_type)
    assert answer["errcode"] == errcode


def test_a_permanent_image_is_kept_counted_and_deleted(api, oa_token):
    image = upload(api, f"{OA}/material/add_material", oa_token, png_bytes(), type="image")
    thumb = upload(api, f"{OA}/material/add_material", oa_token, jpeg_bytes(), type="thumb")
    assert image["url"].startswith("https://mmbiz.qpic.cn/") and "url" not in thumb
    got = api.post(
        f"{OA}/material/get_material",
        query_string={"access_token": oa_token},
        json={"media_id": image["media_id"]},
    )
    assert got.data == png_bytes()
    count = api.get(f"{OA}/material/get_materialcount", query_string={"access_token": oa_token})
    assert count.json["image_count"] == 2
    assert post(api, f"{OA}/material/del_material", oa_token, image)["errcode"] == 0
    assert post(api, f"{OA}/material/del_material", oa_token, image)["errcode"] == 40007


def test_a_draft_needs_a_permanent_cover_and_sane_fields(api, oa_token):
    cover = upload(api, f"{OA}/material/add_material", oa_token, png_bytes(), type="image")
    temporary = upload(api, f"{OA}/media/upload", oa_token, png_bytes(), type="image")
    article = {"title": "标题", "content": "<p>正文</p>", "thumb_media_id": cover["media_id"]}
    for change, errcode in (
        ({"thumb_media_id": temporary["media_id"]}, 40007),
        ({"title": "长" * 65}, 45003),
        ({"digest": "长" * 121}, 45004),
        ({"author": "长" * 17}, 45110),
        ({"content": ""}, 44004),
    ):
        answer = post(api, f"{OA}/draft/add", oa_token, {"articles": [{**article, **change}]})
        assert answer["errcode"] == errcode, change
    draft = post(api, f"{OA}/draft/add", oa_token, {"articles": [article]})
    got = post(api, f"{OA}/draft/get", oa_token, {"media_id": draft["media_id"]})
    assert got["news_item"][0]["title"] == "标题"
    assert post(api, f"{OA}/draft/delete", oa_token, draft)["errcode"] == 0
    assert post(api, f"{OA}/draft/get", oa_token, draft)["errcode"] == 40007


def test_an_article_picture_is_jpeg_or_png_up_to_1_mb(api, oa_token):
    assert "url" in upload(api, f"{OA}/media/uploadimg", oa_token, png_bytes())
    gif = b"GIF89a" + bytes(100)
    assert upload(api, f"{OA}/media/uploadimg", oa_token, gif)["errcode"] == 40005


def test_a_mass_send_of_mpnews_names_a_draft_of_the_oa(api, oa_token):
    message = {"filter": {"is_to_all": True}, "msgtype": "mpnews", "mpnews": {"media_id": "x"}}
    assert post(api, f"{OA}/message/mass/sendall", oa_token, message)["errcode"] == 40007


@pytest.fixture
def customer(sandbox_state):
    tenant = sandbox_state.tenant(CORP_ID)
    wecom.add_staff(sandbox_state, tenant, "zhangsan", "张三")
    add_customer(sandbox_state, tenant, "wm_a", userid="zhangsan")


def group_send(api, token, attachments):
    payload = {
        "chat_type": "single",
        "sender": "zhangsan",
        "external_userid": ["wm_a"],
        "text": {"content": "资料"},
        "attachments": attachments,
    }
    return post(api, f"{WECOM}/externalcontact/add_msg_template", token, payload)


def test_wecom_temporary_media_lives_3_days(api, sandbox_state, contact_token, customer):
    image = upload(api, f"{WECOM}/media/upload", contact_token, png_bytes(), type="image")
    attachment = [{"msgtype": "image", "image": {"media_id": image["media_id"]}}]
    assert group_send(api, contact_token, attachment)["errcode"] == 0
    sandbox_state.advance(TEMPORARY_SECONDS)
    token = api.get(
        f"{WECOM}/gettoken", query_string={"corpid": CORP_ID, "corpsecret": CONTACT_SECRET}
    ).json["access_token"]  # the old one expired meanwhile
    assert group_send(api, token, attachment)["errcode"] == 40007


def test_wecom_attachments_name_media_of_the_right_type(api, contact_token, customer):
    brochure = upload(
        api, f"{WECOM}/media/upload", contact_token, b"%PDF-1.4", "a.pdf", type="file"
    )
    as_image = [{"msgtype": "image", "image": {"media_id": brochure["media_id"]}}]
    assert group_send(api, contact_token, as_image)["errcode"] == 40007
    mini = {"title": "小程序", "pic_media_id": brochure["media_id"], "appid": "wx1", "page": "p"}
    assert (
        group_send(api, contact_token, [{"msgtype": "miniprogram", "miniprogram": mini}])["errcode"]
        == 40007
    )
    link = [{"msgtype": "link", "link": {"title": "报名", "url": "https://example.com"}}]
    assert group_send(api, contact_token, link)["errcode"] == 0
    gif = upload(api, f"{WECOM}/media/upload", contact_token, b"GIF89a" + bytes(64), type="image")
    assert gif["errcode"] == 40005
    url = upload(api, f"{WECOM}/media/uploadimg", contact_token, png_bytes())
    assert url["url"].startswith("https://wework.qpic.cn/")
