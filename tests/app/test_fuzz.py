"""Property-based fuzzing of every surface a stranger reaches: the callbacks (OA plaintext
and safe mode, WeCom; signed garbage and unsigned garbage, GET and POST, odd query
strings), the touchpoint API and the readers' pages (links, hosted pages, beacons, forms).

Properties: no answer is a 5xx; a refused request (4xx) stores nothing; whatever a
callback accepts, the drain can normalize. Examples per endpoint come from the
"harpoon" Hypothesis profile (tests/conftest.py), derandomized, so CI runs the same
requests every time; HYPOTHESIS_PROFILE=thorough runs more. With `-s`, the figures per
endpoint (requests, accepted, 5xx, stored for refused) print at the end.
"""

import json
import re
import time
from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.admin import limiter
from crm.api_keys import create_api_key
from crm.channels import workspace_named
from crm.touchpoints import KINDS
from models import FormSubmission, InboundEvent, PageView
from tests.factories import make_channel
from tests.helpers import OA_CREDS, WECOM_CREDS, harpoon_of, open_form_outside_wechat
from wechat import simulate
from wechat.events import normalize

STORED = (InboundEvent, PageView, FormSubmission)

# --- what a stranger sends ---------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
odd_text = st.one_of(
    text, st.sampled_from(["\x00", "%00", "%ff", "%C3", "中文", "", " ", "&", "="])
)
element_names = st.one_of(
    st.sampled_from(
        [
            "ToUserName",
            "FromUserName",
            "CreateTime",
            "MsgType",
            "Event",
            "EventKey",
            "Content",
            "MsgId",
            "Ticket",
            "ScanCodeInfo",
            "ChangeType",
            "UserID",
            "ExternalUserID",
            "Latitude",
            "Encrypt",
        ]
    ),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True),
)
element_values = st.one_of(
    text.map(lambda t: f"<![CDATA[{t.replace(']]>', '')}]]>"),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["event", "text", "subscribe", "CLICK", "change_external_contact", ""]),
    text.map(lambda t: f"<b>{t}</b>"),
    text,
)


def _cdata(value: str) -> str:
    return f"<![CDATA[{value}]]>"


# Documents the platforms send, element by element: the fuzzer starts from one and bends it.
SENT_DOCUMENTS = [
    {"MsgType": "text", "Content": _cdata("你好"), "MsgId": "9001"},
    {"MsgType": "event", "Event": _cdata("CLICK"), "EventKey": _cdata("menu_ai")},
    {"MsgType": "event", "Event": _cdata("subscribe"), "EventKey": _cdata("qrscene_expo")},
    {
        "MsgType": "event",
        "Event": _cdata("scancode_push"),
        "EventKey": _cdata("scan"),
        "ScanCodeInfo": "<ScanType>qrcode</ScanType><ScanResult>B-42</ScanResult>",
    },
    {
        "MsgType": "event",
        "Event": _cdata("change_external_contact"),
        "ChangeType": _cdata("add_external_contact"),
        "UserID": _cdata("zhangsan"),
        "ExternalUserID": _cdata("wm_fuzz"),
    },
]
kept = st.integers(0, 9).map(lambda n: n < 8)


@st.composite
def xml_documents(draw) -> str:
    """A document as sent, with elements dropped, changed (text, numbers, nesting, junk) or
    added, sometimes an attribute, sometimes not well-formed."""
    header = {"ToUserName": _cdata("gh_harpoon"), "FromUserName": _cdata("o_fuzz")}
    header["CreateTime"] = str(int(time.time()))
    sent = {**header, **draw(st.sampled_from(SENT_DOCUMENTS))}
    elements = [
        (name, value if draw(kept) else draw(element_values))
        for name, value in sent.items()
        if draw(kept)
    ]
    elements += draw(st.lists(st.tuples(element_names, element_values), max_size=3))
    attribute = draw(st.sampled_from(["", "", "", ' a="1"']))
    body = "".join(f"<{name}{attribute}>{value}</{name}>" for name, value in elements)
    frame = draw(st.sampled_from(["<xml>{}</xml>"] * 5 + ["<xml>{}", "{}", "<root>{}</root>"]))
    return frame.format(body)


raw_queries = st.lists(st.tuples(odd_text, odd_text), max_size=6).map(
    lambda pairs: "&".join(f"{quote(k, safe='%')}={quote(v, safe='%+/=')}" for k, v in pairs)
)
raw_bodies = st.one_of(st.binary(max_size=300), xml_documents().map(str.encode))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
touchpoints = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.sampled_from(list(KINDS)), text),
        "email": st.one_of(st.emails(), text),
    },
    optional={
        "phone": text,
        "openid": text,
        "external_id": text,
        "channel_id": st.one_of(st.integers(), text),
        "occurred_at": st.one_of(
            text, st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
        ),
        "minutes": st.one_of(st.floats(), text),
        "person": json_values,
        "properties": json_values,
    },
)
api_documents = st.one_of(
    st.fixed_dictionaries({"items": st.lists(touchpoints, min_size=1, max_size=4)}),
    json_values,
)

# --- the properties ---------------------------------------------------------------------

FIGURES: Counter = Counter()


def stored(app) -> dict[str, int]:
    with harpoon_of(app).db.session() as session:
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in STORED
        }


def new_payloads(app, after_id: int) -> list[tuple[str, str]]:
    with harpoon_of(app).db.session() as session:
        return session.execute(
            select(InboundEvent.platform, InboundEvent.payload).where(InboundEvent.id > after_id)
        ).all()


def last_inbox_id(app) -> int:
    with harpoon_of(app).db.session() as session:
        return session.scalar(select(func.coalesce(func.max(InboundEvent.id), 0)))


def check(app, endpoint: str, send, *, forged: bool = False):
    """Send one request; no 5xx, and nothing stored when refused (or ever, when `forged`:
    a request whose token or signature nobody issued)."""
    before, last_id = stored(app), last_inbox_id(app)
    response = send()
    after = stored(app)
    FIGURES[endpoint, "requests"] += 1
    FIGURES[endpoint, "5xx"] += response.status_code >= 500
    FIGURES[endpoint, "accepted"] += response.status_code < 300
    refused = response.status_code >= 400 or forged
    FIGURES[endpoint, "stored for refused"] += refused and after != before
    assert response.status_code < 500, (endpoint, response.status_code, response.data[:300])
    if refused:
        assert after == before, (endpoint, response.status_code)
    for platform, payload in new_payloads(app, last_id):
        if platform in ("oa", "wecom"):
            normalize(platform, payload)  # accepted at the callback: the drain can read it
    return response


@pytest.fixture(autouse=True)
def no_rate_limits(monkeypatch):
    """Every example reaches the view: a 429 would hide what the view does with it."""
    monkeypatch.setattr(limiter, "enabled", False)


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    endpoints = sorted({endpoint for endpoint, _ in FIGURES})
    print()
    for endpoint in endpoints:
        print(
            f"fuzz {endpoint}: {FIGURES[endpoint, 'requests']} requests, "
            f"{FIGURES[endpoint, 'accepted']} accepted (2xx), {FIGURES[endpoint, '5xx']} 5xx, "
            f"{FIGURES[endpoint, 'stored for refused']} stored for refused"
        )


@pytest.fixture
def channels(app):
    return {
        "plain": make_channel(app, "oa", OA_CREDS, message_mode="plain"),
        "safe": make_channel(app, "oa", OA_CREDS, workspace="globex", message_mode="safe"),
        "wecom": make_channel(app, "wecom", WECOM_CREDS),
    }


@pytest.mark.parametrize("mode", ["plain", "safe"])
@given(xml=xml_documents())
def test_signed_garbage_to_an_oa_callback(app, client, channels, mode, xml):
    callback = simulate.oa_message(OA_CREDS, xml, mode=mode)
    path = callback.path(f"/callbacks/wechat/{channels[mode]}")
    check(app, f"oa {mode} signed", lambda: client.post(path, data=callback.body))


@given(xml=xml_documents())
def test_signed_garbage_to_a_wecom_callback(app, client, channels, xml):
    callback = simulate.wecom_message(WECOM_CREDS, xml)
    path = callback.path(f"/callbacks/wecom/{channels['wecom']}")
    check(app, "wecom signed", lambda: client.post(path, data=callback.body))


@pytest.mark.parametrize("target", ["plain", "safe", "wecom"])
@given(method=st.sampled_from(["GET", "POST"]), query=raw_queries, body=raw_bodies)
def test_unsigned_garbage_to_a_callback(app, client, channels, target, method, query, body):
    platform = "wecom" if target == "wecom" else "wechat"
    path = f"/callbacks/{platform}/{channels[target]}?{query}"
    send = lambda: client.open(path, method=method, data=body)  # noqa: E731
    check(app, f"{target} unsigned", send, forged=True)


@pytest.fixture
def api_key(app):
    with harpoon_of(app).db.session() as session:
        key = create_api_key(session, workspace_named(session, "acme").id, "fuzz")
        session.commit()
        return key


@given(
    document=api_documents,
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    signature=st.one_of(st.none(), odd_text),
)
def test_garbage_to_the_touchpoint_api(app, client, api_key, document, raw, signature):
    body = raw if raw is not None else json.dumps(document).encode()
    headers = {"Authorization": f"Bearer {api_key.key}", "Content-Type": "application/json"}
    # As a server hands a header on: bytes read as latin-1, one line. An empty one is unsent.
    header = re.sub(r"[\r\n\x00]", "", (signature or "").encode().decode("latin-1")).strip()
    if header:
        headers["X-Harpoon-Signature"] = header
    before = stored(app)["inbound_events"]
    response = check(
        app,
        "api touchpoints",
        lambda: client.post("/api/v1/touchpoints", data=body, headers=headers),
        forged=bool(header),
    )
    accepted = response.json["accepted"] if response.status_code == 200 else 0
    assert stored(app)["inbound_events"] - before == accepted


@pytest.fixture
def form_link(app):
    return open_form_outside_wechat(app)


@given(code=odd_text, query=raw_queries, in_wechat=st.booleans())
def test_garbage_to_tracked_links(app, client, form_link, code, query, in_wechat):
    headers = {"User-Agent": "MicroMessenger/8.0" if in_wechat else "curl"}
    path = f"/t/{quote(code, safe='')}?{query}"
    check(app, "/t/<code>", lambda: client.get(path, headers=headers), forged=True)


@given(code=st.one_of(odd_text, st.just("real")), query=raw_queries)
def test_garbage_to_hosted_pages(app, client, form_link, code, query):
    code = form_link.code if code == "real" else code
    path = f"/p/{quote(code, safe='')}?{query}"
    check(app, "/p/<code>", lambda: client.get(path), forged=True)


@given(
    fields=st.dictionaries(st.sampled_from(["e", "s", "v", "f", "x"]), odd_text, max_size=5),
    event=st.sampled_from([None, "read", "like", "share"]),
    real_view=st.booleans(),
)
def test_garbage_to_the_beacon(app, client, form_link, fields, event, real_view):
    if event:
        fields["e"] = event
    if real_view:
        fields["v"] = form_link.view
    check(app, "/b beacon", lambda: client.post("/b", data=fields), forged=not real_view)


@given(
    fields=st.dictionaries(
        st.sampled_from(["name", "phone", "email", "company", "consent", "x"]), odd_text
    ),
    real_token=st.booleans(),
)
def test_garbage_to_a_form(app, client, form_link, fields, real_token):
    if real_token:
        fields["form_token"] = form_link.form_token
    send = lambda: client.post(f"/f/{form_link.code}", data=fields)  # noqa: E731
    check(app, "/f/<code> form", send, forged=not real_token)


@pytest.fixture
def email_token(app):
    from tests.factories import make_contact, make_email_message

    return make_email_message(app, make_contact(app, "王伟"), "wang@huaxin.example").token


@given(
    token=st.one_of(odd_text, st.just("real")),
    query=raw_queries,
    route=st.sampled_from(["o.gif", "c", "u"]),
    post=st.booleans(),
    fields=st.dictionaries(st.sampled_from(["List-Unsubscribe", "u", "s", "x"]), odd_text),
)
def test_garbage_to_an_emails_links(app, client, email_token, token, query, route, post, fields):
    real = token == "real"
    path = f"/e/{quote(email_token if real else token, safe='')}/{route}?{query}"

    def send():
        return client.post(path, data=fields) if post else client.get(path)

    # Only the real message's pixel and unsubscribe may store; a click needs a signature.
    response = check(app, f"/e/<token>/{route}", send, forged=not real or route == "c")
    if route == "c":
        assert response.status_code != 302
