"""The demo's CRM: a simulated sales system on the other side of Harpoon's CRM API.

It hears Harpoon's CRM webhook (account.mqa, account.routed) on a receiver of its own,
checks each delivery's signature, and opens a deal for some of the accounts it hears of
through `PUT /api/v1/opportunities/<external_id>`, signed with a key of its own; every
tick it moves open deals a stage on, wins most of them and loses one now and then, so
the revenue pages have a pipeline within the run. At start it syncs a small history of
closed deals on seeded accounts through the batch endpoint, so the KPIs have won and
lost deals on first load (the same external ids each run: a re-run changes nothing).
"""

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from sqlalchemy import select

from crm.api_keys import NewKey, create_api_key, revoke_api_key, sign, signature_digest
from crm.channels import workspace_named
from journeys.webhooks import rotate_secret, signing_secrets
from models import Account, ApiKey, Contact, Identity, IdentityKind, User, Workspace, utcnow

log = logging.getLogger(__name__)

CRM_KEY_NAME = "演示：CRM 同步"
# Harpoon's sender reaches the receiver on loopback only with this allowed.
RECEIVER_ALLOW = "127.0.0.1/32"
OPEN_SHARE = 0.6  # of the accounts heard of, those the CRM opens a deal for
MOVE_CHANCE = 0.35  # per tick, that an open deal moves a stage on
LOSE_CHANCE = 0.2  # at the end, that a deal is lost rather than won
# Sales also open deals on hot accounts short of MQA (a meeting booked from the sidebar):
# the hottest engaged target accounts at this 0-100 score or above, a few per run.
HOT_SCORE = 20.0
NPS_ANSWERS = (10, 10, 9, 9, 9, 8, 8, 7, 6, 4)  # a new customer's answers, mostly promoters
HOT_DEALS = 3
STAGES = ("qualify", "solution", "negotiation")
LOST_REASONS = ("预算冻结", "选择了竞品", "项目延期")
# Closed deals on seeded accounts: (external id, company, deal, amount, type, stage,
# opened days ago, closed days ago, lost reason).
HISTORY = (
    ("CRM-H001", "杭州云栖数据有限公司", "数据中台一期", "386000.00", "new", "won", 150, 75, None),
    ("CRM-H002", "重庆长江物流有限公司", "智能调度平台", "218500.50", "new", "won", 120, 40, None),
    ("CRM-H003", "西安航天电子有限公司", "制造执行系统", "452000.00", "new", "won", 200, 110, None),
    (
        "CRM-H004",
        "杭州云栖数据有限公司",
        "数据中台扩容",
        "96000.00",
        "expansion",
        "won",
        50,
        12,
        None,
    ),
    (
        "CRM-H005",
        "成都天府教育集团",
        "智慧校园平台",
        "175000.00",
        "new",
        "lost",
        90,
        30,
        "预算冻结",
    ),
    (
        "CRM-H006",
        "苏州工业园区精密机械有限公司",
        "设备联网",
        "132800.00",
        "new",
        "lost",
        80,
        20,
        "选择了竞品",
    ),
)


@dataclass
class Deal:
    external_id: str
    account: str
    stage: str
    amount: Decimal
    account_id: int = 0


def issue_crm_key(db) -> NewKey:
    """The CRM's key, requiring signatures: made anew each run, the previous one revoked."""
    with db.session() as session:
        workspace = workspace_named(session, "Demo")
        earlier = session.scalars(
            select(ApiKey.id).where(
                ApiKey.workspace_id == workspace.id,
                ApiKey.name == CRM_KEY_NAME,
                ApiKey.revoked_at.is_(None),
            )
        ).all()
        for key_id in earlier:
            revoke_api_key(session, workspace.id, key_id)
        key = create_api_key(session, workspace.id, CRM_KEY_NAME, require_signature=True)
        session.commit()
        return key


def connect_crm_webhook(db, url: str) -> tuple[int, tuple[str, ...]]:
    """Point the demo workspace's CRM webhook at `url`, with a signing secret made when it
    has none; (workspace id, the secrets deliveries are signed with)."""
    with db.session() as session:
        workspace = workspace_named(session, "Demo")
        if not signing_secrets(session, workspace.id, utcnow()):
            rotate_secret(session, workspace.id)
        session.get(Workspace, workspace.id).crm_webhook_url = url
        secrets = signing_secrets(session, workspace.id, utcnow())
        session.commit()
        return workspace.id, secrets


class _Receiver(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.crm.heard(self.headers.get("X-Harpoon-Signature", ""), body):
            self.send_response(200)
        else:
            self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    crm: "DemoCrm"


class DemoCrm:
    def __init__(self, db, base: str, seed: int = 7):
        self.db, self.base = db, base
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Receiver)
        self.server.crm = self
        self.url = f"http://127.0.0.1:{self.server.server_port}/harpoon"
        self.key = issue_crm_key(db)
        self.workspace_id, self.secrets = connect_crm_webhook(db, self.url)
        self.deliveries: set[str] = set()
        self.waiting: dict[int, dict] = {}  # account id -> what the webhook said of it
        self.owners: dict[int, str] = {}
        self.decided: set[int] = set()
        self.deals: list[Deal] = []
        self.lost = 0
        self.hot_opened = 0  # hot accounts short of MQA considered so far (HOT_DEALS)
        self.http = requests.Session()
        self.http.trust_env = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    # ---- hearing Harpoon -------------------------------------------------------------------

    def heard(self, header: str, body: bytes) -> bool:
        """A delivery whose signature holds: its account waits for the CRM's next tick."""
        parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
        timestamp = dict(parts).get("t", "")
        if not timestamp.isdigit() or not any(
            name == "v1" and value == signature_digest(secret, int(timestamp), body)
            for name, value in parts
            for secret in self.secrets
        ):
            log.warning("demo CRM: a delivery whose signature does not hold")
            return False
        event = json.loads(body)
        with self.lock:
            if event["delivery_id"] not in self.deliveries:  # a retry is heard once
                self.deliveries.add(event["delivery_id"])
                account = event["account"]
                if account.get("owner_email"):  # routed: the deal goes to its owner
                    self.owners[account["id"]] = account["owner_email"]
                if event["event"] == "account.mqa":
                    self.waiting[account["id"]] = account
        return True

    # ---- talking to Harpoon's API ------------------------------------------------------------

    def _send(self, method: str, path: str, document: dict) -> requests.Response:
        """Signed when sent; the same body signed twice in one second is a replay to
        Harpoon (409): signed again a second later."""
        body = json.dumps(document, ensure_ascii=False).encode()
        for attempt in range(2):
            headers = {
                "Authorization": f"Bearer {self.key.key}",
                "Content-Type": "application/json",
                "X-Harpoon-Signature": sign(self.key.signing_secret, body),
            }
            answer = self.http.request(
                method, f"{self.base}{path}", data=body, headers=headers, timeout=15
            )
            if answer.status_code != 409 or attempt:
                return answer
            time.sleep(1.0)
        raise AssertionError("unreachable")

    def seed_history(self) -> str:
        """The closed deals of the past, in one signed batch; a line for the console."""
        today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
        items = [
            {
                "external_id": external_id,
                "account_name": company,
                "name": name,
                "amount": amount,
                "type": kind,
                "stage": stage,
                "opened_at": (today - timedelta(days=opened)).isoformat(),
                "closed_at": (today - timedelta(days=closed)).isoformat(),
                **({"lost_reason": reason} if reason else {}),
            }
            for external_id, company, name, amount, kind, stage, opened, closed, reason in HISTORY
        ]
        answer = self._send("POST", "/api/v1/opportunities", {"items": items})
        if answer.status_code != 200:
            return f"CRM history not synced: {answer.status_code} {answer.text[:200]}"
        counts = answer.json()
        return (
            f"CRM       synced {len(items)} closed deals through the API (created "
            f"{counts['created']}, updated {counts['updated']}, unchanged {counts['unchanged']}, "
            f"rejected {counts['rejected']}); it opens deals for accounts at MQA and a few hot ones"
        )

    # ---- the run ---------------------------------------------------------------------------

    def _mqa_accounts(self) -> dict[int, dict]:
        """A backstop for deliveries not made yet (the sender's retries back off): the
        accounts at MQA, as the CRM's own lead list would show them."""
        with self.db.session() as session:
            rows = session.execute(
                select(Account.id, Account.name, User.email)
                .outerjoin(
                    User, (User.id == Account.owner_id) & (User.workspace_id == self.workspace_id)
                )
                .where(Account.workspace_id == self.workspace_id, Account.mqa.is_(True))
            ).all()
        return {row.id: {"id": row.id, "name": row.name, "owner_email": row.email} for row in rows}

    def _hot_accounts(self) -> dict[int, dict]:
        """The hottest engaged target accounts short of MQA that sales met anyway, up to
        HOT_DEALS over the run: deals that start before any MQA, as in real pipelines."""
        left = HOT_DEALS - self.hot_opened
        if left <= 0:
            return {}
        with self.db.session() as session:
            rows = session.execute(
                select(Account.id, Account.name, User.email)
                .outerjoin(
                    User, (User.id == Account.owner_id) & (User.workspace_id == self.workspace_id)
                )
                .where(
                    Account.workspace_id == self.workspace_id,
                    Account.is_target.is_(True),
                    Account.mqa.is_(False),
                    Account.stage == "engaged",
                    Account.scaled_score >= HOT_SCORE,
                    Account.id.not_in(self.decided or {0}),
                )
                .order_by(Account.scaled_score.desc(), Account.id)
                .limit(left)
            ).all()
        self.hot_opened += len(rows)
        return {row.id: {"id": row.id, "name": row.name, "owner_email": row.email} for row in rows}

    def tick(self) -> list[str]:
        lines = []
        with self.lock:
            heard, self.waiting = self.waiting, {}
        open_before = [d for d in self.deals if d.stage in STAGES]  # new ones wait a tick
        candidates = {**self._hot_accounts(), **self._mqa_accounts(), **heard}
        for account_id, account in sorted(candidates.items()):
            if account_id in self.decided:
                continue
            self.decided.add(account_id)
            if self.random.random() < OPEN_SHARE:
                lines.append(self._open(account))
        for deal in open_before:
            if self.random.random() < MOVE_CHANCE:
                lines.append(self._move(deal))
        return [line for line in lines if line]

    def _open(self, account: dict) -> str | None:
        amount = Decimal(self.random.randrange(80_000_00, 900_000_00, 50_00)) / 100
        deal = Deal(f"CRM-{account['id']:05d}", account["name"], "qualify", amount, account["id"])
        document = {
            "account_id": account["id"],
            "name": f"{account['name']} · ABM 平台",
            "amount": str(amount),
            "stage": "qualify",
        }
        owner = account.get("owner_email") or self.owners.get(account["id"])
        if owner:
            document["owner_email"] = owner
        answer = self._send("PUT", f"/api/v1/opportunities/{deal.external_id}", document)
        if answer.status_code not in (200, 201):
            return f"CRM could not open a deal for {account['name']}: {answer.status_code}"
        self.deals.append(deal)
        return f"CRM opened {deal.external_id} for {account['name']}: ¥{amount:,.2f} (qualify)"

    def _move(self, deal: Deal) -> str | None:
        at = STAGES.index(deal.stage)
        document: dict = {}
        if at + 1 < len(STAGES):
            document["stage"] = STAGES[at + 1]
            if document["stage"] == "negotiation":  # a discount while negotiating
                document["amount"] = str((deal.amount * Decimal("0.92")).quantize(Decimal("1")))
        elif (self.lost == 0 and len(self.deals) >= 3) or self.random.random() < LOSE_CHANCE:
            document = {"stage": "lost", "lost_reason": self.random.choice(LOST_REASONS)}
        else:
            document["stage"] = "won"
        answer = self._send("PUT", f"/api/v1/opportunities/{deal.external_id}", document)
        if answer.status_code != 200:
            return None  # tried again on a later tick
        deal.stage = document["stage"]
        if "amount" in document:
            deal.amount = Decimal(document["amount"])
        if deal.stage == "lost":
            self.lost += 1
        line = f"CRM moved {deal.external_id} ({deal.account}) to {deal.stage}"
        if deal.stage == "won":
            line += self._survey(deal)
        return line

    def _survey(self, deal: Deal) -> str:
        """The new customer's people answer the CRM's NPS survey: survey.nps touchpoints
        through the touchpoint API, one per person with an OA identity (up to three)."""
        with self.db.session() as session:
            people = session.execute(
                select(Identity.value, Identity.channel_id)
                .join(Contact, Contact.id == Identity.contact_id)
                .where(
                    Contact.workspace_id == self.workspace_id,
                    Contact.account_id == deal.account_id,
                    Contact.merged_into_id.is_(None),
                    Identity.kind == IdentityKind.OPENID,
                )
                .order_by(Contact.id)
                .limit(3)
            ).all()
        items = [
            {
                "kind": "survey.nps",
                "external_id": f"nps-{deal.external_id}-{openid}",
                "openid": openid,
                "channel_id": channel_id,
                "properties": {"score": self.random.choice(NPS_ANSWERS)},
            }
            for openid, channel_id in people
        ]
        if not items:
            return ""
        answer = self._send("POST", "/api/v1/touchpoints", {"items": items})
        if answer.status_code != 200:
            return f"; NPS survey not sent: {answer.status_code}"
        return f"; {answer.json()['accepted']} NPS answers"

    def run(self, stop: threading.Event, on_line, every: float = 10.0) -> None:
        while not stop.wait(every):
            try:
                lines = self.tick()
            except Exception as exc:  # the demo goes on without its CRM's tick
                lines = [f"CRM tick failed: {type(exc).__name__}: {exc}"]
            for line in lines:
                on_line(line)
