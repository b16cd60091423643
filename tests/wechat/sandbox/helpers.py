"""What the sandbox's own tests share: the credentials of its OA and WeCom corp, and a
receiver that verifies and records the callbacks the sandbox delivers."""

import threading

from flask import Flask, request
from wechatpy.crypto import WeChatCrypto
from wechatpy.work.crypto import WeChatCrypto as WeComCrypto
from werkzeug.serving import make_server

OA_APP_ID = "wxsandbox00000001"
OA_SECRET = "oa-app-secret"
CORP_ID = "wwsandbox00000001"
CONTACT_SECRET = "contact-secret"
AGENT_SECRET = "agent-secret"
TOKEN = "sandboxtoken"
AES_KEY = "S" * 43


class Receiver:
    """A real HTTP server standing in for Harpoon: decrypts with wechatpy, records the XML."""

    def __init__(self):
        self.received: list[str] = []
        self.fail_next = 0  # answer 500 to this many callbacks first
        app = Flask("receiver")

        @app.before_request
        def fail_on_request():
            if self.fail_next > 0:
                self.fail_next -= 1
                return "busy", 500
            return None

        cryptos = {
            "oa": WeChatCrypto(TOKEN, AES_KEY, OA_APP_ID),
            "wecom": WeComCrypto(TOKEN, AES_KEY, CORP_ID),
        }

        @app.post("/<any(oa, wecom):platform>")
        def callback(platform):
            a = request.args
            xml = cryptos[platform].decrypt_message(
                request.data, a["msg_signature"], a["timestamp"], a["nonce"]
            )
            self.received.append(xml)
            return "success"

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
