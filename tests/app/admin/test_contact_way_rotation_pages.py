"""The rotating 联系我 code's form and page against the sandbox: rotation, caps, backups,
working hours and auto-accept windows saved and sent to WeCom; bad settings refused with
a message on their field; the page's adds per member, who is on the list now and why,
what WeCom holds and the last sync error."""

import re
from datetime import timedelta

import pytest

from models import ContactWay, utcnow
from tests.app.admin.helpers import field_errors, in_english, post_form
from tests.factories import add_relation, add_staff
from tests.helpers import all_of, harpoon_of
from tests.wecom_platform import connect_corp, contact_ways_in_wecom, sync_staff_now
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox

OTHER_CORP = Credentials(
    app_id="ww9f8e7d6c5b4a3f2e",
    token="othertoken",
    aes_key="0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
)


@pytest.fixture
def channel_id(app, platform):
    channel_id = connect_corp(app, platform)
    for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("zhaoliu", "赵六")):
        add_staff(platform, userid, name)
    sync_staff_now(app, channel_id)
    return channel_id


def rotating_form(**changes):
    return {
        "name": "展会活码",
        "state": "expo",
        "staff_userids": ["zhangsan", "lisi"],
        "skip_verify": "y",
        "rotation": "round_robin",
        "daily_cap": "20",
        "backup_userids": ["zhaoliu"],
        "schedule_days": ["0", "1", "2", "3", "4", "5", "6"],
        "schedule_start": "00:00",
        "schedule_end": "23:59",
        "auto_accept": "00:00-23:59",
        **changes,
    }


def the_way(app) -> ContactWay:
    (way,) = all_of(app, ContactWay)
    return way


def test_a_rotating_code_is_saved_and_points_at_the_first_member(
    app, platform, signed_in, channel_id
):
    client = in_english(signed_in("marketer"))
    form = client.get(f"/admin/contact-ways/new/{channel_id}").text
    assert 'name="rotation"' in form and 'name="backup_userids"' in form
    assert 'name="schedule_days"' in form and 'name="auto_accept"' in form

    response = post_form(client, f"/admin/contact-ways/new/{channel_id}", rotating_form())
    assert response.status_code == 302, response.text

    way = the_way(app)
    assert response.headers["Location"].endswith(f"/admin/contact-ways/{way.id}")
    assert (way.rotation, way.daily_cap, way.backup_userids) == ("round_robin", 20, ["zhaoliu"])
    assert way.schedule == {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}
    assert way.auto_accept == [{"start": "00:00", "end": "23:59"}]
    remote = contact_ways_in_wecom(platform)[way.config_id]
    # A rotating code is a several-person code pointing at one member at a time.
    assert (remote.type, remote.user) == (2, ["zhangsan"])
    assert way.applied_userids == ["zhangsan"]

    edit = client.get(f"/admin/contact-ways/{way.id}/edit").text
    assert 'value="00:00-23:59"' in edit and 'value="20"' in edit


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"daily_cap": "0"}, "daily_cap", "From 1 to 10000 adds a day."),
        ({"backup_userids": []}, "backup_userids", "A daily cap or a schedule needs backup"),
        ({"backup_userids": ["lisi"]}, "backup_userids", "cannot also be regular members"),
        ({"schedule_start": "9:00"}, "schedule_start", "Use a 24-hour time such as 09:00."),
        ({"schedule_start": "25:00"}, "schedule_start", "Use a 24-hour time such as 09:00."),
        ({"schedule_end": "00:00"}, "schedule_end", "The start must be before the end."),
        ({"schedule_days": []}, "schedule_days", "Choose at least one weekday."),
        ({"auto_accept": "12:00-09:00"}, "auto_accept", "the start must be before the end"),
        ({"auto_accept": "morning"}, "auto_accept", "Write windows as 09:00-12:00"),
        ({"rotation": "lottery"}, "rotation", "Not a valid choice."),
    ],
)
def test_bad_settings_get_a_message_on_their_field(
    app, platform, signed_in, channel_id, changes, field, message
):
    client = in_english(signed_in("marketer"))
    response = post_form(client, f"/admin/contact-ways/new/{channel_id}", rotating_form(**changes))
    assert response.status_code == 200
    page = response.text
    if field.startswith("schedule_"):  # one block for the days and the times
        block = re.search(r"Working hours.*?</div>\s*<small class=\"hint\".*?</div>", page, re.S)
        assert message in block.group(0)
    else:
        assert any(message in error for error in field_errors(page, field)), field_errors(
            page, field
        )
    assert all_of(app, ContactWay) == []
    assert contact_ways_in_wecom(platform) == {}


def test_another_corps_member_cannot_be_a_backup(app, platform, signed_in, channel_id):
    other = connect_corp(app, platform, OTHER_CORP, workspace="globex")
    add_staff(platform, "stranger", "外人", creds=OTHER_CORP)
    sync_staff_now(app, other)
    client = in_english(signed_in("marketer"))
    page = post_form(
        client,
        f"/admin/contact-ways/new/{channel_id}",
        rotating_form(backup_userids=["stranger"]),
    ).text
    assert "not a valid choice" in " ".join(field_errors(page, "backup_userids"))
    assert all_of(app, ContactWay) == []


def test_the_codes_page_shows_adds_per_member_who_is_on_the_list_and_the_sync_error(
    app, platform, signed_in, channel_id
):
    client = signed_in("marketer")
    post_form(
        client,
        f"/admin/contact-ways/new/{channel_id}",
        rotating_form(daily_cap="2", schedule_days=[], schedule_start="", schedule_end=""),
    )
    way = the_way(app)
    now = utcnow()
    for n, (staff, days_ago) in enumerate(
        (("zhangsan", 0), ("zhangsan", 0), ("lisi", 0), ("lisi", 3), ("lisi", 30))
    ):
        add_relation(
            app,
            channel_id,
            staff_userid=staff,
            external_userid=f"wm_{n}",
            name=f"客户{n}",
            way=way,
            added_at=now - timedelta(days=days_ago),
        )
    with harpoon_of(app).db.session() as session:
        row = session.get(ContactWay, way.id)
        row.sync_error = "84074: no customer-contact permission"
        row.sync_failures, row.sync_retry_at = 2, now + timedelta(minutes=2)
        session.commit()

    page = client.get(f"/admin/contact-ways/{way.id}").text  # zh-CN, the default

    zhangsan = re.search(r'<tr id="member-zhangsan".*?</tr>', page, re.S).group(0)
    assert "张三" in zhangsan and "已达今日上限" in zhangsan
    assert re.findall(r'<td class="num">(\d+)', zhangsan) == ["2", "2", "2"]
    lisi = re.search(r'<tr id="member-lisi".*?</tr>', page, re.S).group(0)
    assert "接待下一位客户" in lisi
    assert re.findall(r'<td class="num">(\d+)', lisi) == ["1", "2", "3"]
    backup = re.search(r'<tr id="member-zhaoliu".*?</tr>', page, re.S).group(0)
    assert "备用" in backup
    assert "84074: no customer-contact permission" in page
    assert "轮流分配" in page
    assert f'href="/admin/contact-ways/{way.id}"' in client.get("/admin/contact-ways").text


def test_another_workspace_cannot_see_the_codes_page(app, platform, signed_in, channel_id):
    post_form(signed_in("marketer"), f"/admin/contact-ways/new/{channel_id}", rotating_form())
    way = the_way(app)
    connect_corp(app, platform, OTHER_CORP, workspace="globex")
    assert signed_in("marketer", "globex").get(f"/admin/contact-ways/{way.id}").status_code == 404
