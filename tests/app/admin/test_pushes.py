"""Pushes pages against the sandbox: the form and its field errors, settings (threshold and
test followers), preview, send, approval by an admin, the delivery report, cancel."""

import pytest
from sqlalchemy import select

from models import AuditLog, Push, PushStatus, Workspace
from tests.app.admin.helpers import csrf_token, field_errors, in_english
from tests.factories import tag_segment
from tests.helpers import harpoon_of, run_jobs
from tests.oa_platform import follow, received, settle
from wechat.sandbox.oa import PREVIEW

PAGE = "/admin/pushes"

pytestmark = pytest.mark.sandbox


def form_data(channel_id, segment_id="", **overrides):
    return {
        "name": "CIO 闭门会邀请",
        "channel": str(channel_id),
        "audience": str(segment_id),
        "content_type": "text",
        "text": "华东区 CIO 闭门会本周五举行。",
        "schedule": "now",
        **overrides,
    }


def post(client, path, data=None, page=PAGE):
    token = csrf_token(client.get(page).text)
    return client.post(path, data={**(data or {}), "csrf_token": token})


def push_row(app) -> Push:
    with harpoon_of(app).db.session() as session:
        return session.scalars(select(Push).order_by(Push.id.desc())).first()


def test_the_form_names_what_is_wrong(app, oa, signed_in):
    client = in_english(signed_in("marketer"))
    response = post(
        client,
        f"{PAGE}/new",
        form_data(oa, content_type="news", text="", title="x" * 70, url="ftp://example.com"),
        page=f"{PAGE}/new",
    )
    assert response.status_code == 400
    for name in ("media_id", "title", "url"):
        assert field_errors(response.text, name), name
    response = post(
        client,
        f"{PAGE}/new",
        form_data(oa, schedule="at", content_type="template", template_data="no colon"),
        page=f"{PAGE}/new",
    )
    assert field_errors(response.text, "send_at") == ["Choose the date and time."]
    assert field_errors(response.text, "template_data") == ["Write each line as key: value."]
    assert field_errors(response.text, "template_id") == ["Required."]
    assert push_row(app) is None


def test_a_library_id_that_is_no_number_is_a_field_error(app, oa, signed_in):
    client = in_english(signed_in("marketer"))
    response = post(
        client,
        f"{PAGE}/new",
        form_data(oa, content_type="news", material="abc"),
        page=f"{PAGE}/new",
    )
    assert response.status_code == 400
    assert "Not an item of this workspace's library." in field_errors(response.text, "material")
    assert push_row(app) is None


def test_a_marketer_drafts_previews_and_sends_a_push(app, platform, oa, signed_in):
    ids = follow(app, platform, "o_tester", "o_a", "o_b")
    segment_id = tag_segment(app, [ids["o_a"], ids["o_b"]])
    admin = in_english(signed_in("admin"))
    response = post(admin, f"{PAGE}/settings", {"threshold": "10", "testers": "o_tester\no_nobody"})
    assert response.status_code == 400
    assert "o_nobody" in response.text
    response = post(admin, f"{PAGE}/settings", {"threshold": "10", "testers": "o_tester"})
    assert response.status_code == 302

    marketer = in_english(signed_in("marketer"))
    response = post(marketer, f"{PAGE}/new", form_data(oa, segment_id), page=f"{PAGE}/new")
    assert response.status_code == 302, response.text
    push = push_row(app)
    detail = f"{PAGE}/{push.id}"
    page = marketer.get(detail).text
    assert 'data-audience="2"' in page

    post(marketer, f"{detail}/preview", page=detail)
    assert len(received(platform, "o_tester", PREVIEW)) == 1

    post(marketer, f"{detail}/send", page=detail)
    settle(app, platform)
    assert [len(received(platform, o)) for o in ("o_a", "o_b", "o_tester")] == [1, 1, 0]
    page = marketer.get(detail).text
    assert 'data-status="sent"' in page
    assert 'data-mechanism="mass_openid"' in page and "2 of 2 sent" in page
    assert 'id="funnel-chart"' in page
    with harpoon_of(app).db.session() as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert "push.create" in actions and "push.submit" in actions


def test_a_push_over_the_threshold_waits_for_an_admin(app, platform, oa, signed_in):
    ids = follow(app, platform, "o_a", "o_b", "o_c")
    segment_id = tag_segment(app, list(ids.values()))
    with harpoon_of(app).db.session() as session:
        session.scalar(select(Workspace)).push_approval_threshold = 2
        session.commit()
    marketer = in_english(signed_in("marketer"))
    post(marketer, f"{PAGE}/new", form_data(oa, segment_id), page=f"{PAGE}/new")
    detail = f"{PAGE}/{push_row(app).id}"
    post(marketer, f"{detail}/send", page=detail)
    assert push_row(app).status == PushStatus.AWAITING_APPROVAL
    assert "Approve and send" not in marketer.get(detail).text
    assert post(marketer, f"{detail}/approve", page=detail).status_code == 403

    admin = in_english(signed_in("admin"))
    post(admin, f"{detail}/approve", page=detail)
    settle(app, platform)
    assert push_row(app).status == PushStatus.SENT
    assert [len(received(platform, o)) for o in ids] == [1, 1, 1]


def test_a_scheduled_push_waits_and_can_be_cancelled(app, platform, oa, signed_in):
    follow(app, platform, "o_a", "o_b")
    marketer = in_english(signed_in("marketer"))
    data = form_data(oa, schedule="at", send_at="2099-01-01T09:00")
    post(marketer, f"{PAGE}/new", data, page=f"{PAGE}/new")
    push = push_row(app)
    assert push.scheduled_at.year == 2099 and push.scheduled_at.hour == 1  # 09:00 Shanghai
    detail = f"{PAGE}/{push.id}"
    post(marketer, f"{detail}/send", page=detail)
    run_jobs(app)
    assert push_row(app).status == PushStatus.SCHEDULED
    post(marketer, f"{detail}/cancel", page=detail)
    assert push_row(app).status == PushStatus.CANCELLED


def test_viewers_read_but_do_not_write(app, oa, signed_in):
    viewer = signed_in("viewer")
    assert viewer.get(PAGE).status_code == 200
    assert viewer.get(f"{PAGE}/new").status_code == 403
