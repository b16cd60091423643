"""The WeCom API (qyapi.weixin.qq.com), served under /wecom."""

from dataclasses import dataclass, field

from flask import Blueprint, request

from wechat.sandbox.core import WECOM, ApiError, Tenant, ok, sandbox

bp = Blueprint("sandbox_wecom", __name__, url_prefix="/wecom")


@dataclass
class WeComState:
    external_contacts: dict[str, dict] = field(default_factory=dict)


def state_of(tenant: Tenant) -> WeComState:
    return tenant.data.setdefault(WECOM, WeComState())


def authenticated() -> tuple[Tenant, str, WeComState]:
    """The corp, the name of the secret the token was issued for, and the corp's state."""
    tenant, secret_name = sandbox().authenticate(WECOM, request.args.get("access_token"))
    return tenant, secret_name, state_of(tenant)


def inspect(tenant: Tenant) -> dict:
    return {"kind": WECOM, "external_contacts": state_of(tenant).external_contacts}


@bp.get("/cgi-bin/gettoken")
def gettoken():
    tenant = sandbox().tenant(request.args.get("corpid", ""))
    given = request.args.get("corpsecret", "")
    secret_name = next((name for name, value in tenant.secrets.items() if value == given), None)
    if secret_name is None:
        raise ApiError(40001, "invalid secret")
    issued = sandbox().issue_token(tenant, secret_name, reuse=True)
    remaining = int(issued.expires_at - sandbox().now())
    return ok(access_token=issued.value, expires_in=remaining)
