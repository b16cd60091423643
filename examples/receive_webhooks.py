"""Receive Harpoon's journey webhooks and act only on those your workspace really sent.

A journey's webhook action POSTs JSON with three headers:

    X-Harpoon-Workspace: <workspace id>
    X-Harpoon-Delivery:  <id, the same on every retry of one step>
    X-Harpoon-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]

where hex = HMAC-SHA256(the workspace's webhook signing secret, "<t>." + body). Right
after a rotation Harpoon signs with the new and the previous secret, one v1 each. This
receiver accepts a delivery when a v1 matches a secret it holds and t is less than five
minutes off, acts once per delivery id, and answers 401 to anything else.

    HARPOON_WEBHOOK_SECRETS=whsec_... .venv/bin/python examples/receive_webhooks.py --port 8200

Standalone: the standard library only.
"""

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024


def signature_problem(
    secrets: list[str], header: str | None, body: bytes, now: float | None = None
) -> str | None:
    """Why the signature header does not vouch for the body; None when it does."""
    if not header:
        return "missing signature"
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in parts if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return "malformed signature"
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return "timestamp too old or in the future"
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    offered = [value for name, value in parts if name == "v1"]
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        return "signature does not match"
    return None


def make_server(
    secrets: list[str], on_delivery: Callable[[str, dict], None], port: int = 0
) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 calling on_delivery(delivery id, payload) once per delivery."""
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._answer(413, "too large")
            body = self.rfile.read(length)
            problem = signature_problem(secrets, self.headers.get("X-Harpoon-Signature"), body)
            if problem:
                return self._answer(401, problem)
            delivery = self.headers.get("X-Harpoon-Delivery", "")
            if delivery not in seen:  # a retry of a delivery already acted on: just ack
                seen.add(delivery)
                on_delivery(delivery, json.loads(body))
            return self._answer(200, "ok")

        def _answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            print(format % args, file=sys.stderr)

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8200)
    args = parser.parse_args(argv)
    secrets = [s for s in os.environ.get("HARPOON_WEBHOOK_SECRETS", "").split(",") if s]
    if not secrets:
        print("set HARPOON_WEBHOOK_SECRETS (comma-separated during a rotation)", file=sys.stderr)
        return 2

    def show(delivery: str, payload: dict) -> None:
        print(f"delivery {delivery}: {json.dumps(payload, ensure_ascii=False)}", flush=True)

    server = make_server(secrets, show, args.port)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
