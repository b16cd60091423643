"""The sandbox's shared machinery: tenants, access tokens, errors, faults, the clock,
and delivery of signed callbacks to the app under test.

The platform modules (oa.py, wecom.py) keep their own state on a Tenant's
`data` and answer with `ok()` or raise `ApiError`, as the real APIs do.
"""

import json
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field

from flask import Blueprint, Response, current_app, jsonify, request

from wechat import simulate

OA = "oa"
WECOM = "wecom"


class ApiError(Exception):
    """An errcode answer: HTTP 200 with {"errcode", "errmsg"}, as WeChat does."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def ok(**data) -> Response:
    return jsonify({"errcode": 0, "errmsg": "ok", **data})


def body() -> dict:
    """The JSON body; WeChat answers 47001 to anything else."""
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(47001, "data format error")
    return data


@dataclass
class Token:
    value: str
    expires_at: float


@dataclass
class Tenant:
    """An OA (app id) or a WeCom corp (corp id) registered in the sandbox."""

    kind: str
    app_id: str
    # OA: {"app": AppSecret}; WeCom: {"contact": secret, "agent": secret, ...}
    secrets: dict[str, str]
    token: str
    aes_key: str
    callback_url: str = ""
    account_type: str = "service"  # OA only: service or subscription
    agent_id: str = ""  # WeCom only: the app that messages staff
    tokens: dict[str, list[Token]] = field(default_factory=dict)  # per secret name
    token_fetches: int = 0  # new tokens issued, ever
    token_fetches_today: int = 0
    token_fetch_day: int = 0
    data: dict = field(default_factory=dict)  # the platform module's own state

    @property
    def credentials(self) -> simulate.Credentials:
        return simulate.Credentials(
            self.app_id, self.token, self.aes_key, original_id=f"gh_{self.app_id[-12:]}"
        )


@dataclass
class Fault:
    path: str  # a path prefix, or "*"
    errcode: int = 0
    times: int = 1
    latency_ms: int = 0
    params: dict[str, str] | None = None  # only calls with these query parameters


@dataclass
class Delivery:
    tenant: str
    xml: str
    status: int | None = None
    answer: str = ""
    error: str = ""
    attempts: int = 0  # retries after the first try
    done: bool = False  # no more tries will be made

    @property
    def accepted(self) -> bool:
        """200 with `success`, an empty body or a passive reply, as WeChat requires."""
        answer = self.answer.strip()
        return self.status == 200 and (answer in ("", "success") or answer.startswith("<xml>"))


class Sandbox:
    """All sandbox state, behind one lock (the server is threaded)."""

    TOKEN_SECONDS = 7200
    OLD_TOKEN_GRACE_SECONDS = 300
    TOKEN_FETCHES_PER_DAY = 2000
    TOKEN_LENGTH = 32
    # WeChat retries a callback three times when the answer is late, not 200 or invalid.
    DELIVERY_RETRIES = 3
    DELIVERY_RETRY_SECONDS = 0.5
    OUTBOX_LIMIT = 10_000
    # JS-SDK ticket fetches an hour (WECHAT.md: uncertain); POST /sandbox/wecom/limits.
    JSAPI_TICKETS_PER_HOUR_PER_CORP = 400
    JSAPI_TICKETS_PER_HOUR_PER_APP = 100

    def __init__(self, callback_senders: int = 1):
        self.lock = threading.RLock()
        self.jsapi_tickets_per_hour_per_corp = self.JSAPI_TICKETS_PER_HOUR_PER_CORP
        self.jsapi_tickets_per_hour_per_app = self.JSAPI_TICKETS_PER_HOUR_PER_APP
        self.tenants: dict[str, Tenant] = {}
        self.faults: list[Fault] = []
        self.clock_offset = 0.0
        self.error_counts: Counter[int] = Counter()  # errcodes answered, for tests
        # The latest callbacks, for inspection; a long demo keeps only these.
        self.deliveries: deque[Delivery] = deque(maxlen=5000)
        self._outbox: queue.Queue[Delivery] = queue.Queue(maxsize=self.OUTBOX_LIMIT)
        # One sender keeps callbacks in order (tests rely on it); WeChat itself delivers
        # in parallel, which a load bench needs to reproduce.
        self.callback_senders = callback_senders
        self._senders: list[threading.Thread] = []

    # --- time -----------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    # --- tenants and tokens ---------------------------------------------

    def add_tenant(self, tenant: Tenant) -> Tenant:
        with self.lock:
            self.tenants[tenant.app_id] = tenant
        return tenant

    def tenant(self, app_id: str) -> Tenant:
        with self.lock:
            tenant = self.tenants.get(app_id)
        if tenant is None:
            raise ApiError(40013, "invalid appid")
        return tenant

    def issue_token(self, tenant: Tenant, secret_name: str, *, reuse: bool) -> Token:
        """OA: every fetch is a new token, the old one valid for a grace period.
        WeCom (reuse=True): the same token while it is valid."""
        with self.lock:
            now = self.now()
            issued = tenant.tokens.setdefault(secret_name, [])
            live = [t for t in issued if t.expires_at > now]
            if reuse and live:
                return live[-1]
            today = int(now // 86400)
            if tenant.token_fetch_day != today:
                tenant.token_fetch_day, tenant.token_fetches_today = today, 0
            if tenant.token_fetches_today >= self.TOKEN_FETCHES_PER_DAY:
                raise ApiError(45009, "reach max api daily quota limit")
            tenant.token_fetches_today += 1
            tenant.token_fetches += 1
            for old in live:
                old.expires_at = min(old.expires_at, now + self.OLD_TOKEN_GRACE_SECONDS)
            token = Token(
                secrets.token_urlsafe(self.TOKEN_LENGTH * 3 // 4), now + self.TOKEN_SECONDS
            )
            issued.append(token)
            del issued[:-5]
            return token

    def authenticate(self, kind: str, access_token: str | None) -> tuple[Tenant, str]:
        """The tenant and secret name an access token belongs to, or 40014/42001."""
        if not access_token:
            raise ApiError(41001, "access_token missing")
        if len(access_token) != self.TOKEN_LENGTH:
            raise ApiError(40014, "invalid access_token")
        with self.lock:
            now = self.now()
            for tenant in self.tenants.values():
                if tenant.kind != kind:
                    continue
                for secret_name, issued in tenant.tokens.items():
                    for token in issued:
                        if token.value == access_token:
                            if token.expires_at <= now:
                                raise ApiError(42001, "access_token expired")
                            return tenant, secret_name
        raise ApiError(40001, "invalid credential, access_token is invalid or not latest")

    def expire_tokens(self, app_id: str | None = None) -> None:
        with self.lock:
            for tenant in self.tenants.values():
                if app_id in (None, tenant.app_id):
                    for issued in tenant.tokens.values():
                        for token in issued:
                            token.expires_at = self.now()

    # --- faults ---------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str, params: dict[str, str] | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.params and any(
                    (params or {}).get(k) != v for k, v in fault.params.items()
                ):
                    continue
                if fault.path == "*" or path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # --- callbacks to the app under test --------------------------------

    def deliver(self, tenant: Tenant, xml: str) -> Delivery:
        """Queue a signed, encrypted callback to the tenant's callback URL."""
        delivery = Delivery(tenant.app_id, xml)
        with self.lock:
            self.deliveries.append(delivery)
            if not self._senders:
                self._senders = [
                    threading.Thread(
                        target=self._send_forever, name=f"sandbox-callbacks-{n}", daemon=True
                    )
                    for n in range(self.callback_senders)
                ]
                for sender in self._senders:
                    sender.start()
        try:
            self._outbox.put_nowait(delivery)
        except queue.Full:  # the app under test stalled: drop, as a dead platform link would
            delivery.error, delivery.done = "sandbox outbox full", True
        return delivery

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until every queued callback has been answered (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(d.done for d in self.deliveries):
                    return list(self.deliveries)
            time.sleep(0.01)
        raise TimeoutError("sandbox callbacks still unanswered")

    def _send_forever(self) -> None:
        while True:
            delivery = self._outbox.get()
            for attempt in range(1 + self.DELIVERY_RETRIES):
                try:
                    self._send(delivery)
                except Exception as exc:  # the sender must outlive any one callback
                    delivery.error = f"{type(exc).__name__}: {exc}"
                if delivery.accepted or delivery.error == "no callback URL":
                    break
                if attempt < self.DELIVERY_RETRIES:
                    delivery.attempts += 1
                    time.sleep(self.DELIVERY_RETRY_SECONDS)
            delivery.done = True

    def _send(self, delivery: Delivery) -> None:
        delivery.status, delivery.answer, delivery.error = None, "", ""
        tenant = self.tenant(delivery.tenant)
        if not tenant.callback_url:
            delivery.error = "no callback URL"
            return
        if tenant.kind == OA:
            callback = simulate.oa_message(tenant.credentials, delivery.xml, timestamp=self._ts())
        else:
            callback = simulate.wecom_message(
                tenant.credentials, delivery.xml, agent_id=tenant.agent_id, timestamp=self._ts()
            )
        req = urllib.request.Request(
            f"{tenant.callback_url}?{callback.query}",
            data=callback.body,
            headers={"Content-Type": "text/xml"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                delivery.answer = response.read().decode("utf-8", "replace")
                delivery.status = response.status
        except urllib.error.HTTPError as exc:
            delivery.status = exc.code
            delivery.answer = exc.read().decode("utf-8", "replace")
        except OSError as exc:
            delivery.error = str(exc)

    def _ts(self) -> int:
        return int(self.now())


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


# --- the control and inspection API for tests, the demo and developers ------

control = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")


@control.post("/tenants")
def add_tenant():
    """Register an OA or WeCom corp: {kind, app_id, secrets, token, aes_key, callback_url, ...}."""
    data = request.get_json(force=True)
    allowed = {"kind", "app_id", "secrets", "token", "aes_key", "callback_url"}
    allowed |= {"account_type", "agent_id"}
    tenant = sandbox().add_tenant(Tenant(**{k: v for k, v in data.items() if k in allowed}))
    return jsonify(app_id=tenant.app_id, kind=tenant.kind)


@control.post("/faults")
def add_fault():
    """Inject: {"path": "/oa/cgi-bin/tags" or "*", "errcode": 45009, "times": 2}; with
    "params": {"external_userid": "wm_x"}, only calls carrying those query parameters."""
    data = request.get_json(force=True)
    sandbox().add_fault(Fault(**data))
    return jsonify(ok=True)


@control.post("/clock")
def advance_clock():
    sandbox().advance(float(request.get_json(force=True)["advance"]))
    return jsonify(now=sandbox().now())


@control.post("/tokens/expire")
def expire_tokens():
    sandbox().expire_tokens((request.get_json(silent=True) or {}).get("app_id"))
    return jsonify(ok=True)


@control.get("/deliveries")
def deliveries():
    with sandbox().lock:
        return jsonify([vars(d) for d in sandbox().deliveries])


def apply_faults() -> Response | None:
    """before_request: an injected latency or errcode for this path."""
    if request.path.startswith("/sandbox"):
        return None
    fault = sandbox().take_fault(request.path, request.args.to_dict())
    if fault is None:
        return None
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if fault.errcode:
        with sandbox().lock:
            sandbox().error_counts[fault.errcode] += 1
        messages = {45009: "reach max api daily quota limit", -1: "system error"}
        payload = {"errcode": fault.errcode, "errmsg": messages.get(fault.errcode, "injected")}
        return Response(json.dumps(payload), mimetype="application/json")
    return None


def api_error(error: ApiError) -> Response:
    with sandbox().lock:
        sandbox().error_counts[error.errcode] += 1
    return jsonify(errcode=error.errcode, errmsg=error.errmsg)
