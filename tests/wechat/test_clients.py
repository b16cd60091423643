"""The API clients against the sandbox over HTTP: tokens, retries, chunking, faults."""

import multiprocessing
import os
import time
import urllib.parse
import uuid

import fakeredis
import pytest
import redis

from tests.factories import add_followers
from wechat.clients import (
    RetryPolicy,
    TokenStore,
    WeChatApiError,
    WeChatClients,
    platform_url,
    tag_openids,
    user_infos,
)
from wechat.sandbox.core import Fault, Sandbox, Tenant

APP_ID, SECRET = "wxclienttest00001", "client-secret"
CORP_ID, CONTACT_SECRET = "wwclienttest00001", "contact-secret"
FAST = RetryPolicy(busy_retries=3, base_delay=0.001, max_delay=0.01)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.fixture
def platform(platform):
    """conftest's sandbox, emptied but for this module's OA and corp."""
    platform.reset()
    state = platform.state
    state.OLD_TOKEN_GRACE_SECONDS = Sandbox.OLD_TOKEN_GRACE_SECONDS  # a test may shorten it
    state.add_tenant(Tenant("oa", APP_ID, {"app": SECRET}, "tok", "T" * 43))
    state.add_tenant(Tenant("wecom", CORP_ID, {"contact": CONTACT_SECRET}, "tok", "T" * 43))
    return platform


@pytest.fixture
def clients(platform):
    return WeChatClients(platform.url, TokenStore(fakeredis.FakeRedis()), FAST)


def test_platform_url_rewrites_every_host():
    sandbox = "http://127.0.0.1:9"
    assert platform_url("", "https://api.weixin.qq.com/cgi-bin/token") == (
        "https://api.weixin.qq.com/cgi-bin/token"
    )
    assert platform_url(sandbox, "https://api.weixin.qq.com/cgi-bin/token") == (
        "http://127.0.0.1:9/oa/cgi-bin/token"
    )
    assert platform_url(sandbox, "https://qyapi.weixin.qq.com/cgi-bin/gettoken") == (
        "http://127.0.0.1:9/wecom/cgi-bin/gettoken"
    )
    assert platform_url(sandbox, "https://open.weixin.qq.com/connect/oauth2/authorize") == (
        "http://127.0.0.1:9/open/connect/oauth2/authorize"
    )


def test_token_is_fetched_once_and_shared(clients, platform):
    first, second = clients.oa(APP_ID, SECRET), clients.oa(APP_ID, SECRET)
    assert first.access_token == second.access_token
    assert platform.state.tenant(APP_ID).token_fetches == 1


def test_expired_token_is_refreshed_and_the_call_replayed_once(clients, platform):
    add_followers(platform, 1, app_id=APP_ID)
    client = clients.oa(APP_ID, SECRET)
    assert client.user.get("o_0000")["openid"] == "o_0000"
    platform.state.expire_tokens(APP_ID)
    assert client.user.get("o_0000")["openid"] == "o_0000"
    assert platform.state.tenant(APP_ID).token_fetches == 2
    assert platform.state.error_counts[42001] == 1


def test_a_token_refused_twice_is_an_error_not_a_loop(clients, platform):
    client = clients.oa(APP_ID, SECRET)
    platform.state.add_fault(Fault(path="/oa/cgi-bin/user/info", errcode=40001, times=5))
    with pytest.raises(WeChatApiError) as raised:
        client.user.get("o_0000")
    assert raised.value.errcode == 40001
    assert platform.state.tenant(APP_ID).token_fetches == 2  # first fetch + one refresh


@pytest.mark.parametrize("errcode", [45009, -1])
def test_busy_answers_are_retried_with_backoff(clients, platform, errcode):
    add_followers(platform, 1, app_id=APP_ID)
    platform.state.add_fault(Fault(path="/oa/cgi-bin/user/info", errcode=errcode, times=2))
    assert clients.oa(APP_ID, SECRET).user.get("o_0000")["openid"] == "o_0000"


def test_busy_beyond_the_retries_is_a_typed_error(clients, platform):
    platform.state.add_fault(Fault(path="/oa/cgi-bin/user/info", errcode=45009, times=10))
    with pytest.raises(WeChatApiError) as raised:
        clients.oa(APP_ID, SECRET).user.get("o_0000")
    assert raised.value.errcode == 45009
    assert platform.state.error_counts[45009] == 4  # the call + 3 retries


def test_other_errors_are_raised_at_once(clients, platform):
    with pytest.raises(WeChatApiError) as raised:
        clients.oa(APP_ID, SECRET).user.get("o_unknown")
    assert raised.value.errcode == 40003


def test_tagging_and_user_info_are_chunked_to_platform_limits(clients, platform):
    add_followers(platform, 130, app_id=APP_ID)
    client = clients.oa(APP_ID, SECRET)
    tag_id = client.tag.create("CIO")["id"]
    openids = [f"o_{n:04d}" for n in range(130)]
    assert tag_openids(client, tag_id, openids) == 130  # 3 calls: 50 + 50 + 30
    infos = user_infos(client, openids)  # 2 calls: 100 + 30
    assert len(infos) == 130
    assert all(tag_id in info["tagid_list"] for info in infos)
    assert tag_openids(client, tag_id, openids[:60], untag=True) == 60
    untagged = user_infos(client, openids)
    assert sum(tag_id in info["tagid_list"] for info in untagged) == 70


def test_wecom_client_uses_the_sandbox(clients, platform):
    client = clients.wecom(CORP_ID, CONTACT_SECRET)
    assert client.external_contact.get_follow_user_list()["errcode"] == 0


def _hammer(api_url, redis_url, prefix, calls, results):
    store = TokenStore(redis.Redis.from_url(redis_url), prefix=prefix)
    client = WeChatClients(api_url, store, FAST).oa(APP_ID, SECRET)
    errors = 0
    for _ in range(calls):
        try:
            client.user.get("o_0000")
        except WeChatApiError:
            errors += 1
    results.put(errors)


def test_four_processes_share_one_token_without_40001s(platform):
    if not TEST_REDIS_URL:
        pytest.skip("processes share tokens through Redis (TEST_REDIS_URL)")
    add_followers(platform, 1, app_id=APP_ID)
    platform.state.OLD_TOKEN_GRACE_SECONDS = 0  # a second fetch would break the first at once
    prefix = f"harpoon-test-{uuid.uuid4().hex[:8]}:wechat"  # no token left by an earlier run
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(platform.url, TEST_REDIS_URL, prefix, 25, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    errors = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert errors == [0, 0, 0, 0]
    assert platform.state.tenant(APP_ID).token_fetches == 1
    assert platform.state.error_counts[40001] == 0


def test_backoff_grows_exponentially_with_full_jitter():
    policy = RetryPolicy(busy_retries=5, base_delay=0.1, max_delay=1.0)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range


class RecordingPolicy(RetryPolicy):
    """The real policy, noting which backoff steps were taken."""

    def __init__(self):
        super().__init__(busy_retries=3, base_delay=0.001, max_delay=0.01)
        object.__setattr__(self, "steps", [])

    def delay(self, attempt):
        self.steps.append(attempt)
        return super().delay(attempt)


def test_each_busy_answer_backs_off_one_step_further(platform):
    add_followers(platform, 1, app_id=APP_ID)
    policy = RecordingPolicy()
    client = WeChatClients(platform.url, TokenStore(fakeredis.FakeRedis()), policy).oa(
        APP_ID, SECRET
    )
    platform.state.add_fault(Fault(path="/oa/cgi-bin/user/info", errcode=-1, times=3))
    assert client.user.get("o_0000")["openid"] == "o_0000"
    assert policy.steps == [0, 1, 2]


def test_malformed_token_answer_40014_is_refreshed_once(clients, platform):
    add_followers(platform, 1, app_id=APP_ID)
    client = clients.oa(APP_ID, SECRET)
    clients.store.set(client.access_token_key, "garbled", 600)
    assert client.user.get("o_0000")["openid"] == "o_0000"
    assert platform.state.error_counts[40014] == 1


def test_api_groups_with_their_own_base_url_reach_the_sandbox(clients, platform):
    client = clients.oa(APP_ID, SECRET)
    template_id = client.template.get("TM00015")  # wechatpy posts to its own absolute URL
    assert template_id
    assert platform.state.error_counts == {}


def test_a_post_whose_answer_timed_out_is_not_replayed(clients, platform):
    add_followers(platform, 1, app_id=APP_ID)
    client = clients.oa(APP_ID, SECRET)
    client.access_token  # noqa: B018
    client.timeout = 0.2
    platform.state.add_fault(Fault(path="/oa/cgi-bin/tags/create", latency_ms=600, times=5))
    with pytest.raises(WeChatApiError, match="network"):
        client.tag.create("VIP")
    time.sleep(0.7)  # let the slow request finish on the sandbox
    created = [t["name"] for t in client.tag.get()]
    assert created == ["VIP"]  # the one request reached the platform, and only once


def test_network_failures_are_typed(platform):
    dead = WeChatClients("http://127.0.0.1:9", TokenStore(fakeredis.FakeRedis()), FAST)
    with pytest.raises(WeChatApiError) as raised:
        dead.oa(APP_ID, SECRET).user.get("o_0000")
    assert raised.value.errcode is None


def test_oauth_gives_the_readers_openid(clients, platform):
    add_followers(platform, 1, app_id=APP_ID)
    url = clients.oauth_authorize_url(APP_ID, "https://harpoon.example/read?a=1", state="art-7")
    parts = urllib.parse.urlsplit(url)
    sandbox = platform.app.test_client()
    answer = sandbox.get(f"{parts.path}?{parts.query}&openid=o_0000")
    assert answer.status_code == 302
    redirect = urllib.parse.urlsplit(answer.headers["Location"])
    query = urllib.parse.parse_qs(redirect.query)
    assert query["state"] == ["art-7"]
    assert clients.oauth_openid(APP_ID, SECRET, query["code"][0]) == "o_0000"
    with pytest.raises(WeChatApiError) as reused:
        clients.oauth_openid(APP_ID, SECRET, query["code"][0])
    assert reused.value.errcode == 40163
