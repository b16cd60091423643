"""Account import page: upload, the job, progress polling, error lines, roles and workspaces."""

import html
import io
import re

import pytest
from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.admin import imports as imports_page
from crm.channels import workspace_named
from models import Account, AccountImport, AuditLog
from tests.app.admin.helpers import csrf_token, in_english
from tests.helpers import all_of, harpoon_of, run_jobs

PAGE = "/admin/accounts/import"
LIST = (
    "\ufeff公司名称,员工数,行业\n"
    "上海华信科技有限公司,1200,制造业\n"
    "深圳云帆,很多,软件\n"
    "北京数智科技,350,\n"
    "上海华信科技,10,\n"
).encode()


def upload(client, filename, content, path=PAGE):
    token = csrf_token(client.get("/admin/").text)
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart(
        {"file": FileStorage(io.BytesIO(content), filename), "csrf_token": token}
    )
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def field_errors(page: str) -> list[str]:
    """The errors shown under the file field."""
    [block] = re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S)
    return [html.unescape(e) for e in re.findall(r'<small class="error"[^>]*>(.*?)<', block)]


def row_of(page: str, import_id: int) -> str:
    match = re.search(rf'<tr id="import-{import_id}".*?</tr>', page, re.S)
    assert match, f"import {import_id} is not listed"
    return match.group(0)


def count(row: str, name: str) -> str:
    return re.search(rf'data-count="{name}">(?:<a [^>]*>)?(\d+)', row).group(1)


def test_upload_imports_in_the_job_and_the_page_shows_counts_and_error_lines(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = upload(client, "目标客户.csv", LIST)
    assert response.status_code == 302 and response.location.endswith(PAGE)
    [account_import] = all_of(app, AccountImport)
    assert (account_import.status, account_import.filename) == ("queued", "目标客户.csv")

    queued = client.get(PAGE).text
    assert "目标客户.csv is uploaded; its import has started." in queued
    row = row_of(queued, account_import.id)
    assert 'data-status="queued"' in row and 'hx-trigger="every 1s"' in row
    assert f'hx-get="{PAGE}/{account_import.id}/row"' in row
    assert "Marketer User" in row

    assert run_jobs(app)
    done = row_of(client.get(f"{PAGE}/{account_import.id}/row").text, account_import.id)
    assert 'data-status="done"' in done and "hx-trigger" not in done  # polling stops
    assert 'data-percent="100"' in done and "4 of 4 rows" in done
    assert (count(done, "created"), count(done, "updated"), count(done, "errors")) == (
        "2",
        "0",
        "2",
    )
    assert {a.name for a in all_of(app, Account)} == {"上海华信科技有限公司", "北京数智科技"}

    detail = client.get(f"{PAGE}/{account_import.id}").text
    assert re.search(r'<td class="num">3</td><td>员工数: Not a valid integer.</td>', detail)
    assert re.search(r'<td class="num">5</td><td>公司名称: same company as line 2</td>', detail)
    download = client.get(f"{PAGE}/{account_import.id}/errors.csv")
    assert (
        download.mimetype == "text/csv" and "attachment" in download.headers["Content-Disposition"]
    )
    assert download.data.decode("utf-8-sig").splitlines() == [
        "Line,Reason",
        "3,员工数: Not a valid integer.",
        "5,公司名称: same company as line 2",
    ]

    [entry] = [a for a in all_of(app, AuditLog) if a.action == "accounts.import"]
    assert entry.target_id == str(account_import.id)
    assert entry.changes["filename"] == "目标客户.csv" and entry.changes["bytes"] == len(LIST)


def test_the_default_locale_renders_too(app, signed_in):
    client = signed_in("owner")
    upload(client, "list.csv", LIST)
    run_jobs(app)
    [account_import] = all_of(app, AccountImport)
    assert client.get(PAGE).status_code == 200
    assert client.get(f"{PAGE}/{account_import.id}").status_code == 200


@pytest.mark.parametrize(
    ("filename", "content", "error"),
    [
        ("notes.pdf", b"%PDF-1.4", "Only CSV and XLSX files can be imported."),
        ("list.xlsx", b"name\nAcme\n", "The file is not a readable XLSX workbook."),
        ("list.csv", b"industry,region\nRetail,East\n", "No company name column"),
        ("list.csv", b"", "The file is empty."),
    ],
)
def test_a_file_that_cannot_be_imported_gets_a_field_error(
    app, signed_in, filename, content, error
):
    page = upload(in_english(signed_in("admin")), filename, content)
    assert page.status_code == 200
    [shown] = field_errors(page.text)
    assert shown.startswith(error)
    assert all_of(app, AccountImport) == []


def test_no_file_chosen(signed_in):
    client = in_english(signed_in("marketer"))
    token = csrf_token(client.get(PAGE).text)
    page = client.post(PAGE, data={"csrf_token": token}, content_type="multipart/form-data")
    assert field_errors(page.text) == ["Choose a CSV or XLSX file."]


def test_a_file_over_the_size_limit_is_refused(app, signed_in, monkeypatch):
    monkeypatch.setattr(imports_page, "MAX_UPLOAD_BYTES", 2 * 1024 * 1024)
    client = in_english(signed_in("marketer"))
    over = b"name\n" + b"Acme\n" * (2 * 1024 * 1024 // 5)
    page = upload(client, "big.csv", over)
    assert page.status_code == 200
    assert field_errors(page.text) == ["The file is larger than 2 MB."]
    # Far over: refused before the body is read, with the same message on the page.
    page = upload(client, "huge.csv", over * 2)
    assert page.status_code == 413
    assert field_errors(page.text) == ["The file is larger than 2 MB."]
    assert all_of(app, AccountImport) == []


def test_an_unreachable_queue_marks_the_import_failed(app, signed_in, monkeypatch):
    def unreachable(*args, **kwargs):
        raise RedisError("connection refused")

    monkeypatch.setattr(harpoon_of(app).queue, "enqueue", unreachable)
    client = in_english(signed_in("marketer"))
    upload(client, "list.csv", LIST)
    [account_import] = all_of(app, AccountImport)
    assert account_import.status == "failed"
    page = client.get(PAGE).text
    assert "the job queue is unreachable" in page
    assert "hx-trigger" not in row_of(page, account_import.id)


def test_template_csv_has_the_accepted_headers(signed_in):
    client = signed_in("marketer")
    chinese = client.get(f"{PAGE}/template.csv")
    assert chinese.data.startswith(b"\xef\xbb\xbf")
    assert chinese.data.decode("utf-8-sig").startswith("公司名称,域名,行业,地区,员工数")
    english = in_english(client).get(f"{PAGE}/template.csv").data.decode("utf-8-sig")
    assert english.strip() == "name,domain,industry,region,employees,revenue,acv,owner"


def other_workspace_import(app) -> int:
    with harpoon_of(app).db.session() as session:
        account_import = AccountImport(
            workspace_id=workspace_named(session, "rival").id,
            filename="theirs.csv",
            content=b"name\nSecret Co\n",
            errors=[{"line": 2, "reason": "name: secret"}],
        )
        session.add(account_import)
        session.commit()
        return account_import.id


def test_another_workspaces_import_is_not_found(app, signed_in):
    theirs = other_workspace_import(app)
    client = signed_in("owner")
    for path in (f"{PAGE}/{theirs}", f"{PAGE}/{theirs}/row", f"{PAGE}/{theirs}/errors.csv"):
        assert client.get(path).status_code == 404
    assert "theirs.csv" not in client.get(PAGE).text


def test_a_viewer_or_sales_may_not_import(app, signed_in):
    theirs = other_workspace_import(app)
    for role in ("viewer", "sales"):
        client = signed_in(role)
        for path in (PAGE, f"{PAGE}/template.csv", f"{PAGE}/{theirs}", f"{PAGE}/{theirs}/row"):
            assert client.get(path).status_code == 403
        assert upload(client, "list.csv", LIST).status_code == 403
    assert [i.id for i in all_of(app, AccountImport)] == [theirs]
