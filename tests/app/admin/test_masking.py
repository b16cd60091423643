"""What a salesperson sees: their own accounts and contacts first, other people's phone
numbers and emails masked (contact page, form submissions), and only their own alerts."""

import re

import pytest

from app.admin.masking import Reveal, mask_email, mask_phone
from models import IdentityKind, utcnow
from tests.app.admin.helpers import contact_ids, sign_in
from tests.factories import (
    add_identity,
    add_relation,
    home_scenario,
    make_form,
    make_staff,
    make_submission,
    make_user,
)

PHONE, EMAIL = "13812345678", "wanggong@huaxin.com"
OTHER_PHONE, OTHER_EMAIL = "13987654321", "zhao@beichen.cn"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("13812345678", "138****5678"),
        ("+86 139 8765 4321", "139****4321"),
        ("010-8888-1234", "010****1234"),
        ("12345", "12****45"),
        ("1234", "****"),
    ],
)
def test_a_phone_keeps_its_first_three_and_last_four_digits(value, shown):
    assert mask_phone(value) == shown


def test_an_email_keeps_its_first_letter_and_its_domain():
    assert mask_email("wanggong@huaxin.com") == "w***@huaxin.com"
    assert mask_email("not-an-email") == "***"


def test_a_reveal_masks_phones_and_emails_of_people_not_shown_only():
    reveal = Reveal(everyone=False, own=frozenset({1}))
    assert reveal.field("phone", PHONE, 1) == PHONE
    assert reveal.field("phone", PHONE, 2) == "138****5678"
    assert reveal.field("phone", PHONE, None) == "138****5678"  # nobody known yet
    assert reveal.identity("email", EMAIL, 2) == "w***@huaxin.com"
    assert reveal.identity("openid", "o-abc", 2) == "o-abc"
    assert reveal.field("company", "华信科技", 2) == "华信科技"
    assert Reveal(everyone=True).field("phone", PHONE, 2) == PHONE


@pytest.fixture
def scenario(app, wecom_channel):
    """The home scenario, with 王工 (张三's account) and 赵总 (李四's) reachable by phone and
    email, and 小周, a WeCom customer of 张三's staff identity with no account."""
    ids = home_scenario(app, utcnow())
    for name, phone, email in (("王工", PHONE, EMAIL), ("赵总", OTHER_PHONE, OTHER_EMAIL)):
        add_identity(app, ids[name], IdentityKind.PHONE, phone)
        add_identity(app, ids[name], IdentityKind.EMAIL, email)
    make_staff(app, "张三", "zhangsan", user_id=ids["zhangsan"])
    ids["小周"] = add_relation(
        app, wecom_channel, staff_userid="zhangsan", external_userid="wm-zhou", name="小周"
    )
    add_identity(app, ids["小周"], IdentityKind.PHONE, "13700001111")
    return ids


def client_of(app, email):
    client = app.test_client()
    assert sign_in(client, email).status_code == 302
    return client


def test_a_salesperson_sees_their_peoples_phones_and_others_masked(app, scenario):
    sales = client_of(app, "zhangsan@acme.example")
    own = sales.get(f"/admin/contacts/{scenario['王工']}").text
    assert PHONE in own and EMAIL in own
    customer = sales.get(f"/admin/contacts/{scenario['小周']}").text
    assert "13700001111" in customer  # their WeCom customer, no account: theirs too
    theirs = sales.get(f"/admin/contacts/{scenario['赵总']}").text
    assert OTHER_PHONE not in theirs and OTHER_EMAIL not in theirs
    assert "139****4321" in theirs and "z***@beichen.cn" in theirs


def test_marketers_see_every_phone(app, scenario):
    make_user(app, "marketer")
    marketer = client_of(app, "marketer@acme.example")
    page = marketer.get(f"/admin/contacts/{scenario['赵总']}").text
    assert OTHER_PHONE in page and OTHER_EMAIL in page


def test_form_submissions_mask_the_phones_of_people_not_the_salespersons(app, scenario):
    form_id = make_form(app, fields={"name": "required", "phone": "required", "email": "optional"})
    for nonce, contact, phone, email in (
        ("n-own", scenario["王工"], PHONE, EMAIL),
        ("n-theirs", scenario["赵总"], OTHER_PHONE, OTHER_EMAIL),
        ("n-unknown", None, "13600002222", "new@x.cn"),
    ):
        make_submission(
            app,
            form_id,
            nonce,
            contact_id=contact,
            data={"name": "某", "phone": phone, "email": email},
        )
    page = client_of(app, "zhangsan@acme.example").get(f"/admin/forms/{form_id}").text
    assert PHONE in page and EMAIL in page
    assert OTHER_PHONE not in page and "139****4321" in page and "z***@beichen.cn" in page
    assert "13600002222" not in page and "136****2222" in page  # nobody's yet: not theirs
    make_user(app, "marketer")
    page = client_of(app, "marketer@acme.example").get(f"/admin/forms/{form_id}").text
    assert OTHER_PHONE in page and "13600002222" in page


def account_links(page: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/admin/accounts/(\d+)"', page)}


def test_a_salespersons_lists_start_on_their_own_with_a_toggle_to_all(app, scenario):
    sales = client_of(app, "zhangsan@acme.example")
    accounts = sales.get("/admin/accounts").text
    mine = {scenario[n] for n in ("云帆科技", "数智集团", "远景能源", "华信科技", "东方物流")}
    assert account_links(accounts) == mine
    assert '<option value="mine" selected>' in accounts
    everyone = sales.get("/admin/accounts?scope=all").text
    assert account_links(everyone) == mine | {scenario["北辰制造"]}
    contacts = sales.get("/admin/contacts").text
    assert set(contact_ids(contacts)) == {scenario[n] for n in ("李总", "小陈", "王工", "小周")}
    assert scenario["赵总"] in contact_ids(sales.get("/admin/contacts?scope=all").text)
    # Links keep a scope that is not the role's default.
    assert "scope=all" in sales.get("/admin/accounts?scope=all&sort=name").text
    assert "scope=" not in sales.get("/admin/accounts?sort=name").text.split("</form>")[1]


def test_a_marketers_lists_start_on_all(app, scenario):
    make_user(app, "marketer")
    marketer = client_of(app, "marketer@acme.example")
    assert scenario["北辰制造"] in account_links(marketer.get("/admin/accounts").text)
    assert scenario["赵总"] in contact_ids(marketer.get("/admin/contacts").text)
    assert account_links(marketer.get("/admin/accounts?scope=mine").text) == set()


def test_a_salesperson_with_nothing_yet_is_told_how_to_see_all(app, scenario):
    make_user(app, "sales", email="new@acme.example")
    sales = client_of(app, "new@acme.example")
    assert "选择“全部客户公司”查看所有公司" in sales.get("/admin/accounts").text
    assert "选择“全部联系人”查看所有人" in sales.get("/admin/contacts").text
