"""The Official Account API (api.weixin.qq.com), served under /oa."""

from dataclasses import asdict, dataclass, field

from flask import Blueprint, request

from wechat.sandbox.core import OA, ApiError, Tenant, ok, sandbox

bp = Blueprint("sandbox_oa", __name__, url_prefix="/oa")
open_bp = Blueprint("sandbox_open", __name__, url_prefix="/open")


@dataclass
class Follower:
    openid: str
    unionid: str = ""
    subscribe: int = 1
    subscribe_time: int = 0
    subscribe_scene: str = "ADD_SCENE_SEARCH"
    qr_scene: int = 0
    qr_scene_str: str = ""
    tagid_list: list[int] = field(default_factory=list)


@dataclass
class OAState:
    followers: dict[str, Follower] = field(default_factory=dict)


def state_of(tenant: Tenant) -> OAState:
    return tenant.data.setdefault(OA, OAState())


def authenticated() -> tuple[Tenant, OAState]:
    tenant, _ = sandbox().authenticate(OA, request.args.get("access_token"))
    return tenant, state_of(tenant)


def inspect(tenant: Tenant) -> dict:
    state = state_of(tenant)
    return {"kind": OA, "followers": {k: asdict(v) for k, v in state.followers.items()}}


@bp.get("/cgi-bin/token")
def token():
    if request.args.get("grant_type") != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    tenant = sandbox().tenant(request.args.get("appid", ""))
    if request.args.get("secret") != tenant.secrets.get("app"):
        raise ApiError(40125, "invalid appsecret")
    issued = sandbox().issue_token(tenant, "app", reuse=False)
    return ok(access_token=issued.value, expires_in=sandbox().TOKEN_SECONDS)


@bp.get("/cgi-bin/user/info")
def user_info():
    _, state = authenticated()
    follower = state.followers.get(request.args.get("openid", ""))
    if follower is None:
        raise ApiError(40003, "invalid openid")
    return _user_json(follower)


def _user_json(follower: Follower) -> dict:
    if not follower.subscribe:
        return {"subscribe": 0, "openid": follower.openid}
    data = asdict(follower)
    if not follower.unionid:
        data.pop("unionid")
    return data
