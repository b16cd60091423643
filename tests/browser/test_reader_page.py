"""A hosted page in a real browser: its beacon carries the cookie of the browser that
opened the view, and the same URL opened in another browser reads but reports nothing."""

from models import ContentKind, PageView
from tests.factories import make_content, make_link
from tests.helpers import all_of


def test_only_the_browser_that_opened_a_view_reports_on_it(app, live_server, browser):
    content_id = make_content(app, kind=ContentKind.PAGE, url=None, body="第一段。")
    _, code = make_link(app, content_id=content_id)
    reader = browser.new_context().new_page()
    reader.goto(f"{live_server}/t/{code}")
    assert "/p/" in reader.url and "第一段。" in reader.content()
    with reader.expect_response(lambda r: r.url.endswith("/b")) as liked:
        reader.click("#like")
    assert liked.value.status == 204

    stranger = browser.new_context().new_page()
    stranger.goto(reader.url)  # the forwarded URL
    assert "第一段。" in stranger.content()
    with stranger.expect_response(lambda r: r.url.endswith("/b")) as shared:
        stranger.click("#share")
    assert shared.value.status == 403

    [view] = all_of(app, PageView)
    assert view.liked and view.shares == 0
    for page in (reader, stranger):
        page.context.close()
