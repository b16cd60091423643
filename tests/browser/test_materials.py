"""The material library in a real browser (zh-CN): an image picked into the upload field,
an article written with its cover, pushed from the push form's library picker through the
sandbox as mpnews, and the article's page showing its draft on the Official Account."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from demo.library import ARTICLE_BODY, cover_png
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_user, tag_segment
from tests.oa_platform import follow, received, settle

pytestmark = pytest.mark.sandbox
NOTES = Path("/work/notes/shots")


def keep(path: Path, name: str) -> None:
    if NOTES.is_dir():
        shutil.copy(path, NOTES / f"library-{name}.png")


def test_a_marketer_builds_the_library_and_pushes_an_article(
    app, platform, oa, live_server, page, tmp_path
):
    ids = follow(app, platform, "o_a", "o_b")
    tag_segment(app, [ids["o_a"], ids["o_b"]], name="华东CIO")
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")
    cover = tmp_path / "abm-cover.png"
    cover.write_bytes(cover_png())

    page.goto(f"{live_server}/admin/materials")
    page.set_input_files("input[name=file]", str(cover))
    page.fill("input[name=name]", "ABM 封面")
    page.click("form[action*='/materials/upload'] button.primary")
    expect(page.locator(".material-preview img")).to_be_visible()

    page.goto(f"{live_server}/admin/materials/new/article")
    page.fill("input[name=name]", "ABM 实战文章")
    page.fill("input[name=title]", "ABM 实战：找准采购委员会")
    page.fill("input[name=author]", "市场部")
    page.fill("textarea[name=digest]", "从一个人到一个采购委员会：B2B 营销的目标变了。")
    page.fill("textarea[name=body]", ARTICLE_BODY)
    page.fill("input[name=url]", "https://example.com/blog/abm")
    page.select_option("select[name=cover]", label="ABM 封面")
    page.click("form.material-form button.primary")
    expect(page.locator(".phone-card h3")).to_have_text("ABM 实战：找准采购委员会")

    page.goto(f"{live_server}/admin/pushes/new")
    page.fill("input[name=name]", "ABM 实战推送")
    page.select_option("select[name=audience]", label="华东CIO")
    page.check("input[name=content_type][value=news]")
    page.select_option("select[name=material]", label="图文：ABM 实战文章")
    page.click("form.push-form button.primary")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[action$='/send'] button")
    settle(app, platform)
    assert [received(platform, o)[0].msgtype for o in ("o_a", "o_b")] == ["mpnews", "mpnews"]

    page.goto(f"{live_server}/admin/materials")
    expect(page.locator("ul.material-grid li")).to_have_count(2)
    keep(screenshot(page, "materials"), "list")
    page.click("ul.material-grid li[data-kind=article] a")
    expect(page.locator("tr[data-purpose=oa_draft]")).to_have_attribute("data-status", "ok")
    keep(screenshot(page, "material-article"), "article")
    page.set_viewport_size({"width": 390, "height": 844})
    keep(screenshot(page, "material-article-phone"), "article-phone")
