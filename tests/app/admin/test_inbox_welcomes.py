"""The inbox page's alert on welcome messages missed or refused in the last 24 hours."""

import re

from crm.channels import workspace_named
from models import WelcomeStatus
from tests.app.admin.helpers import in_english
from tests.factories import add_welcomes
from tests.helpers import harpoon_of

PAGE = "/admin/inbox"


def alert(page: str) -> str | None:
    match = re.search(r'<section class="card welcome-alert".*?</section>', page, re.S)
    return match and match.group(0)


def test_no_alert_without_missed_or_refused_welcomes(app, signed_in, wecom_channel):
    add_welcomes(
        app,
        wecom_channel,
        [
            ("wm_sent", WelcomeStatus.SENT, 1, 2, None),
            ("wm_old", WelcomeStatus.MISSED, 30, 40, "the 20-second window had passed"),
        ],
    )
    assert alert(signed_in("admin").get(PAGE).text) is None


def test_missed_and_refused_welcomes_of_the_last_day(app, signed_in, wecom_channel):
    rows = [
        (f"wm_{n:02}", WelcomeStatus.MISSED, n / 10, 25 + n, "the 20-second window had passed")
        for n in range(12)
    ]
    rows += [
        ("wm_chat", WelcomeStatus.REFUSED, 2, 1, "externalcontact/send_welcome_msg: 41051 chatted"),
        ("wm_old", WelcomeStatus.MISSED, 25, 30, "the 20-second window had passed"),
    ]
    contacts = add_welcomes(app, wecom_channel, rows)
    box = alert(in_english(signed_in("marketer")).get(PAGE).text)
    assert box is not None
    assert "12 welcomes were missed" in box and "The latest 10:" in box
    missed = re.search(r'data-status="missed".*?</table>', box, re.S).group(0)
    # The newest first; the 11th, 12th and yesterday's are left out.
    assert re.findall(r"<small class=\"muted mono\">(\w+)</small>", missed) == [
        f"wm_{n:02}" for n in range(10)
    ]
    assert f'href="/admin/contacts/{contacts["wm_00"]}">客户wm_00</a>' in missed
    assert 'data-late="25.0"' in missed and "张三" in missed and "ago" in missed
    refused = re.search(r'data-status="refused".*?</table>', box, re.S).group(0)
    assert "1 welcome was refused by WeCom." in box
    assert "wm_chat" in refused and "41051 chatted" in refused


def test_another_workspace_gets_no_alert(app, signed_in, wecom_channel):
    add_welcomes(app, wecom_channel, [("wm_1", WelcomeStatus.MISSED, 1, 30, None)])
    with harpoon_of(app).db.session() as session:
        workspace_named(session, "other")
        session.commit()
    response = signed_in("admin", "other").get(PAGE)
    assert response.status_code == 200  # the inbox itself, not an error or a sign-in page
    assert alert(response.text) is None
