"""Receive Harpoon's journey webhooks and act only on those your workspace really sent.

A journey's webhook action POSTs JSON such as

    {"delivery_id": "42-1", "workspace_id": 7, "journey_id": 3, "enrolment_id": 42, ...}

signed by the header

    X-Harpoon-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]

where hex = HMAC-SHA256(the workspace's webhook signing secret, "<t>." + body). Right
after a rotation Harpoon signs with the new and the previous secret, one v1 each. The
X-Harpoon-Workspace and X-Harpoon-Delivery headers repeat the body's ids unsigned, so
this receiver trusts only the body. It answers 400 to a malformed request, 401 to one
unsigned, wrongly signed or with t five minutes off or more, and acts once per signed
delivery_id: it keeps each id until a delivery signed at that t would be stale anyway.

    HARPOON_WEBHOOK_SECRETS=whsec_... .venv/bin/python examples/receive_webhooks.py --port 8200

Standalone: the standard library only.
"""

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
# ASCII only: int() takes any Unicode digit and compare_digest refuses non-ASCII text.
SIGNATURE_PARTS = {"t": re.compile(r"[0-9]{1,12}"), "v1": re.compile(r"[0-9a-f]{64}")}
CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
MISSING = "missing signature"
MALFORMED = "malformed signature: expected t=<unix seconds>,v1=<64 lowercase hex digits>"


def signature_parts(header: str) -> tuple[int, list[str]] | None:
    """The timestamp and the v1 digests of a signature header; None when it is malformed.
    A part of another name is skipped: a later scheme may add one."""
    stamps, digests = [], []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        form = SIGNATURE_PARTS.get(name)
        if form is None:
            continue
        if not form.fullmatch(value):
            return None
        (stamps if name == "t" else digests).append(value)
    if len(stamps) != 1 or not digests:
        return None
    return int(stamps[0]), digests


def signature_problem(
    secrets: list[str], header: str | None, body: bytes, now: float | None = None
) -> str | None:
    """Why the signature header does not vouch for the body; None when it does."""
    if not header:
        return MISSING
    parts = signature_parts(header)
    if parts is None:
        return MALFORMED
    timestamp, offered = parts
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return "timestamp too old or in the future"
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        return "signature does not match"
    return None


class RecentDeliveries:
    """Delivery ids acted on, each kept until its signature's timestamp is out of the
    tolerance: a replay is refused as stale from then on, so memory stays bounded."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, delivery_id: str, timestamp: int, now: float) -> bool:
        """True the first time a delivery id is seen (and records it)."""
        with self._lock:
            for stale in [d for d, until in self._until.items() if until < now]:
                del self._until[stale]
            if delivery_id in self._until:
                return False
            self._until[delivery_id] = timestamp + TOLERANCE_SECONDS
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


def delivery_of(body: bytes) -> dict | None:
    """The signed payload when it is a Harpoon delivery (a JSON object with a delivery_id)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("delivery_id"), str):
        return None
    return payload


def make_server(
    secrets: list[str], on_delivery: Callable[[str, dict], None], port: int = 0
) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 calling on_delivery(delivery id, payload) once per delivery."""
    recent = RecentDeliveries()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = self.headers.get("Content-Length", "")
            if not CONTENT_LENGTH.fullmatch(length):
                return self._answer(400, "a Content-Length in digits is required")
            if int(length) > MAX_BODY_BYTES:
                return self._answer(413, "too large")
            body = self.rfile.read(int(length))
            header = self.headers.get("X-Harpoon-Signature")
            problem = signature_problem(secrets, header, body)
            if problem:
                return self._answer(400 if problem == MALFORMED else 401, problem)
            payload = delivery_of(body)
            if payload is None:
                return self._answer(400, "not a Harpoon delivery")
            timestamp, _ = signature_parts(header)
            # the signed delivery_id, not the header: a header can be changed in transit
            if recent.first(payload["delivery_id"], timestamp, time.time()):
                on_delivery(payload["delivery_id"], payload)
            return self._answer(200, "ok")  # a repeat is acknowledged, not acted on

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
