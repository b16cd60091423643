"""Target-account list imports: reading CSV/XLSX, row errors, the upsert, tags and progress."""

import io
from decimal import Decimal

import openpyxl
import pytest
from sqlalchemy import select

from crm import imports
from crm.channels import workspace_named
from crm.imports import AccountRowSchema, ImportFileError, check_file, parse_number, run_import
from models import Account, AccountImport, Contact, ContactTag, Tag, TagGroup, TagSource
from scoring.engine import refresh_accounts
from tests.factories import make_user
from tests.helpers import all_of, harpoon_of


def stored(app, filename, content, workspace="acme") -> int:
    """An uploaded file waiting for its job; returns the import id."""
    with harpoon_of(app).db.session() as session:
        account_import = AccountImport(
            workspace_id=workspace_named(session, workspace).id,
            filename=filename,
            content=content,
        )
        session.add(account_import)
        session.commit()
        return account_import.id


def run(app, filename, content, **options):
    import_id = stored(app, filename, content)
    with harpoon_of(app).db.session() as session:
        return run_import(session, import_id, refresh_accounts=refresh_accounts, **options)


def the_import(app, import_id=None) -> AccountImport:
    rows = all_of(app, AccountImport)
    return rows[-1] if import_id is None else next(r for r in rows if r.id == import_id)


def accounts(app) -> dict[str, Account]:
    return {account.name: account for account in all_of(app, Account)}


def csv_bytes(text: str, encoding="utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(encoding)


def xlsx_bytes(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_csv_with_bom_english_headers_and_written_numbers(app):
    owner = make_user(app, "sales")
    result = run(
        app,
        "icp.csv",
        b"\xef\xbb\xbf"
        + csv_bytes(
            "Name,Domain,Industry,Region,Employees,Revenue,ACV,Owner,Notes\n"
            '"Huaxin Tech Co., Ltd.",https://www.Huaxin.com/about,Manufacturing,East,"1,200",'
            "1.5亿,30万,SALES@acme.example,met at expo\n"
            "Siemens Ltd. China,siemens.com,Industrial,,1200.0,¥80，000元,,,\n"
        ),
    )
    assert (result.status, result.created, result.updated, result.error_count) == ("done", 2, 0, 0)
    huaxin = accounts(app)["Huaxin Tech Co., Ltd."]
    assert huaxin.normalized_name == "huaxintech"
    assert huaxin.domain == "huaxin.com"
    assert (huaxin.industry, huaxin.region, huaxin.employees) == ("Manufacturing", "East", 1200)
    assert (huaxin.annual_revenue, huaxin.acv) == (150_000_000.0, 300_000.0)
    assert huaxin.owner_id == owner and huaxin.is_target is True
    siemens = accounts(app)["Siemens Ltd. China"]
    assert (siemens.employees, siemens.annual_revenue, siemens.region) == (1200, 80_000.0, None)
    done = the_import(app)
    assert (done.total_rows, done.processed_rows, done.errors) == (2, 2, [])
    assert done.finished_at is not None


def test_gbk_csv_with_chinese_headers(app):
    result = run(
        app,
        "目标客户.csv",
        csv_bytes(
            "企业名称,网站,行业,区域,人数,年营收,预计合同额\n"
            "上海华信科技有限公司,huaxin.com.cn,制造业,华东,800,3000万,50万\n",
            encoding="gbk",
        ),
    )
    assert (result.created, result.error_count) == (1, 0)
    account = accounts(app)["上海华信科技有限公司"]
    assert (account.normalized_name, account.domain) == ("上海华信科技", "huaxin.com.cn")
    assert (account.industry, account.region) == ("制造业", "华东")
    assert (account.employees, account.annual_revenue, account.acv) == (800, 3e7, 5e5)


def test_xlsx_first_sheet_values_with_chinese_headers(app):
    result = run(
        app,
        "list.xlsx",
        xlsx_bytes(
            [
                ["公司名称", "员工数", "营收", "ACV", "备注"],
                ["北京数智科技有限公司", 350, 12_000_000.0, "20万", "x"],
                [None, None, None, None, None],  # a blank line keeps its number
                ["深圳云帆", 1200.0, None, 3.5, None],
                ["坏数据", "很多", None, None, None],
            ]
        ),
    )
    assert (result.created, result.total_rows) == (2, 3)
    assert result.errors == [{"line": 5, "reason": "员工数: Not a valid integer."}]
    rows = accounts(app)
    assert (rows["北京数智科技有限公司"].employees, rows["北京数智科技有限公司"].acv) == (350, 2e5)
    assert rows["北京数智科技有限公司"].annual_revenue == 12_000_000.0
    assert (rows["深圳云帆"].employees, rows["深圳云帆"].acv) == (1200, 3.5)


def test_the_file_type_is_sniffed_from_its_content(app):
    workbook = xlsx_bytes([["name"], ["Named Like A CSV"]])
    assert run(app, "export.csv", workbook).created == 1
    # Excel's "Unicode text": UTF-16 with a BOM, tab-separated.
    unicode_text = "\ufeff公司名称\t行业\n深圳云帆\t软件\n".encode("utf-16-le")
    assert run(app, "export.txt", unicode_text).created == 1
    assert accounts(app)["深圳云帆"].industry == "软件"


def test_too_many_rows_fails_the_file(app, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    result = run(app, "icp.csv", csv_bytes("name\nA\nB\nC\nD\n"))
    assert result.status == "failed" and result.created == 0
    assert result.errors == [{"line": 1, "reason": "The file has more than 3 rows: split it."}]


def test_bad_rows_are_reported_by_line_and_the_good_ones_imported(app):
    result = run(
        app,
        "icp.csv",
        csv_bytes(
            "name,employees,revenue,domain,industry\n"
            "Good One,10,,,\n"
            "Bad Count,ten,,,\n"
            "\n"
            ",5,,,\n"
            "Negative,-3,-1万,,\n"
            "Bad Domain,,,not a domain,\n"
            f"{'X' * 201},,,,\n"
            "Half,1.5,,,\n"
            "Good Two,,,http://good.example/path?q=1,Retail\n"
        ),
    )
    assert (result.created, result.updated, result.total_rows) == (2, 0, 8)
    assert result.error_count == 6
    assert result.errors == [
        {"line": 3, "reason": "employees: Not a valid integer."},
        {"line": 5, "reason": "name: Missing data for required field."},
        {
            "line": 6,
            "reason": "employees: Must be greater than or equal to 0 and less than or equal to "
            "10000000.; revenue: Must be greater than or equal to 0.",
        },
        {"line": 7, "reason": "domain: Not a valid domain."},
        {"line": 8, "reason": "name: Longer than maximum length 200."},
        {"line": 9, "reason": "employees: Not a valid integer."},
    ]
    assert set(accounts(app)) == {"Good One", "Good Two"}
    assert accounts(app)["Good Two"].domain == "good.example"


def test_the_same_company_twice_in_a_file(app):
    result = run(
        app,
        "icp.csv",
        csv_bytes(
            "公司名称,行业\n上海华信科技有限公司,制造业\n深圳云帆,软件\n上海华信科技(中国)有限公司,零售\n"
        ),
    )
    assert result.created == 2
    assert result.errors == [{"line": 4, "reason": "公司名称: same company as line 2"}]
    assert accounts(app)["上海华信科技有限公司"].industry == "制造业"


def test_an_owner_who_is_not_a_user_of_the_workspace(app):
    make_user(app, "sales")
    make_user(app, "sales", workspace="other")
    result = run(
        app,
        "icp.csv",
        csv_bytes(
            "name,owner\n"
            "Known,sales@acme.example\n"
            "Stranger,nobody@acme.example\n"
            "Elsewhere,sales@other.example\n"
            "Typo,sales-at-acme\n"
            ",nobody@acme.example\n"
        ),
    )
    assert result.created == 1
    assert result.errors == [
        {"line": 3, "reason": "owner: no user with this email"},
        {"line": 4, "reason": "owner: no user with this email"},
        {"line": 5, "reason": "owner: Not a valid email address."},
        {
            "line": 6,
            "reason": "name: Missing data for required field.; owner: no user with this email",
        },
    ]


def test_a_default_owner_for_rows_that_name_none(app):
    sales = make_user(app, "sales")
    marketer = make_user(app, "marketer")
    run(
        app,
        "icp.csv",
        csv_bytes("name,owner\nMine,\nTheirs,marketer@acme.example\n"),
        default_owner_id=sales,
    )
    assert accounts(app)["Mine"].owner_id == sales
    assert accounts(app)["Theirs"].owner_id == marketer


def existing_account(app, **fields) -> int:
    with harpoon_of(app).db.session() as session:
        account = Account(workspace_id=workspace_named(session, "acme").id, **fields)
        session.add(account)
        session.commit()
        return account.id


def test_updating_a_known_company_keeps_what_the_file_leaves_empty(app):
    account_id = existing_account(
        app,
        name="华信",
        normalized_name="上海华信科技",
        domain="huaxin.com",
        industry="制造业",
        employees=500,
        acv=1e5,
    )
    result = run(
        app,
        "icp.csv",
        csv_bytes("公司名称,域名,行业,地区,员工数,预计合同额\n上海华信科技有限公司,,,华东,,20万\n"),
    )
    assert (result.created, result.updated) == (0, 1)
    [account] = all_of(app, Account)
    assert account.id == account_id
    assert (account.name, account.is_target, account.region) == (
        "上海华信科技有限公司",
        True,
        "华东",
    )
    assert (account.domain, account.industry, account.employees) == ("huaxin.com", "制造业", 500)
    assert account.acv == 2e5


def industry_tags(app) -> dict[int, list[tuple[str, str]]]:
    with harpoon_of(app).db.session() as session:
        rows = session.execute(
            select(ContactTag.contact_id, Tag.name, ContactTag.source)
            .join(Tag, Tag.id == ContactTag.tag_id)
            .where(Tag.group == TagGroup.INDUSTRY)
        )
        tags: dict[int, list[tuple[str, str]]] = {}
        for contact_id, name, source in rows:
            tags.setdefault(contact_id, []).append((name, source))
        return tags


def test_a_changed_industry_tags_the_existing_contacts_of_the_account(app):
    account_id = existing_account(app, name="深圳云帆", normalized_name="深圳云帆", industry="软件")
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme").id
        people = [Contact(workspace_id=ws, account_id=account_id, name=n) for n in ("李", "王")]
        stranger = Contact(workspace_id=ws, name="赵")
        session.add_all([*people, stranger])
        session.commit()
        ids = [c.id for c in people]

    run(app, "a.csv", csv_bytes("公司,行业\n深圳云帆,金融\n"))
    assert industry_tags(app) == {i: [("金融", TagSource.ACCOUNT)] for i in ids}

    # The same industry again changes nothing; a new one replaces the tag (one industry each).
    run(app, "b.csv", csv_bytes("公司,行业\n深圳云帆,金融\n"))
    run(app, "c.csv", csv_bytes("公司,行业\n深圳云帆,制造业\n"))
    assert industry_tags(app) == {i: [("制造业", TagSource.ACCOUNT)] for i in ids}


def test_progress_is_committed_after_each_chunk(app):
    rows = "".join(f"Company {n}\n" for n in range(5))
    import_id = stored(app, "icp.csv", csv_bytes("name\n" + rows + "Company 0\n"))
    seen = []

    def progress(processed, total):
        # Another session sees it: the admin page and the CLI read it as it goes.
        seen.append((processed, total, the_import(app, import_id).processed_rows))

    with harpoon_of(app).db.session() as session:
        result = run_import(
            session,
            import_id,
            on_progress=progress,
            chunk_size=2,
            refresh_accounts=refresh_accounts,
        )
    assert seen == [(0, 6, 0), (2, 6, 2), (4, 6, 4), (6, 6, 6)]
    assert (result.created, result.error_count) == (5, 1)
    done = the_import(app, import_id)
    assert (done.status, done.created_count, done.updated_count) == ("done", 5, 0)
    assert done.errors == [{"line": 7, "reason": "name: same company as line 2"}]


def test_errors_kept_are_capped_but_all_counted(app, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ERRORS_KEPT", 3)
    result = run(app, "icp.csv", csv_bytes("name,employees\n" + "X,many\n" * 5 + "Y,1\n"))
    assert (len(result.errors), result.error_count, result.created) == (3, 5, 1)
    assert imports.error_count(the_import(app)) == 5


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("icp.csv", b"", "The file is empty."),
        ("icp.csv", csv_bytes("industry,region\nRetail,East\n"), "No company name column"),
        ("icp.xlsx", b"not a zip at all", "not a readable XLSX workbook"),
        ("icp.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "Old .xls workbooks"),
        ("icp.pdf", b"%PDF-1.4", "Only CSV and XLSX files"),
        ("icp.csv", b"name\n\xff\xfe\xfa\x80", "neither UTF-8 nor GBK/GB18030"),
    ],
)
def test_a_file_that_cannot_be_read_fails_as_a_whole(app, filename, content, message):
    result = run(app, filename, content)
    assert result.status == "failed" and result.created == 0
    [error] = result.errors
    assert error["line"] == 1 and message in error["reason"]
    failed = the_import(app)
    assert failed.status == "failed" and failed.finished_at is not None
    assert imports.error_count(failed) == 1
    with pytest.raises(ImportFileError):
        check_file(filename, content)


def test_an_internal_error_marks_the_import_failed_and_propagates(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(imports, "upsert_accounts", broken)
    import_id = stored(app, "icp.csv", csv_bytes("name\nA\n"))
    with harpoon_of(app).db.session() as session, pytest.raises(RuntimeError):
        run_import(session, import_id, refresh_accounts=refresh_accounts)
    failed = the_import(app, import_id)
    assert failed.status == "failed"
    assert "internal error after 0 rows" in failed.errors[-1]["reason"]


def test_check_file_names_the_columns_it_found():
    header = csv_bytes("公司名称*, Annual Revenue ,Owner Email,whatever\n")
    assert check_file("x.csv", header) == {
        "name": "公司名称*",
        "annual_revenue": "Annual Revenue",
        "owner": "Owner Email",
    }
    assert check_file("x.csv", csv_bytes("name;industry\nA;B\n")) == {
        "name": "name",
        "industry": "industry",
    }


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1,200", Decimal(1200)),
        ("1200.0", Decimal(1200)),
        ("1.5亿", Decimal(150_000_000)),
        ("3000万", Decimal(30_000_000)),
        ("0.3万元", Decimal(3000)),
        ("￥80，000", Decimal(80000)),
        ("RMB 2百万", Decimal(2_000_000)),
        ("1e3", Decimal(1000)),
        ("-5", Decimal(-5)),
        ("abc", None),
        ("1.2.3", None),
        ("万", None),
    ],
)
def test_parse_number(text, number):
    assert parse_number(text) == number


@pytest.mark.parametrize(
    ("given", "domain"),
    [
        ("Huaxin.COM", "huaxin.com"),
        ("https://www.huaxin.com/about/", "huaxin.com"),
        ("http://shop.huaxin.com.cn:8080?x=1", "shop.huaxin.com.cn"),
        ("sales@huaxin.com", "huaxin.com"),
        ("华信.中国", "华信.中国"),
        ("localhost", None),
        ("not a domain", None),
        ("-bad-.com", None),
    ],
)
def test_domain_is_taken_from_a_website_or_an_address(given, domain):
    errors = AccountRowSchema().validate({"name": "X", "domain": given})
    if domain is None:
        assert errors == {"domain": ["Not a valid domain."]}
    else:
        assert AccountRowSchema().load({"name": "X", "domain": given})["domain"] == domain
