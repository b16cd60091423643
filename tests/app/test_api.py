"""The touchpoint API: keys and signatures, per-item validation, idempotent re-posting by
external_id, and live-stream minutes that the drain scores."""

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from crm.api_keys import revoke_api_key, sign
from crm.channels import workspace_named
from models import (
    Account,
    Contact,
    Identity,
    InboundEvent,
    Interaction,
    ScoreEntry,
)
from tests.factories import add_contact, make_channel, new_key
from tests.helpers import OA_CREDS, WECOM_CREDS, harpoon_of, run_jobs
from tests.helpers import post_touchpoints as post


def rows(app, model, *where):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


LIVE = {
    "kind": "live.watch",
    "external_id": "live-2026-11-22:13800138000",
    "phone": "13800138000",
    "minutes": 42,
    "person": {"name": "李娜", "company": "南京紫金银行", "title": "CTO"},
    "properties": {"stream": "AI 发布会"},
}


def test_live_minutes_posted_through_the_api_are_recorded_and_scored(app, client):
    key = new_key(app)
    answer = post(client, key.key, {"items": [LIVE]})
    assert answer.status_code == 200
    assert answer.json == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "items": [{"index": 0, "status": "accepted"}],
    }
    run_jobs(app)

    [watch] = rows(app, Interaction)
    assert (watch.kind, watch.engagement_minutes) == ("live.watch", 42)
    assert watch.properties == {"stream": "AI 发布会"}
    [entry] = rows(app, ScoreEntry)
    assert entry.rule_key == "live_watch" and entry.points == 5 + 0.5 * 42
    with harpoon_of(app).db.session() as session:
        contact = session.get(Contact, watch.contact_id)
        assert (contact.name, contact.role, contact.lead_score > 0) == ("李娜", "cto", True)
        assert session.get(Account, contact.account_id).name == "南京紫金银行"
    [identity] = rows(app, Identity)
    assert (identity.kind, identity.value) == ("phone", "13800138000")
    assert rows(app, type(key.row))[0].last_used_at is not None


def test_posting_again_with_the_same_external_id_adds_nothing(app, client):
    key = new_key(app)
    first = post(client, key.key, {"items": [LIVE]})
    again = post(client, key.key, {"items": [LIVE, LIVE]})
    assert first.json["accepted"] == 1
    assert again.status_code == 200
    assert again.json["duplicates"] == 2 and again.json["accepted"] == 0
    run_jobs(app)
    assert len(rows(app, InboundEvent)) == 1 and len(rows(app, Interaction)) == 1


def test_each_invalid_item_is_reported_and_the_valid_ones_are_stored(app, client):
    make_channel(app, "oa", OA_CREDS)
    make_channel(app, "wecom", WECOM_CREDS)
    key = new_key(app)
    items = [
        {"kind": "email.open", "email": "li.na@zijinbank.com", "external_id": "e1"},
        {"kind": "email.teleport", "email": "a@b.cn"},
        {"kind": "email.click"},
        {"kind": "event.checkin", "phone": "123", "occurred_at": "2099-01-01T00:00:00+08:00"},
        {"kind": "sales.meeting", "email": "not-an-email", "surprise": 1},
        "not an object",
        {"kind": "event.checkin", "openid": "oAbc", "external_id": "c1"},
        {"kind": "webinar.attend", "unionid": "u1", "minutes": -3},
    ]
    answer = post(client, key.key, {"items": items})
    assert answer.status_code == 200
    assert (answer.json["accepted"], answer.json["rejected"]) == (2, 6)
    results = answer.json["items"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",  # the workspace's only OA is the openid's
        "rejected",
    ]
    assert set(results[1]["errors"]) == {"kind"}
    assert "_schema" in results[2]["errors"]
    assert set(results[3]["errors"]) == {"phone", "occurred_at"}
    assert set(results[4]["errors"]) == {"email", "surprise"}
    assert set(results[7]["errors"]) == {"minutes"}
    assert len(rows(app, InboundEvent)) == 2
    run_jobs(app)
    contacts = {i.kind: i.contact_id for i in rows(app, Interaction)}
    assert set(contacts) == {"email.open", "event.checkin"}


def test_an_openid_needs_its_oa_named_when_there_are_several(app, client):
    first = make_channel(app, "oa", OA_CREDS)
    make_channel(app, "oa", replace(OA_CREDS, app_id="wx0000000000000002"))
    key = new_key(app)
    answer = post(
        client,
        key.key,
        {
            "items": [
                {"kind": "email.open", "openid": "o1"},
                {"kind": "email.open", "openid": "o1", "channel_id": 9999},
                {"kind": "email.open", "openid": "o1", "channel_id": first},
            ]
        },
    )
    assert [r["status"] for r in answer.json["items"]] == ["rejected", "rejected", "accepted"]
    assert "channel_id" in answer.json["items"][0]["errors"]


def test_an_item_naming_another_workspaces_channel_is_rejected(app, client):
    """An external_userid of another workspace's corp, or its OA with no openid: the item is
    refused with a field error, the rest of the batch stored."""
    ours = make_channel(app, "wecom", WECOM_CREDS)
    theirs = make_channel(
        app, "wecom", replace(WECOM_CREDS, app_id="ww0000000000000002"), workspace="globex"
    )
    their_oa = make_channel(app, "oa", OA_CREDS, workspace="globex")
    key = new_key(app)
    answer = post(
        client,
        key.key,
        {
            "items": [
                {"kind": "email.open", "external_userid": "wm_1", "channel_id": ours},
                {"kind": "email.open", "external_userid": "wm_1", "channel_id": theirs},
                {"kind": "email.open", "phone": "13800138000", "channel_id": their_oa},
            ]
        },
    )
    assert answer.status_code == 200
    items = answer.json["items"]
    assert [r["status"] for r in items] == ["accepted", "rejected", "rejected"]
    assert items[1]["errors"] == {"channel_id": ["Not a channel of this workspace."]}
    assert items[2]["errors"] == {"channel_id": ["Not a channel of this workspace."]}
    assert len(rows(app, InboundEvent)) == 1


def test_a_touchpoint_joins_the_person_its_identities_already_name(app, client):
    """A phone the person gave before, and an email new to us: one contact, not two."""
    key = new_key(app)
    post(client, key.key, {"items": [{"kind": "event.register", "phone": "13900001111"}]})
    run_jobs(app)
    post(
        client,
        key.key,
        {
            "items": [
                {
                    "kind": "event.checkin",
                    "phone": "+86 139 0000 1111",
                    "email": "Zhou@Example.cn",
                }
            ]
        },
    )
    run_jobs(app)
    register, checkin = rows(app, Interaction)
    assert register.contact_id == checkin.contact_id
    values = {i.value for i in rows(app, Identity)}
    assert values == {"13900001111", "zhou@example.cn"}


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", 400),
        ({"items": []}, 400),
        ({"things": [LIVE]}, 400),
        ({"items": [LIVE] * 1001}, 413),
        # Half a UTF-16 pair no driver can encode, and nesting past the parser's stack.
        (json.dumps({"items": [{**LIVE, "phone": "\ud800"}]}).encode(), 400),
        (json.dumps({"items": [{**LIVE, "properties": {"\udfff": 1}}]}).encode(), 400),
        (b'{"items": [' + b"[" * 5000 + b"]" * 5000 + b"]}", 400),
    ],
)
def test_a_malformed_body_is_refused_whole(app, client, body, status):
    key = new_key(app)
    assert post(client, key.key, body).status_code == status
    assert rows(app, InboundEvent) == []


def test_all_items_rejected_is_422(app, client):
    key = new_key(app)
    answer = post(client, key.key, {"items": [{"kind": "email.open"}]})
    assert answer.status_code == 422 and answer.json["rejected"] == 1


def test_unknown_revoked_or_missing_keys_are_refused(app, client):
    key = new_key(app)
    assert post(client, None, {"items": [LIVE]}).status_code == 401
    assert post(client, "hk_made-up", {"items": [LIVE]}).status_code == 401
    with harpoon_of(app).db.session() as session:
        assert revoke_api_key(session, key.row.workspace_id, key.row.id)
        session.commit()
    assert post(client, key.key, {"items": [LIVE]}).status_code == 401
    assert rows(app, InboundEvent) == []


def test_signatures_are_checked_when_required_or_sent(app, client):
    key = new_key(app, require_signature=True)
    body = json.dumps({"items": [LIVE]}).encode()
    good = sign(key.signing_secret, body)
    stale = sign(key.signing_secret, body, int(time.time()) - 600)
    other_body = sign(key.signing_secret, body + b" ")
    wrong_secret = sign("hs_not-it", body)

    assert post(client, key.key, body).status_code == 401  # required, missing
    for bad in (stale, other_body, wrong_secret, "t=abc,v1=00", "garbage"):
        assert post(client, key.key, body, signature=bad).status_code == 401
    assert rows(app, InboundEvent) == []
    assert post(client, key.key, body, signature=good).status_code == 200

    unsigned_key = new_key(app)  # not required, but checked when sent
    assert post(client, unsigned_key.key, body, signature=wrong_secret).status_code == 401


def test_a_signed_request_replayed_within_its_window_stores_nothing_more(app, client):
    key = new_key(app, require_signature=True)
    no_external_id = {k: v for k, v in LIVE.items() if k != "external_id"}
    body = json.dumps({"items": [no_external_id]}).encode()
    signature = sign(key.signing_secret, body)
    answers = [post(client, key.key, body, signature=signature) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 409, 409, 409, 409]
    assert "used already" in answers[1].json["error"]
    assert len(rows(app, InboundEvent)) == 1
    # Written differently around the same digest, it is the same signature.
    timestamp, digest = signature.split(",")
    for disguised in (f"{digest},{timestamp}", f"{timestamp},{digest},", f"x=1,{signature}"):
        assert post(client, key.key, body, signature=disguised).status_code == 409
    # Signed anew, the same body is a new request. A signed lookup changes nothing: a client
    # may poll it with one signature.
    later = sign(key.signing_secret, body, int(time.time()) + 1)
    assert post(client, key.key, body, signature=later).status_code == 200
    assert len(rows(app, InboundEvent)) == 2
    query = b"phone=13800138000"
    headers = {
        "Authorization": f"Bearer {key.key}",
        "X-Harpoon-Signature": sign(key.signing_secret, query),
    }
    lookups = [client.get(f"/api/v1/contacts?{query.decode()}", headers=headers) for _ in "ab"]
    assert [a.status_code for a in lookups] == [200, 200]


def test_a_signature_is_remembered_as_long_as_it_could_be_accepted(app, client):
    key = new_key(app)  # signatures not required, but one sent is checked and recorded
    body = json.dumps({"items": [LIVE]}).encode()
    assert post(client, key.key, body, signature=sign(key.signing_secret, body)).status_code == 200
    connection = harpoon_of(app).queue.connection
    [recorded] = connection.keys("harpoon:api-signature:*")
    assert 300 < connection.ttl(recorded) <= 600


def test_a_key_posts_to_its_own_workspace_only(app, client):
    theirs = new_key(app, workspace="globex")
    post(client, theirs.key, {"items": [LIVE]})
    [event] = rows(app, InboundEvent)
    with harpoon_of(app).db.session() as session:
        assert event.workspace_id == workspace_named(session, "globex").id


def test_the_openapi_document_describes_the_endpoint(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    post_op = document["paths"]["/api/v1/touchpoints"]["post"]
    items = post_op["requestBody"]["content"]["application/json"]["schema"]["properties"]["items"]
    assert items["maxItems"] == 1000
    touchpoint = document["components"]["schemas"]["Touchpoint"]
    assert "live.watch" in touchpoint["properties"]["kind"]["enum"]
    assert touchpoint["properties"]["minutes"]["maximum"] == 1440


def test_each_key_has_its_own_request_rate(make_app):
    app = make_app(api_rate_limit="2 per minute")
    client = app.test_client()
    busy, calm = new_key(app), new_key(app)
    answers = [post(client, busy.key, {"items": [LIVE]}).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    assert post(client, calm.key, {"items": [LIVE]}).status_code == 200


def test_a_contact_is_looked_up_by_identity_with_its_score(app, client):
    key = new_key(app, require_signature=True)
    body = json.dumps({"items": [LIVE]}).encode()
    post(client, key.key, body, signature=sign(key.signing_secret, body))
    run_jobs(app)
    query = b"phone=%2B86%20138%200013%208000"
    headers = {
        "Authorization": f"Bearer {key.key}",
        "X-Harpoon-Signature": sign(key.signing_secret, query),
    }
    answer = client.get(f"/api/v1/contacts?{query.decode()}", headers=headers)
    assert answer.status_code == 200
    [contact] = answer.json["contacts"]
    assert contact["name"] == "李娜" and contact["lead_score"] > 20
    assert contact["account"]["name"] == "南京紫金银行"
    assert contact["latest"][0]["kind"] == "live.watch"
    assert contact["latest"][0]["minutes"] == 42
    unsigned = client.get(
        f"/api/v1/contacts?{query.decode()}", headers={"Authorization": headers["Authorization"]}
    )
    assert unsigned.status_code == 401
    both = client.get("/api/v1/contacts?phone=1&email=a@b.cn", headers=headers)
    assert both.status_code == 400


@pytest.mark.parametrize(
    "header",
    [
        "t={now},v1=签名",
        "t={now},v1=" + "é" * 64,
        "t={now},v1=" + "A" * 64,
        "t={now},v1=" + "0" * 63,
        "t=１２３,v1=" + "0" * 64,
        "t={now}",
        "v1=" + "0" * 64,
        "t=,v1=",
        "=,=,",
    ],
)
def test_a_malformed_signature_header_is_a_clear_401(app, client, header):
    key = new_key(app, require_signature=True)
    signature = header.format(now=int(time.time()))
    response = post(client, key.key, {"items": [LIVE]}, signature=signature)
    assert response.status_code == 401
    assert response.json["error"].startswith("malformed signature: expected t=<unix seconds>")
    assert rows(app, InboundEvent) == []


# ---- an item naming only an external_userid ------------------------------------------------

CORP_2 = replace(WECOM_CREDS, app_id="ww0000000000000002")


def _only_external_userid(**extra) -> dict:
    return {"kind": "webinar.attend", "external_userid": "wmCustomer01", "minutes": 30, **extra}


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_an_external_userid_alone_joins_the_workspaces_only_corp(app, client, batch):
    make_channel(app, "oa", OA_CREDS)  # an OA beside it changes nothing
    corp = make_channel(app, "wecom", WECOM_CREDS)
    key = new_key(app)
    items = [_only_external_userid()]
    if batch:
        items.append({"kind": "email.open", "email": "li.na@zijinbank.com"})
    answer = post(client, key.key, {"items": items})
    assert answer.status_code == 200
    assert answer.json["accepted"] == len(items)
    assert answer.json["items"][0] == {"index": 0, "status": "accepted"}
    run_jobs(app)

    assert {e.status for e in rows(app, InboundEvent)} == {"done"}
    [attended] = rows(app, Interaction, Interaction.kind == "webinar.attend")
    assert attended.engagement_minutes == 30
    [identity] = rows(app, Identity, Identity.contact_id == attended.contact_id)
    assert (identity.kind, identity.channel_id, identity.value) == (
        "external_userid",
        corp,
        "wmCustomer01",
    )


def test_an_external_userid_alone_lands_on_the_named_corp(app, client):
    make_channel(app, "wecom", WECOM_CREDS)
    second = make_channel(app, "wecom", CORP_2)
    key = new_key(app)
    answer = post(client, key.key, {"items": [_only_external_userid(channel_id=second)]})
    assert answer.json["items"] == [{"index": 0, "status": "accepted"}]
    run_jobs(app)
    [attended] = rows(app, Interaction)
    [identity] = rows(app, Identity, Identity.contact_id == attended.contact_id)
    assert (identity.kind, identity.channel_id, identity.value) == (
        "external_userid",
        second,
        "wmCustomer01",
    )


def test_an_existing_wecom_customer_gets_the_interaction(app, client):
    """The customer a WeCom add made, named by their external_userid: no second person."""
    corp = make_channel(app, "wecom", WECOM_CREDS)
    customer = add_contact(app, external_userid="wmCustomer01", channel_id=corp, name="王强")
    key = new_key(app)
    answer = post(client, key.key, {"items": [_only_external_userid()]})
    assert answer.json["accepted"] == 1
    run_jobs(app)
    [attended] = rows(app, Interaction)
    assert attended.contact_id == customer
    assert len(rows(app, Contact)) == 1 and len(rows(app, Identity)) == 1


@pytest.mark.parametrize("corps", [0, 2], ids=["no corp", "two corps"])
def test_an_external_userid_alone_without_its_corp_is_rejected(app, client, corps):
    """Single form: 422 with the field error; batch form: the rest is stored."""
    for creds in (WECOM_CREDS, CORP_2)[:corps]:
        make_channel(app, "wecom", creds)
    key = new_key(app)
    message = f"Name the WeCom corp of the external_userid: this workspace has {corps}."

    alone = post(client, key.key, {"items": [_only_external_userid()]})
    assert alone.status_code == 422
    assert alone.json["items"] == [
        {"index": 0, "status": "rejected", "errors": {"channel_id": [message]}}
    ]

    batch = post(
        client,
        key.key,
        {
            "items": [
                {"kind": "email.open", "email": "li.na@zijinbank.com"},
                _only_external_userid(),
                # Another identity makes the person: the external_userid needs no corp.
                _only_external_userid(phone="13800138000"),
            ]
        },
    )
    assert batch.status_code == 200
    assert [r["status"] for r in batch.json["items"]] == ["accepted", "rejected", "accepted"]
    assert batch.json["items"][1]["errors"] == {"channel_id": [message]}
    assert len(rows(app, InboundEvent)) == 2
    run_jobs(app)
    assert {e.status for e in rows(app, InboundEvent)} == {"done"}
    assert not rows(app, Identity, Identity.kind == "external_userid")


def test_an_external_userid_on_an_oa_or_another_workspaces_corp_is_rejected(app, client):
    oa = make_channel(app, "oa", OA_CREDS)
    make_channel(app, "wecom", WECOM_CREDS)
    theirs = make_channel(app, "wecom", CORP_2, workspace="globex")
    key = new_key(app)
    answer = post(
        client,
        key.key,
        {
            "items": [
                _only_external_userid(channel_id=oa),
                _only_external_userid(channel_id=theirs),
                _only_external_userid(),
            ]
        },
    )
    items = answer.json["items"]
    assert [r["status"] for r in items] == ["rejected", "rejected", "accepted"]
    assert items[0]["errors"] == {
        "channel_id": ["Not a WeCom corp: an external_userid belongs to a WeCom corp."]
    }
    assert items[1]["errors"] == {"channel_id": ["Not a channel of this workspace."]}


def test_an_openid_with_an_external_userid_binds_each_to_its_own_channel(app, client):
    """channel_id names the openid's OA; the external_userid joins the only corp, not the OA."""
    oa = make_channel(app, "oa", OA_CREDS)
    corp = make_channel(app, "wecom", WECOM_CREDS)
    key = new_key(app)
    item = {"kind": "event.checkin", "openid": "oFollower1", "channel_id": oa}
    answer = post(client, key.key, {"items": [{**item, "external_userid": "wmCustomer01"}]})
    assert answer.json["accepted"] == 1
    run_jobs(app)
    bound = {(i.kind, i.channel_id, i.value) for i in rows(app, Identity)}
    assert bound == {("openid", oa, "oFollower1"), ("external_userid", corp, "wmCustomer01")}
    assert len({i.contact_id for i in rows(app, Identity)}) == 1


def test_the_openapi_document_describes_the_channel_and_its_error(client):
    document = client.get("/api/v1/openapi.json").json
    channel = document["components"]["schemas"]["Touchpoint"]["properties"]["channel_id"]
    assert "external_userid" in channel["description"] and "WeCom corp" in channel["description"]
    item = document["paths"]["/api/v1/touchpoints"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["properties"]["items"]["items"]
    errors = item["properties"]["errors"]
    assert "external_userid" in errors["description"]
    assert errors["examples"] == [
        {"channel_id": ["Name the WeCom corp of the external_userid: this workspace has 2."]}
    ]


def test_an_nps_answer_needs_an_integer_score_from_0_to_10(app, client):
    key = new_key(app)
    answer = {"kind": "survey.nps", "phone": "13800138000"}
    items = [
        {**answer, "external_id": "nps-ok", "properties": {"score": 9, "survey": "Q4"}},
        {**answer, "properties": {"score": 11}},
        {**answer, "properties": {"score": "9"}},
        {**answer, "properties": {"score": True}},
        {**answer, "properties": {}},
        answer,
    ]
    reply = post(client, key.key, {"items": items})
    assert reply.status_code == 200
    assert [item["status"] for item in reply.json["items"]] == ["accepted"] + ["rejected"] * 5
    assert all("properties" in item["errors"] for item in reply.json["items"][1:])
    run_jobs(app)
    [nps] = rows(app, Interaction)
    assert (nps.kind, nps.properties["score"]) == ("survey.nps", 9)
    [entry] = rows(app, ScoreEntry)
    assert (entry.rule_key, entry.points) == ("survey_nps", 0)
