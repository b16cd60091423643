"""`flask --app wsgi demo`: the whole system on one machine, with live traffic.

One process tree: the sandbox platform (a thread here), Harpoon under
gunicorn with its in-process worker (a child process), and the follower
simulator (a thread here) acting on the sandbox, which delivers signed,
encrypted callbacks to Harpoon. Ctrl-C stops everything. What the demo
seeds and the status it prints are demo/seed.py's.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from werkzeug.serving import make_server

from app.extensions import harpoon
from config import ROOT
from crm.channels import callback_url
from demo.crm import RECEIVER_ALLOW, DemoCrm
from demo.data import ARTICLE_LINKS, demo_links
from demo.seed import (
    CONTACT_STATES,
    DEMO_CORP_ID,
    DEMO_LOGIN,
    DEMO_OA_APPID,
    DEMO_PASSWORD,
    STAFF,
    SeedingRefused,
    issue_demo_api_key,
    open_demo_chat,
    register_tenant,
    register_tenants,
    seed_demo_group,
    seed_platform,
    seed_workspace,
    status_line,
)
from models import Channel
from wechat.clients import WeChatClients
from wechat.sandbox import create_sandbox
from wechat.sandbox.core import Sandbox
from wechat.sandbox.mailbox import SmtpSink, add_mail_page
from wechat.sandbox.simulator import Simulator


@click.command("demo")
@click.option("--port", default=8000, show_default=True, help="Harpoon's port.")
@click.option("--sandbox-port", default=8100, show_default=True)
@click.option("--smtp-port", default=8025, show_default=True, help="The local mail sink's port.")
@click.option("--rate", default=2.0, show_default=True, help="Simulated actions per second.")
@click.option("--population", default=200, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@with_appcontext
def demo(port, sandbox_port, smtp_port, rate, population, seed, duration):
    """Run Harpoon, the sandbox and the follower simulator together."""
    from models import migrate

    h = harpoon()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate.upgrade(h.settings.database_url)
    base = f"http://127.0.0.1:{port}"
    sandbox_app = create_sandbox()
    state: Sandbox = sandbox_app.extensions["sandbox"]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per API call
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # nor per SMTP command
    sandbox_server = make_server("127.0.0.1", sandbox_port, sandbox_app, threaded=True)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    # The demo's mail server: journeys' emails land here, listed at /sandbox/mail.
    sink = SmtpSink(port=smtp_port).start()
    add_mail_page(sandbox_app, sink.mailbox)
    threading.Thread(target=sandbox_server.serve_forever, daemon=True).start()

    channels = seed_workspace(h.db, base)
    register_tenants(state, channels, base)
    clients = WeChatClients(sandbox_url, h.wechat.store)
    try:
        tickets = seed_platform(state, clients, channels, h.db, base)
        contact_client = clients.wecom(channels.wecom.app_id, channels.wecom.secret)
        join_way = seed_demo_group(h.db, state, channels.wecom, contact_client)
    except SeedingRefused as refused:
        raise click.ClickException(str(refused)) from None
    api_key = issue_demo_api_key(h.db)
    with h.db.session() as session:
        links = demo_links(session, channels.oa.workspace_id, base)
    crm = DemoCrm(h.db, base, seed)

    web = start_harpoon(port, sandbox_url, sink.url)
    stop = threading.Event()
    try:
        wait_healthy(base, web)
        click.echo(crm.seed_history())
        click.echo(f"Harpoon   {base}  (health: {base}/healthz)")
        click.echo(f"Admin     {base}/admin/  sign in: {DEMO_LOGIN} / {DEMO_PASSWORD}")
        click.echo(f"Sandbox   {sandbox_url}  (state: {sandbox_url}/sandbox/state)")
        click.echo(
            f"Mail      {sink.url}  (what it received: {sandbox_url}/sandbox/mail; the demo "
            "journey emails whoever books a demo and gave an address on a form)"
        )
        chat_url = open_demo_chat(state, channels.wecom, base, sandbox_url)
        click.echo(
            f"WeCom     {chat_url}\n"
            "          (张三's WeCom client with a customer's chat open and Harpoon's sidebar "
            "beside it; 张三 is the salesperson zhangsan@harpoon.local, and lisi@harpoon.local "
            "and wangwu@harpoon.local are salespeople too, with the same password)"
        )
        click.echo(
            f"Callbacks {callback_url(base, channels.oa)}, {callback_url(base, channels.wecom)}"
        )
        simulator = Simulator(
            state,
            state.tenant(DEMO_OA_APPID),
            state.tenant(DEMO_CORP_ID),
            seed=seed,
            population_size=population,
            staff=list(STAFF),
            contact_states=CONTACT_STATES,
            tickets=tickets,
            join_ways=[join_way],
            harpoon_url=base,
            articles=[links[key] for key in ARTICLE_LINKS if key in links],
        )
        example = "" if port == 8000 else f" --base {base}"
        click.echo(
            f"API       key {api_key} (shown once; the next run makes a new one)\n"
            f"          .venv/bin/python examples/post_live_minutes.py --key {api_key}"
            f"{example} --phone {simulator.people[0].phone}\n"
            "          (posts live-stream minutes and shows the score move; a phone from a "
            "'filled the form' line below names that person and their account)"
        )
        click.echo(
            f"Simulating {population} people at {rate} actions/s (seed {seed}); Ctrl-C stops."
        )
        echo = lambda line: click.echo(f"  {line}")  # noqa: E731
        threading.Thread(target=simulator.run, args=(stop, rate, echo), daemon=True).start()
        threading.Thread(target=crm.run, args=(stop, echo), daemon=True).start()
        report_until(stop, h.db, state, web, duration)
    except KeyboardInterrupt:
        click.echo("\nstopping")
    finally:
        stop.set()
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=20)
        sandbox_server.shutdown()
        sink.stop()
        crm.close()


sandbox_cli = click.Group("sandbox", help="The local fake WeChat + WeCom platform.")


@sandbox_cli.command("serve")
@click.option("--port", default=8100, show_default=True)
@with_appcontext
def sandbox_serve(port):
    """Serve the sandbox alone, with every Harpoon channel registered as a tenant.

    Start Harpoon with HARPOON_WECHAT_API_URL=http://127.0.0.1:PORT to use it;
    callbacks go to HARPOON_PUBLIC_BASE_URL.
    """
    h = harpoon()
    app = create_sandbox()
    state: Sandbox = app.extensions["sandbox"]
    with h.db.session() as session:
        for channel in session.scalars(select(Channel)):
            register_tenant(state, channel, h.settings.public_base_url)
            click.echo(
                f"tenant {channel.app_id} -> {callback_url(h.settings.public_base_url, channel)}"
            )
    click.echo(f"sandbox on http://127.0.0.1:{port} (state: /sandbox/state)")
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def start_harpoon(port: int, sandbox_url: str, smtp_url: str) -> subprocess.Popen:
    # Tracked links, OAuth returns and follow-ups name the demo's own address.
    env = dict(
        os.environ,
        HARPOON_BIND=f"127.0.0.1:{port}",
        HARPOON_WECHAT_API_URL=sandbox_url,
        HARPOON_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        HARPOON_SMTP_URL=smtp_url,  # the local sink; email would otherwise go nowhere
        # The demo CRM's webhook receiver listens on loopback.
        HARPOON_OUTBOUND_ALLOW=",".join(
            filter(None, (os.environ.get("HARPOON_OUTBOUND_ALLOW"), RECEIVER_ALLOW))
        ),
    )
    env.setdefault("HARPOON_LOG_LEVEL", "WARNING")  # the status lines tell the story
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.Popen(
        [str(gunicorn), "-c", "config/gunicorn.py", "wsgi:app"], cwd=ROOT, env=env
    )


def wait_healthy(base: str, web: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise click.ClickException("Harpoon exited during start-up (see its log above)")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise click.ClickException(f"Harpoon did not answer {base}/healthz in {timeout} s")


def report_until(stop, db, state: Sandbox, web, duration: float, every: float = 5.0) -> None:
    """Print what flows in until Ctrl-C, `duration`, or Harpoon exits."""
    started = time.monotonic()
    while not stop.wait(every):
        if web.poll() is not None:
            raise click.ClickException("Harpoon exited")
        click.echo(status_line(db, state))
        if duration and time.monotonic() - started >= duration:
            return
