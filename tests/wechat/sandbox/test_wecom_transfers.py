"""The WeCom sandbox's customer transfers: WeCom's limits and per-customer errcodes, the
takeover 24 hours later by the sandbox's clock, refusals and their transfer_fail callback,
departed members' unassigned customers and the resigned endpoints."""

import pytest
from wechatpy.work import parse_message

from tests.factories import add_customer
from tests.wechat.sandbox.helpers import CONTACT_SECRET, CORP_ID
from wechat.sandbox import wecom, wecom_transfers

EXT = "/wecom/cgi-bin/externalcontact"
DAY = 86400


@pytest.fixture
def corp(sandbox_state, receiver):
    """alice has customers wm_1..wm_3; bob and dave take over."""
    tenant = sandbox_state.tenant(CORP_ID)
    for userid in ("alice", "bob", "dave"):
        wecom.add_staff(sandbox_state, tenant, userid, userid.title())
    for n in (1, 2, 3):
        add_customer(sandbox_state, tenant, f"wm_{n}")
    sandbox_state.wait_for_deliveries()
    receiver.received.clear()
    yield tenant
    sandbox_state.wait_for_deliveries()


def post(api, path, _token, payload):
    """A call with a token valid now (moving the clock a day on expires the fixture's)."""
    token = api.get(
        "/wecom/cgi-bin/gettoken", query_string={"corpid": CORP_ID, "corpsecret": CONTACT_SECRET}
    ).json["access_token"]
    return api.post(path, query_string={"access_token": token}, json=payload).json


def transfer(api, token, customers, *, handover="alice", takeover="bob", resigned=False, **more):
    path = f"{EXT}/resigned/transfer_customer" if resigned else f"{EXT}/transfer_customer"
    payload = {
        "handover_userid": handover,
        "takeover_userid": takeover,
        "external_userid": customers,
        **more,
    }
    return post(api, path, token, payload)


def errcodes(answer) -> dict[str, int]:
    return {row["external_userid"]: row["errcode"] for row in answer["customer"]}


def results(api, token, handover="alice", takeover="bob", resigned=False) -> dict[str, int]:
    path = f"{EXT}/resigned/transfer_result" if resigned else f"{EXT}/transfer_result"
    answer = post(api, path, token, {"handover_userid": handover, "takeover_userid": takeover})
    return {row["external_userid"]: row["status"] for row in answer["customer"]}


def follows_of(tenant, external_userid) -> set[str]:
    return {u for u, e in wecom.state_of(tenant).follows if e == external_userid}


def test_limits_of_a_call(api, corp, contact_token):
    too_many = [f"wm_{n}" for n in range(101)]
    assert transfer(api, contact_token, too_many)["errcode"] == 40058
    assert (
        transfer(api, contact_token, ["wm_1"], transfer_success_msg="字" * 201)["errcode"] == 40058
    )
    assert transfer(api, contact_token, ["wm_1"], takeover="nobody")["errcode"] == 40003
    assert transfer(api, contact_token, ["wm_1"], resigned=True)["errcode"] == 40097


def test_per_customer_refusals(api, sandbox_state, corp, contact_token):
    answer = transfer(api, contact_token, ["wm_1", "wm_x"])
    assert errcodes(answer) == {"wm_1": 0, "wm_x": 40131}
    assert errcodes(transfer(api, contact_token, ["wm_2"], takeover="alice")) == {"wm_2": 40130}
    assert errcodes(transfer(api, contact_token, ["wm_1"], takeover="dave")) == {"wm_1": 40129}
    wecom_transfers.transfers_of(corp).customer_limits["dave"] = 0
    assert errcodes(transfer(api, contact_token, ["wm_2"], takeover="dave")) == {"wm_2": 40099}


def test_the_takeover_completes_after_24_hours(api, sandbox_state, corp, contact_token, receiver):
    transfer(api, contact_token, ["wm_1"])
    sandbox_state.advance(DAY - 1)
    assert results(api, contact_token) == {"wm_1": wecom_transfers.WAITING}
    assert follows_of(corp, "wm_1") == {"alice"}
    sandbox_state.advance(2)
    assert results(api, contact_token) == {"wm_1": wecom_transfers.DONE}
    assert follows_of(corp, "wm_1") == {"bob"}
    sandbox_state.wait_for_deliveries()
    events = [parse_message(xml) for xml in receiver.received]
    assert [(e.change_type, e.user_id) for e in events] == [
        ("del_external_contact", "alice"),
        ("add_external_contact", "bob"),
    ]
    assert "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>" in receiver.received[0]


def test_a_third_transfer_in_90_days_is_refused(api, sandbox_state, corp, contact_token):
    for handover, takeover in (("alice", "bob"), ("bob", "alice")):
        answer = transfer(api, contact_token, ["wm_1"], handover=handover, takeover=takeover)
        assert errcodes(answer) == {"wm_1": 0}
        sandbox_state.advance(DAY + 1)
    answer = transfer(api, contact_token, ["wm_1", "wm_2"], takeover="dave")
    assert errcodes(answer) == {"wm_1": 40128, "wm_2": 0}
    sandbox_state.advance(90 * DAY)
    assert errcodes(transfer(api, contact_token, ["wm_1"], takeover="dave")) == {"wm_1": 0}


def test_a_customer_refuses_over_http(api, sandbox_state, corp, contact_token, receiver):
    transfer(api, contact_token, ["wm_1"])
    refused = api.post(
        "/sandbox/wecom/transfers/refuse", json={"corp_id": CORP_ID, "external_userid": "wm_1"}
    )
    assert refused.status_code == 200
    assert results(api, contact_token) == {"wm_1": wecom_transfers.REFUSED}
    sandbox_state.wait_for_deliveries()
    (event,) = [parse_message(xml) for xml in receiver.received]
    assert (event.change_type, event.user_id) == ("transfer_fail", "bob")
    assert "<FailReason><![CDATA[customer_refused]]></FailReason>" in receiver.received[0]
    sandbox_state.advance(DAY + 1)
    assert follows_of(corp, "wm_1") == {"alice"}
    again = api.post(
        "/sandbox/wecom/transfers/refuse", json={"corp_id": CORP_ID, "external_userid": "wm_1"}
    )
    assert again.status_code == 400


def test_departed_members_customers(api, sandbox_state, corp, contact_token):
    departed = api.post("/sandbox/wecom/staff/depart", json={"corp_id": CORP_ID, "userid": "alice"})
    assert departed.status_code == 200
    follow_users = api.get(
        f"{EXT}/get_follow_user_list", query_string={"access_token": contact_token}
    ).json["follow_user"]
    assert "alice" not in follow_users
    page = post(api, f"{EXT}/get_unassigned_list", contact_token, {"page_size": 2})
    assert [row["external_userid"] for row in page["info"]] == ["wm_1", "wm_2"]
    assert page["is_last"] is False
    rest = post(api, f"{EXT}/get_unassigned_list", contact_token, {"cursor": page["next_cursor"]})
    assert [row["external_userid"] for row in rest["info"]] == ["wm_3"] and rest["is_last"]
    assert transfer(api, contact_token, ["wm_1"])["errcode"] == 84074
    answer = transfer(api, contact_token, ["wm_1", "wm_2", "wm_3"], resigned=True)
    assert set(errcodes(answer).values()) == {0}
    sandbox_state.advance(DAY + 1)
    assert set(results(api, contact_token, resigned=True).values()) == {wecom_transfers.DONE}
    assert post(api, f"{EXT}/get_unassigned_list", contact_token, {})["info"] == []
