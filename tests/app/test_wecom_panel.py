"""The chat sidebar's panel over HTTP: who may open whom, what it shows, and what its
forms and the send button record."""

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.admin.scoring.presenters import score_rule_labels
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    Contact,
    InboundEvent,
    Interaction,
    SalesNote,
    TagSyncItem,
    Task,
    User,
    utcnow,
)
from scoring.engine import Scorer
from scoring.model import DEFAULT_RULES, ScoreRule
from tests.app.admin.helpers import csrf_token
from tests.factories import (
    WECOM_CREDS,
    add_tag,
    make_account,
    make_channel,
    make_content,
    make_customer,
    make_link,
    make_opportunity,
    make_staff,
    make_user,
    view,
)
from tests.helpers import all_of, run_jobs, session_of

CUSTOMER = "wmCustomer001"


def user_id(app, role: str, workspace: str = "acme") -> int:
    with session_of(app) as session:
        return session.scalar(select(User.id).where(User.email == f"{role}@{workspace}.example"))


@pytest.fixture
def sales(app, wecom_channel, signed_in):
    client = signed_in("sales")
    make_staff(app, "张三", "zhangsan", user_id=user_id(app, "sales"))
    account_id = make_account(app, "华信科技", industry="制造")
    mine = make_customer(
        app,
        wecom_channel,
        CUSTOMER,
        "李雷",
        staff_userid="zhangsan",
        account_id=account_id,
        title="信息中心主任",
        role="cio",
        seniority="director",
    )
    theirs = make_customer(app, wecom_channel, "wmOther002", "韩梅梅", staff_userid="lisi")
    return {"client": client, "channel": wecom_channel, "mine": mine, "theirs": theirs}


def panel(client, channel_id, external_userid=CUSTOMER, suffix=""):
    return client.get(f"/wecom/panel/{channel_id}/contact/{external_userid}{suffix}")


def test_a_salesperson_sees_their_customer_with_account_and_content(app, sales):
    content_id = make_content(app, title="制造业数字化白皮书", topics=["数字化"])
    response = panel(sales["client"], sales["channel"])
    assert response.status_code == 200, response.text
    page = response.text
    assert page.startswith('<link rel="stylesheet" href="/static/wecom-panel.css">')
    assert "<html" not in page
    assert "李雷" in page and "信息中心主任" in page and "华信科技" in page
    assert "制造业数字化白皮书" in page
    card = json.loads(re.search(r'data-send-card="([^"]+)"', page).group(1).replace("&#34;", '"'))
    assert card["title"] == "制造业数字化白皮书"
    assert "?s=" in card["link"]  # the salesperson's share token
    assert re.search(rf"/sent\?content_id={content_id}&amp;nonce=", page)


def test_someone_elses_customer_is_refused_showing_nothing(app, sales):
    response = panel(sales["client"], sales["channel"], "wmOther002")
    assert response.status_code == 403
    assert "韩梅梅" not in response.text
    assert "不是你的客户" in response.text


def test_marketers_see_everyone(app, sales, signed_in):
    response = panel(signed_in("marketer"), sales["channel"], "wmOther002")
    assert response.status_code == 200
    assert "韩梅梅" in response.text


def test_unknown_customer_or_a_foreign_channel_is_404(app, sales):
    assert panel(sales["client"], sales["channel"], "wmNobody").status_code == 404
    foreign = make_channel(
        app, "wecom", replace(WECOM_CREDS, app_id="wwforeign"), workspace="other"
    )
    make_customer(app, foreign, CUSTOMER, "外人", workspace="other")
    response = panel(sales["client"], foreign)
    assert response.status_code == 404
    assert "外人" not in response.text


def test_an_oa_channel_is_not_a_chat(app, sales, oa_channel):
    assert panel(sales["client"], oa_channel).status_code == 404


def _post(client, path, data):
    token = csrf_token(client.get("/admin/").text)
    return client.post(path, data={**data, "csrf_token": token})


def test_sending_records_the_event_and_the_touch_then_the_drain_scores_it(app, sales):
    content_id = make_content(app, title="选型指南", topics=["选型"])
    page = panel(sales["client"], sales["channel"]).text
    sent_url = re.search(r'data-sent-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    response = _post(sales["client"], sent_url, {})
    assert response.status_code == 200
    assert "已发送" in response.text
    again = _post(sales["client"], sent_url, {})  # the shell retried the same tap
    assert again.status_code == 200
    events = [e for e in all_of(app, AccountEvent) if e.kind == AccountEventKind.CHAT_SEND]
    assert [(e.contact_id, e.user_id) for e in events] == [(sales["mine"], user_id(app, "sales"))]
    inbox = [e for e in all_of(app, InboundEvent) if "sales.chat_send" in e.payload]
    assert len(inbox) == 1
    run_jobs(app)
    touches = [i for i in all_of(app, Interaction) if i.kind == "sales.chat_send"]
    assert [(t.contact_id, t.properties["content_id"]) for t in touches] == [
        (sales["mine"], content_id)
    ]


def test_a_sent_content_id_too_large_for_any_row_is_a_404(app, sales):
    path = f"/wecom/panel/{sales['channel']}/contact/{CUSTOMER}/sent"
    for content_id in ("99999999999999999999999", str(2**40)):
        response = _post(sales["client"], f"{path}?content_id={content_id}&nonce=n1", {})
        assert response.status_code == 404
    assert all_of(app, AccountEvent) == []


def test_a_read_item_is_not_recommended_again(app, sales):
    read_id = make_content(app, title="已读文章")
    make_content(app, title="未读文章")
    link_id, _code = make_link(app, content_id=read_id)
    view(app, link_id, contact_id=sales["mine"], active_seconds=300)
    page = panel(sales["client"], sales["channel"]).text
    assert "未读文章" in page
    assert "已读文章" in page  # in what they read...
    assert 'data-send-card="{&#34;title&#34;: &#34;已读文章' not in page  # ...not to send
    assert "5.0 分钟" in page


def test_a_note_is_saved_and_becomes_a_touch(app, sales):
    path = f"/wecom/panel/{sales['channel']}/contact/{CUSTOMER}/note"
    empty = _post(sales["client"], path, {"text": "   "})
    assert empty.status_code == 422
    assert "请先写下备注" in empty.text
    too_long = _post(sales["client"], path, {"text": "长" * 2001})
    assert too_long.status_code == 422
    assert all_of(app, SalesNote) == []
    saved = _post(sales["client"], path, {"text": "下周三约了演示"})
    assert saved.status_code == 200
    assert [n.text for n in all_of(app, SalesNote)] == ["下周三约了演示"]
    assert any("sales.note" in e.payload for e in all_of(app, InboundEvent))


def test_a_task_needs_a_title_and_a_future_due_time(app, sales):
    path = f"/wecom/panel/{sales['channel']}/contact/{CUSTOMER}/task"
    past = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = _post(sales["client"], path, {"title": "发报价", "due": past})
    assert response.status_code == 422
    assert "截止时间已过" in response.text
    response = _post(sales["client"], path, {"title": "", "due": "2099-01-01T10:00"})
    assert response.status_code == 422
    assert "请写明要做什么" in response.text
    assert all_of(app, Task) == []
    response = _post(sales["client"], path, {"title": "发报价", "due": "2099-01-01T10:00"})
    assert response.status_code == 200
    (task,) = all_of(app, Task)
    assert (task.title, task.source, task.assignee_id, task.contact_id) == (
        "发报价",
        "manual",
        user_id(app, "sales"),
        sales["mine"],
    )
    assert task.due_at > utcnow()


def test_someone_elses_customer_cannot_be_noted_or_sent_to(app, sales):
    path = f"/wecom/panel/{sales['channel']}/contact/wmOther002/note"
    assert _post(sales["client"], path, {"text": "x"}).status_code == 403
    assert all_of(app, SalesNote) == []


def test_a_manual_tag_is_added_and_removed_and_queued_for_wecom(app, sales):
    synced = add_tag(app, "manual", "重点客户", sync_wecom=True)
    path = f"/wecom/panel/{sales['channel']}/contact/{CUSTOMER}/tags"
    response = _post(sales["client"], path, {"tag": str(synced)})
    assert response.status_code == 200, response.text
    assert "重点客户" in response.text
    items = all_of(app, TagSyncItem)
    assert [(i.subject, i.action) for i in items] == [(CUSTOMER, "add")]
    tag_id = int(re.search(r"/tags/(\d+)/remove", response.text).group(1))
    assert tag_id == synced
    removed = _post(sales["client"], f"{path}/{tag_id}/remove", {})
    assert removed.status_code == 200
    assert [(i.subject, i.action) for i in all_of(app, TagSyncItem)] == [(CUSTOMER, "remove")]
    assert "重点客户" not in removed.text.split("wp-tags")[1].split("</div>")[0]
    empty = _post(sales["client"], path, {"tag": "", "new_tag": ""})
    assert empty.status_code == 422


def test_signed_out_gets_401(app, sales, client):
    assert panel(client, sales["channel"]).status_code == 401


def test_score_sources_read_as_the_rules_interactions_not_their_keys(app, sales):
    with session_of(app) as session:
        ws = session.get(Contact, sales["mine"]).workspace_id
        added = Interaction(
            workspace_id=ws,
            contact_id=sales["mine"],
            channel_id=sales["channel"],
            kind="wecom.contact_added",
            properties={},
            occurred_at=utcnow(),
        )
        session.add(added)
        session.flush()
        Scorer.load(session, ws).score_interaction_ids([added.id])
        session.commit()
    page = panel(sales["client"], sales["channel"]).text
    sources = page.split("得分来源")[1].split("</section>")[0]
    assert "添加了企业微信员工" in sources and "+15" in sources
    assert "wecom_added" not in sources


def test_a_filtered_rule_names_its_filter():
    rules = {rule.key: rule for rule in DEFAULT_RULES}
    labels = score_rule_labels([rules["menu_demo"], rules["follow"], ScoreRule("odd", "x.y", 1)])
    assert labels["menu_demo"] == "Tapped a menu · BOOK_DEMO"
    assert labels["follow"] != "follow"
    assert labels["odd"] == "odd"  # a kind without a label: the key


def account_of(app, contact_id: int, owner_id: int | None = None) -> int:
    """The contact's account, given the owner."""
    with session_of(app) as session:
        account = session.get(Account, session.get(Contact, contact_id).account_id)
        account.owner_id = owner_id
        session.commit()
        return account.id


def opportunity_lines(page: str) -> list[list[str]]:
    block = re.search(r'<ul class="wp-list wp-opportunities">(.*?)</ul>', page, re.S)
    return [
        re.sub(r"<[^>]+>|\s+", " ", line).split()
        for line in re.findall(r"<li>(.*?)</li>", block.group(1) if block else "", re.S)
    ]


def test_the_account_block_lists_its_open_opportunities(app, sales):
    account_id = account_of(app, sales["mine"], owner_id=user_id(app, "sales"))
    make_opportunity(app, account_id, name="年度订阅", amount="1200000", stage="negotiation")
    make_opportunity(app, account_id, name="试点项目", amount="80000", stage="qualify")
    make_opportunity(app, account_id, name="旧单", amount="5000", stage="lost", lost_reason="预算")
    page = panel(sales["client"], sales["channel"]).text
    block = re.search(r'<ul class="wp-list wp-opportunities">(.*?)</ul>', page, re.S).group(1)
    lines = [
        re.sub(r"<[^>]+>|\s+", " ", line).split()
        for line in re.findall(r"<li>(.*?)</li>", block, re.S)
    ]
    assert lines == [["年度订阅", "商务谈判", "¥1,200,000"], ["试点项目", "需求确认", "¥80,000"]]


def test_another_sellers_account_shows_a_salesperson_only_their_own_opportunities(
    app, sales, signed_in
):
    """The contact is the salesperson's WeCom customer, the account another's: the account's
    deals are not theirs to see (the admin hides them too), save one they own."""
    other_seller = make_user(app, "sales", email="lisi@acme.example")
    account_id = account_of(app, sales["mine"], owner_id=other_seller)
    make_opportunity(app, account_id, name="年度订阅", amount="1200000", stage="negotiation")
    make_opportunity(
        app, account_id, name="他的单", amount="90000", owner_email="lisi@acme.example"
    )
    make_opportunity(app, account_id, name="我的单", owner_email="sales@acme.example")
    page = panel(sales["client"], sales["channel"]).text
    assert "华信科技" in page  # the account block itself is there
    assert opportunity_lines(page) == [["我的单", "需求确认", "¥100,000"]]
    assert "年度订阅" not in page and "他的单" not in page
    everything = opportunity_lines(panel(signed_in("marketer"), sales["channel"]).text)
    assert [line[0] for line in everything] == ["年度订阅", "我的单", "他的单"]
