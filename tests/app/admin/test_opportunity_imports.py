"""Opportunity import pages: the upload, the job on the queue, the report of each line in
Chinese, the template, a file refused at upload, roles."""

import io

from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from models import OpportunityImport
from tests.app.admin.helpers import csrf_token
from tests.factories import make_account
from tests.helpers import all_of, harpoon_of, run_jobs

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
