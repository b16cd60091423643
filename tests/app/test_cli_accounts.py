"""`flask accounts import`: a list imported in-process, its refused rows printed."""

from models import Account, AccountImport
from tests.factories import make_user, workspace_id
from tests.helpers import all_of


def write(tmp_path, name, text, encoding="utf-8-sig"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_import_prints_counts_and_each_refused_line(app, runner, tmp_path):
    make_user(app, "sales")
    path = write(
        tmp_path,
        "icp.csv",
        "公司名称,员工数,负责人\n"
        "上海华信科技有限公司,1200,sales@acme.example\n"
        "深圳云帆,很多,\n"
        "北京数智,10,nobody@acme.example\n",
    )
    result = runner.invoke(args=["accounts", "import", path, "--workspace", "acme"])
    assert result.exit_code == 0, result.output
    assert "1 created, 0 updated, 2 rows refused" in result.output
    assert "line 3: 员工数: Not a valid integer." in result.output
    assert "line 4: 负责人: no user with this email" in result.output
    [account] = all_of(app, Account)
    assert account.name == "上海华信科技有限公司" and account.is_target
    [account_import] = all_of(app, AccountImport)
    assert (account_import.filename, account_import.status) == ("icp.csv", "done")
    assert account_import.user_id is None

    again = runner.invoke(args=["accounts", "import", path, "--workspace", "acme"])
    assert "0 created, 1 updated, 2 rows refused" in again.output


def test_default_owner(app, runner, tmp_path):
    sales = make_user(app, "sales")
    path = write(tmp_path, "icp.csv", "name\nAcme Robotics\n")
    args = ["accounts", "import", path, "--workspace", "acme", "--owner-default"]
    unknown = runner.invoke(args=[*args, "nobody@acme.example"])
    assert unknown.exit_code == 2 and "no user with this email" in unknown.output
    assert all_of(app, AccountImport) == []
    result = runner.invoke(args=[*args, "SALES@acme.example"])
    assert result.exit_code == 0, result.output
    assert all_of(app, Account)[0].owner_id == sales


def test_a_file_that_cannot_be_read_exits_non_zero(app, runner, tmp_path):
    workspace_id(app)
    path = write(tmp_path, "icp.csv", "industry\nRetail\n")
    result = runner.invoke(args=["accounts", "import", path, "--workspace", "acme"])
    assert result.exit_code == 1
    assert "line 1: No company name column" in result.output
    assert "the file was not imported" in result.output
    assert all_of(app, AccountImport)[0].status == "failed"


def test_an_unknown_workspace_is_refused(app, runner, tmp_path):
    path = write(tmp_path, "icp.csv", "name\nA\n")
    result = runner.invoke(args=["accounts", "import", path, "--workspace", "nope"])
    assert result.exit_code == 2 and "no workspace named nope" in result.output
    assert all_of(app, AccountImport) == []
