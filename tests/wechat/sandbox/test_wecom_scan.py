"""The WeCom sandbox's customer scanning a 联系我 code: handed to one of the code's current
members (at random, the first, or seeded), refused when the list is empty, added at once
with skip_verify and only once the member accepts without it."""

import pytest
from wechatpy.work import parse_message

from tests.wechat.sandbox.helpers import CORP_ID
from wechat.sandbox import wecom

EXT = "/wecom/cgi-bin/externalcontact"


@pytest.fixture
def corp(sandbox_state):
    tenant = sandbox_state.tenant(CORP_ID)
    for userid in ("alice", "bob", "carol"):
        wecom.add_staff(sandbox_state, tenant, userid, userid.title())
    yield tenant
    sandbox_state.wait_for_deliveries()


def code(api, token, **fields) -> str:
    payload = {"type": 2, "scene": 2, "state": "expo", "user": ["alice", "bob", "carol"]}
    answer = api.post(
        f"{EXT}/add_contact_way", query_string={"access_token": token}, json={**payload, **fields}
    ).json
    return answer["config_id"]


def scan(sandbox_state, corp, external_userid, **options) -> str:
    return wecom.scan_contact_way(
        sandbox_state, corp, state="expo", external_userid=external_userid, name="客户", **options
    )


def events(sandbox_state, receiver):
    sandbox_state.wait_for_deliveries()
    return [(e.change_type, e.user_id, e.state) for e in map(parse_message, receiver.received)]


def test_a_scan_lands_on_a_member_of_the_codes_current_list(
    api, sandbox_state, receiver, corp, contact_token
):
    config_id = code(api, contact_token)
    assert scan(sandbox_state, corp, "wm_1", pick="first") == "alice"
    seeded = {scan(sandbox_state, corp, f"wm_s{n}", pick=n) for n in range(12)}
    assert seeded <= {"alice", "bob", "carol"} and len(seeded) > 1
    assert scan(sandbox_state, corp, "wm_2", pick=5) == scan(sandbox_state, corp, "wm_3", pick=5)
    update = {"config_id": config_id, "user": ["carol"]}
    api.post(f"{EXT}/update_contact_way", query_string={"access_token": contact_token}, json=update)
    assert {scan(sandbox_state, corp, f"wm_c{n}") for n in range(5)} == {"carol"}
    assert events(sandbox_state, receiver)[0] == ("add_external_contact", "alice", "expo")


def test_a_code_without_members_or_unknown_refuses_the_scan(
    api, sandbox_state, corp, contact_token
):
    with pytest.raises(ValueError, match="no 联系我 code"):
        scan(sandbox_state, corp, "wm_1")
    code(api, contact_token, user=[], party=[2])
    with pytest.raises(ValueError, match="names no member"):
        scan(sandbox_state, corp, "wm_1")


def test_without_skip_verify_the_add_waits_for_the_member(
    api, sandbox_state, receiver, corp, contact_token
):
    code(api, contact_token, skip_verify=False)
    assert scan(sandbox_state, corp, "wm_1", pick="first") == "alice"
    assert events(sandbox_state, receiver) == []
    assert wecom.contact_requests(sandbox_state, corp) == [("alice", "wm_1")]
    assert wecom.state_of(corp).follows == {}
    assert wecom.accept_contact_request(
        sandbox_state, corp, userid="alice", external_userid="wm_1"
    )  # the WelcomeCode
    assert events(sandbox_state, receiver) == [("add_external_contact", "alice", "expo")]
    assert wecom.contact_requests(sandbox_state, corp) == []
