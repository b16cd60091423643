"""WeCom member OAuth and JS-SDK tickets: the clients against the sandbox over HTTP."""

import hashlib
import threading
import urllib.parse

import fakeredis
import pytest

from wechat.clients import (
    RetryPolicy,
    TokenStore,
    WeChatApiError,
    WeChatClients,
    jsapi_signature,
    sign_jsapi,
)
from wechat.sandbox import wecom, wecom_client
from wechat.sandbox.core import Sandbox, Tenant

CORP_ID, AGENT_ID = "wwjssdktest000001", "1000002"
CONTACT_SECRET, AGENT_SECRET = "contact-secret", "agent-secret"
FAST = RetryPolicy(busy_retries=0, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def platform(platform):
    platform.reset()
    state = platform.state
    state.jsapi_tickets_per_hour_per_corp = Sandbox.JSAPI_TICKETS_PER_HOUR_PER_CORP
    state.jsapi_tickets_per_hour_per_app = Sandbox.JSAPI_TICKETS_PER_HOUR_PER_APP
    corp = state.add_tenant(
        Tenant(
            "wecom",
            CORP_ID,
            {"contact": CONTACT_SECRET, "agent": AGENT_SECRET},
            "tok",
            "T" * 43,
            agent_id=AGENT_ID,
        )
    )
    wecom.add_staff(state, corp, "zhangsan", "张三")
    return platform


@pytest.fixture
def store():
    return TokenStore(fakeredis.FakeRedis())


def app_client(platform, store):
    return WeChatClients(platform.url, store, FAST).wecom(CORP_ID, AGENT_SECRET)


def corp(platform):
    return platform.state.tenant(CORP_ID)


def test_tickets_are_fetched_once_and_shared_between_clients(platform, store):
    first, second = app_client(platform, store), app_client(platform, store)
    agent_ticket = first.agent_jsapi_ticket()
    corp_ticket = first.corp_jsapi_ticket()
    assert agent_ticket != corp_ticket
    # Another process's client (same store) reuses both.
    assert second.agent_jsapi_ticket() == agent_ticket
    assert second.corp_jsapi_ticket() == corp_ticket
    assert (first.ticket_fetches, second.ticket_fetches) == (2, 0)
    state = wecom_client.client_state(corp(platform))
    assert [t.value for t in state.agent_tickets] == [agent_ticket]
    assert [t.value for t in state.corp_tickets] == [corp_ticket]


def test_an_expired_ticket_is_fetched_again(platform, store):
    client = app_client(platform, store)
    old = client.agent_jsapi_ticket()
    platform.state.advance(wecom_client.TICKET_SECONDS + 1)
    # The cached copy outlives nothing: its TTL (7200 s less a margin) has run out too.
    store.delete(f"{CORP_ID}_{AGENT_SECRET[:10]}_agent_jsapi_ticket")
    platform.state.expire_tokens(CORP_ID)
    new = client.agent_jsapi_ticket()
    assert new != old
    assert client.ticket_fetches == 2


def test_concurrent_requests_fetch_one_ticket(platform, store):
    clients = [app_client(platform, store) for _ in range(8)]
    tickets, start = [], threading.Barrier(len(clients))

    def fetch(client):
        start.wait()
        tickets.append(client.agent_jsapi_ticket())

    threads = [threading.Thread(target=fetch, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(tickets) == 8 and len(set(tickets)) == 1
    assert sum(c.ticket_fetches for c in clients) == 1
    assert len(wecom_client.client_state(corp(platform)).app_ticket_fetches.times) == 1


def test_ticket_fetches_beyond_the_hourly_limit_are_refused(platform, store):
    platform.state.jsapi_tickets_per_hour_per_app = 2
    for _ in range(2):
        app_client(platform, TokenStore(fakeredis.FakeRedis())).agent_jsapi_ticket()
    with pytest.raises(WeChatApiError) as refused:
        app_client(platform, TokenStore(fakeredis.FakeRedis())).corp_jsapi_ticket()
    assert refused.value.errcode == 45009


def test_only_the_apps_token_fetches_tickets(platform, store):
    contact = WeChatClients(platform.url, store, FAST).wecom(CORP_ID, CONTACT_SECRET)
    with pytest.raises(WeChatApiError) as refused:
        contact.agent_jsapi_ticket()
    assert refused.value.errcode == 48002


def test_the_signature_is_sha1_of_the_ticket_nonce_time_and_url_without_fragment():
    expected = hashlib.sha1(
        b"jsapi_ticket=T1&noncestr=N1&timestamp=1700000000&url=https://h.example/p?a=1"
    ).hexdigest()
    assert jsapi_signature("T1", "N1", 1700000000, "https://h.example/p?a=1#frag") == expected
    signed = sign_jsapi("T1", "https://h.example/p?a=1#x", now=1700000000)
    assert signed["timestamp"] == 1700000000
    assert signed["signature"] == jsapi_signature(
        "T1", signed["nonceStr"], 1700000000, "https://h.example/p?a=1"
    )


def authorize(platform, store, **who):
    clients = WeChatClients(platform.url, store, FAST)
    url = clients.wecom_authorize_url(CORP_ID, AGENT_ID, "https://harpoon.example/back", "s-1")
    assert url.endswith("#wechat_redirect") and "agentid=1000002" in url
    parts = urllib.parse.urlsplit(url)
    query = f"{parts.query}&{urllib.parse.urlencode(who)}" if who else parts.query
    return platform.app.test_client().get(f"{parts.path}?{query}")


def code_of(answer) -> str:
    assert answer.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


def test_member_oauth_gives_a_members_userid_once(platform, store):
    code = code_of(authorize(platform, store, userid="zhangsan"))
    client = app_client(platform, store)
    member = client.member(code)
    assert (member.userid, member.openid) == ("zhangsan", "")
    with pytest.raises(WeChatApiError) as reused:
        client.member(code)
    assert reused.value.errcode == 40029


def test_member_oauth_gives_someone_outside_the_corp_an_openid(platform, store):
    member = app_client(platform, store).member(
        code_of(authorize(platform, store, userid="stranger"))
    )
    assert member.userid == "" and member.openid.startswith("o")


def test_a_member_oauth_code_expires_after_five_minutes(platform, store):
    code = code_of(authorize(platform, store, userid="zhangsan"))
    platform.state.advance(wecom_client.MEMBER_CODE_SECONDS + 1)
    platform.state.expire_tokens(CORP_ID)
    with pytest.raises(WeChatApiError) as expired:
        app_client(platform, store).member(code)
    assert expired.value.errcode == 40029


def test_member_oauth_asks_who_when_the_client_has_not_said(platform, store):
    answer = authorize(platform, store)
    assert answer.status_code == 200
    assert 'name="userid"' in answer.get_data(as_text=True)


def test_member_oauth_refuses_a_redirect_outside_the_trusted_domain(platform, store):
    sandbox = platform.app.test_client()
    sandbox.post(
        "/sandbox/wecom/toolbar",
        json={"corp_id": CORP_ID, "url": "https://app.example/wecom/1/sidebar"},
    )
    assert authorize(platform, store, userid="zhangsan").get_json()["errcode"] == 50001
