"""Opportunity import pages: the upload, the job on the queue, the report of each line in
Chinese, the template, a file refused at upload, roles."""

import io

import pytest
from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from models import Opportunity, OpportunityImport
from revenue import imports
from tests.app.admin.helpers import csrf_token
from tests.factories import make_account
from tests.helpers import all_of, harpoon_of, run_jobs, session_of

FILE = (
    "\ufeff外部编号,商机名称,客户名称,金额,阶段,负责人邮箱\n"
    "CRM-1,华信年度订阅,上海华信科技,12万,方案报价,\n"
    "CRM-2,华信增购,上海华信科技,很多,qualify,\n"
    "CRM-3,华信续约,上海华信科技,1000,qualify,nobody@acme.example\n"
    "CRM-4,博雅,北京博雅,1000,qualify,\n"
).encode()


def upload(client, filename, content):
    token = csrf_token(client.get("/admin/").text)
    boundary, body = encode_multipart(
        {"file": FileStorage(io.BytesIO(content), filename), "csrf_token": token}
    )
    return client.post(
        "/admin/opportunities/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def test_upload_runs_the_job_and_the_report_shows_each_line_in_chinese(app, signed_in):
    client = signed_in("marketer")
    make_account(app, "上海华信科技")
    response = upload(client, "商机.csv", FILE)
    assert response.status_code == 302
    [job] = all_of(app, OpportunityImport)
    assert job.status == "queued"
    assert run_jobs(app)
    page = client.get(f"/admin/opportunities/import/{job.id}").text
    assert 'data-result="rejected"' in page and 'data-result="created"' in page
    assert "金额：不是金额，例如 120000、12万 或 ¥120,000.00。" in page
    assert "负责人邮箱：工作区中没有使用此邮箱的用户；已保存为无负责人。" in page
    rejected = client.get(f"/admin/opportunities/import/{job.id}?show=rejected").text
    assert rejected.count('data-result="rejected"') == 2 and 'data-result="created"' not in rejected
    listing = client.get("/admin/opportunities/import").text
    assert "商机.csv" in listing
    template = client.get("/admin/opportunities/import/template.csv")
    assert template.data.decode("utf-8-sig").startswith("外部编号,商机名称,客户名称")
    refused = upload(client, "bad.csv", b"amount\n1\n")
    assert "没有商机名称列" in refused.text
    assert signed_in("sales", "acme").get("/admin/opportunities/import").status_code == 403


def test_an_unreachable_queue_marks_the_import_failed_and_says_why(app, signed_in, monkeypatch):
    def unreachable(*args, **kwargs):
        raise RedisError("connection refused")

    monkeypatch.setattr(harpoon_of(app).queue, "enqueue", unreachable)
    client = signed_in("marketer")
    upload(client, "商机.csv", FILE)
    [job] = all_of(app, OpportunityImport)
    assert job.status == "failed"
    page = client.get(f"/admin/opportunities/import/{job.id}").text
    assert "任务队列无法连接；请重新上传文件。" in page


def test_a_failed_import_is_continued_from_its_page_where_it_stopped(app, signed_in, monkeypatch):
    client = signed_in("marketer")
    make_account(app, "上海华信科技")
    lines = "".join(f",第{n}单,上海华信科技,1000,qualify,\n" for n in range(1, 7))
    upload(client, "商机.csv", FILE.splitlines(keepends=True)[0] + lines.encode())
    [job] = all_of(app, OpportunityImport)
    real_import_line = imports.import_line

    def failing_on_the_fourth(session, workspace_id, line, *args):
        if line == 5:
            raise RuntimeError("the database went away")
        return real_import_line(session, workspace_id, line, *args)

    monkeypatch.setattr(imports, "import_line", failing_on_the_fourth)
    with session_of(app) as session, pytest.raises(RuntimeError):
        imports.run_opportunity_import(session, job.id, chunk_size=2)
    monkeypatch.setattr(imports, "import_line", real_import_line)
    page = client.get(f"/admin/opportunities/import/{job.id}").text
    assert "导入因内部错误中断。请点击“继续导入”" in page and "继续导入</button>" in page
    token = csrf_token(page)
    response = client.post(
        f"/admin/opportunities/import/{job.id}/continue", data={"csrf_token": token}
    )
    assert response.status_code == 302
    again = client.post(
        f"/admin/opportunities/import/{job.id}/continue", data={"csrf_token": token}
    )
    assert "只有文件已读取、因错误中断的导入才能继续。" in client.get(again.location).text
    assert run_jobs(app)
    [done] = all_of(app, OpportunityImport)
    assert (done.status, done.created_count) == ("done", 6)
    assert sorted(o.name for o in all_of(app, Opportunity)) == [f"第{n}单" for n in range(1, 7)]
    assert "继续导入</button>" not in client.get(f"/admin/opportunities/import/{job.id}").text
