"""Post live-stream minutes to Harpoon's touchpoint API and watch them scored.

What a live-streaming platform would do after a stream: for each viewer it knows by
phone or email, post a `live.watch` touchpoint with the minutes watched. This script
prints the person's lead score and their account's score (GET /api/v1/contacts), posts
one touchpoint (POST /api/v1/touchpoints), then asks again until Harpoon's workers have
recorded and scored it, and prints before -> after.

    .venv/bin/python examples/post_live_minutes.py --key hk_... --phone 13800138000

With --secret (the key's signing secret), every request carries the HMAC signature
header a key that requires signatures insists on. Standalone: `requests` and the
standard library only.
"""

import argparse
import hashlib
import hmac
import json
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests

SIGNATURE_HEADER = "X-Harpoon-Signature"
TIMEOUT = 10


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>, as Harpoon checks it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class Harpoon:
    """The two calls of the touchpoint API this script makes."""

    def __init__(self, base: str, key: str, secret: str | None):
        self.base = base.rstrip("/")
        self.secret = secret
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def _headers(self, signed: bytes) -> dict:
        return {SIGNATURE_HEADER: sign(self.secret, signed)} if self.secret else {}

    def contact(self, identity: dict) -> dict | None:
        """The contact the identity names (the first, should several share it), or None."""
        query = urlencode(identity)  # signed exactly as sent
        answer = self.http.get(
            f"{self.base}/api/v1/contacts?{query}",
            headers=self._headers(query.encode()),
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        contacts = answer.json()["contacts"]
        return contacts[0] if contacts else None

    def post(self, items: list[dict]) -> dict:
        body = json.dumps({"items": items}, ensure_ascii=False).encode()
        answer = self.http.post(
            f"{self.base}/api/v1/touchpoints",
            data=body,
            headers={"Content-Type": "application/json", **self._headers(body)},
            timeout=TIMEOUT,
        )
        if answer.status_code not in (200, 422):
            answer.raise_for_status()
        return answer.json()

    def close(self) -> None:
        self.http.close()


def describe(contact: dict | None) -> str:
    if contact is None:
        return "nobody yet (the touchpoint will make a new contact)"
    who = " ".join(part for part in (contact["name"], contact["title"]) if part) or "unnamed"
    line = f"{who}: lead score {contact['lead_score']:.1f}"
    account = contact["account"]
    if account:
        tier = f", tier {account['tier']}" if account["tier"] else ""
        mqa = ", MQA" if account["mqa"] else ""
        line += f"; account {account['name']} score {account['score']:.1f}{tier}{mqa}"
    return line


def recorded(contact: dict | None, occurred_at: datetime) -> bool:
    """Whether the contact's latest touchpoints include the one posted."""
    if contact is None:
        return False
    return any(
        item["kind"] == "live.watch" and _utc(item["occurred_at"]) == occurred_at
        for item in contact["latest"]
    )


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000", help="Harpoon's address")
    parser.add_argument("--key", required=True, help="the workspace's API key (hk_...)")
    parser.add_argument("--secret", help="the key's signing secret (hs_...): sign requests")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", help="the viewer's mobile number")
    who.add_argument("--email", help="the viewer's email address")
    parser.add_argument("--minutes", type=float, default=42, help="minutes watched")
    parser.add_argument("--stream", default="AI 发布会", help="the stream's name")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for scoring")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    identity = {"phone": args.phone} if args.phone else {"email": args.email}
    harpoon = Harpoon(args.base, args.key, args.secret)
    try:
        return run(harpoon, identity, args)
    except requests.RequestException as exc:
        print(f"Harpoon refused or did not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        harpoon.close()


def run(harpoon: Harpoon, identity: dict, args: argparse.Namespace) -> int:
    before = harpoon.contact(identity)
    print(f"before: {describe(before)}")
    occurred_at = datetime.now(UTC).replace(microsecond=0)
    item = {
        "kind": "live.watch",
        # Your own id of this touchpoint: posting it again adds nothing.
        "external_id": f"live:{args.stream}:{next(iter(identity.values()))}:"
        f"{int(occurred_at.timestamp())}",
        "occurred_at": occurred_at.isoformat(),
        "minutes": args.minutes,
        "properties": {"stream": args.stream},
        **identity,
    }
    answer = harpoon.post([item])
    [result] = answer["items"]
    if result["status"] != "accepted":
        print(f"not accepted: {result['status']} {result.get('errors', '')}", file=sys.stderr)
        return 1
    print(f"posted: {args.minutes:g} minutes of 《{args.stream}》 ({item['external_id']})")
    deadline = time.monotonic() + args.timeout
    while True:
        after = harpoon.contact(identity)
        if recorded(after, occurred_at):
            break
        if time.monotonic() >= deadline:
            print(f"not scored within {args.timeout:g} s: are Harpoon's workers running?")
            return 1
        time.sleep(0.5)
    print(f"after:  {describe(after)}")
    gained = after["lead_score"] - (before["lead_score"] if before else 0.0)
    print(f"lead score {gained:+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
