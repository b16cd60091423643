"""Input no view should meet (app/inputs.py): NUL bytes and query strings that are not
UTF-8, malformed and oversized chunked bodies. Bodies go through the test client,
werkzeug's server and gunicorn, whose chunk parsers fail in different ways."""

import io
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.api import MAX_BODY_BYTES
from app.inputs import DEFAULT_MAX_BODY_BYTES
from app.public import MAX_POST_BYTES
from crm.api_keys import create_api_key
from crm.channels import workspace_named
from models import FormSubmission, InboundEvent, PageView, SavedSegment
from tests.app.admin.helpers import csrf_token, sign_in
from tests.factories import make_channel, make_user
from tests.helpers import OA_CREDS, harpoon_of, open_form_outside_wechat
from wechat import simulate

LIST_PAGES = [("/admin/contacts", "q"), ("/admin/accounts", "q"), ("/admin/audit", "action")]


def count(app, model) -> int:
    with harpoon_of(app).db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def stored(app) -> dict[str, int]:
    return {m.__tablename__: count(app, m) for m in (InboundEvent, PageView, FormSubmission)}


@pytest.fixture
def owner(app):
    client = app.test_client()
    make_user(app, "owner")
    assert sign_in(client, "owner@acme.example").status_code == 302
    return client


@pytest.mark.parametrize("path, name", LIST_PAGES)
@pytest.mark.parametrize("value", [b"a%00b", b"%00", b"a%FFb", b"%C3"])
def test_admin_lists_refuse_nul_and_non_utf8_in_the_query(owner, caplog, path, name, value):
    response = owner.get(path, query_string=(name.encode() + b"=" + value).decode("latin-1"))
    assert response.status_code == 400
    assert "request refused status=400" in caplog.text
    assert owner.get(path, query_string={name: "华信"}).status_code == 200


def test_nul_in_a_query_parameter_name_or_a_path_is_refused(owner):
    assert owner.get("/admin/contacts", query_string="q%00=x").status_code == 400
    assert owner.get("/t/a%00b").status_code == 400
    assert owner.get("/admin/contacts/1%00").status_code == 400


HUGE = "99999999999999999999999"  # past 64 bits: SQLite cannot bind it


@pytest.mark.parametrize(
    "path",
    [
        f"/admin/contacts/{HUGE}",
        f"/admin/accounts/{HUGE}",
        f"/admin/home?user={HUGE}",
        f"/admin/home?user={2**40}",  # past PostgreSQL's integer
        "/admin/home?user=%C2%B2",  # a digit to str.isdigit, not to int()
    ],
)
def test_an_id_too_large_for_any_row_is_a_404(owner, path):
    assert owner.get(path).status_code == 404


def test_nul_in_a_readers_form_is_refused_and_nothing_stored(app, client):
    opened = open_form_outside_wechat(app)
    code, token = opened.code, opened.form_token
    before = stored(app)
    response = client.post(
        f"/f/{code}", data={"form_token": token, "name": "王\x00伟", "consent": "y"}
    )
    assert response.status_code == 400
    assert stored(app) == before
    response = client.post(f"/f/{code}", data={"form_token": token, "name": "王伟", "consent": "y"})
    assert response.status_code == 200
    assert count(app, FormSubmission) == 1


def test_nul_in_a_repeated_field_of_a_readers_form_is_refused(app, client):
    """Only the first value of a repeated field is clean: the check reads every one."""
    opened = open_form_outside_wechat(app)
    before = stored(app)
    response = client.post(
        f"/f/{opened.code}",
        data={"form_token": opened.form_token, "name": ["王伟", "王\x00伟"], "consent": "y"},
    )
    assert response.status_code == 400
    assert stored(app) == before


def test_nul_in_a_repeated_field_of_an_admin_list_input_is_refused(app, owner):
    """The segment form reads its industries with getlist: a NUL in the second is a 400."""
    page = owner.get("/admin/segments/new").text
    response = owner.post(
        "/admin/segments/new",
        data={"csrf_token": csrf_token(page), "name": "制造", "industries": ["制造", "制\x00造"]},
    )
    assert response.status_code == 400
    assert count(app, SavedSegment) == 0


def test_nul_in_an_api_json_body_is_a_json_400_and_nothing_stored(app, client):
    with harpoon_of(app).db.session() as session:
        key = create_api_key(session, workspace_named(session, "acme").id, "直播").key
        session.commit()
    item = {"kind": "email.opened", "email": "wang@huaxin.com", "external_id": "e\x001"}
    response = client.post(
        "/api/v1/touchpoints",
        data=json.dumps({"items": [item]}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json == {"error": "NUL byte in the JSON body"}
    assert count(app, InboundEvent) == 0


def callback_over_the_limit(app, channel_id) -> tuple[str, bytes]:
    """A signed plaintext callback: a valid document exactly at the limit, then a little
    more. Cut at the limit, it would be accepted."""
    limit, now = harpoon_of(app).settings.callback_max_bytes, int(time.time())
    padding = limit - len(simulate.oa_text("o_cut", "", 4242, at=now).encode())
    xml = simulate.oa_text("o_cut", "x" * padding, 4242, at=now)
    callback = simulate.oa_message(OA_CREDS, xml, mode="plain", timestamp=now)
    assert len(callback.body) == limit
    return callback.path(f"/callbacks/wechat/{channel_id}"), callback.body + b"<!-- more -->"


@pytest.fixture
def plain_channel(app):
    return make_channel(app, "oa", OA_CREDS, message_mode="plain")


def test_a_streamed_body_over_the_limit_is_a_413_not_a_truncated_body(app, client, plain_channel):
    path, body = callback_over_the_limit(app, plain_channel)
    response = client.post(  # as a server hands on a chunked body: dechunked, no length
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert count(app, InboundEvent) == 0


def test_an_admin_post_has_a_ceiling_before_the_csrf_check_reads_it(app, client):
    """A stranger's huge form to the sign-in page is a 413 unread, not parsed to disk."""
    body = b"email=a%40b.example&password=" + b"x" * DEFAULT_MAX_BODY_BYTES
    response = client.post(
        "/admin/login", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    small = client.post("/admin/login", data={"email": "a@b.example", "password": "x"})
    assert small.status_code != 413


# --- real servers ----------------------------------------------------------------------


def raw_request(base: str, method: str, path: str, body: bytes, headers: dict) -> int:
    """Send bytes as they are (a malformed chunk survives) and return the status."""
    address = urlsplit(base)
    head = f"{method} {path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            data = conn.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


def chunked(body: bytes, size: int = 8192) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


CHUNKED = {"Transfer-Encoding": "chunked"}
MALFORMED = b"zz\r\nnot a chunk\r\n0\r\n\r\n"


@pytest.fixture(params=["werkzeug", "gunicorn"])
def server(request):
    return request.getfixturevalue(
        "live_server" if request.param == "werkzeug" else "gunicorn_server"
    )


def test_chunked_bodies_on_a_real_server(app, server, plain_channel):
    """Malformed: 400. Over the limit: 413, never cut and accepted. Callbacks, the API,
    readers' forms and beacons; nothing stored for any refusal."""
    with harpoon_of(app).db.session() as session:
        key = create_api_key(session, workspace_named(session, "acme").id, "直播").key
        session.commit()
    opened = open_form_outside_wechat(app)
    code, view, token = opened.code, opened.view, opened.form_token
    callback_path, callback_body = callback_over_the_limit(app, plain_channel)
    form = {"Content-Type": "application/x-www-form-urlencoded", **CHUNKED}
    api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **CHUNKED}
    surfaces = [
        (callback_path, CHUNKED, callback_body),
        ("/api/v1/touchpoints", api, b'{"items": [' + b" " * MAX_BODY_BYTES + b"]}"),
        (f"/f/{code}", form, f"form_token={token}&name=".encode() + b"x" * MAX_POST_BYTES),
        ("/b", form, f"e=read&s=5&v={view}&pad=".encode() + b"x" * MAX_POST_BYTES),
    ]
    before = stored(app)
    for path, headers, too_long in surfaces:
        assert raw_request(server, "POST", path, MALFORMED, headers) == 400, path
        assert raw_request(server, "POST", path, chunked(too_long), headers) == 413, path
    assert stored(app) == before

    fine = simulate.oa_message(OA_CREDS, simulate.oa_text("o_ok", "你好", 4343), mode="plain")
    path = fine.path(f"/callbacks/wechat/{plain_channel}")
    assert raw_request(server, "POST", path, chunked(fine.body, 100), CHUNKED) == 200
    assert count(app, InboundEvent) == 1
