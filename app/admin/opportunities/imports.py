"""Opportunity imports: upload a CRM's export (CSV or XLSX), watch it import, read what
happened to each line."""

import logging
import secrets

from flask import flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from redis.exceptions import RedisError
from sqlalchemy.orm import defer
from wtforms.validators import StopValidation

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.imports import (
    ACTIVE,
    FORM_OVERHEAD_BYTES,
    MAX_UPLOAD_BYTES,
    STATUS_BADGES,
    STATUS_LABELS,
    _csv_download,
    too_large_message,
)
from app.admin.lookups import paginate, paginate_list, scoped_or_404
from app.admin.opportunities import presenters
from app.extensions import harpoon
from core.jobs import Job
from core.text import N_
from crm.imports import EXTENSIONS, ImportFileError, check_file
from crm.users import workspace_user
from models import ImportStatus, OpportunityImport, utcnow
from revenue.imports import (
    COLUMN_NAMES,
    COLUMNS,
    FILE_MESSAGES,
    TEMPLATE_HEADERS,
    LineResult,
    imports_with_uploader,
    reopen_failed,
)

log = logging.getLogger(__name__)
IMPORT_JOB_TIMEOUT = 1800
PAGE_SIZE = 20
LINES_PER_PAGE = 100
FILENAME_LENGTH = OpportunityImport.__table__.c.filename.type.length
RESULT_FILTERS = ("rejected", "warnings", "created", "updated", "unchanged")
QUEUE_UNREACHABLE = N_("The job queue was unreachable; upload the file again.")
COLUMN_HELP = {
    "external_id": _l("The CRM's id: a line with a known id updates that opportunity."),
    "name": _l("Required for a new opportunity."),
    "account": _l("An account of the workspace, by its name (or give its domain)."),
    "account_domain": _l("The account's domain, e.g. huaxin.com."),
    "amount": _l("Yuan; 120000, 12万 and ¥120,000.00 are understood."),
    "type": _l("new, renewal or expansion (新签, 续约, 增购); default new."),
    "stage": _l("A stage of the pipeline, by its key or its name."),
    "probability": _l("0 to 100; default the stage's."),
    "opened_at": _l("A date, e.g. 2026-03-01; default today."),
    "closed_at": _l("When it was won or lost."),
    "lost_reason": _l("Why it was lost."),
    "owner_email": _l("A user's email; an unknown one is a warning, saved without owner."),
    "contact_email": _l("The email of a contact the deal is with."),
}


class OpportunityImportForm(FlaskForm):
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
            check_file(field.data.filename, content, COLUMNS)
        except ImportFileError as exc:
            raise StopValidation(_(FILE_MESSAGES.get(exc.code, str(exc)))) from None
        self.content = content


@bp.url_value_preprocessor
def _limit_opportunity_upload(endpoint, _values):
    if endpoint == "admin.opportunities_import" and request.method == "POST":
        request.max_content_length = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


@bp.route("/opportunities/import", methods=["GET", "POST"])
@requires("opportunities.import")
def opportunities_import():
    form = OpportunityImportForm()
    if form.validate_on_submit():
        filename = form.file.data.filename.replace("\\", "/").rsplit("/", 1)[-1]
        job = OpportunityImport(
            workspace_id=workspace_id(),
            user_id=current_user.id,
            filename=filename[:FILENAME_LENGTH],
            content=form.content,
        )
        db().add(job)
        db().flush()
        audit(
            db(),
            "opportunities.import",
            "opportunity_import",
            job.id,
            {"filename": job.filename, "bytes": len(form.content)},
        )
        db().commit()
        _enqueue(job)
        return redirect(url_for("admin.opportunities_import"))
    listed = paginate(imports_with_uploader(workspace_id()), PAGE_SIZE)
    return render_template(
        "admin/opportunity_imports.html",
        form=form,
        rows=listed.rows,
        page=listed.page,
        pages=listed.pages,
        max_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        column_help=[
            (presenters.COLUMN_LABELS[name], COLUMN_HELP[name], names)
            for name, names in COLUMN_NAMES.items()
        ],
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        active=ACTIVE,
    )


@bp.post("/opportunities/import/<int:import_id>/continue")
@requires("opportunities.import")
def opportunities_import_continue(import_id: int):
    job = scoped_or_404(OpportunityImport, import_id, options=[defer(OpportunityImport.content)])
    if not reopen_failed(db(), job.workspace_id, job.id):
        flash(_("Only a failed import whose file was read can be continued."), "error")
    else:
        audit(db(), "opportunities.import_continue", "opportunity_import", job.id, {})
        db().commit()
        # Its own job id: the failed job's stays in the queue's failed registry a day.
        job_id = f"import-opportunities-{job.id}-from-{job.processed_rows}-{secrets.token_hex(4)}"
        started = _("The import of %(file)s continues where it stopped.", file=job.filename)
        _enqueue(job, job_id=job_id, started=started)
    return redirect(url_for("admin.opportunities_import_detail", import_id=job.id))


def _enqueue(job: OpportunityImport, *, job_id: str | None = None, started: str | None = None):
    try:
        harpoon().queue.enqueue(
            Job.IMPORT_OPPORTUNITIES,
            job.id,
            job_id=job_id or f"import-opportunities-{job.id}",
            timeout=IMPORT_JOB_TIMEOUT,
        )
    except RedisError as exc:  # nothing would ever pick the row up: say so on it
        log.warning("opportunity import %s could not be queued: %s", job.id, exc)
        job.status = ImportStatus.FAILED
        job.finished_at = utcnow()
        job.results = [LineResult(None, "rejected", errors={"": [QUEUE_UNREACHABLE]}).document()]
        db().commit()
        flash(_("The import could not be started: the job queue is unreachable."), "error")
        return
    flash(
        started or _("%(file)s is uploaded; its import has started.", file=job.filename), "success"
    )


@bp.get("/opportunities/import/<int:import_id>")
@requires("opportunities.import")
def opportunities_import_detail(import_id: int):
    job = scoped_or_404(OpportunityImport, import_id, options=[defer(OpportunityImport.content)])
    uploader = workspace_user(db(), job.workspace_id, job.user_id)
    shown = request.args.get("show", "")
    lines = job.results or []
    if shown == "warnings":
        lines = [line for line in lines if line.get("warnings")]
    elif shown in RESULT_FILTERS:
        lines = [line for line in lines if line.get("status") == shown]
    else:
        shown = ""
    listed = paginate_list(lines, LINES_PER_PAGE)
    return render_template(
        "admin/opportunity_import.html",
        job=job,
        uploader=uploader.name if uploader else None,
        lines=[
            (
                line,
                presenters.messages_of(line.get("errors")),
                presenters.messages_of(line.get("warnings")),
            )
            for line in listed.rows
        ],
        shown=shown,
        page=listed.page,
        pages=listed.pages,
        kept=len(job.results or []),
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        result_labels=presenters.RESULT_LABELS,
        result_badges=presenters.RESULT_BADGES,
        active=ACTIVE,
        may_continue=job.status == ImportStatus.FAILED and job.total_rows > 0,
    )


@bp.get("/opportunities/import/template.csv")
@requires("opportunities.import")
def opportunities_import_template():
    """An empty file with the accepted headers, in the reader's language."""
    headers = TEMPLATE_HEADERS["zh" if str(get_locale()).startswith("zh") else "en"]
    return _csv_download(",".join(headers) + "\r\n", "opportunities-template.csv")
