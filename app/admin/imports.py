"""Account imports: upload a target-account (ICP) list, watch it import, read what it refused."""

import codecs
import csv
import io
import logging

from flask import (
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from redis.exceptions import RedisError
from sqlalchemy.orm import defer
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms.validators import StopValidation

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.lookups import paginate, scoped_or_404
from app.extensions import harpoon
from core.jobs import Job
from crm.imports import (
    COLUMN_NAMES,
    EXTENSIONS,
    MAX_FILE_BYTES,
    TEMPLATE_HEADERS,
    ImportFileError,
    check_file,
    error_count,
    imports_with_uploader,
)
from crm.users import workspace_user
from models import AccountImport, ImportStatus, utcnow

log = logging.getLogger(__name__)
IMPORT_JOB = Job.IMPORT_ACCOUNTS
IMPORT_JOB_TIMEOUT = 1800
PAGE_SIZE = 20
MAX_UPLOAD_BYTES = MAX_FILE_BYTES
# The rest of the multipart body around the file: boundaries, part headers, the CSRF token.
FORM_OVERHEAD_BYTES = 64 * 1024
FILENAME_LENGTH = AccountImport.__table__.c.filename.type.length
ACTIVE = frozenset({ImportStatus.QUEUED, ImportStatus.RUNNING})
STATUS_LABELS = {
    ImportStatus.QUEUED: _l("Queued"),
    ImportStatus.RUNNING: _l("Importing"),
    ImportStatus.DONE: _l("Done"),
    ImportStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    ImportStatus.RUNNING: "warn",
    ImportStatus.DONE: "ok",
    ImportStatus.FAILED: "error",
}
# crm.imports.ImportFileError codes, worded for the reader.
FILE_ERRORS = {
    "empty": _l("The file is empty."),
    "no_name_column": _l(
        "No company name column: the first line must name the columns, "
        "one of them “name”, “公司名称” or “企业名称”."
    ),
    "not_xlsx": _l("The file is not a readable XLSX workbook."),
    "old_xls": _l("Old .xls workbooks cannot be read: save the file as .xlsx or CSV."),
    "file_type": _l("Only CSV and XLSX files can be imported."),
    "encoding": _l("The file is neither UTF-8 nor GBK/GB18030 text."),
}
# What each column holds, in the order of the template.
COLUMN_HELP = {
    "name": (
        _l("Company name"),
        _l("Required. One account per company: 上海华信科技有限公司 and 上海华信科技 are one."),
    ),
    "domain": (_l("Domain"), _l("The company's email domain or website, e.g. huaxin.com.")),
    "industry": (_l("Industry"), _l("The account's contacts get this industry tag.")),
    "region": (_l("Region"), _l("E.g. 华东 or Shanghai.")),
    "employees": (_l("Employees"), _l("A whole number, e.g. 1,200.")),
    "annual_revenue": (
        _l("Annual revenue"),
        _l("A number; 万 and 亿 are understood, e.g. 1.5亿."),
    ),
    "acv": (_l("Expected ACV"), _l("A number; 万 and 亿 are understood, e.g. 30万.")),
    "owner": (
        _l("Account owner"),
        _l("The email of a user of this workspace: the account's sales."),
    ),
}


def too_large_message() -> str:
    return _("The file is larger than %(size)s MB.", size=MAX_UPLOAD_BYTES // (1024 * 1024))


class ImportForm(FlaskForm):
    file = FileField(
        _l("CSV or XLSX file"),
        validators=[
            FileRequired(_l("Choose a CSV or XLSX file.")),
            FileAllowed(EXTENSIONS, _l("Only CSV and XLSX files can be imported.")),
        ],
    )
    content = b""

    def validate_file(self, field):
        content = field.data.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            raise StopValidation(too_large_message())
        try:
            check_file(field.data.filename, content)
        except ImportFileError as exc:
            raise StopValidation(FILE_ERRORS.get(exc.code, str(exc))) from None
        self.content = content


@bp.url_value_preprocessor
def _limit_upload_size(endpoint, _values):
    # Runs before the CSRF hook reads the form: a body past the limit is refused unread.
    if endpoint == "admin.imports" and request.method == "POST":
        request.max_content_length = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _upload_too_large(error):
    # Raised before the view (by the CSRF hook), so the permission is checked here too.
    if request.endpoint != "admin.imports" or not can("accounts.import"):
        return error
    form = ImportForm(formdata=None)
    form.file.errors = [too_large_message()]
    return _imports_page(form), 413


@bp.route("/accounts/import", methods=["GET", "POST"])
@requires("accounts.import")
def imports():
    form = ImportForm()
    if form.validate_on_submit():
        filename = form.file.data.filename.replace("\\", "/").rsplit("/", 1)[-1]
        account_import = AccountImport(
            workspace_id=workspace_id(),
            user_id=current_user.id,
            filename=filename[:FILENAME_LENGTH],
            content=form.content,
        )
        db().add(account_import)
        db().flush()
        audit(
            db(),
            "accounts.import",
            "account_import",
            account_import.id,
            {"filename": account_import.filename, "bytes": len(form.content)},
        )
        db().commit()
        _enqueue(account_import)
        return redirect(url_for("admin.imports"))
    return _imports_page(form)


def _enqueue(account_import: AccountImport) -> None:
    try:
        harpoon().queue.enqueue(
            IMPORT_JOB,
            account_import.id,
            job_id=f"import-accounts-{account_import.id}",
            timeout=IMPORT_JOB_TIMEOUT,
        )
    except RedisError as exc:  # nothing would ever pick the row up: say so on it
        log.warning("account import %s could not be queued: %s", account_import.id, exc)
        account_import.status = ImportStatus.FAILED
        account_import.finished_at = utcnow()
        account_import.errors = [
            {"line": None, "reason": "The job queue was unreachable; upload the file again."}
        ]
        db().commit()
        flash(_("The import could not be started: the job queue is unreachable."), "error")
        return
    flash(
        _("%(file)s is uploaded; its import has started.", file=account_import.filename),
        "success",
    )


def _imports_page(form: ImportForm):
    listed = paginate(
        imports_with_uploader(workspace_id()),
        PAGE_SIZE,
    )
    return _render(
        "admin/imports.html",
        form=form,
        rows=listed.rows,
        page=listed.page,
        pages=listed.pages,
        max_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        column_help=[(COLUMN_HELP[name], names) for name, names in COLUMN_NAMES.items()],
    )


@bp.get("/accounts/import/<int:import_id>/row")
@requires("accounts.import")
def imports_row(import_id: int):
    """One import's row, which htmx asks for every second while the import runs."""
    account_import, uploader = _import_and_uploader(import_id)
    return _render("admin/imports_row.html", job=account_import, uploader=uploader)


@bp.get("/accounts/import/<int:import_id>")
@requires("accounts.import")
def imports_detail(import_id: int):
    account_import, uploader = _import_and_uploader(import_id)
    return _render(
        "admin/import.html",
        job=account_import,
        uploader=uploader,
    )


@bp.get("/accounts/import/<int:import_id>/errors.csv")
@requires("accounts.import")
def imports_errors_csv(import_id: int):
    account_import, _uploader = _import_and_uploader(import_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Line"), _("Reason")])
    for error in account_import.errors:
        writer.writerow([error["line"] or "", error["reason"]])
    return _csv_download(out.getvalue(), f"import-{account_import.id}-errors.csv")


@bp.get("/accounts/import/template.csv")
@requires("accounts.import")
def imports_template():
    """An empty list with the accepted headers, in the reader's language."""
    headers = TEMPLATE_HEADERS["zh" if str(get_locale()).startswith("zh") else "en"]
    return _csv_download(",".join(headers) + "\r\n", "accounts-template.csv")


def _csv_download(text: str, filename: str) -> Response:
    return Response(
        # With a BOM, Excel reads it as UTF-8 rather than as GBK.
        codecs.BOM_UTF8 + text.encode(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _import_and_uploader(import_id: int) -> tuple[AccountImport, str | None]:
    """The workspace's import (its stored file unread: the row is polled every second) and
    who uploaded it."""
    account_import = scoped_or_404(AccountImport, import_id, options=[defer(AccountImport.content)])
    uploader = workspace_user(db(), account_import.workspace_id, account_import.user_id)
    return account_import, uploader.name if uploader else None


def _render(template: str, **context) -> str:
    return render_template(
        template,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        active=ACTIVE,
        error_count=error_count,
        **context,
    )
