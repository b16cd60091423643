"""An account's last activity and its returns after 90 silent days, kept as interactions
arrive (in order, late, in a drained batch) and as interactions move between accounts."""

import time
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from crm.accounts import assign_account, detach_account
from crm.activity import note_activity, rebuild_activity
from crm.channels import workspace_named
from crm.tags import TagBook
from models import (
    Account,
    AccountReactivation,
    AccountSource,
    Contact,
    Interaction,
    StageChange,
    migrate,
)
from models.migrate import alembic_config
from scoring.stages import stages_of
from tests.factories import (
    add_contact,
    make_account,
    make_contact,
    make_interaction,
    workspace_id,
)
from tests.helpers import post_oa, run_jobs, session_of
from wechat import simulate


def at(month, day):
    return datetime(2026, month, day, 12, tzinfo=UTC)


def activity(app, account_id):
    """(last_active_at, [(previous_at, reactivated_at)]) of the account."""
    with session_of(app) as session:
        last = session.get(Account, account_id).last_active_at
        returns = session.execute(
            select(AccountReactivation.previous_at, AccountReactivation.reactivated_at)
            .where(AccountReactivation.account_id == account_id)
            .order_by(AccountReactivation.reactivated_at)
        ).all()
    return last, [tuple(row) for row in returns]


def test_interactions_in_order_keep_the_latest_and_each_return_after_90_days(app):
    account = make_account(app, "华信")
    person = make_contact(app, "李雷", account_id=account)
    for when in (at(1, 1), at(3, 1), at(6, 1), at(8, 30), at(9, 1)):
        make_interaction(app, person, "content.view", at=when)
    # Mar 1 -> Jun 1 is 92 days, Jun 1 -> Aug 30 is 90: both returns; Jan -> Mar is 59.
    assert activity(app, account) == (at(9, 1), [(at(3, 1), at(6, 1)), (at(6, 1), at(8, 30))])


def test_a_late_interaction_rebuilds_the_account_from_its_history(app):
    account = make_account(app, "华信")
    person = make_contact(app, "李雷", account_id=account)
    make_interaction(app, person, "content.view", at=at(1, 1))
    make_interaction(app, person, "content.view", at=at(6, 1))
    assert activity(app, account) == (at(6, 1), [(at(1, 1), at(6, 1))])
    make_interaction(app, person, "content.view", at=at(3, 15))  # splits the silence
    assert activity(app, account) == (at(6, 1), [])
    make_interaction(app, person, "content.view", at=at(1, 1).replace(year=2025))
    assert activity(app, account) == (at(6, 1), [(at(1, 1).replace(year=2025), at(1, 1))])


def test_one_batch_of_many_accounts_and_another_workspaces_account(app):
    first, second = make_account(app, "一号"), make_account(app, "二号")
    theirs = make_account(app, "别家", workspace="other")
    ws = workspace_id(app)
    with session_of(app) as session:
        note_activity(
            session,
            ws,
            [(first, at(9, 1)), (second, at(2, 1)), (None, at(9, 1)), (first, at(5, 1))],
        )
        note_activity(session, ws, [(theirs, at(9, 1))])  # not acme's: ignored
        session.commit()
    # No interaction rows exist: the batch's own times are the history it is told.
    assert activity(app, first) == (None, [(at(5, 1), at(9, 1))])
    assert activity(app, second)[1] == []
    assert activity(app, theirs) == (None, [])


def test_history_moving_between_accounts_moves_the_activity(app):
    old, new = make_account(app, "旧公司"), make_account(app, "新公司")
    person = make_contact(app, "李雷", account_id=old)
    other = make_contact(app, "韩梅梅", account_id=new)
    make_interaction(app, person, "content.view", at=at(1, 1))
    make_interaction(app, other, "content.view", at=at(6, 1))
    make_interaction(app, person, "content.view", at=at(9, 1))
    assert activity(app, old) == (at(9, 1), [(at(1, 1), at(9, 1))])
    with session_of(app) as session:
        detach_account(session, session.get(Contact, person))
        session.commit()
    assert activity(app, old) == (None, [])
    with session_of(app) as session:
        contact, target = session.get(Contact, person), session.get(Account, new)
        book = TagBook(session, target.workspace_id)
        assign_account(session, book, contact, source=AccountSource.MANUAL, account=target)
        session.commit()
    assert activity(app, new) == (at(9, 1), [(at(1, 1), at(6, 1)), (at(6, 1), at(9, 1))])


def test_rebuild_reads_only_the_workspaces_interactions(app):
    account = make_account(app, "华信")
    make_interaction(app, make_contact(app, "李雷", account_id=account), "x", at=at(1, 1))
    with session_of(app) as session:
        rebuild_activity(session, workspace_id(app, "other"), [account])
        session.commit()
    assert activity(app, account) == (at(1, 1), [])  # untouched from the other workspace


def test_a_drained_batch_records_the_accounts_activity(app, client, oa_channel):
    account = make_account(app, "华信")
    add_contact(app, openid="o_li", channel_id=oa_channel, name="李雷", account_id=account)
    now = int(time.time())
    long_ago = now - 200 * 86400
    post_oa(client, oa_channel, simulate.oa_event("o_li", "CLICK", at=long_ago, EventKey="M1"))
    post_oa(client, oa_channel, simulate.oa_event("o_li", "CLICK", at=now, EventKey="M2"))
    assert run_jobs(app)
    last, returns = activity(app, account)
    assert last.timestamp() == now
    assert [(a.timestamp(), b.timestamp()) for a, b in returns] == [(long_ago, now)]


def test_migration_0027_fills_them_from_the_history(tmp_path):
    """Downgraded to 0026 and upgraded again, the database gets back what the writers kept."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            ws = workspace_named(session, "acme").id
            company = Account(workspace_id=ws, name="华信", normalized_name="华信", stage="mqa")
            quiet = Account(workspace_id=ws, name="静", normalized_name="静")
            session.add_all([company, quiet])
            session.flush()
            person = Contact(workspace_id=ws, name="李雷", account_id=company.id)
            session.add(person)
            session.flush()
            for when in (at(1, 1), at(3, 1), at(6, 1), at(8, 30), at(9, 1)):
                session.add(
                    Interaction(
                        workspace_id=ws,
                        contact_id=person.id,
                        account_id=company.id,
                        kind="content.view",
                        properties={},
                        occurred_at=when,
                    )
                )
            for before, to in (
                (None, "aware"),
                ("aware", "mqa"),
                ("mqa", "aware"),
                ("aware", "mqa"),
            ):
                session.add(
                    StageChange(
                        workspace_id=ws,
                        subject="account",
                        subject_id=company.id,
                        from_stage=before,
                        to_stage=to,
                        reason="r",
                    )
                )
            session.commit()
            company_id, quiet_id = company.id, quiet.id
        command.downgrade(alembic_config(url), "0026")
        migrate.upgrade(url)
        with Session(engine) as session:
            row = session.get(Account, company_id)
            assert stages_of(row.stages_reached) == {"aware", "mqa"}
            assert row.stages_reached.startswith(",") and row.stages_reached.endswith(",")
            assert row.last_active_at == at(9, 1)
            assert session.get(Account, quiet_id).last_active_at is None
            returns = session.execute(
                select(AccountReactivation.previous_at, AccountReactivation.reactivated_at)
                .where(AccountReactivation.account_id == company_id)
                .order_by(AccountReactivation.reactivated_at)
            ).all()
            assert [tuple(r) for r in returns] == [(at(3, 1), at(6, 1)), (at(6, 1), at(8, 30))]
    finally:
        engine.dispose()
