"""`flask --app wsgi ...` commands: db, channels, worker, cron, inbox, users, accounts,
scoring."""

import functools
from contextlib import ExitStack
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from app import reconnect
from app.extensions import harpoon
from core.jobs import Job
from crm.channels import (
    ChannelError,
    add_channel,
    callback_url,
    generate_aes_key,
    generate_token,
    rotate_aes_key,
    workspace_named,
)
from crm.users import UserError, create_user
from models import Channel, ChannelKind, InboundEvent, Role
from pipeline import inbox
from scoring.engine import refresh_accounts

db_cli = AppGroup("db", help="Database schema (Alembic).")
channels_cli = AppGroup("channels", help="Connected OAs and WeCom corps.")
inbox_cli = AppGroup("inbox", help="The durable inbox of callbacks.")
users_cli = AppGroup("users", help="People who sign in to the admin pages.")
accounts_cli = AppGroup("accounts", help="Companies and target-account (ICP) lists.")
scoring_cli = AppGroup("scoring", help="Lead and account scores, MQA, tiers, stages.")


@db_cli.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply every migration."""
    from models import migrate

    migrate.upgrade(harpoon().settings.database_url)
    click.echo("database is at the latest revision")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message):
    """Autogenerate a migration from the models (review it before committing)."""
    from models import migrate

    migrate.revision(harpoon().settings.database_url, message)


def _channel_options(fn):
    for option in reversed(
        [
            click.option("--workspace", default="default", show_default=True),
            click.option("--name", required=True, help="A name marketers recognise."),
            click.option("--token", help="Callback Token (generated when omitted)."),
            click.option("--aes-key", help="EncodingAESKey, 43 chars (generated when omitted)."),
        ]
    ):
        fn = option(fn)
    return fn


@channels_cli.command("add-oa")
@_channel_options
@click.option("--appid", required=True)
@click.option("--secret", help="AppSecret, for API calls.")
@click.option(
    "--mode",
    type=click.Choice(["safe", "compatible", "plain"]),
    default="safe",
    show_default=True,
)
@click.option(
    "--account-type",
    type=click.Choice(["service", "subscription"]),
    default="service",
    show_default=True,
)
@with_appcontext
def channels_add_oa(workspace, name, token, aes_key, appid, secret, mode, account_type):
    """Connect a WeChat Official Account."""
    _add(
        workspace,
        kind=ChannelKind.OA,
        name=name,
        app_id=appid,
        token=token or generate_token(),
        aes_key=None if mode == "plain" and not aes_key else aes_key or generate_aes_key(),
        secret=secret,
        message_mode=mode,
        account_type=account_type,
    )


@channels_cli.command("add-wecom")
@_channel_options
@click.option("--corp-id", required=True)
@click.option("--secret", help="Customer-contact secret.")
@click.option("--agent-id", help="Self-built app AgentId, for messages to staff.")
@click.option("--agent-secret", help="That app's Secret.")
@with_appcontext
def channels_add_wecom(workspace, name, token, aes_key, corp_id, secret, agent_id, agent_secret):
    """Connect a WeCom corp (customer-contact callbacks)."""
    _add(
        workspace,
        kind=ChannelKind.WECOM,
        name=name,
        app_id=corp_id,
        token=token or generate_token(),
        aes_key=aes_key or generate_aes_key(),
        secret=secret,
        agent_id=agent_id,
        agent_secret=agent_secret,
    )


def _add(workspace_name: str, **fields) -> None:
    h = harpoon()
    with h.db.session() as session:
        try:
            channel = add_channel(session, workspace_named(session, workspace_name), **fields)
        except ChannelError as exc:
            raise click.BadParameter(
                str(exc), param_hint=f"--{exc.field.replace('_', '-')}"
            ) from None
        session.commit()
        click.echo(f"channel id:     {channel.id}")
        click.echo(f"callback URL:   {callback_url(h.settings.public_base_url, channel)}")
        click.echo(f"Token:          {channel.token}")
        if channel.aes_key:
            click.echo(f"EncodingAESKey: {channel.aes_key}")


@channels_cli.command("list")
@with_appcontext
def channels_list():
    h = harpoon()
    with h.db.session() as session:
        for channel in session.scalars(select(Channel).order_by(Channel.id)):
            verified = channel.verified_at.isoformat() if channel.verified_at else "not verified"
            click.echo(
                f"{channel.id}\t{channel.kind}\t{channel.app_id}\t{channel.name}\t"
                f"{callback_url(h.settings.public_base_url, channel)}\t{verified}"
            )


@channels_cli.command("rotate-aes-key")
@click.argument("channel_id", type=int)
@click.option("--aes-key", help="The new EncodingAESKey (generated when omitted).")
@with_appcontext
def channels_rotate_aes_key(channel_id, aes_key):
    """Replace a channel's EncodingAESKey, keeping the old one for callbacks in flight."""
    h = harpoon()
    with h.db.session() as session:
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise click.ClickException(f"no channel {channel_id}")
        try:
            rotate_aes_key(channel, aes_key or generate_aes_key())
        except ChannelError as exc:
            raise click.BadParameter(str(exc), param_hint="--aes-key") from None
        session.commit()
        click.echo(f"EncodingAESKey: {channel.aes_key}")
    h.channels.invalidate(channel_id)


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default="marketer")
@click.option("--workspace", default="default", show_default=True)
@with_appcontext
def users_create(email, name, password, role, workspace):
    """Create an admin user in a workspace."""
    with harpoon().db.session() as session:
        try:
            user = create_user(
                session, workspace_named(session, workspace), email, name, password, role
            )
        except UserError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None
        session.commit()
        click.echo(f"user {user.id}: {user.email} ({user.role}) in workspace {workspace}")


@inbox_cli.command("stats")
@with_appcontext
def inbox_stats():
    """Events per workspace and status, with the oldest one's time."""
    with harpoon().db.session() as session:
        rows = inbox.stats(session)
    if not rows:
        click.echo("inbox is empty")
    for row in rows:
        click.echo(
            f"workspace {row['workspace_id']}\t{row['status']:<8}\t{row['count']:>8}\t"
            f"oldest {row['oldest']:%Y-%m-%d %H:%M:%S}"
        )


@inbox_cli.command("retry")
@click.argument("event_id", type=int)
@with_appcontext
def inbox_retry(event_id):
    """Put a failed or dead event back in line."""
    h = harpoon()
    with h.db.session() as session:
        if not inbox.retry(session, event_id):
            raise click.ClickException(f"event {event_id} is not failed or dead")
        session.commit()
    if h.settings.embedded_queue:
        click.echo(
            f"event {event_id} is pending again; the running service's sweeper drains it "
            f"within {h.settings.sweep_interval_seconds + h.settings.sweep_grace_seconds} s"
        )
        return
    workspace_id, lane = _event_lane(event_id)
    h.queue.enqueue_drain(workspace_id, lane)
    click.echo(f"event {event_id} queued for retry (drain of workspace {workspace_id} lane {lane})")


@inbox_cli.command("sweep")
@with_appcontext
def inbox_sweep():
    """Request drains for every workspace with events left behind."""
    from app.jobs import sweep_inbox

    if harpoon().settings.embedded_queue:
        raise click.ClickException("the embedded queue sweeps inside the running service")
    click.echo(f"drains requested for (workspace, lane): {sweep_inbox() or 'none'}")


def _event_lane(event_id: int) -> tuple[int, int]:
    with harpoon().db.session() as session:
        event = session.get(InboundEvent, event_id)
        return event.workspace_id, event.lane


@accounts_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workspace", default="default", show_default=True)
@click.option(
    "--owner-default", metavar="EMAIL", help="Owner of the rows that name none (a user's email)."
)
@with_appcontext
def accounts_import(file, workspace, owner_default):
    """Import a target-account list from a CSV or XLSX file; prints the rows it refused."""
    from crm.imports import run_import, workspace_users
    from models import AccountImport, ImportStatus, Workspace

    h = harpoon()
    with h.db.session() as session, ExitStack() as stack:
        ws = session.scalar(select(Workspace).where(Workspace.name == workspace))
        if ws is None:
            raise click.BadParameter(f"no workspace named {workspace}", param_hint="--workspace")
        default_owner_id = None
        if owner_default:
            default_owner_id = workspace_users(session, ws.id).get(owner_default.lower())
            if default_owner_id is None:
                raise click.BadParameter(
                    "no user with this email in the workspace", param_hint="--owner-default"
                )
        account_import = AccountImport(
            workspace_id=ws.id, filename=file.name[:200], content=file.read_bytes()
        )
        session.add(account_import)
        session.commit()
        bar = None

        def show_progress(processed: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(click.progressbar(length=total, label="Importing"))
            bar.update(processed - bar.pos)

        result = run_import(
            session,
            account_import.id,
            on_progress=show_progress,
            default_owner_id=default_owner_id,
            refresh_accounts=refresh_accounts,
        )
    h.queue.enqueue_followups(result.followup_jobs)
    click.echo(
        f"import {account_import.id}: {result.created} created, {result.updated} updated, "
        f"{result.error_count} rows refused"
    )
    for error in result.errors:
        click.echo(f"line {error['line']}: {error['reason']}")
    if result.error_count > len(result.errors):
        click.echo(f"... and {result.error_count - len(result.errors)} more")
    if result.status == ImportStatus.FAILED:
        raise click.ClickException("the file was not imported")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--queues",
    default="high,default,low",
    show_default=True,
    help="The queues to serve, most urgent first (`high` for a dedicated welcome worker).",
)
@with_appcontext
def worker(burst, queues):
    """Run an RQ worker (with the scheduler) on the high, default and low queues."""
    h = harpoon()
    if h.settings.embedded_queue:
        raise click.ClickException(
            "the embedded queue runs its worker inside the web process; "
            "set REDIS_URL to run separate workers"
        )
    from flask import current_app

    urgencies = [name.strip() for name in queues.split(",") if name.strip()]
    if not urgencies or not set(urgencies) <= {"high", "default", "low"}:
        raise click.BadParameter("a comma-separated list of high, default, low", "--queues")
    app = current_app._get_current_object()

    def ping() -> None:
        h.queue.connection.ping()
        reconnect.ping_database(h.db.engine)

    def worker() -> reconnect.ReconnectingWorker:
        return h.queue.worker(app, reconnect.ReconnectingWorker, urgencies=urgencies)

    # Redis or PostgreSQL going away ends a run of RQ's loop; a fresh worker takes over
    # once both answer again (app/reconnect.py).
    reconnect.keep_running(
        functools.partial(
            reconnect.run_worker,
            worker,
            burst=burst,
            with_scheduler=True,
            logging_level=h.settings.log_level,
        ),
        ping,
        "worker",
    )


@click.command("cron")
@with_appcontext
def cron():
    """Run RQ's cron scheduler with the periodic jobs of app/jobs.py (cron_jobs)."""
    h = harpoon()
    if h.settings.embedded_queue:
        raise click.ClickException("the embedded queue runs its periodic jobs itself")
    scheduler = reconnect.ReconnectingCron(
        connection=h.queue.connection, logging_level=h.settings.log_level
    )
    for func, interval in h.queue.cron:
        queue = h.queue.queue_of(Job(func.__name__))  # each where its work belongs
        scheduler.register(func, queue_name=queue.name, interval=interval)
    # The same scheduler after a reconnect: each job keeps its schedule, and one that fell
    # due while Redis was away is enqueued at once.
    reconnect.keep_running(
        functools.partial(reconnect.run_cron, scheduler), h.queue.connection.ping, "cron"
    )


def _workspace_ids(session, name: str | None) -> list[int]:
    from models import Workspace

    query = select(Workspace.id).order_by(Workspace.id)
    ids = list(session.scalars(query.where(Workspace.name == name) if name else query))
    if name and not ids:
        raise click.BadParameter(f"no workspace named {name}", param_hint="--workspace")
    return ids


@scoring_cli.command("refresh")
@click.option("--workspace", help="One workspace by name (default: all).")
@with_appcontext
def scoring_refresh(workspace):
    """Decay lead scores to today and re-judge every account (what the daily job does)."""
    _run_scorer(workspace, "refresh_workspace")


@scoring_cli.command("recompute")
@click.option("--workspace", help="One workspace by name (default: all).")
@with_appcontext
def scoring_recompute(workspace):
    """Sum every lead score again from the ledger, then re-judge every account."""
    _run_scorer(workspace, "recompute")


@scoring_cli.command("rescore")
@click.option("--workspace", help="One workspace by name (default: all).")
@with_appcontext
def scoring_rescore(workspace):
    """Rebuild the points ledger from every recorded interaction, then refresh."""
    _run_scorer(workspace, "rescore_history")


def _run_scorer(workspace: str | None, method: str) -> None:
    import time

    from app.jobs import score_workspace

    with harpoon().db.session() as session:
        workspace_ids = _workspace_ids(session, workspace)
    for workspace_id in workspace_ids:
        started = time.monotonic()
        summary = score_workspace(workspace_id, method)
        click.echo(
            f"workspace {workspace_id}: {summary['accounts']} accounts, {summary['entries']} "
            f"ledger entries, {summary['alerts']} alerts in {time.monotonic() - started:.1f} s"
        )


def init_app(app: Flask) -> None:
    from app.demo import demo, sandbox_cli

    for command in (
        db_cli,
        channels_cli,
        inbox_cli,
        users_cli,
        accounts_cli,
        scoring_cli,
        worker,
        cron,
        demo,
        sandbox_cli,
    ):
        app.cli.add_command(command)
