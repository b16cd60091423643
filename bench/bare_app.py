"""The baseline for bench/callback_ingest.py: our callback endpoint without the store.

The same Flask route and the same protocol work as app/callbacks.py up to the
store (parse the query, check freshness, verify and decrypt with wechatpy,
parse the XML, compute the dedupe key), then `success`: no database, no Redis.
The channel comes from the environment:

    BARE_CHANNEL_ID, BARE_TOKEN, BARE_AES_KEY, BARE_APP_ID

Serve it with the same gunicorn settings as ours, from the repository root:

    gunicorn -c config/gunicorn.py --pythonpath bench bare_app:app
"""

import os

from flask import Flask, Response, abort, request
from werkzeug.exceptions import RequestEntityTooLarge

from config import Settings
from wechat import callbacks as protocol
from wechat.callbacks import OA, CallbackRejected

CHANNEL_ID = int(os.environ.get("BARE_CHANNEL_ID", "1"))
TOKEN = os.environ.get("BARE_TOKEN", "")
AES_KEYS = (os.environ.get("BARE_AES_KEY", ""),)
APP_ID = os.environ.get("BARE_APP_ID", "")
DEFAULTS = Settings()

flask_app = Flask(__name__)


@flask_app.get("/healthz")
def healthz():
    return _text("ok")


@flask_app.post("/callbacks/wechat/<int:channel_id>")
def wechat(channel_id: int):
    if channel_id != CHANNEL_ID:
        abort(404)
    query = protocol.parse_query(request.query_string)
    try:
        protocol.check_fresh(query.timestamp, DEFAULTS.callback_max_age_seconds)
        request.max_content_length = DEFAULTS.callback_max_bytes
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise CallbackRejected(413, "body over the size limit") from None
        xml = protocol.open_oa_message(
            body, query, token=TOKEN, aes_keys=AES_KEYS, app_id=APP_ID, mode="safe"
        )
        fields = protocol.parse_xml(xml)
        if not fields.get("MsgType"):
            raise CallbackRejected(400, "no MsgType")
    except CallbackRejected as rejected:
        return _text(rejected.reason, rejected.status)
    protocol.dedupe_key(OA, fields, xml)
    return _text("success")


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


# config/gunicorn.py's post_worker_init starts Harpoon's embedded worker when the
# app is a Flask instance; serving the plain WSGI callable keeps this app out of it.
app = flask_app.wsgi_app
