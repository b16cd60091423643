"""The CRM's opportunity API: PUT by external id (idempotent), a batch with per-item
results, GET of what is stored, keys and signatures as for touchpoints, amounts exact."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core.jobs import Job
from crm.api_keys import sign
from models import Account, AttributionTouch, Opportunity, OpportunityChange, utcnow
from revenue import crm_sync
from revenue.pipeline import pipeline_of
from tests.factories import (
    add_contact,
    make_account,
    make_interaction,
    make_user,
    new_key,
    workspace_id,
)
from tests.helpers import harpoon_of, run_jobs, session_of

ITEM = {"name": "云平台年度订阅", "amount": "250000.50", "stage": "qualify"}


def put(client, key, external_id, body, *, signature=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key.key}"}
    if signature:
        headers["X-Harpoon-Signature"] = signature
    return client.put(f"/api/v1/opportunities/{external_id}", data=raw, headers=headers)


def post_batch(client, key, items):
    return client.post(
        "/api/v1/opportunities",
        json={"items": items},
        headers={"Authorization": f"Bearer {key.key}"},
    )


def get(client, key, external_id):
    return client.get(
        f"/api/v1/opportunities/{external_id}", headers={"Authorization": f"Bearer {key.key}"}
    )


def count(app, model, *where):
    with session_of(app) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_put_creates_then_a_resend_changes_nothing_and_a_move_updates(app, client):
    account = make_account(app, "华信科技", is_target=True, stage="mqa")
    key = new_key(app)
    item = {**ITEM, "account_id": account}

    created = put(client, key, "SF-0061", item)
    assert created.status_code == 201, created.json
    assert created.json["status"] == "created"
    assert created.json["opportunity"]["amount"] == "250000.50"
    with session_of(app) as session:
        before = session.scalar(select(Opportunity.updated_at))
    changes = count(app, OpportunityChange)

    again = put(client, key, "SF-0061", item)
    assert (again.status_code, again.json["status"]) == (200, "unchanged")
    assert count(app, OpportunityChange) == changes == 1
    with session_of(app) as session:
        assert session.scalar(select(Opportunity.updated_at)) == before

    moved = put(client, key, "SF-0061", {"stage": "won"})
    assert (moved.status_code, moved.json["status"]) == (200, "updated")
    assert moved.json["opportunity"]["status"] == "won"
    assert count(app, Opportunity) == 1 and count(app, OpportunityChange) == 2
    with session_of(app) as session:
        assert session.get(Account, account).stage == "customer"

    stored = get(client, key, "SF-0061")
    assert stored.status_code == 200
    assert stored.json["opportunity"]["external_id"] == "SF-0061"
    assert stored.json["opportunity"]["amount"] == "250000.50"
    assert stored.json["opportunity"]["account"]["name"] == "华信科技"
    assert get(client, key, "SF-9999").status_code == 404


def test_amounts_are_read_as_decimals_never_floats(app, client):
    account = make_account(app, "华信科技")
    key = new_key(app)
    raw = (
        b'{"name": "a", "stage": "qualify", "account_id": %d, "amount": 0.1}' % account
    )  # a JSON float
    answer = put(client, key, "dec-1", raw)
    assert answer.status_code == 201
    assert answer.json["opportunity"]["amount"] == "0.10"
    big = b'{"amount": 999999999999.99}'
    assert put(client, key, "dec-1", big).json["opportunity"]["amount"] == "999999999999.99"
    with session_of(app) as session:
        assert session.scalar(select(Opportunity.amount)) == Decimal("999999999999.99")
    for too_precise in (b'{"amount": 100.005}', b'{"amount": "0.001"}'):
        refused = put(client, key, "dec-1", too_precise)
        assert refused.status_code == 422
        assert refused.json["errors"] == {"amount": [crm_sync.TOO_PRECISE]}
    assert put(client, key, "dec-1", b'{"amount": 1e400}').status_code == 422
    assert put(client, key, "dec-1", b'{"amount": NaN}').status_code == 422
    assert get(client, key, "dec-1").json["opportunity"]["amount"] == "999999999999.99"


def test_field_errors_are_422_and_write_nothing(app, client):
    make_account(app, "华信科技")
    key = new_key(app)
    unknown = put(client, key, "e-1", {**ITEM, "account_name": "不存在的公司"})
    assert unknown.status_code == 422
    assert unknown.json["errors"] == {
        "account": ["No account with this name or domain in the workspace."]
    }
    bad_stage = put(client, key, "e-1", {**ITEM, "account_name": "华信科技", "stage": "maybe"})
    assert bad_stage.json["errors"] == {"stage": ["Not a stage of the pipeline."]}
    # The account it would have created goes with the rejected item.
    with_new = put(
        client,
        key,
        "e-1",
        {**ITEM, "account_name": "新公司", "create_account": True, "stage": "maybe"},
    )
    assert with_new.status_code == 422 and set(with_new.json["errors"]) == {"stage"}
    assert count(app, Account, Account.name == "新公司") == 0
    nothing = put(client, key, "e-1", {"amount": "1"})
    assert set(nothing.json["errors"]) == {"name", "stage", "account"}
    for external_id in ("a" * 101, "has space", "-leading", "中文"):
        refused = put(client, key, external_id, {**ITEM, "account_name": "华信科技"})
        assert refused.status_code == 422, external_id
        assert set(refused.json["errors"]) == {"external_id"}
    assert put(client, key, "e-1", b"not json").status_code == 400
    nul = json.dumps({**ITEM, "name": "a\u0000b", "account_name": "华信科技"}).encode()
    plain = {"Authorization": f"Bearer {key.key}", "Content-Type": "text/plain"}
    assert client.put("/api/v1/opportunities/e-1", data=nul, headers=plain).status_code == 400
    assert put(client, key, "e-1", b"[1, 2]").status_code == 400
    assert count(app, Opportunity) == 0


def test_create_account_makes_the_account_and_an_unknown_owner_is_a_warning(app, client):
    key = new_key(app)
    item = {
        **ITEM,
        "account_name": "江南证券股份有限公司",
        "account_domain": "jnzq.com",
        "create_account": True,
        "owner_email": "nobody@acme.example",
    }
    answer = put(client, key, "new-acct", item)
    assert answer.status_code == 201
    assert answer.json["warnings"] == {
        "owner_email": ["No user of the workspace has this email; saved without an owner."]
    }
    assert answer.json["opportunity"]["account"]["domain"] == "jnzq.com"
    assert answer.json["opportunity"]["owner_email"] is None
    make_user(app, "sales", email="wang@acme.example")
    owned = put(client, key, "new-acct", {"owner_email": "Wang@acme.example"})
    assert owned.json["status"] == "updated" and "warnings" not in owned.json
    assert owned.json["opportunity"]["owner_email"] == "wang@acme.example"


def test_a_batch_reports_each_item_and_one_bad_item_blocks_none(app, client):
    mine = make_account(app, "华信科技")
    theirs = make_account(app, "环球公司", workspace="globex")
    key = new_key(app)
    items = [
        {"external_id": "b-1", **ITEM, "account_id": mine},
        {"external_id": "b-2", **ITEM, "account_id": theirs},  # another workspace's
        {"external_id": "b-3", **ITEM, "account_id": mine, "stage": "maybe"},
        {**ITEM, "account_id": mine},  # no external_id
        "not an object",
        {"external_id": "b-1", "stage": "solution"},  # the same deal again, moved
        {"external_id": "b-4", **ITEM, "account_name": "新公司", "create_account": True},
        {"external_id": "b-5", **ITEM, "account_id": mine, "surprise": 1},
        {"external_id": "b-1", "stage": "solution"},  # and once more, the same
    ]
    answer = post_batch(client, key, items)
    assert answer.status_code == 200
    results = answer.json["items"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "created"),
        (1, "rejected"),
        (2, "rejected"),
        (3, "rejected"),
        (4, "rejected"),
        (5, "updated"),
        (6, "created"),
        (7, "rejected"),
        (8, "unchanged"),
    ]
    assert results[1]["errors"] == {"account_id": ["Not an account of this workspace."]}
    assert set(results[2]["errors"]) == {"stage"}
    assert set(results[3]["errors"]) == {"external_id"}
    assert set(results[4]["errors"]) == {"_schema"}
    assert set(results[7]["errors"]) == {"surprise"}
    assert results[0]["external_id"] == "b-1"
    assert {k: answer.json[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 2,
        "updated": 1,
        "unchanged": 1,
        "rejected": 5,
    }
    assert count(app, Opportunity) == 2
    with session_of(app) as session:
        assert (
            session.scalar(select(Opportunity.stage).where(Opportunity.external_id == "b-1"))
            == "solution"
        )
        assert session.scalar(select(func.count()).where(Opportunity.account_id == theirs)) == 0

    all_bad = post_batch(client, key, [{"external_id": "x"}])
    assert all_bad.status_code == 422
    assert post_batch(client, key, []).status_code == 400
    too_many = post_batch(client, key, [{"external_id": f"m{i}"} for i in range(1001)])
    assert too_many.status_code == 413


def test_a_key_reads_and_writes_its_own_workspace_only(app, client):
    make_account(app, "华信科技")
    make_account(app, "华信科技", workspace="globex")
    ours, theirs = new_key(app), new_key(app, workspace="globex")
    assert put(client, ours, "same-id", {**ITEM, "account_name": "华信科技"}).status_code == 201
    assert get(client, theirs, "same-id").status_code == 404
    # The same external id in another workspace is another deal.
    assert put(client, theirs, "same-id", {**ITEM, "account_name": "华信科技"}).status_code == 201
    with session_of(app) as session:
        workspaces = set(session.scalars(select(Opportunity.workspace_id)))
    assert workspaces == {workspace_id(app), workspace_id(app, "globex")}


def test_a_key_that_requires_signatures_refuses_unsigned_and_replayed_requests(app, client):
    make_account(app, "华信科技")
    key = new_key(app, require_signature=True)
    body = json.dumps({**ITEM, "account_name": "华信科技"}).encode()
    assert put(client, key, "s-1", body).status_code == 401
    assert put(client, key, "s-1", body, signature=sign("hs_wrong", body)).status_code == 401
    now = int(time.time())
    signature = sign(key.signing_secret, body, now)
    assert put(client, key, "s-1", body, signature=signature).status_code == 201
    assert put(client, key, "s-1", body, signature=signature).status_code == 409  # a replay
    resent = sign(key.signing_secret, body, now - 1)
    assert put(client, key, "s-1", body, signature=resent).json["status"] == "unchanged"
    assert client.put("/api/v1/opportunities/s-1", json=ITEM).status_code == 401
    unsigned_get = get(client, key, "s-1")
    assert unsigned_get.status_code == 401
    signed_get = client.get(
        "/api/v1/opportunities/s-1",
        headers={
            "Authorization": f"Bearer {key.key}",
            "X-Harpoon-Signature": sign(key.signing_secret, b""),
        },
    )
    assert signed_get.status_code == 200


def test_the_openapi_document_describes_the_opportunity_api(client):
    document = client.get("/api/v1/openapi.json").json
    one = document["paths"]["/api/v1/opportunities/{external_id}"]
    assert set(one) == {"put", "get"}
    assert one["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Opportunity"
    }
    batch = document["paths"]["/api/v1/opportunities"]["post"]
    items = batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["items"]
    assert items["maxItems"] == 1000
    opportunity = document["components"]["schemas"]["Opportunity"]
    assert {"amount", "stage", "account_id", "create_account"} <= set(opportunity["properties"])
    result = batch["responses"]["200"]["content"]["application/json"]["schema"]
    item_result = result["properties"]["items"]["items"]["properties"]
    assert item_result["status"]["enum"] == ["created", "updated", "unchanged", "rejected"]


def test_two_puts_of_one_new_external_id_at_once_make_one_row(app):
    """The second waits on the first's unique key, loses, and runs again as an update."""
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")
    account = make_account(app, "华信科技")
    ws = workspace_id(app)
    values = {**ITEM, "account_id": account}
    with session_of(app) as session:
        pipeline_of(session, ws)  # so the second waits on the opportunity, not the stages
        session.commit()
    outcomes = {}
    with session_of(app) as first:
        outcomes["first"] = crm_sync.sync_item(first, ws, "race-1", values).status

        def second():
            with session_of(app) as session:
                outcomes["second"] = crm_sync.sync_item(
                    session, ws, "race-1", {**values, "stage": "solution"}
                ).status
                session.commit()

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the first's uncommitted row
        first.commit()
    thread.join(10)
    assert outcomes == {"first": "created", "second": "updated"}
    assert count(app, Opportunity) == 1
    with session_of(app) as session:
        assert session.scalar(select(Opportunity.stage)) == "solution"


def test_two_concurrent_http_puts_make_one_row_and_no_error(app):
    account = make_account(app, "华信科技")
    key = new_key(app)
    body = {**ITEM, "account_id": account}
    parallel = harpoon_of(app).db.engine.dialect.name == "postgresql"
    barrier = threading.Barrier(2)
    codes = []

    def send():
        client = app.test_client()
        if parallel:
            barrier.wait()
        codes.append(put(client, key, "race-2", body).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
        if not parallel:
            thread.join()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200, 201]
    assert count(app, Opportunity) == 1


def test_a_saved_opportunity_is_credited_by_the_job_it_asks_for(app, client):
    """A PUT that changed something asks for attribution; the worker credits the
    opportunity with its account's touches (a resend asks for nothing)."""
    account = make_account(app, "华信科技", is_target=True)
    contact = add_contact(app, name="李总", account_id=account)
    make_interaction(app, contact, "content.view", at=utcnow() - timedelta(days=3), content_id=7)
    key = new_key(app)
    assert put(client, key, "SF-0070", {**ITEM, "account_id": account}).status_code == 201
    run_jobs(app)
    with session_of(app) as session:
        opportunity = session.scalar(select(Opportunity))
        assert opportunity.attributed_at is not None
        credited = session.execute(
            select(AttributionTouch.dimension, AttributionTouch.ref, AttributionTouch.linear)
        ).all()
    assert [tuple(row) for row in credited] == [("content", "7", 1.0)]
    assert put(client, key, "SF-0070", {**ITEM, "account_id": account}).json["status"] == (
        "unchanged"
    )
    assert harpoon_of(app).queue.queue_of(Job.ATTRIBUTE_OPPORTUNITIES).count == 0


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1999-06-01T00:00:00Z"]
)
def test_a_date_far_outside_2000_to_2100_is_a_field_error_never_a_500(app, client, moment):
    mine = make_account(app, "华信科技")
    key = new_key(app)
    answer = post_batch(
        client,
        key,
        [
            {"external_id": "d-1", **ITEM, "account_id": mine, "opened_at": moment},
            {"external_id": "d-2", **ITEM, "account_id": mine, "closed_at": moment},
            {"external_id": "d-3", **ITEM, "account_id": mine},
        ],
    )
    assert answer.status_code == 200, answer.text
    results = answer.json["items"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "created"]
    assert results[0]["errors"] == {"opened_at": ["Not a usable date."]}
    assert results[1]["errors"] == {"closed_at": ["Not a usable date."]}
    one = put(client, key, "d-4", {**ITEM, "account_id": mine, "opened_at": moment})
    assert one.status_code == 422
    assert one.json["errors"] == {"opened_at": ["Not a usable date."]}
    assert count(app, Opportunity) == 1


def test_a_lone_surrogate_or_a_too_deep_body_is_a_400_never_a_500(app, client):
    mine = make_account(app, "华信科技")
    key = new_key(app)
    lone = json.dumps({**ITEM, "account_id": mine, "name": "订阅\ud800"}).encode()
    assert put(client, key, "s-1", lone).status_code == 400
    in_key = json.dumps({**ITEM, "account_id": mine, "\udc00": 1}).encode()
    assert put(client, key, "s-1", in_key).status_code == 400
    deep = b"[" * 5000 + b"]" * 5000
    assert put(client, key, "s-1", deep).status_code == 400
    batch_body = json.dumps({"items": [{"external_id": "s-2", **ITEM, "name": "\ud800"}]})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key.key}"}
    assert client.post("/api/v1/opportunities", data=batch_body, headers=headers).status_code == 400
    nested = b'{"items": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    assert client.post("/api/v1/opportunities", data=nested, headers=headers).status_code == 400
    # Nested deep, but within the parser's stack: an ordinary per-item error.
    fine = {"items": [{"external_id": "s-3", **ITEM, "account_id": mine, "x": [[[[1]]]]}]}
    answer = client.post("/api/v1/opportunities", json=fine, headers=headers)
    assert answer.status_code == 422 and set(answer.json["items"][0]["errors"]) == {"x"}
    assert count(app, Opportunity) == 0
