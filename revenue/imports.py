"""Opportunities from a CSV or XLSX file: each line read as the schema's item, resolved in
the workspace and saved like the CRM API's, with its result kept per line.

A line with an external id updates the opportunity of that id (a file imported twice
changes nothing); a line without one creates a new opportunity. A bad line is rejected with
its field messages and the rest is imported; only a file that cannot be read fails."""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, defer

from core.days import usable
from core.text import N_
from crm.imports import Columns, ImportFileError, parse_number, read_sheet
from models import (
    ImportStatus,
    Opportunity,
    OpportunityImport,
    OpportunitySource,
    OpportunityType,
    PipelineStage,
    User,
    Workspace,
    utcnow,
)
from revenue.opportunities import OpportunitySchema, resolve, save_opportunity
from revenue.pipeline import stage_by_key

CHUNK_SIZE = 200
# The report keeps this many lines' results (the counts cover every line).
MAX_RESULTS_KEPT = 5000
HEADER_LINE = 1

# Field -> the headers that name it (compared without case, spaces, _ or -).
COLUMN_NAMES = {
    "external_id": ("external_id", "external id", "crm id", "opportunity id", "外部编号",
                    "商机编号", "CRM编号"),
    "name": ("name", "opportunity", "opportunity name", "商机名称", "商机", "名称"),
    "account": ("account", "account name", "company", "客户", "客户名称", "公司名称"),
    "account_domain": ("account_domain", "account domain", "domain", "客户域名", "域名"),
    "amount": ("amount", "金额", "商机金额"),
    "type": ("type", "类型", "商机类型"),
    "stage": ("stage", "阶段", "销售阶段"),
    "probability": ("probability", "赢率", "概率"),
    "opened_at": ("opened_at", "opened at", "opened", "created", "创建日期", "创建时间"),
    "closed_at": ("closed_at", "closed at", "closed", "关闭日期", "结单日期"),
    "lost_reason": ("lost_reason", "lost reason", "输单原因"),
    "owner_email": ("owner_email", "owner email", "owner", "负责人邮箱", "负责人"),
    "contact_email": ("contact_email", "contact email", "联系人邮箱"),
}  # fmt: skip
COLUMNS = Columns(COLUMN_NAMES, required="name")
TEMPLATE_HEADERS = {
    "en": tuple(COLUMN_NAMES),
    "zh": ("外部编号", "商机名称", "客户名称", "客户域名", "金额", "类型", "阶段", "赢率",
           "创建日期", "关闭日期", "输单原因", "负责人邮箱", "联系人邮箱"),
}  # fmt: skip
TYPE_WORDS = {
    OpportunityType.NEW: ("new", "新签", "新购", "新客户", "新业务"),
    OpportunityType.RENEWAL: ("renewal", "续约", "续费", "续签"),
    OpportunityType.EXPANSION: ("expansion", "增购", "扩展", "增购扩展", "交叉销售"),
}

# What a line's field messages say; the admin translates them.
NOT_AMOUNT = N_("Not an amount, e.g. 120000, 12万 or ¥120,000.00.")
NOT_DATE = N_("Not a date, e.g. 2026-03-01.")
UNUSABLE_DATE = N_("A date between 2000 and 2100.")
NOT_TYPE = N_("Not a type: new, renewal or expansion (新签, 续约, 增购).")
NOT_PROBABILITY = N_("A whole number from 0 to 100, e.g. 30 or 30%.")
NOT_STAGE = N_("Not a stage of the pipeline: its key or its name.")
NOT_EMAIL = N_("Not an email address.")
TOO_LONG = N_("Too long.")
OUT_OF_RANGE = N_("Out of range.")
SAME_EXTERNAL_ID = N_("The same external id as an earlier line: only the first is imported.")
# crm.imports.ImportFileError codes.
FILE_MESSAGES = {
    "empty": N_("The file is empty."),
    "no_name_column": N_(
        "No opportunity name column: the first line must name the columns, "
        "one of them “name” or “商机名称”."
    ),
    "not_xlsx": N_("The file is not a readable XLSX workbook."),
    "old_xls": N_("Old .xls workbooks cannot be read: save the file as .xlsx or CSV."),
    "file_type": N_("Only CSV and XLSX files can be imported."),
    "encoding": N_("The file is neither UTF-8 nor GBK/GB18030 text."),
    "too_many_rows": N_("The file has too many rows: split it."),
    "csv": N_("The CSV file cannot be read."),
}
INTERNAL = N_(
    "The import stopped on an internal error. Continue it: it goes on where it stopped, "
    "and the lines imported before are not imported twice."
)
# marshmallow's own messages, worded as the rest.
SCHEMA_MESSAGES = {
    "Not a valid email address.": NOT_EMAIL,
    "Not a valid decimal.": NOT_AMOUNT,
    "Not a valid integer.": NOT_PROBABILITY,
    "Not a valid datetime.": NOT_DATE,
}
_DATE = re.compile(
    r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)


@dataclass
class LineResult:
    line: int | None
    status: str  # created / updated / unchanged / rejected
    ref: str = ""  # the external id
    name: str = ""
    opportunity_id: int | None = None
    errors: dict | None = None
    warnings: dict | None = None

    def document(self) -> dict:
        return {
            "line": self.line,
            "status": self.status,
            "ref": self.ref,
            "name": self.name,
            "opportunity_id": self.opportunity_id,
            "errors": self.errors or {},
            "warnings": self.warnings or {},
        }


def imports_with_uploader(workspace_id: int) -> Select:
    """(import, its uploader's name), newest first, the stored files unread."""
    return (
        select(OpportunityImport, User.name)
        .outerjoin(User, User.id == OpportunityImport.user_id)
        .options(defer(OpportunityImport.content))
        .where(OpportunityImport.workspace_id == workspace_id)
        .order_by(OpportunityImport.created_at.desc(), OpportunityImport.id.desc())
    )


# ---- one line ------------------------------------------------------------------------------


def item_of_row(
    row: dict[str, str], stages: list[PipelineStage], zone: ZoneInfo
) -> tuple[dict, dict[str, list[str]]]:
    """A line's cells -> the schema's item (as a CRM would send it) and the cells that are
    not what their column holds."""
    item: dict = {}
    errors: dict[str, list[str]] = {}
    for name in ("name", "lost_reason", "owner_email", "contact_email"):
        if row.get(name):
            item[name] = " ".join(row[name].split())
    if row.get("account"):
        item["account_name"] = " ".join(row["account"].split())
    if row.get("account_domain"):
        item["account_domain"] = row["account_domain"].strip().lower().removeprefix("www.")
    if row.get("amount"):
        amount = parse_number(row["amount"])
        if amount is None or amount < 0 or not _cents(amount):
            errors["amount"] = [NOT_AMOUNT]
        else:
            item["amount"] = str(amount)
    if row.get("type"):
        kind = _type(row["type"])
        if kind is None:
            errors["type"] = [NOT_TYPE]
        else:
            item["type"] = kind
    if row.get("stage"):
        stage = _stage(row["stage"], stages)
        if stage is None:
            errors["stage"] = [NOT_STAGE]
        else:
            item["stage"] = stage.key
    if row.get("probability"):
        text = row["probability"].strip().rstrip("%％").strip()
        if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 100:
            errors["probability"] = [NOT_PROBABILITY]
        else:
            item["probability"] = int(text)
    for name in ("opened_at", "closed_at"):
        if row.get(name):
            moment = parse_date(row[name], zone)
            if moment is None:
                errors[name] = [NOT_DATE]
            elif not usable(moment):
                errors[name] = [UNUSABLE_DATE]
            else:
                item[name] = moment.isoformat()
    return item, errors


def _cents(amount: Decimal) -> bool:
    try:
        return amount == amount.quantize(Decimal("0.01"))
    except InvalidOperation:  # too large to have cents
        return False


def parse_date(text: str, zone: ZoneInfo) -> datetime | None:
    """2026-03-01, 2026/3/1, 2026年3月1日, with an optional time (the workspace's), or an
    Excel serial day number -> an aware datetime; None when it is none of them."""
    text = unicodedata.normalize("NFKC", text).strip()
    if (
        text.isascii() and text.isdigit() and 20000 < int(text) < 80000
    ):  # Excel's day count from 1899-12-30
        day = date(1899, 12, 30) + timedelta(days=int(text))
        return datetime.combine(day, time(), zone)
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def _type(text: str) -> str | None:
    word = unicodedata.normalize("NFKC", text).strip().lower()
    for kind, words in TYPE_WORDS.items():
        if word in words:
            return kind.value
    return None


def _stage(text: str, stages: list[PipelineStage]) -> PipelineStage | None:
    word = unicodedata.normalize("NFKC", text).strip().lower()
    for stage in stages:
        if word in (stage.key.lower(), stage.name.lower()):
            return stage
    return None


def schema_messages(messages: dict) -> dict[str, list[str]]:
    """marshmallow's messages by field, worded as the import's (msgids to translate)."""
    worded: dict[str, list[str]] = {}
    for name, found in messages.items():
        texts = found if isinstance(found, list) else [str(found)]
        worded[name] = [_worded(str(text)) for text in texts]
    return worded


def _worded(text: str) -> str:
    if text in SCHEMA_MESSAGES:
        return SCHEMA_MESSAGES[text]
    if text.startswith("Length must be"):
        return TOO_LONG
    if text.startswith("Must be greater") or text.startswith("Must be less"):
        return OUT_OF_RANGE
    return text


def import_line(
    session: Session,
    workspace_id: int,
    line: int,
    row: dict[str, str],
    stages: list[PipelineStage],
    zone: ZoneInfo,
    user_id: int | None,
) -> LineResult:
    """Read, check and save one line (in a savepoint: a failing line leaves no trace)."""
    external_id = " ".join(row.get("external_id", "").split())[:100] or None
    ref, name = external_id or "", row.get("name", "")[:200]
    item, errors = item_of_row(row, stages, zone)
    try:
        values = OpportunitySchema().load(item)
    except ValidationError as exc:
        values = exc.valid_data or {}
        for name, messages in schema_messages(exc.normalized_messages()).items():
            errors.setdefault(_column_of(name), messages)
    if errors:
        return LineResult(line, "rejected", ref, name, errors=errors)
    existing = None
    if external_id is not None:
        existing = session.scalar(
            select(Opportunity).where(
                Opportunity.workspace_id == workspace_id, Opportunity.external_id == external_id
            )
        )
    resolved = resolve(
        session, workspace_id, values, existing, {stage.key: stage for stage in stages}
    )
    if resolved.errors:
        return LineResult(
            line,
            "rejected",
            ref,
            name,
            existing.id if existing else None,
            errors={_column_of(name): messages for name, messages in resolved.errors.items()},
        )
    warnings = {_column_of(name): messages for name, messages in resolved.warnings.items()}
    with session.begin_nested():
        saved = save_opportunity(
            session,
            workspace_id,
            values,
            resolved,
            source=OpportunitySource.IMPORT,
            external_id=external_id,
            existing=existing,
            user_id=user_id,
        )
    return LineResult(line, saved.status, ref, name, saved.opportunity.id, warnings=warnings)


def _column_of(name: str) -> str:
    """The schema's field -> the file's column it came from."""
    return {"account_name": "account", "account_id": "account"}.get(name, name)


# ---- the whole file ------------------------------------------------------------------------


def run_opportunity_import(
    session: Session,
    import_id: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> OpportunityImport:
    """Import the stored file, committing after each chunk so its progress shows. An
    unexpected error marks the import failed (nobody waits on it) and propagates; run
    again, it continues after the last committed chunk."""
    job = session.get(OpportunityImport, import_id)
    if job is None:
        raise LookupError(f"no opportunity import {import_id}")
    if job.status == ImportStatus.DONE:  # the same job delivered twice
        return job
    try:
        _run(session, job, on_progress, chunk_size)
    except Exception:
        session.rollback()
        job.status = ImportStatus.FAILED
        job.results = [
            *job.results,
            LineResult(None, "rejected", errors={"": [INTERNAL]}).document(),
        ]
        job.finished_at = utcnow()
        session.commit()
        raise
    return job


def reopen_failed(session: Session, workspace_id: int, import_id: int) -> bool:
    """Queue a failed import again (its file was read: it continues where it stopped);
    False when it is not failed, or another ask won (only one run goes on)."""
    reopened = session.execute(
        update(OpportunityImport)
        .where(
            OpportunityImport.workspace_id == workspace_id,
            OpportunityImport.id == import_id,
            OpportunityImport.status == ImportStatus.FAILED,
            OpportunityImport.total_rows > 0,
        )
        .values(status=ImportStatus.QUEUED, finished_at=None)
    )
    return reopened.rowcount == 1


def _run(
    session: Session,
    job: OpportunityImport,
    on_progress: Callable[[int, int], None] | None,
    chunk_size: int,
) -> None:
    # The lines a run before committed (it failed or its worker died): done, not redone,
    # or the lines without an external id would be created twice.
    resume_at = job.processed_rows
    job.status = ImportStatus.RUNNING
    job.finished_at = None
    if resume_at:
        job.results = [result for result in job.results if result.get("line") is not None]
    else:
        job.total_rows = 0
        job.created_count = job.updated_count = job.unchanged_count = 0
        job.rejected_count = job.warning_count = 0
        job.results = []
    session.commit()
    try:
        sheet = read_sheet(job.filename, job.content, COLUMNS)
    except ImportFileError as exc:
        job.status = ImportStatus.FAILED
        job.results = [
            LineResult(
                HEADER_LINE, "rejected", errors={"": [FILE_MESSAGES.get(exc.code, str(exc))]}
            ).document()
        ]
        job.finished_at = utcnow()
        session.commit()
        return
    job.total_rows = len(sheet.rows)
    session.commit()
    workspace_id = job.workspace_id
    zone = ZoneInfo(
        session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
        or "Asia/Shanghai"
    )
    stages = list(stage_by_key(session, workspace_id).values())
    first_line_of: dict[str, int] = {}
    for line, row in sheet.rows[:resume_at]:
        external_id = " ".join(row.get("external_id", "").split())
        if external_id:
            first_line_of.setdefault(external_id, line)
    results: list[dict] = list(job.results)
    for start in range(resume_at, len(sheet.rows), chunk_size):
        chunk = sheet.rows[start : start + chunk_size]
        for line, row in chunk:
            external_id = " ".join(row.get("external_id", "").split())
            if external_id and external_id in first_line_of:
                result = LineResult(
                    line,
                    "rejected",
                    external_id,
                    row.get("name", "")[:200],
                    errors={"external_id": [SAME_EXTERNAL_ID]},
                )
            else:
                if external_id:
                    first_line_of[external_id] = line
                result = import_line(session, workspace_id, line, row, stages, zone, job.user_id)
            _count(job, result)
            if len(results) < MAX_RESULTS_KEPT:
                results.append(result.document())
        job.processed_rows += len(chunk)
        job.results = list(results)
        session.commit()
        if on_progress:
            on_progress(job.processed_rows, job.total_rows)
    job.status = ImportStatus.DONE
    job.finished_at = utcnow()
    session.commit()


def _count(job: OpportunityImport, result: LineResult) -> None:
    counter = f"{result.status}_count"
    setattr(job, counter, getattr(job, counter) + 1)
    if result.warnings:
        job.warning_count += 1
