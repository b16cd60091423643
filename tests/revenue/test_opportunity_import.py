"""Opportunity imports: each line's result (created, updated, unchanged, rejected with its
field messages, warnings), idempotent by external id, Chinese or English headers, CSV or
XLSX."""

import io
from decimal import Decimal

import openpyxl
import pytest
from sqlalchemy import select

from models import Account, Opportunity, OpportunityImport
from revenue import imports
from revenue.imports import run_opportunity_import
from tests.factories import make_account, make_user, workspace_id
from tests.helpers import all_of, session_of

# The lines 2-7: two new, an unknown account, bad cells, a repeated id, one without id.
CHINESE = (
    "\ufeff外部编号,商机名称,客户名称,金额,类型,阶段,赢率,创建日期,负责人邮箱\n"
    "CRM-1,华信年度订阅,上海华信科技,12万,新签,方案报价,,2026-03-01,sales@acme.example\n"
    'CRM-2,华信增购,上海华信科技,"¥80,000.50",增购,negotiation,70,2026/3/5,nobody@acme.example\n'
    "CRM-3,不存在的客户,上海不存在公司,1000,新签,qualify,,2026-03-01,\n"
    "CRM-4,坏数据,上海华信科技,很多,别的,未知阶段,150,2026-02-30,\n"
    "CRM-1,重复编号,上海华信科技,1,新签,qualify,,,\n"
    ",没有编号,上海华信科技,5000,续约,won,,2026-01-01,\n"
).encode()


def store(app, filename, content, workspace="acme") -> int:
    with session_of(app) as session:
        job = OpportunityImport(
            workspace_id=workspace_id(app, workspace), filename=filename, content=content
        )
        session.add(job)
        session.commit()
        return job.id


def run(app, import_id) -> OpportunityImport:
    with session_of(app) as session:
        run_opportunity_import(session, import_id)
    with session_of(app) as session:
        return session.get(OpportunityImport, import_id)


def by_line(job: OpportunityImport) -> dict[int, dict]:
    return {result["line"]: result for result in job.results}


def test_each_line_gets_its_result_and_a_second_import_changes_nothing(app):
    make_user(app, "sales")
    huaxin = make_account(app, "上海华信科技")
    job = run(app, store(app, "商机.csv", CHINESE))
    assert job.status == "done"
    assert (job.total_rows, job.processed_rows) == (6, 6)
    assert (job.created_count, job.updated_count, job.unchanged_count) == (3, 0, 0)
    assert (job.rejected_count, job.warning_count) == (3, 1)
    lines = by_line(job)
    assert [lines[n]["status"] for n in range(2, 8)] == [
        "created",
        "created",
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    assert lines[3]["warnings"] == {
        "owner_email": ["No user of the workspace has this email; saved without an owner."]
    }
    assert lines[4]["errors"] == {
        "account": ["No account with this name or domain in the workspace."]
    }
    assert lines[5]["errors"] == {
        "amount": [imports.NOT_AMOUNT],
        "type": [imports.NOT_TYPE],
        "stage": [imports.NOT_STAGE],
        "probability": [imports.NOT_PROBABILITY],
        "opened_at": [imports.NOT_DATE],
    }
    assert lines[6]["errors"] == {"external_id": [imports.SAME_EXTERNAL_ID]}
    with session_of(app) as session:
        rows = {
            o.external_id or o.name: o
            for o in session.scalars(select(Opportunity).order_by(Opportunity.id))
        }
        assert set(rows) == {"CRM-1", "CRM-2", "没有编号"}
        first, second, won = rows["CRM-1"], rows["CRM-2"], rows["没有编号"]
        assert (first.amount, first.stage, first.probability) == (Decimal("120000"), "solution", 30)
        assert first.owner_id is not None and first.source == "import"
        assert first.opened_at.date().isoformat() == "2026-02-28"  # 00:00 in Shanghai
        assert (second.amount, second.type, second.probability) == (
            Decimal("80000.50"),
            "expansion",
            70,
        )
        assert second.owner_id is None
        assert (won.status, won.type) == ("won", "renewal")
        assert session.get(Account, huaxin).stage == "customer"

    again = run(app, store(app, "商机.csv", CHINESE))
    assert (again.created_count, again.updated_count, again.unchanged_count) == (1, 0, 2)
    changed = CHINESE.replace(b"12\xe4\xb8\x87", b"150000")  # 12万 -> 150000
    third = run(app, store(app, "商机.csv", changed))
    assert by_line(third)[2]["status"] == "updated"
    with session_of(app) as session:
        amount = session.scalar(
            select(Opportunity.amount).where(Opportunity.external_id == "CRM-1")
        )
        assert amount == Decimal("150000")


def test_an_xlsx_with_english_headers(app):
    make_account(app, "Beijing Boya", domain="boya.com")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["External ID", "Name", "Account domain", "Amount", "Stage", "Closed at",
                  "Lost reason"])  # fmt: skip
    sheet.append(["SF-9", "Boya pilot", "boya.com", 30000, "lost", "2026-04-02", "budget"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = run(app, store(app, "export.xlsx", buffer.getvalue()))
    assert (job.status, job.created_count, job.rejected_count) == ("done", 1, 0)
    with session_of(app) as session:
        opportunity = session.scalar(select(Opportunity))
        assert (opportunity.status, opportunity.lost_reason) == ("lost", "budget")
        assert opportunity.closed_at.date().isoformat() == "2026-04-01"  # 00:00 in Shanghai


def test_a_file_without_a_name_column_fails_whole(app):
    job = run(app, store(app, "bad.csv", b"amount,stage\n100,qualify\n"))
    assert job.status == "failed"
    assert job.results[0]["errors"] == {"": [imports.FILE_MESSAGES["no_name_column"]]}


def test_another_workspaces_account_is_not_found(app):
    make_account(app, "别家客户", workspace="globex")
    job = run(
        app, store(app, "x.csv", "商机名称,客户名称,金额,阶段\n单子,别家客户,1,qualify\n".encode())
    )
    assert job.rejected_count == 1 and all_of(app, Opportunity) == []


def test_a_failed_import_run_again_continues_where_it_stopped(app, monkeypatch):
    """Six lines without an external id, committed two at a time, an error on the fourth:
    the first two stay; run again, the import goes on from the third, and each line makes
    one opportunity."""
    make_account(app, "上海华信科技")
    header = "商机名称,客户名称,金额,类型,阶段,创建日期\n"
    lines = "".join(f"第{n}单,上海华信科技,1000,新签,qualify,2026-03-01\n" for n in range(1, 7))
    import_id = store(app, "商机.csv", (header + lines).encode())
    real_import_line = imports.import_line

    def failing_on_the_fourth(session, workspace_id, line, *args):
        if line == 5:  # the header is line 1
            raise RuntimeError("the database went away")
        return real_import_line(session, workspace_id, line, *args)

    monkeypatch.setattr(imports, "import_line", failing_on_the_fourth)
    with session_of(app) as session, pytest.raises(RuntimeError):
        run_opportunity_import(session, import_id, chunk_size=2)
    with session_of(app) as session:
        failed = session.get(OpportunityImport, import_id)
    assert (failed.status, failed.processed_rows, failed.created_count) == ("failed", 2, 2)
    assert by_line(failed)[None]["errors"] == {"": [imports.INTERNAL]}
    assert len(all_of(app, Opportunity)) == 2
    monkeypatch.setattr(imports, "import_line", real_import_line)
    with session_of(app) as session:
        run_opportunity_import(session, import_id, chunk_size=2)
    with session_of(app) as session:
        job = session.get(OpportunityImport, import_id)
    assert (job.status, job.total_rows, job.processed_rows) == ("done", 6, 6)
    assert (job.created_count, job.rejected_count) == (6, 0)
    assert [result["line"] for result in job.results] == [2, 3, 4, 5, 6, 7]
    assert sorted(o.name for o in all_of(app, Opportunity)) == sorted(
        f"第{n}单" for n in range(1, 7)
    )


def test_odd_digits_and_far_dates_are_line_errors_and_the_rest_imports(app):
    make_account(app, "上海华信科技")
    content = (
        "外部编号,商机名称,客户名称,金额,阶段,赢率,创建日期,关闭日期\n"
        "F-1,上标赢率,上海华信科技,1000,qualify,²,2026-03-01,\n"
        "F-2,太早,上海华信科技,1000,qualify,,0001-01-01,\n"
        "F-3,太晚,上海华信科技,1000,won,,2026-03-01,9999-12-31\n"
        "F-4,正常,上海华信科技,1000,qualify,30,2026-03-01,\n"
    ).encode()
    job = run(app, store(app, "商机.csv", content))
    assert job.status == "done"
    lines = by_line(job)
    assert [lines[n]["status"] for n in range(2, 6)] == [
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    assert lines[2]["errors"] == {"probability": [imports.NOT_PROBABILITY]}
    assert lines[3]["errors"] == {"opened_at": [imports.UNUSABLE_DATE]}
    assert lines[4]["errors"] == {"closed_at": [imports.UNUSABLE_DATE]}
    assert [o.external_id for o in all_of(app, Opportunity)] == ["F-4"]
