"""Posters in a real browser: a marketer uploads a design, moves the QR code with the
preview following the numbers, and a salesperson opens 我的海报 on a phone (390x844).
Screenshots: posters-editor, posters-phone, and the composed poster itself."""

import io
import re

from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import expect

from models import Channel, Poster
from tests.browser.helpers import SCREENSHOTS, screenshot, sign_in
from tests.factories import make_channel, make_content, make_staff, make_user
from tests.helpers import WECOM_CREDS, all_of

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"


def designed_background(path) -> None:
    """A marketer's design: a blue gradient with the event's title, room below for a code."""
    image = Image.new("RGB", (750, 1334))
    draw = ImageDraw.Draw(image)
    for y in range(1334):
        shade = int(40 + 120 * y / 1334)
        draw.line([(0, y), (750, y)], fill=(12, shade // 2 + 30, shade + 60))
    draw.text((60, 220), "2026 智能制造峰会", fill="white", font=ImageFont.truetype(FONT, 64))
    draw.text(
        (60, 320), "5 月 20 日 · 上海", fill=(200, 220, 255), font=ImageFont.truetype(FONT, 40)
    )
    draw.rounded_rectangle((215, 820, 535, 1180), radius=24, fill=(255, 255, 255))
    image.save(path, format="PNG")


def test_a_marketer_places_the_code_and_a_salesperson_saves_their_poster(
    app, live_server, page, browser, tmp_path
):
    make_user(app, "marketer")
    make_content(app, title="智能制造峰会报名页")
    make_channel(app, "wecom", WECOM_CREDS, agent_id="1000002", agent_secret="agent-secret")
    make_staff(app, "张三", "zhangsan", user_id=make_user(app, "sales"))
    design = tmp_path / "design.png"
    designed_background(design)

    sign_in(page, live_server, "marketer@acme.example")
    page.click("nav.sidebar a[href='/admin/posters']")
    page.click("a[href='/admin/posters/new']")
    page.fill("input[name=name]", "峰会邀请海报")
    page.set_input_files("input[name=background]", str(design))
    page.select_option("select[name=content_id]", label="智能制造峰会报名页")
    page.click("form#poster-form button.primary")
    page.wait_for_url(re.compile(r"/admin/posters/\d+/edit$"))
    [poster] = all_of(app, Poster)

    preview = page.locator("#poster-preview")
    page.fill("input[name=qr_y]", "880")
    page.fill("input[name=text_y]", "760")
    page.fill("input[name=text_x]", "230")
    page.fill("input[name=text_size]", "44")
    page.fill("input[name=text_color]", "#ffffff")
    page.fill("input[name=qr_size]", "260")
    with page.expect_response(lambda answer: "qr_x=245" in answer.url):
        page.fill("input[name=qr_x]", "245")
    expect(preview).to_have_attribute("src", re.compile(r"qr_x=245.*qr_y=880"))
    page.wait_for_timeout(300)  # the image decoded and painted
    screenshot(page, "posters-editor")
    page.click("form#poster-form button.primary")
    page.wait_for_url(re.compile(rf"/admin/posters/{poster.id}$"))
    expect(page.locator("#staff-1")).to_contain_text("张三")

    [corp] = [channel for channel in all_of(app, Channel) if channel.kind == "wecom"]
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    salesperson = phone.new_page()
    sign_in(salesperson, live_server, "sales@acme.example")
    salesperson.goto(f"{live_server}/wecom/{corp.id}/posters")
    image = salesperson.locator(f"#poster-{poster.id} img")
    expect(image).to_be_visible()
    salesperson.wait_for_load_state("load")  # the images are in
    box = image.bounding_box()
    assert box["width"] <= 390 and box["height"] > 600  # as wide as the phone, whole
    screenshot(salesperson, "posters-phone")
    png = salesperson.request.get(live_server + image.get_attribute("src")).body()
    assert Image.open(io.BytesIO(png)).size == (750, 1334)
    (SCREENSHOTS / "posters-rendered.png").write_bytes(png)
    phone.close()
