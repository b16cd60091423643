"""Customer transfers (客户继承) in the WeCom sandbox: in service and for departed members.

API (under /wecom, the customer-contact secret's token):

- `externalcontact/transfer_customer` and `externalcontact/resigned/transfer_customer`:
  {handover_userid, takeover_userid, external_userid (<= 100), transfer_success_msg
  (<= 200 characters, in service only)} -> customer: [{external_userid, errcode}]. Errcode
  0 means the takeover has started; it completes 24 hours later by the sandbox's clock
  unless the customer refuses (in service only) or the takeover is at its customer limit.
- `externalcontact/transfer_result` and `externalcontact/resigned/transfer_result`:
  {handover_userid, takeover_userid, cursor} -> customer: [{external_userid, status,
  takeover_time}] (1 done, 2 waiting, 3 refused, 4 takeover at the customer limit,
  5 no record), next_cursor.
- `externalcontact/get_unassigned_list`: {cursor, page_size (<= 1000)} -> info:
  [{handover_userid, external_userid, dimission_time}], is_last, next_cursor: the
  customers of departed members not yet handed over.

What people do (over HTTP, for tests and the demo; `corp_id` in the body):

- `POST /sandbox/wecom/staff/depart` {userid}: the member leaves the corp (their customers
  become unassigned; they lose the customer-contact permission, so the follow-user list
  no longer names them).
- `POST /sandbox/wecom/transfers/refuse` {external_userid, reason}: the customer refuses
  their waiting in-service transfer (reason customer_refused, the default) or the takeover
  turns out full (customer_limit_exceed); delivers change_external_contact/transfer_fail.
- `POST /sandbox/wecom/transfers/customer_limit` {userid, limit}: a member's customer limit.
- `POST /sandbox/wecom/transfers/settle`: complete what is due now (every transfer API call
  does this first, so a moved clock is seen by the next call).
- `GET /sandbox/wecom/transfers?corp_id=`: every transfer record.

A completed transfer moves the follow relation: the handover's goes (del_external_contact,
Source DELETE_BY_TRANSFER) and the takeover gains one (add_external_contact, without a
WelcomeCode). Per-customer errcodes from WeCom's global errcode list: 40128 transferred
too often (2 in-service transfers a customer in 90 days), 40129 the customer is being
transferred already, 40130 handover and takeover are the same member, 40131 not the
handover's customer, 40099 the takeover is at its customer limit. Call-level: 40097 the
handover has not left (resigned endpoints), 40003/84074 unknown takeover or one without the
customer-contact permission, 40058 over 100 customers or a message over 200 characters,
50100 invalid cursor.
"""

from dataclasses import asdict, dataclass, field

from flask import Blueprint, jsonify, request

from wechat.sandbox.core import ApiError, Sandbox, Tenant, body, ok, sandbox
from wechat.sandbox.wecom import (
    FollowUser,
    WeComState,
    _contact_staff,
    _deliver_contact_event,
    _follows_of_staff,
    _page,
    contact_api,
    state_of,
)

bp = Blueprint("sandbox_wecom_transfers", __name__, url_prefix="/wecom")
control = Blueprint("sandbox_wecom_transfers_control", __name__, url_prefix="/sandbox/wecom")

TRANSFERS = "wecom_transfers"
CUSTOMERS_PER_CALL = 100
SUCCESS_MSG_MAX_CHARS = 200
TAKEOVER_SECONDS = 24 * 3600
TRANSFER_WINDOW_SECONDS = 90 * 86400
TRANSFERS_PER_WINDOW = 2  # in-service transfers of one customer
# WeCom's limit depends on the corp's edition; the sandbox's default, settable per member.
CUSTOMERS_PER_MEMBER = 50_000
RESULTS_PER_PAGE = 1000
UNASSIGNED_PAGE_MAX = 1000

DONE, WAITING, REFUSED, LIMIT, NO_RECORD = 1, 2, 3, 4, 5
TOO_OFTEN, IN_TRANSFER, SAME_MEMBER, NOT_HANDOVERS = 40128, 40129, 40130, 40131
TAKEOVER_FULL, NOT_DEPARTED = 40099, 40097
IN_SERVICE, RESIGNED = "in_service", "resigned"


@dataclass
class TransferRecord:
    kind: str
    handover_userid: str
    takeover_userid: str
    external_userid: str
    started_at: float
    message: str = ""
    status: int = WAITING
    takeover_time: int = 0


@dataclass
class TransferState:
    records: list[TransferRecord] = field(default_factory=list)
    departed: dict[str, int] = field(default_factory=dict)  # userid -> dimission_time
    customer_limits: dict[str, int] = field(default_factory=dict)


def transfers_of(tenant: Tenant) -> TransferState:
    return tenant.data.setdefault(TRANSFERS, TransferState())


def _customer_count(corp: WeComState, transfers: TransferState, userid: str) -> int:
    """The member's customers now, counting those on their way to them."""
    waiting = sum(
        1 for r in transfers.records if r.status == WAITING and r.takeover_userid == userid
    )
    return len(_follows_of_staff(corp, userid)) + waiting


def _limit_of(transfers: TransferState, userid: str) -> int:
    return transfers.customer_limits.get(userid, CUSTOMERS_PER_MEMBER)


def _recent_transfers(transfers: TransferState, external_userid: str, now: float) -> int:
    """In-service transfers of the customer started in the last 90 days, refused ones aside."""
    return sum(
        1
        for r in transfers.records
        if r.kind == IN_SERVICE
        and r.external_userid == external_userid
        and r.status in (WAITING, DONE)
        and r.started_at > now - TRANSFER_WINDOW_SECONDS
    )


def _per_customer(
    corp: WeComState, transfers: TransferState, kind: str, handover: str, takeover: str, ext: str
) -> int:
    now = sandbox().now()
    if handover == takeover:
        return SAME_MEMBER
    if (handover, ext) not in corp.follows:
        return NOT_HANDOVERS
    if any(r.external_userid == ext and r.status == WAITING for r in transfers.records):
        return IN_TRANSFER
    if kind == IN_SERVICE and _recent_transfers(transfers, ext, now) >= TRANSFERS_PER_WINDOW:
        return TOO_OFTEN
    if _customer_count(corp, transfers, takeover) >= _limit_of(transfers, takeover):
        return TAKEOVER_FULL
    return 0


def _transfer(kind: str):
    tenant, corp = contact_api()
    data = body()
    externals = data.get("external_userid") or []
    if not isinstance(externals, list) or not externals:
        raise ApiError(41035, "missing external_userid")
    if len(externals) > CUSTOMERS_PER_CALL:
        raise ApiError(40058, f"at most {CUSTOMERS_PER_CALL} external_userid")
    message = data.get("transfer_success_msg") or ""
    if len(message) > SUCCESS_MSG_MAX_CHARS:
        raise ApiError(40058, f"transfer_success_msg over {SUCCESS_MSG_MAX_CHARS} characters")
    handover, takeover = data.get("handover_userid") or "", data.get("takeover_userid") or ""
    with sandbox().lock:
        settle(sandbox(), tenant)
        transfers = transfers_of(tenant)
        if handover not in corp.staff:
            raise ApiError(40003, f"invalid userid: {handover}")
        departed = handover in transfers.departed
        if kind == RESIGNED and not departed:
            raise ApiError(NOT_DEPARTED, "handover_userid has not left the corp")
        if kind == IN_SERVICE and departed:
            raise ApiError(84074, f"{handover} has left: use resigned/transfer_customer")
        _contact_staff(corp, takeover)
        now = sandbox().now()
        answers = []
        for ext in dict.fromkeys(str(e) for e in externals):
            errcode = _per_customer(corp, transfers, kind, handover, takeover, ext)
            if errcode == 0:
                transfers.records.append(
                    TransferRecord(kind, handover, takeover, ext, now, message=message)
                )
            answers.append({"external_userid": ext, "errcode": errcode})
        return ok(customer=answers)


def _result(kind: str):
    tenant, _ = contact_api()
    data = body()
    handover, takeover = data.get("handover_userid") or "", data.get("takeover_userid") or ""
    with sandbox().lock:
        settle(sandbox(), tenant)
        latest: dict[str, TransferRecord] = {}
        for record in transfers_of(tenant).records:
            if (record.kind, record.handover_userid, record.takeover_userid) == (
                kind,
                handover,
                takeover,
            ):
                latest[record.external_userid] = record
        rows = [
            {
                "external_userid": r.external_userid,
                "status": r.status,
                "takeover_time": r.takeover_time,
            }
            for r in latest.values()
        ]
        page, next_cursor = _page(rows, data.get("cursor") or "", RESULTS_PER_PAGE)
        return ok(customer=page, next_cursor=next_cursor)


@bp.post("/cgi-bin/externalcontact/transfer_customer")
def transfer_customer():
    """Fakes externalcontact/transfer_customer (在职继承)."""
    return _transfer(IN_SERVICE)


@bp.post("/cgi-bin/externalcontact/resigned/transfer_customer")
def resigned_transfer_customer():
    """Fakes externalcontact/resigned/transfer_customer (离职继承)."""
    return _transfer(RESIGNED)


@bp.post("/cgi-bin/externalcontact/transfer_result")
def transfer_result():
    """Fakes externalcontact/transfer_result: each customer's latest in-service transfer
    between the two members."""
    return _result(IN_SERVICE)


@bp.post("/cgi-bin/externalcontact/resigned/transfer_result")
def resigned_transfer_result():
    """Fakes externalcontact/resigned/transfer_result."""
    return _result(RESIGNED)


@bp.post("/cgi-bin/externalcontact/get_unassigned_list")
def get_unassigned_list():
    """Fakes externalcontact/get_unassigned_list: departed members' customers not handed
    over yet (those waiting for a takeover included, as WeCom lists them until done)."""
    tenant, corp = contact_api()
    data = body()
    page_size = int(data.get("page_size") or UNASSIGNED_PAGE_MAX)
    if not 1 <= page_size <= UNASSIGNED_PAGE_MAX:
        raise ApiError(40058, f"page_size 1 to {UNASSIGNED_PAGE_MAX}")
    with sandbox().lock:
        settle(sandbox(), tenant)
        departed = transfers_of(tenant).departed
        rows = [
            {
                "handover_userid": f.userid,
                "external_userid": f.external_userid,
                "dimission_time": departed[f.userid],
            }
            for f in corp.follows.values()
            if f.userid in departed
        ]
        page, next_cursor = _page(rows, data.get("cursor") or "", page_size)
        return ok(info=page, is_last=not next_cursor, next_cursor=next_cursor)


# --- what happens with time, and what people do -------------------------------------


def settle(state: Sandbox, tenant: Tenant) -> int:
    """Complete every waiting transfer whose 24 hours have passed; how many were."""
    with state.lock:
        corp, transfers = state_of(tenant), transfers_of(tenant)
        now = state.now()
        due = [
            r
            for r in transfers.records
            if r.status == WAITING and r.started_at + TAKEOVER_SECONDS <= now
        ]
        for record in due:
            record.status = DONE
            if len(_follows_of_staff(corp, record.takeover_userid)) >= _limit_of(
                transfers, record.takeover_userid
            ):
                record.status = LIMIT
                _deliver_contact_event(
                    state,
                    tenant,
                    "transfer_fail",
                    (record.takeover_userid, record.external_userid),
                    FailReason="customer_limit_exceed",
                )
                continue
            _complete(state, tenant, corp, record, int(record.started_at + TAKEOVER_SECONDS))
        return len(due)


def _complete(
    state: Sandbox, tenant: Tenant, corp: WeComState, record: TransferRecord, at: int
) -> None:
    record.takeover_time = at
    key = (record.handover_userid, record.external_userid)
    old = corp.follows.pop(key, None)
    if old is not None:
        _deliver_contact_event(
            state, tenant, "del_external_contact", key, Source="DELETE_BY_TRANSFER"
        )
    new_key = (record.takeover_userid, record.external_userid)
    if new_key not in corp.follows:
        corp.follows[new_key] = FollowUser(
            userid=record.takeover_userid,
            external_userid=record.external_userid,
            createtime=at,
            oper_userid=record.takeover_userid,
            add_way=old.add_way if old else 0,
            state=old.state if old else "",
        )
        _deliver_contact_event(state, tenant, "add_external_contact", new_key)


def depart(state: Sandbox, tenant: Tenant, userid: str) -> None:
    """The member leaves: their customers wait in get_unassigned_list."""
    with state.lock:
        staff = state_of(tenant).staff.get(userid)
        if staff is None:
            raise ValueError(f"unknown staff member {userid}")
        staff.customer_contact = False
        transfers_of(tenant).departed.setdefault(userid, int(state.now()))


def refuse(state: Sandbox, tenant: Tenant, external_userid: str, reason: str) -> TransferRecord:
    """The customer's waiting transfer fails (they refused, or the takeover is full):
    delivers transfer_fail with the reason."""
    with state.lock:
        record = next(
            (
                r
                for r in transfers_of(tenant).records
                if r.external_userid == external_userid and r.status == WAITING
            ),
            None,
        )
        if record is None:
            raise ValueError(f"{external_userid} has no waiting transfer")
        if reason == "customer_refused" and record.kind != IN_SERVICE:
            raise ValueError("a departed member's customer is not asked: they cannot refuse")
        record.status = REFUSED if reason == "customer_refused" else LIMIT
        _deliver_contact_event(
            state,
            tenant,
            "transfer_fail",
            (record.takeover_userid, external_userid),
            FailReason=reason,
        )
        return record


def _control_tenant(data: dict) -> Tenant:
    tenant = sandbox().tenant(str(data.get("corp_id") or ""))
    if tenant.kind != "wecom":
        raise ApiError(40013, "not a WeCom corp")
    return tenant


def _payload() -> dict:
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


@control.post("/staff/depart")
def depart_staff():
    data = _payload()
    try:
        depart(sandbox(), _control_tenant(data), str(data.get("userid") or ""))
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(ok=True)


@control.post("/transfers/refuse")
def refuse_transfer():
    data = _payload()
    reason = data.get("reason") or "customer_refused"
    if reason not in ("customer_refused", "customer_limit_exceed"):
        return jsonify(error="reason: customer_refused or customer_limit_exceed"), 400
    try:
        record = refuse(
            sandbox(), _control_tenant(data), str(data.get("external_userid") or ""), reason
        )
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(asdict(record))


@control.post("/transfers/customer_limit")
def set_customer_limit():
    data = _payload()
    tenant = _control_tenant(data)
    limit = data.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return jsonify(error="limit: a whole number"), 400
    with sandbox().lock:
        transfers_of(tenant).customer_limits[str(data.get("userid") or "")] = limit
    return jsonify(ok=True)


@control.post("/transfers/settle")
def settle_transfers():
    tenant = _control_tenant(_payload())
    return jsonify(completed=settle(sandbox(), tenant))


@control.get("/transfers")
def list_transfers():
    tenant = _control_tenant(request.args.to_dict())
    with sandbox().lock:
        transfers = transfers_of(tenant)
        return jsonify(
            records=[asdict(r) for r in transfers.records],
            departed=transfers.departed,
            customer_limits=transfers.customer_limits,
        )
