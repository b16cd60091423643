"""Every stage an account reached is kept on it (accounts.stages_reached) by the one writer
of stage moves: a person's move and a batch's moves."""

from datetime import UTC, datetime

from crm.channels import workspace_named
from models import Account, Contact
from scoring.stages import reached, record_stage_moves, set_stage, stages_of

NOW = datetime(2026, 9, 1, tzinfo=UTC)


def account(db, workspace_id, name, stage=None):
    row = Account(workspace_id=workspace_id, name=name, normalized_name=name, stage=stage)
    db.add(row)
    db.flush()
    return row


def test_a_persons_moves_forward_and_back_are_all_kept(db, workspace_id):
    company = account(db, workspace_id, "华信", stage="target")
    assert set_stage(db, company, "opportunity", "报价已发出")
    assert set_stage(db, company, "aware", "预算冻结")  # backwards: opportunity stays reached
    assert not set_stage(db, company, "aware", "again")
    db.commit()
    assert db.get(Account, company.id).stages_reached == ",opportunity,aware,"
    person = Contact(workspace_id=workspace_id, name="李雷")
    db.add(person)
    db.flush()
    assert set_stage(db, person, "engaged", "lead score")  # a contact has no such column


def test_a_batchs_moves_one_update_per_stage_each_stage_once(db, workspace_id):
    first, second = account(db, workspace_id, "一号"), account(db, workspace_id, "二号")
    theirs = account(db, workspace_named(db, "other").id, "别家")
    moves = [
        ("account", first.id, None, "aware", "first interaction"),
        ("account", second.id, None, "aware", "first interaction"),
        ("account", first.id, "aware", "engaged", "account score"),
        ("account", theirs.id, None, "aware", "not acme's"),  # another workspace's id
    ]
    record_stage_moves(db, workspace_id, Account, moves, NOW, set_columns=False)
    record_stage_moves(db, workspace_id, Account, moves[:1], NOW, set_columns=False)  # again
    db.commit()
    db.expire_all()
    assert db.get(Account, first.id).stages_reached == ",aware,engaged,"
    assert db.get(Account, second.id).stages_reached == ",aware,"
    assert db.get(Account, theirs.id).stages_reached is None


def test_stage_keys_are_matched_exactly_not_as_patterns(db, workspace_id):
    company = account(db, workspace_id, "华信")
    record_stage_moves(db, workspace_id, Account, [("account", company.id, None, "abc", "r")], NOW)
    # Unescaped, "a_c" and "a%" would match ",abc," and never be added.
    record_stage_moves(db, workspace_id, Account, [("account", company.id, None, "a_c", "r")], NOW)
    record_stage_moves(db, workspace_id, Account, [("account", company.id, None, "a%", "r")], NOW)
    db.commit()
    db.expire_all()
    assert stages_of(db.get(Account, company.id).stages_reached) == {"a_c", "abc", "a%"}
    assert reached(",a_c,", "abc") == ",a_c,abc," and reached(",a_c,", "a_c") == ",a_c,"
