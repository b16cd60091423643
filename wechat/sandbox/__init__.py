"""A local fake of the WeChat OA and WeCom APIs, with their limits and error codes.

    create_sandbox() -> a Flask app serving /oa/... (api.weixin.qq.com),
    /open/... (open.weixin.qq.com), /wecom/... (qyapi.weixin.qq.com) and
    /sandbox/... (control and inspection for tests and the demo), and the WeCom client
    (/sandbox/wecom/client: a chat with the app's chat-toolbar page; wecom_client.py).

Point the clients at it with one setting (HARPOON_WECHAT_API_URL).
"""

from flask import Flask, jsonify

from wechat.sandbox import (
    media,
    oa,
    wecom,
    wecom_client,
    wecom_group_marketing,
    wecom_groups,
    wecom_transfers,
)
from wechat.sandbox.core import ApiError, Sandbox, api_error, apply_faults, control, sandbox


def create_sandbox(state: Sandbox | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["sandbox"] = state or Sandbox()
    app.register_error_handler(ApiError, api_error)
    app.before_request(apply_faults)
    app.register_blueprint(control)
    app.register_blueprint(oa.bp)
    app.register_blueprint(oa.open_bp)
    app.register_blueprint(wecom.bp)
    app.register_blueprint(wecom_transfers.bp)
    app.register_blueprint(wecom_transfers.control)
    app.register_blueprint(wecom_client.api_bp)
    app.register_blueprint(wecom_client.client_bp)
    app.register_blueprint(wecom_groups.bp)
    app.register_blueprint(media.oa_bp)
    app.register_blueprint(media.wecom_bp)
    app.register_blueprint(wecom_group_marketing.bp)

    @app.get("/sandbox/state")
    def state():
        """Everything the sandbox holds, per tenant, for tests and curious developers."""
        with sandbox().lock:
            return jsonify(
                {
                    app_id: {**oa.inspect(tenant), **media.inspect(tenant)}
                    if tenant.kind == "oa"
                    else {
                        **wecom.inspect(tenant),
                        **wecom_client.inspect(tenant),
                        **wecom_groups.inspect(tenant),
                        **media.inspect(tenant),
                        **wecom_group_marketing.inspect(tenant),
                    }
                    for app_id, tenant in sandbox().tenants.items()
                }
            )

    return app


__all__ = ["ApiError", "Sandbox", "create_sandbox"]
