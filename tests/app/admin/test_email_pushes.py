"""An email push through the admin pages: the form offers the workspace's email templates
and needs no Official Account, refuses another workspace's template, and the sent push's
page reports sent, skipped by reason, opened and clicked (sent to the SMTP sink by a real
worker)."""

import pytest
from sqlalchemy import select

from models import Push, SavedSegment
from tests.app.admin.helpers import csrf_token, field_errors, in_english
from tests.factories import add_email_template, add_emailed_contact, workspace_id
from tests.helpers import harpoon_of, run_jobs, session_of

PAGE = "/admin/pushes"


@pytest.fixture
def app(make_app, smtp):
    smtp.mailbox.clear()
    return make_app(smtp_url=smtp.url, email_rate_per_minute=0)


def post(client, path, data=None, page=PAGE):
    token = csrf_token(client.get(page).text)
    return client.post(path, data={**(data or {}), "csrf_token": token})


def test_a_marketer_sends_an_email_push_and_reads_its_report(app, smtp, signed_in):
    for n in range(2):
        add_emailed_contact(app, f"王{n}", f"wang{n}@example.com", role="cio")
    add_emailed_contact(app, "赵敏", None, role="cio")
    template = add_email_template(app)
    theirs = add_email_template(app, workspace="beta", name="别人的")
    with session_of(app) as session:
        segment = SavedSegment(
            workspace_id=workspace_id(app), name="CIOs", document={"roles": ["cio"]}
        )
        session.add(segment)
        session.commit()
        segment_id = segment.id
    marketer = in_english(signed_in("marketer"))
    page = marketer.get(f"{PAGE}/new").text
    assert f'<option value="{template}">白皮书</option>' in page
    assert f'value="{theirs}"' not in page
    data = {
        "name": "白皮书邮件",
        "audience": str(segment_id),
        "content_type": "email",
        "schedule": "now",
    }

    response = post(marketer, f"{PAGE}/new", data, page=f"{PAGE}/new")
    assert response.status_code == 400
    assert field_errors(response.text, "email_template")
    response = post(
        marketer, f"{PAGE}/new", {**data, "email_template": str(theirs)}, page=f"{PAGE}/new"
    )
    assert response.status_code == 400 and field_errors(response.text, "email_template")

    response = post(
        marketer, f"{PAGE}/new", {**data, "email_template": str(template)}, page=f"{PAGE}/new"
    )
    assert response.status_code == 302, response.text
    with harpoon_of(app).db.session() as session:
        push = session.scalars(select(Push)).one()
    assert push.channel_id is None
    assert push.content == {"type": "email", "email_template_id": template}
    detail = f"{PAGE}/{push.id}"
    page = marketer.get(detail).text
    assert 'data-audience="3"' in page and f'data-email-template="{template}"' in page

    post(marketer, f"{detail}/send", page=detail)
    run_jobs(app)

    assert sorted(r for m in smtp.mailbox.messages for r in m.recipients) == [
        "wang0@example.com",
        "wang1@example.com",
    ]
    page = marketer.get(detail).text
    assert 'data-status="sent"' in page
    assert 'data-mechanism="email"' in page and "2 of 2 sent" in page
    assert 'data-skipped="no_email"' in page and "No email address" in page
    assert 'data-row="opened"' in page and 'data-row="clicked"' in page
    assert marketer.get(PAGE).status_code == 200
    assert marketer.get(f"{detail}/edit").status_code in (200, 302)
