"""What the tests share besides fixtures and rows: the database and queue the suite runs
on, the test channels' credentials, the app's services, callbacks signed as WeChat signs
them, the queue run for real, and queries.

Rows are built by tests/factories.py; fixtures live in the conftest files. This module
imports neither, so both may import it."""

import io
import json
import os
import re
import socket
from dataclasses import dataclass

import segno
from cryptography.fernet import Fernet
from PIL import Image
from sqlalchemy import select, text

from app.extensions import harpoon
from app.jobs import JOBS
from core.jobs import Job
from crm.channels import workspace_named
from journeys import reactions
from journeys.reactions import Touch
from models import (
    AuditLog,
    Base,
    Contact,
    ContactTag,
    Form,
    Identity,
    InboundEvent,
    Interaction,
    Tag,
)
from outreach.content import create_link
from wechat import simulate
from wechat.simulate import Credentials

# ---- the test database and queue -----------------------------------------------------------

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
ENCRYPTION_KEY = Fernet.generate_key().decode()


def settings_for(database_url, tmp_path, **overrides):
    return {
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "instance_dir": tmp_path / "instance",
        "encryption_keys": (ENCRYPTION_KEY,),
        "secret_key": "test-secret-key",
        "sweep_grace_seconds": 0,
        **overrides,
    }


def empty_tables(db):
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the test channels ---------------------------------------------------------------------

OA_CREDS = Credentials(
    app_id="wx5f3a9e0c1b2d4e6f",
    token="harpoontoken",
    aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
)
WECOM_CREDS = Credentials(
    app_id="ww1a2b3c4d5e6f7a8b",
    token="wecomtoken",
    aes_key="ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut",
)
OA_SECRET = "oa-app-secret"  # the AppSecret of the sandbox's OA (`oa`)
# Where the sandbox would deliver callbacks; nothing listens, and API calls send none.
NO_CALLBACKS = "http://127.0.0.1:9"


# ---- the app -------------------------------------------------------------------------------


def harpoon_of(app):
    with app.app_context():
        return harpoon()


def session_of(app):
    return harpoon_of(app).db.session()


def queued_jobs(app, urgency="default") -> list[tuple[Job, tuple]]:
    """The jobs waiting on the `high`, `default` or `low` queue as (name, arguments); a job
    whose function is not the one the registry holds under a name fails the lookup."""
    names = {function: name for name, function in JOBS.items()}
    return [(names[job.func], job.args) for job in getattr(harpoon_of(app).queue, urgency).jobs]


def run_jobs(app):
    """Send pending drain requests, then run every queued job with a real RQ SimpleWorker."""
    queue = harpoon_of(app).queue
    queue.drain_requests.flush()
    return queue.worker(app).work(burst=True)


# ---- requests ------------------------------------------------------------------------------


def post_oa(client, channel_id, xml, mode="safe"):
    callback = simulate.oa_message(OA_CREDS, xml, mode=mode)
    response = client.post(callback.path(f"/callbacks/wechat/{channel_id}"), data=callback.body)
    assert response.status_code == 200, response.data
    return response


def post_wecom(client, channel_id, xml):
    callback = simulate.wecom_message(WECOM_CREDS, xml)
    response = client.post(callback.path(f"/callbacks/wecom/{channel_id}"), data=callback.body)
    assert response.status_code == 200, response.data
    return response


def post_touchpoints(client, key: str | None, body, *, signature: str | None = None):
    """POST to the touchpoint API as a caller does: the key as bearer, the body as JSON."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if signature:
        headers["X-Harpoon-Signature"] = signature
    return client.post("/api/v1/touchpoints", data=raw, headers=headers)


# ---- queries -------------------------------------------------------------------------------


def all_of(app, model, *order_by):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(model).order_by(*(order_by or [model.id]))))


def all_rows(app, model, *where):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


def load(app, model, row_id):
    with harpoon_of(app).db.session() as session:
        return session.get(model, row_id)


def inbox(app):
    return all_of(app, InboundEvent)


def interactions(app):
    return all_of(app, Interaction)


def contacts(app):
    return all_of(app, Contact)


def identities(app):
    return all_of(app, Identity)


def audit_actions(app) -> list[str]:
    return [entry.action for entry in all_of(app, AuditLog)]


def tag_names(session, contact_id):
    """The contact's tags as "group:name"."""
    rows = session.execute(
        select(Tag.group, Tag.name)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact_id)
    )
    return {f"{group}:{name}" for group, name in rows}


# ---- people ------------------------------------------------------------------------------


def submit_form_for_journeys(app, workspace_id: int, now) -> None:
    """A new contact submits a form: the drain's journey reactions enrol them."""
    with session_of(app) as session:
        contact = Contact(workspace_id=workspace_id, name="王芳")
        session.add(contact)
        session.flush()
        row = Interaction(
            workspace_id=workspace_id, contact_id=contact.id, kind="form.submit", occurred_at=now
        )
        session.add(row)
        session.flush()
        touch = Touch(row.id, contact.id, None, "form.submit", {}, now)
        reactions.on_interactions(session, workspace_id, [touch], now=now)
        session.commit()


# ---- a reader outside WeChat ---------------------------------------------------------------


@dataclass(frozen=True)
class OpenedForm:
    code: str  # the form's tracked link
    view: str  # the view token of the reader's page
    form_token: str  # the token of the form's rendering


def open_form_outside_wechat(app) -> OpenedForm:
    """A new form (name required; phone and email optional), opened by a reader outside
    WeChat: what their browser then holds."""
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        fields = {"name": "required", "phone": "optional", "email": "optional"}
        form = Form(workspace_id=workspace.id, title="报名", fields=fields, consent_text="我同意")
        session.add(form)
        session.flush()
        code = create_link(session, workspace.id, form_id=form.id).code
        session.commit()
    client = app.test_client()
    landed = client.get(f"/t/{code}")
    page = client.get(landed.location)
    return OpenedForm(
        code=code,
        view=re.search(r"v=([^&\"']+)", landed.location).group(1),
        form_token=re.search(r'name="form_token" value="([^"]+)"', page.text).group(1),
    )


def qr_modules_match(png: bytes, url: str, x: int, y: int, size: int) -> bool:
    """Whether a poster's box at x,y holds `url`'s QR code: the centre pixel of every
    module (a 2-module quiet zone, whole pixels per module, centred in the box) is dark
    exactly where segno's matrix of the URL is."""
    image = Image.open(io.BytesIO(png)).convert("L")
    rows = [list(row) for row in segno.make(url, error="m").matrix_iter(border=2)]
    modules = len(rows)
    scale = size // modules
    offset = (size - modules * scale) // 2
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            px = x + offset + c * scale + scale // 2
            py = y + offset + r * scale + scale // 2
            if (image.getpixel((px, py)) < 128) != bool(dark):
                return False
    return True
