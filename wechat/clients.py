"""OA and WeCom API clients on wechatpy 2.0, for the real platform or the sandbox.

- One setting, `api_url`, sends every call (token and OAuth URLs included) to
  the sandbox; empty means the real platform.
- Access tokens live in one shared store (Redis, or fakeredis on the embedded
  default) and are refreshed under a lock, so N processes never fetch at once
  and never invalidate each other's tokens (the 40001 storm).
- Bounded retries: on 40001/40014/42001 refresh and replay once; on 45009 and
  -1 back off exponentially with jitter; then a WeChatApiError.
- WeCom JS-SDK tickets (the corp's and the app's) are kept and fetched the same way as
  tokens: shared, under a lock, refreshed before they expire (their fetches are rate
  limited: about 400 an hour per corp, 100 per app).
"""

import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from redis.exceptions import LockError
from wechatpy import WeChatClient as OAClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.work import WeChatClient as WeComClient

log = logging.getLogger(__name__)

REAL_HOSTS = {
    "https://api.weixin.qq.com": "oa",
    "https://open.weixin.qq.com": "open",
    "https://qyapi.weixin.qq.com": "wecom",
}
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
BUSY_ERRORS = frozenset({45009, -1})
OPENIDS_PER_TAGGING = 50
OPENIDS_PER_USER_BATCH = 100
TOKEN_TIMEOUT_SECONDS = 5


class WeChatApiError(Exception):
    """The platform refused a call, after Harpoon's retries."""

    def __init__(
        self,
        errcode: int | None,
        errmsg: str,
        path: str = "",
        answer: dict | None = None,
        *,
        token_failed: bool = False,
    ):
        super().__init__(f"{path}: {errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        # The refusal's whole body: some carry data (45065 "clientmsgid exist" has the msg_id).
        self.answer = answer or {}
        # Getting the call's access token failed: the call itself was never sent.
        self.token_failed = token_failed


def _answer(exc: WeChatClientException) -> dict:
    try:
        answer = exc.response.json()
    except (AttributeError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}


def platform_url(api_url: str, real_url: str) -> str:
    """The real URL, or its counterpart on the sandbox at `api_url`."""
    if not api_url:
        return real_url
    for host, prefix in REAL_HOSTS.items():
        if real_url.startswith(host):
            return f"{api_url.rstrip('/')}/{prefix}{real_url[len(host) :]}"
    return real_url


@dataclass(frozen=True)
class RetryPolicy:
    busy_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (attempt counts from 0)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class TokenStore:
    """Access tokens shared by every process, with a lock per token.

    Implements wechatpy's session-storage interface (get/set/delete) on a
    Redis connection; fakeredis serves the embedded default.
    """

    def __init__(self, redis, prefix: str = "harpoon:wechat"):
        self.redis = redis
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key, default=None):
        value = self.redis.get(self._key(key))
        return default if value is None else json.loads(value)

    def set(self, key, value, ttl=None):
        self.redis.set(self._key(key), json.dumps(value), ex=int(ttl) if ttl else None)

    def delete(self, key):
        self.redis.delete(self._key(key))

    def lock(self, key: str):
        # Held while one process fetches; the others wait, then read its token. Longer
        # than the worst fetch (4 tries of TOKEN_TIMEOUT_SECONDS plus backoff).
        return self.redis.lock(self._key(f"{key}:lock"), timeout=60, blocking_timeout=60)


class _SharedTokenMixin:
    """What Harpoon adds to a wechatpy client; see the module docstring."""

    TOKEN_URL = ""
    EXPIRY_MARGIN_SECONDS = 300  # refresh before the platform's expiry

    def _setup(self, api_url: str, store: TokenStore, retry: RetryPolicy) -> None:
        self.api_url = api_url
        self.store = store
        self.retry = retry
        self.API_BASE_URL = platform_url(api_url, type(self).API_BASE_URL)
        self.fetches = 0
        self.ticket_fetches = 0

    # --- tokens ---------------------------------------------------------

    @property
    def access_token(self) -> str:
        return self.store.get(self.access_token_key) or self._refresh_token(stale=None)

    def fetch_access_token(self):
        return self._refresh_token(stale=self.store.get(self.access_token_key))

    def _refresh_token(self, stale: str | None) -> str:
        """Fetch a new token unless another process already replaced `stale`."""
        with self.store.lock(self.access_token_key):
            current = self.store.get(self.access_token_key)
            if current and current != stale:
                return current
            result = self._call_token_endpoint()
            expires_in = int(result.get("expires_in", 7200))
            # Refresh early, but never keep a token past its life (WeCom may answer a short one).
            ttl = max(1, expires_in - min(self.EXPIRY_MARGIN_SECONDS, expires_in // 2))
            self.store.set(self.access_token_key, result["access_token"], ttl)
            self.fetches += 1
            return result["access_token"]

    def _call_token_endpoint(self) -> dict:
        url = platform_url(self.api_url, self.TOKEN_URL)
        for attempt in range(self.retry.busy_retries + 1):
            response = self._http.get(
                url, params=self._token_params(), timeout=TOKEN_TIMEOUT_SECONDS
            )
            response.raise_for_status()
            result = response.json()
            errcode = result.get("errcode", 0)
            if not errcode:
                return result
            if errcode not in BUSY_ERRORS or attempt == self.retry.busy_retries:
                raise WeChatApiError(errcode, result.get("errmsg", ""), "token", token_failed=True)
            time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    # --- calls ----------------------------------------------------------

    def _request(self, method, url_or_endpoint, **kwargs):
        url = self._url(url_or_endpoint, kwargs.pop("api_base_url", None))
        where = str(url_or_endpoint)
        refreshed = False
        busy_attempt = 0
        while True:
            attempt_kwargs = dict(kwargs, params=dict(kwargs.get("params") or {}))
            token = None  # until it is had, nothing of this call has been sent
            try:
                token = self.access_token
                attempt_kwargs["params"]["access_token"] = token
                return super()._request(method, url, **attempt_kwargs)
            except WeChatApiError:
                raise
            except WeChatClientException as exc:
                errcode = exc.errcode
                if errcode in TOKEN_ERRORS and not refreshed:
                    log.info("%s: token refused (%s), refreshing once", where, errcode)
                    refreshed = True
                    self._refresh_token_typed(stale=token, where=where)
                    continue
                if errcode in BUSY_ERRORS and busy_attempt < self.retry.busy_retries:
                    time.sleep(self.retry.delay(busy_attempt))
                    busy_attempt += 1
                    continue
                raise WeChatApiError(errcode, exc.errmsg or "", where, _answer(exc)) from exc
            except requests.RequestException as exc:
                # A POST whose answer timed out may have been carried out: never replay it.
                replayable = method.lower() == "get" or isinstance(exc, requests.ConnectionError)
                if not replayable or busy_attempt >= self.retry.busy_retries:
                    what = "network" if token is not None else "token fetch"
                    raise WeChatApiError(
                        None, f"{what}: {exc}", where, token_failed=token is None
                    ) from exc
                time.sleep(self.retry.delay(busy_attempt))
                busy_attempt += 1
            except (ValueError, LockError) as exc:  # a garbled answer, a lock not had
                raise WeChatApiError(
                    None, f"{type(exc).__name__}: {exc}", where, token_failed=token is None
                ) from exc

    def _url(self, url_or_endpoint: str, api_base_url: str | None) -> str:
        """Endpoints are joined to the API group's base (some groups have their own)."""
        if not url_or_endpoint.startswith(("http://", "https://")):
            base = api_base_url or type(self).API_BASE_URL
            url_or_endpoint = f"{base}{url_or_endpoint}"
        return platform_url(self.api_url, url_or_endpoint)

    def _refresh_token_typed(self, stale: str, where: str) -> str:
        try:
            return self._refresh_token(stale=stale)
        except (requests.RequestException, ValueError, LockError) as exc:
            raise WeChatApiError(None, f"token refresh: {exc}", where, token_failed=True) from exc


@dataclass(frozen=True)
class WeComMember:
    """Who WeCom's member OAuth says opened the page: a member of the corp (`userid`), or
    someone who is not (`openid`)."""

    userid: str = ""
    openid: str = ""


def jsapi_signature(ticket: str, nonce_str: str, timestamp: int | str, url: str) -> str:
    """The JS-SDK signature of `config` and `agentConfig`; the URL's #fragment is not signed."""
    url = url.split("#", 1)[0]
    plain = f"jsapi_ticket={ticket}&noncestr={nonce_str}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(plain.encode()).hexdigest()


def sign_jsapi(ticket: str, url: str, now: float | None = None) -> dict:
    """What `ww.register`'s getConfigSignature / getAgentConfigSignature must answer."""
    timestamp = int(now if now is not None else time.time())
    nonce_str = secrets.token_urlsafe(12)
    return {
        "timestamp": timestamp,
        "nonceStr": nonce_str,
        "signature": jsapi_signature(ticket, nonce_str, timestamp, url),
    }


class HarpoonOAClient(_SharedTokenMixin, OAClient):
    TOKEN_URL = "https://api.weixin.qq.com/cgi-bin/token"

    def __init__(self, appid, secret, *, api_url, store, retry, timeout=10):
        super().__init__(appid, secret, session=store, timeout=timeout, auto_retry=False)
        self._setup(api_url, store, retry)

    def _token_params(self) -> dict:
        return {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}


class HarpoonWeComClient(_SharedTokenMixin, WeComClient):
    TOKEN_URL = "https://qyapi.weixin.qq.com/cgi-bin/gettoken"

    def __init__(self, corp_id, secret, *, api_url, store, retry, timeout=10):
        super().__init__(corp_id, secret, session=store, timeout=timeout, auto_retry=False)
        self._setup(api_url, store, retry)

    def _token_params(self) -> dict:
        return {"corpid": self.corp_id, "corpsecret": self.secret}

    # --- member OAuth and JS-SDK tickets (call them on the app's client: agent secret) ---

    def member(self, code: str) -> WeComMember:
        """Exchange a member OAuth code (single use, 5 minutes) for who opened the page."""
        result = self._request("get", "auth/getuserinfo", params={"code": code})
        userid = result.get("userid") or result.get("UserId") or ""
        openid = result.get("openid") or result.get("OpenId") or ""
        if not (userid or openid):
            raise WeChatApiError(None, "neither userid nor openid", "auth/getuserinfo", result)
        return WeComMember(userid=userid, openid=openid)

    def corp_jsapi_ticket(self) -> str:
        """The corp's ticket, which signs `wx.config`."""
        return self._ticket(f"{self.corp_id}_jsapi_ticket", "get_jsapi_ticket", {})

    def agent_jsapi_ticket(self) -> str:
        """This app's ticket, which signs `wx.agentConfig`."""
        key = f"{self.corp_id}_{self.secret[:10]}_agent_jsapi_ticket"
        return self._ticket(key, "ticket/get", {"type": "agent_config"})

    def _ticket(self, key: str, endpoint: str, params: dict) -> str:
        """A shared ticket, fetched by one process at a time (another's fetch is reused)."""
        ticket = self.store.get(key)
        if ticket:
            return ticket
        try:
            with self.store.lock(key):
                ticket = self.store.get(key)
                if ticket:
                    return ticket
                result = self._request("get", endpoint, params=params)
                expires_in = int(result.get("expires_in", 7200))
                ttl = max(1, expires_in - min(self.EXPIRY_MARGIN_SECONDS, expires_in // 2))
                self.store.set(key, result["ticket"], ttl)
                self.ticket_fetches += 1
                return result["ticket"]
        except (LockError, KeyError, ValueError) as exc:
            raise WeChatApiError(None, f"{type(exc).__name__}: {exc}", endpoint) from exc


class WeChatClients:
    """Builds clients that share one token store, base URL and retry policy."""

    def __init__(self, api_url: str, store: TokenStore, retry: RetryPolicy | None = None):
        self.api_url = api_url
        self.store = store
        self.retry = retry or RetryPolicy()
        self._http = requests.Session()

    def oa(self, appid: str, secret: str) -> HarpoonOAClient:
        return HarpoonOAClient(
            appid, secret, api_url=self.api_url, store=self.store, retry=self.retry
        )

    def wecom(self, corp_id: str, secret: str) -> HarpoonWeComClient:
        return HarpoonWeComClient(
            corp_id, secret, api_url=self.api_url, store=self.store, retry=self.retry
        )

    def oauth_authorize_url(self, appid: str, redirect_uri: str, state: str = "") -> str:
        """Where to send a reader so WeChat tells us their openid (snsapi_base, silent)."""
        query = urlencode(
            {
                "appid": appid,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            }
        )
        base = platform_url(self.api_url, "https://open.weixin.qq.com/connect/oauth2/authorize")
        return f"{base}?{query}#wechat_redirect"

    def wecom_authorize_url(
        self, corp_id: str, agent_id: str, redirect_uri: str, state: str = ""
    ) -> str:
        """Where to send a member in WeCom's browser so WeCom tells us their userid (silent)."""
        query = urlencode(
            {
                "appid": corp_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
                "agentid": agent_id,
            }
        )
        base = platform_url(self.api_url, "https://open.weixin.qq.com/connect/oauth2/authorize")
        return f"{base}?{query}#wechat_redirect"

    def oauth_openid(self, appid: str, secret: str, code: str) -> str:
        """Exchange a single-use OAuth code (valid 5 minutes) for the reader's openid."""
        url = platform_url(self.api_url, "https://api.weixin.qq.com/sns/oauth2/access_token")
        params = {"appid": appid, "secret": secret, "code": code}
        try:
            response = self._http.get(
                url, params=params | {"grant_type": "authorization_code"}, timeout=10
            )
            response.raise_for_status()
            result = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatApiError(None, f"network: {exc}", "sns/oauth2") from exc
        if result.get("errcode"):
            raise WeChatApiError(result["errcode"], result.get("errmsg", ""), "sns/oauth2")
        return result["openid"]


def chunks(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tag_openids(
    client: OAClient, tag_id: int, openids: Iterable[str], *, untag: bool = False
) -> int:
    """Tag (or untag) any number of followers, 50 per call as the platform allows."""
    call = client.tag.untag_user if untag else client.tag.tag_user
    count = 0
    for batch in chunks(openids, OPENIDS_PER_TAGGING):
        call(tag_id, batch)
        count += len(batch)
    return count


def user_infos(client: OAClient, openids: Iterable[str]) -> list[dict]:
    """user/info for any number of followers, 100 per batchget call."""
    infos = []
    for batch in chunks(openids, OPENIDS_PER_USER_BATCH):
        infos.extend(client.user.get_batch(batch))
    return infos
