"""Bounces and complaints through the API: per-item results; a hard bounce or a complaint
suppresses the address and marks its message bounced; the contact gets the interaction."""

import json

from sqlalchemy import inspect

from models import EmailMessage, EmailStatus, EmailSuppression, Interaction
from tests.factories import add_identity, make_contact, make_email_message, new_key
from tests.helpers import all_of, load, run_jobs, session_of


def post(client, key, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return client.post("/api/v1/email/reports", data=raw, headers=headers)


def suppressions(app):
    return {
        row.address: row.reason for row in all_of(app, EmailSuppression, EmailSuppression.address)
    }


def test_each_report_gets_its_result_and_hard_ones_suppress(app, client):
    contact = make_contact(app, "王伟")
    add_identity(app, contact, "email", "wang@huaxin.example")
    first = make_email_message(app, contact, "wang@huaxin.example", message_id="<a1@harpoon>")
    second = make_email_message(app, contact, "Li@Zijin.example")
    third = make_email_message(app, contact, "full@zijin.example")
    theirs = make_email_message(
        app, make_contact(app, "外人", workspace="globex"), "x@globex.example"
    )
    key = new_key(app)
    answer = post(
        client,
        key.key,
        {
            "items": [
                {"type": "bounce", "message_id": "a1@harpoon", "detail": "550 5.1.1 user unknown"},
                {"type": "complaint", "token": second.token},
                {"type": "bounce", "token": third.token, "hard": False, "detail": "452 full"},
                {"type": "bounce", "email": "nobody@else.example"},
                {"type": "bounce", "token": theirs.token},
                {"type": "bounce"},
                {"type": "spam", "email": "a@b.example"},
                {"type": "bounce", "email": "not an address"},
                "junk",
                {"type": "bounce", "token": "x" * 100},
                {"type": "complaint", "email": "a@b.example", "extra": 1},
            ]
        },
    )
    assert answer.status_code == 200, answer.json
    items = answer.json["items"]
    assert [item["status"] for item in items] == [
        "suppressed",
        "suppressed",
        "recorded",
        "suppressed",
        "unknown",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert items[0] == {
        "index": 0,
        "status": "suppressed",
        "email": "wang@huaxin.example",
        "token": first.token,
    }
    assert items[5]["errors"] == {"_schema": ["Name the email: email, token or message_id."]}
    assert "type" in items[6]["errors"] and "email" in items[7]["errors"]
    assert answer.json["suppressed"] == 3 and answer.json["rejected"] == 6
    assert suppressions(app) == {
        "wang@huaxin.example": "bounced",
        "li@zijin.example": "complained",
        "nobody@else.example": "bounced",
    }
    assert load(app, EmailMessage, first.id).status == EmailStatus.BOUNCED
    assert load(app, EmailMessage, first.id).reason == "550 5.1.1 user unknown"
    assert load(app, EmailMessage, second.id).status == EmailStatus.SENT  # complained, delivered
    assert load(app, EmailMessage, third.id).status == EmailStatus.SENT  # soft: retried later
    assert load(app, EmailMessage, theirs.id).status == EmailStatus.SENT

    run_jobs(app)
    kinds = sorted((row.kind, row.contact_id) for row in all_of(app, Interaction))
    assert kinds == [
        ("email.bounce", contact),
        ("email.bounce", contact),
        ("email.complaint", contact),
    ]
    again = post(client, key.key, {"items": [{"type": "bounce", "message_id": "<a1@harpoon>"}]})
    assert again.json["items"][0]["status"] == "suppressed"
    run_jobs(app)
    assert len(all_of(app, Interaction)) == 3  # the same report again adds nothing


def test_the_endpoint_needs_a_key_and_a_list(app, client):
    assert (
        post(client, None, {"items": [{"type": "bounce", "email": "a@b.example"}]}).status_code
        == 401
    )
    key = new_key(app)
    assert post(client, key.key, b"not json").status_code == 400
    assert post(client, key.key, {"items": []}).status_code == 400
    assert post(client, key.key, [1, 2]).status_code == 400
    too_many = {"items": [{"type": "bounce", "email": "a@b.example"}] * 1001}
    assert post(client, key.key, too_many).status_code == 413
    all_bad = post(client, key.key, {"items": [{"type": "bounce"}]})
    assert all_bad.status_code == 422
    assert all_of(app, EmailSuppression, EmailSuppression.address) == []


def test_the_openapi_document_lists_the_endpoint(app, client):
    document = client.get("/api/v1/openapi.json").json
    assert "/api/v1/email/reports" in document["paths"]
    assert "EmailReport" in document["components"]["schemas"]
    assert "email.complaint" in document["info"]["description"]


def test_a_soft_bounce_then_a_hard_one_are_two_interactions_and_email_case_is_ignored(app, client):
    contact = make_contact(app, "李娜")
    add_identity(app, contact, "email", "li@zijin.example")
    message = make_email_message(app, contact, "li@zijin.example")
    key = new_key(app)

    soft = {"type": "bounce", "email": "Li@Zijin.Example", "hard": False, "detail": "452 full"}
    answer = post(client, key.key, {"items": [soft]})
    assert answer.json["items"][0] == {
        "index": 0,
        "status": "recorded",
        "email": "li@zijin.example",
        "token": message.token,
    }
    assert load(app, EmailMessage, message.id).status == EmailStatus.SENT
    hard = {"type": "bounce", "email": "LI@zijin.example", "detail": "550 gone"}
    assert post(client, key.key, {"items": [hard]}).json["items"][0]["status"] == "suppressed"
    assert load(app, EmailMessage, message.id).status == EmailStatus.BOUNCED

    run_jobs(app)
    bounces = [row for row in all_of(app, Interaction) if row.kind == "email.bounce"]
    assert sorted(row.properties.get("hard") for row in bounces) == [False, True]


def test_a_reported_message_is_found_through_an_index(app):
    """By its Message-ID or by the address's latest sent message, within the workspace."""
    with session_of(app) as session:
        indexes = inspect(session.get_bind()).get_indexes("email_messages")
    columns = {tuple(index["column_names"]) for index in indexes}
    assert ("workspace_id", "message_id") in columns
    assert ("workspace_id", "to_address", "sent_at") in columns
