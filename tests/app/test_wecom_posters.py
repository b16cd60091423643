"""我的海报 in WeCom: a salesperson sees and saves only their own poster, and a reader who
scans its QR code (opens the URL it encodes) is attributed to them through the same share
path as their personal links."""

import time
from urllib.parse import urlsplit

import itsdangerous.timed
import pytest

from core.tokens import Signer
from models import Interaction, PageView, Poster, PosterRender, Staff
from outreach import posters
from tests.app.admin.helpers import sign_in
from tests.factories import make_poster, make_staff, make_user
from tests.helpers import all_rows, qr_modules_match, run_jobs, session_of
from tests.oa_platform import connect_oa, open_in_wechat
from tests.wecom_platform import connect_corp

pytestmark = pytest.mark.sandbox

SIGNER = Signer("test-secret-key")
BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def corp(app, platform):
    """acme's corp, an OA readers open links on, 张三 (a sales user) and 李四 on the corp."""
    oa = connect_oa(app, platform)
    channel_id = connect_corp(app, platform)
    zhang_user = make_user(app, "sales", email="zhangsan@acme.example")
    zhang = make_staff(app, "张三", "zhangsan", user_id=zhang_user)
    li = make_staff(app, "李四", "lisi", user_id=make_user(app, "sales", email="lisi@acme.example"))
    return {"channel": channel_id, "oa": oa, "zhang": zhang, "li": li}


@pytest.fixture
def frozen_tokens(monkeypatch):
    """Share tokens signed at one fixed second, so the test can sign the same URL."""
    now = time.time()
    monkeypatch.setattr(itsdangerous.timed, "time", type("T", (), {"time": lambda: now}))


def _their_url(app, poster_id: int, staff_id: int) -> str:
    with session_of(app) as session:
        person = posters.staff_person(session.get(Staff, staff_id))
        poster = session.get(Poster, poster_id)
        return posters.personal_url(session, poster, person, signer=SIGNER, base_url=BASE_URL)


def test_a_salesperson_sees_only_their_own_poster(app, corp, frozen_tokens):
    poster_id = make_poster(app, name="年度大会邀请")
    archived = make_poster(app, name="去年的活动")
    with session_of(app) as session:
        session.get(Poster, archived).archived_at = session.get(Poster, poster_id).created_at
        session.commit()
    client = app.test_client()
    assert client.get(f"/wecom/{corp['channel']}/posters").status_code == 302  # sign in first
    assert sign_in(client, "zhangsan@acme.example").status_code == 302

    page = client.get(f"/wecom/{corp['channel']}/posters")
    assert page.status_code == 200
    assert "我的海报" in page.text and "年度大会邀请" in page.text and "去年的活动" not in page.text
    image = client.get(f"/wecom/{corp['channel']}/posters/{poster_id}.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert client.get(f"/wecom/{corp['channel']}/posters/{archived}.png").status_code == 404

    mine, theirs = (_their_url(app, poster_id, corp[who]) for who in ("zhang", "li"))
    assert qr_modules_match(image.data, mine, 255, 900, 240)
    assert not qr_modules_match(image.data, theirs, 255, 900, 240)
    [render] = all_rows(app, PosterRender)
    assert render.person == f"staff:{corp['zhang']}"  # nobody else's was composed


def test_a_user_who_sells_through_no_member_has_no_posters(app, corp):
    make_poster(app)
    make_user(app, "marketer")
    client = app.test_client()
    sign_in(client, "marketer@acme.example")
    page = client.get(f"/wecom/{corp['channel']}/posters")
    assert page.status_code == 200 and "没有关联" in page.text
    [poster] = all_rows(app, Poster)
    assert client.get(f"/wecom/{corp['channel']}/posters/{poster.id}.png").status_code == 404


def test_a_contact_me_poster_is_offered_only_to_who_has_their_own_code(app, corp):
    from models import ContactWay

    make_poster(app, target="contact_way", name="加我企微")
    with session_of(app) as session:
        session.add(
            ContactWay(
                workspace_id=session.get(Staff, corp["zhang"]).workspace_id,
                channel_id=corp["channel"],
                name="张三的码",
                state="zs",
                staff_userids=["zhangsan"],
                qr_code="https://wework.qpic.cn/zhangsan.png",
            )
        )
        session.commit()
    for email, offered in (("zhangsan@acme.example", True), ("lisi@acme.example", False)):
        client = app.test_client()
        sign_in(client, email)
        assert ("加我企微" in client.get(f"/wecom/{corp['channel']}/posters").text) is offered


def test_a_reader_who_scans_the_poster_is_attributed_to_the_salesperson(
    app, platform, corp, frozen_tokens
):
    poster_id = make_poster(app)
    client = app.test_client()
    sign_in(client, "zhangsan@acme.example")
    png = client.get(f"/wecom/{corp['channel']}/posters/{poster_id}.png").data
    scanned = _their_url(app, poster_id, corp["zhang"])
    assert qr_modules_match(png, scanned, 255, 900, 240)  # what the code encodes

    parts = urlsplit(scanned)
    answer = open_in_wechat(app.test_client(), platform, f"{parts.path}?{parts.query}", "oFriend")
    assert answer.status_code == 302 and answer.location == "https://example.com/wp"
    [view] = all_rows(app, PageView)
    assert (view.openid, view.sharer_staff_id, view.channel_id) == (
        "oFriend",
        corp["zhang"],
        corp["oa"],
    )
    run_jobs(app)
    [seen] = all_rows(app, Interaction, Interaction.kind == "content.view")
    assert seen.properties.get("via_share") is True
    assert seen.properties.get("medium") == "qr"


def test_the_sales_home_leads_to_my_posters(app, corp):
    client = app.test_client()
    sign_in(client, "zhangsan@acme.example")
    assert f'href="/wecom/{corp["channel"]}/posters"' in client.get("/admin/home").text
    marketer = app.test_client()
    make_user(app, "marketer")
    sign_in(marketer, "marketer@acme.example")
    assert "/wecom/" not in marketer.get("/admin/home").text


def test_a_contact_me_poster_carries_wecoms_own_picture_of_the_code(app, platform, corp):
    """The QR box holds WeCom's picture of the salesperson's code (fetched from its image
    host, here the sandbox, and scaled in), not a code of the picture's URL."""
    import io

    import requests
    from PIL import Image, ImageChops

    from models import ContactWay
    from tests.factories import add_contact_way_in_wecom, add_staff

    poster_id = make_poster(app, target="contact_way", name="加我企微")
    add_staff(platform, "zhangsan", "张三")
    way_id = add_contact_way_in_wecom(app, corp["channel"], staff_userids=["zhangsan"])
    [way] = all_rows(app, ContactWay, ContactWay.id == way_id)
    answer = requests.get(way.qr_code, timeout=5)
    assert answer.headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(answer.content))

    client = app.test_client()
    sign_in(client, "zhangsan@acme.example")
    image = client.get(f"/wecom/{corp['channel']}/posters/{poster_id}.png")
    assert image.status_code == 200
    poster = Image.open(io.BytesIO(image.data)).convert("RGB")
    box = poster.crop((255, 900, 255 + 240, 900 + 240))
    expected = posters.picture_square(picture, 240)
    assert ImageChops.difference(box, expected).getbbox() is None
    assert not qr_modules_match(image.data, way.qr_code, 255, 900, 240)


def test_a_contact_me_poster_whose_picture_cannot_be_had_says_so(app, corp):
    from models import ContactWay

    poster_id = make_poster(app, target="contact_way", name="加我企微")
    with session_of(app) as session:
        session.add(
            ContactWay(
                workspace_id=session.get(Staff, corp["zhang"]).workspace_id,
                channel_id=corp["channel"],
                name="张三的码",
                state="zs",
                staff_userids=["zhangsan"],
                qr_code="https://example.com/not-wecom.png",  # no WeCom image host: not fetched
            )
        )
        session.commit()
    client = app.test_client()
    sign_in(client, "zhangsan@acme.example")
    image = client.get(f"/wecom/{corp['channel']}/posters/{poster_id}.png")
    assert image.status_code == 503 and image.mimetype == "image/png"
    assert image.headers["Cache-Control"] == "no-store"
    assert not all_rows(app, PosterRender)  # nothing cached: the next request tries again
