"""Target-account (ICP) lists from CSV or XLSX: read, validate each row, upsert in chunks.

A bad row is reported with its spreadsheet line and the rest is imported; only
a file that cannot be read at all (type, encoding, no company-name column)
fails the whole import. The job, the CLI and the admin page share `run_import`.
"""

import codecs
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from xml.etree.ElementTree import ParseError

import openpyxl
from marshmallow import Schema, ValidationError, fields, validate
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, defer

from core.jobs import Followups, Job
from crm.accounts import tag_account_industry
from crm.companies import normalize_company
from crm.tags import TagBook
from models import Account, AccountImport, ImportStatus, User, utcnow
from models.base import dialect_insert

AccountsHook = Callable[[Session, int, list[int]], None]
MAX_FILE_BYTES = 20 * 1024 * 1024
# A small XLSX can unzip to millions of rows; every row is held while the import runs.
MAX_ROWS = 200_000
CHUNK_SIZE = 500
# A broken 100k-row file must not make a huge row: the first errors say what is wrong.
MAX_ERRORS_KEPT = 1000
EXTENSIONS = ("csv", "xlsx")
HEADER_LINE = 1

# Field -> the column headers that name it, compared by `_header_key`.
COLUMN_NAMES = {
    "name": ("name", "company", "company name", "account", "account name", "公司", "公司名称",
             "企业名称", "客户名称"),
    "domain": ("domain", "website", "web site", "url", "域名", "网站", "官网"),
    "industry": ("industry", "行业"),
    "region": ("region", "地区", "区域"),
    "employees": ("employees", "employee count", "headcount", "员工数", "人数", "员工人数"),
    "annual_revenue": ("revenue", "annual revenue", "营收", "年营收"),
    "acv": ("acv", "expected acv", "预计合同额"),
    "owner": ("owner", "owner email", "负责人", "销售"),
}  # fmt: skip
# The headers of the downloadable template, per language.
TEMPLATE_HEADERS = {
    "en": ("name", "domain", "industry", "region", "employees", "revenue", "acv", "owner"),
    "zh": ("公司名称", "域名", "行业", "地区", "员工数", "年营收", "预计合同额", "负责人"),
}
ACCOUNT_FIELDS = ("name", "domain", "industry", "region", "employees", "annual_revenue", "acv")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls
_CSV_DELIMITERS = (",", "\t", ";")


def _header_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower().rstrip("*")
    return re.sub(r"[\s_\-]+", " ", text).strip()


class ImportFileError(ValueError):
    """The file itself cannot be imported; the message says why, for the person who sent it.

    `code` names the reason, so the admin page can word it in the reader's language.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Sheet:
    """The rows of a file as {field: text}, keyed by spreadsheet line (the header is line 1)."""

    labels: dict[str, str]  # field -> the header the file names it by
    rows: list[tuple[int, dict[str, str]]]


@dataclass(frozen=True)
class Columns:
    """The fields a kind of file holds, each named by any of its headers, and the one
    field a file must have a column for."""

    names: dict[str, tuple[str, ...]]
    required: str = "name"

    def field_of_header(self) -> dict[str, str]:
        return {_header_key(name): f for f, names in self.names.items() for name in names}


ACCOUNT_COLUMNS = Columns(COLUMN_NAMES)


def check_file(filename: str, content: bytes, columns: Columns = ACCOUNT_COLUMNS) -> dict[str, str]:
    """Read only the header: the fields found, by the header naming each. For an upload form."""
    raw_rows = _raw_rows(filename, content)
    try:
        _columns, labels = _map_header(next(raw_rows, None), columns)
    finally:
        raw_rows.close()
    return labels


def read_sheet(filename: str, content: bytes, columns_of: Columns = ACCOUNT_COLUMNS) -> Sheet:
    raw_rows = _raw_rows(filename, content)
    try:
        columns, labels = _map_header(next(raw_rows, None), columns_of)
        rows = []
        for line, values in enumerate(raw_rows, start=HEADER_LINE + 1):
            row = {
                name: text
                for index, name in columns.items()
                if index < len(values) and (text := _cell_text(values[index]))
            }
            if row:  # blank lines keep their number but are no rows
                rows.append((line, row))
            if len(rows) > MAX_ROWS:
                raise ImportFileError(
                    "too_many_rows", f"The file has more than {MAX_ROWS} rows: split it."
                )
    except csv.Error as exc:
        raise ImportFileError("csv", f"The CSV file cannot be read: {exc}.") from None
    finally:
        raw_rows.close()
    return Sheet(labels, rows)


def _raw_rows(filename: str, content: bytes) -> Generator[list, None, None]:
    extension = PurePath(filename).suffix.lower().lstrip(".")
    if content.startswith(_XLSX_MAGIC):
        return _xlsx_rows(content)
    if content.startswith(_OLE_MAGIC):
        raise ImportFileError(
            "old_xls", "Old .xls workbooks cannot be read: save the file as .xlsx or CSV."
        )
    if extension == "xlsx":
        raise ImportFileError("not_xlsx", "The file is not a readable XLSX workbook.")
    if extension not in ("csv", "txt", ""):
        raise ImportFileError("file_type", "Only CSV and XLSX files can be imported.")
    return _csv_rows(content)


def _csv_rows(content: bytes) -> Generator[list, None, None]:
    text = _decode(content)
    first_line = text.split("\n", 1)[0]
    delimiter = max(_CSV_DELIMITERS, key=first_line.count)
    yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _decode(content: bytes) -> str:
    """UTF-8 with or without BOM; else GB18030, which Chinese Excel writes (a superset of GBK)."""
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text"
        return content.decode("utf-16")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise ImportFileError(
            "encoding", "The file is neither UTF-8 nor GBK/GB18030 text."
        ) from None


def _xlsx_rows(content: bytes) -> Generator[tuple, None, None]:
    try:
        with _quiet_openpyxl():
            workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise ImportFileError("not_xlsx", "The file is not a readable XLSX workbook.") from None
    try:
        if not workbook.worksheets:
            return
        with _quiet_openpyxl():
            yield from workbook.worksheets[0].iter_rows(values_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, ParseError):
        raise ImportFileError(
            "not_xlsx", "The XLSX workbook is damaged and cannot be read."
        ) from None
    finally:
        workbook.close()


@contextmanager
def _quiet_openpyxl():
    # openpyxl warns about styles and extensions other tools wrote; values are all we read.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl\.")
        yield


def _map_header(header, columns_of: Columns) -> tuple[dict[int, str], dict[str, str]]:
    """Column index -> field, and field -> its header; the first column naming a field wins."""
    if header is None:
        raise ImportFileError("empty", "The file is empty.")
    field_of_header = columns_of.field_of_header()
    columns: dict[int, str] = {}
    labels: dict[str, str] = {}
    for index, cell in enumerate(header):
        label = _cell_text(cell)
        name = field_of_header.get(_header_key(label))
        if name and name not in labels:  # unknown columns are skipped
            columns[index] = name
            labels[name] = label
    if columns_of.required not in labels:
        raise ImportFileError(
            "no_name_column",
            "No company name column: the first line must name the columns, "
            "one of them “name”, “公司名称” or “企业名称”.",
        )
    return columns, labels


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores 1200 as 1200.0
    elif isinstance(value, datetime | date):
        value = value.isoformat()
    return str(value).strip()


# -- one row ---------------------------------------------------------------------------------

_UNITS = {"千": 1000, "万": 10_000, "百万": 1_000_000, "千万": 10_000_000, "亿": 100_000_000}
_NUMBER = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,2})?)"
    r"(?P<unit>百万|千万|千|万|亿)?(?:元|人|rmb|cny)?"
)
# Beyond any company's figures; keeps a typo from becoming an absurd (or huge) number.
LARGEST = Decimal("1e18")
_NUMBER_NOISE = re.compile(r"[\s,¥$]|^(?:rmb|cny)")


def parse_number(text: str) -> Decimal | None:
    """1,200 / 1200.0 / 1.5亿 / 3000万元 / ¥80,000 -> the number; None when it is not one."""
    text = _NUMBER_NOISE.sub("", unicodedata.normalize("NFKC", text).lower())
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    return Decimal(match["number"]) * _UNITS.get(match["unit"], 1)


class Amount(fields.Field):
    """A sum of money, with the thousands separators and 万/亿 units of Chinese lists."""

    default_error_messages = {"invalid": "Not a valid number."}

    def _deserialize(self, value, attr, data, **kwargs) -> float:
        number = parse_number(value) if isinstance(value, str) else None
        if number is None or abs(number) > LARGEST:
            raise self.make_error("invalid")
        return float(number)


class Count(fields.Field):
    """A whole number written as a spreadsheet writes it: 1,200 or 1200.0 or 1.2万."""

    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        number = parse_number(value) if isinstance(value, str) else None
        if number is None or abs(number) > LARGEST or number != number.to_integral_value():
            raise self.make_error("invalid")
        return int(number)


class Text(fields.String):
    """A string with its runs of spaces and line breaks made one space."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return " ".join(super()._deserialize(value, attr, data, **kwargs).split())


_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")


class Domain(fields.String):
    """A company's domain, also when given as its website URL or an address at it."""

    default_error_messages = {"invalid": "Not a valid domain."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
        text = re.split(r"[/?#]", text, maxsplit=1)[0].rsplit("@", 1)[-1].split(":")[0]
        text = text.removeprefix("www.").rstrip(".")
        try:
            ascii_name = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise self.make_error("invalid") from None
        if not _DOMAIN.fullmatch(ascii_name):
            raise self.make_error("invalid")
        return text


def _length(column: str) -> validate.Length:
    return validate.Length(max=Account.__table__.c[column].type.length)


class AccountRowSchema(Schema):
    """One row of a target-account list; shape only (owners are looked up by the importer)."""

    name = Text(required=True, validate=[validate.Length(min=1), _length("name")])
    domain = Domain(validate=_length("domain"))
    industry = Text(validate=_length("industry"))
    region = Text(validate=_length("region"))
    employees = Count(validate=validate.Range(min=0, max=10_000_000))
    annual_revenue = Amount(validate=validate.Range(min=0))
    acv = Amount(validate=validate.Range(min=0))
    owner = fields.Email()


ROW_SCHEMA = AccountRowSchema()
FIELD_ORDER = tuple(COLUMN_NAMES)


@dataclass
class AccountRow:
    line: int
    key: str  # crm.companies.normalize_company(name)
    values: dict  # the Account columns the file gives, and only those


def imports_with_uploader(workspace_id: int) -> Select:
    """(import, its uploader's name) of the workspace, newest first, the stored files
    unread: a statement, so a page can count and slice it."""
    return (
        select(AccountImport, User.name)
        .outerjoin(User, User.id == AccountImport.user_id)
        .options(defer(AccountImport.content))
        .where(AccountImport.workspace_id == workspace_id)
        .order_by(AccountImport.created_at.desc(), AccountImport.id.desc())
    )


def workspace_users(session: Session, workspace_id: int) -> dict[str, int]:
    """User id by lower-cased email: who may own an account."""
    return {
        email.lower(): user_id
        for user_id, email in session.execute(
            select(User.id, User.email).where(User.workspace_id == workspace_id)
        )
    }


def _parse_row(
    line: int, row: dict[str, str], users: dict[str, int], default_owner_id: int | None
) -> AccountRow | dict[str, list[str]]:
    """The row ready to store, or its errors by field."""
    try:
        data, errors = ROW_SCHEMA.load(row), {}
    except ValidationError as exc:
        data, errors = exc.valid_data, exc.normalized_messages()
    if "owner" in data and data["owner"].lower() not in users:
        errors["owner"] = ["no user with this email"]
    if errors:
        return errors
    values = {name: data[name] for name in ACCOUNT_FIELDS if name in data}
    if "owner" in data:
        values["owner_id"] = users[data["owner"].lower()]
    elif default_owner_id is not None:
        values["owner_id"] = default_owner_id
    key = normalize_company(values["name"])
    if not key:
        return {"name": ["Not a company name."]}
    return AccountRow(line, key, values)


def _reason(messages: dict[str, list[str]], labels: dict[str, str]) -> str:
    return "; ".join(
        f"{labels.get(name, name)}: {' '.join(messages[name])}"
        for name in sorted(messages, key=FIELD_ORDER.index)
    )


# -- storing a chunk -------------------------------------------------------------------------


def upsert_accounts(
    session: Session,
    book: TagBook,
    workspace_id: int,
    rows: list[AccountRow],
    followups: Followups | None = None,
    refresh_accounts: AccountsHook | None = None,
) -> tuple[int, int]:
    """Put the rows on the target-account list: insert new companies, update known ones.

    Returns (created, updated). Fields a row leaves empty keep their value;
    the contacts of an account whose industry changed get the new industry tag.
    """
    by_key = {row.key: row for row in rows}
    existing = _accounts_by_key(session, workspace_id, list(by_key))
    new_rows = [row for key, row in by_key.items() if key not in existing]
    created = _insert(session, workspace_id, new_rows)
    raced = [row.key for row in new_rows if row.key not in created]
    if raced:  # created meanwhile, e.g. by a contact's company in the drain
        existing |= _accounts_by_key(session, workspace_id, raced)
    retagged = []
    for key, account in existing.items():
        before = account.industry
        account.is_target = True
        for name, value in by_key[key].values.items():
            setattr(account, name, value)
        if account.industry and account.industry != before:
            retagged.append(account)
    session.flush()
    for account in retagged:
        tag_account_industry(session, book, account, followups)
    # Fit, tier and the first stage at once, not at the next interaction.
    if refresh_accounts is not None:
        ids = session.scalars(
            select(Account.id).where(
                Account.workspace_id == workspace_id, Account.normalized_name.in_(list(by_key))
            )
        ).all()
        refresh_accounts(session, workspace_id, list(ids))
    return len(created), len(existing)


def _accounts_by_key(session: Session, workspace_id: int, keys: list[str]) -> dict[str, Account]:
    if not keys:
        return {}
    return {
        account.normalized_name: account
        for account in session.scalars(
            select(Account).where(
                Account.workspace_id == workspace_id, Account.normalized_name.in_(keys)
            )
        )
    }


def _insert(session: Session, workspace_id: int, rows: list[AccountRow]) -> set[str]:
    """One INSERT for the chunk's new companies; returns the keys it created."""
    if not rows:
        return set()
    statement = (
        dialect_insert(session.get_bind().dialect.name, Account.__table__)
        .on_conflict_do_nothing(index_elements=["workspace_id", "normalized_name"])
        .returning(Account.normalized_name)
    )
    empty = dict.fromkeys((*ACCOUNT_FIELDS, "owner_id"))
    values = [
        {
            **empty,
            **row.values,
            "workspace_id": workspace_id,
            "normalized_name": row.key,
            "is_target": True,
        }
        for row in rows
    ]
    return set(session.scalars(statement, values))


# -- the whole import ------------------------------------------------------------------------


@dataclass
class ImportResult:
    status: str
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    error_count: int = 0
    errors: list[dict] = field(default_factory=list)  # the first MAX_ERRORS_KEPT
    followup_jobs: set[tuple[Job, int]] = field(default_factory=set)


def error_count(account_import: AccountImport) -> int:
    """Rows that failed, also those past the errors kept; 1 for a file that could not be read."""
    skipped = (
        account_import.processed_rows - account_import.created_count - account_import.updated_count
    )
    return max(len(account_import.errors or ()), skipped)


def run_import(
    session: Session,
    import_id: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    default_owner_id: int | None = None,
    refresh_accounts: AccountsHook,
    chunk_size: int = CHUNK_SIZE,
) -> ImportResult:
    """Import the stored file, committing after each chunk so its progress shows.

    `on_progress(processed_rows, total_rows)` is called after each chunk;
    `refresh_accounts(session, workspace_id, account_ids)` judges each chunk's accounts (fit,
    tier, first stage) in its transaction, so they show at once, not at the next interaction. An
    unexpected error marks the import failed (so nobody waits on it) and propagates.
    """
    account_import = session.get(AccountImport, import_id)
    if account_import is None:
        raise LookupError(f"no account import {import_id}")
    if account_import.status == ImportStatus.DONE:  # the same job delivered twice
        return _result(account_import, set())
    try:
        return _run(
            session, account_import, on_progress, default_owner_id, chunk_size, refresh_accounts
        )
    except Exception:
        session.rollback()
        processed = account_import.processed_rows
        _finish(
            account_import,
            ImportStatus.FAILED,
            [
                *account_import.errors,
                {
                    "line": None,
                    "reason": f"The import stopped on an internal error after {processed} rows; "
                    "import the file again to finish it.",
                },
            ],
        )
        session.commit()
        raise


def _run(
    session: Session,
    account_import: AccountImport,
    on_progress: Callable[[int, int], None] | None,
    default_owner_id: int | None,
    chunk_size: int,
    refresh_accounts: AccountsHook,
) -> ImportResult:
    account_import.status = ImportStatus.RUNNING
    account_import.total_rows = account_import.processed_rows = 0
    account_import.created_count = account_import.updated_count = 0
    account_import.errors = []
    session.commit()
    try:
        sheet = read_sheet(account_import.filename, account_import.content)
    except ImportFileError as exc:
        _finish(account_import, ImportStatus.FAILED, [{"line": HEADER_LINE, "reason": str(exc)}])
        session.commit()
        return _result(account_import, set())
    account_import.total_rows = len(sheet.rows)
    session.commit()
    if on_progress:
        on_progress(0, account_import.total_rows)

    workspace_id = account_import.workspace_id
    users = workspace_users(session, workspace_id)
    book = TagBook(session, workspace_id)
    followups = Followups()
    first_line_of: dict[str, int] = {}
    errors: list[dict] = []
    for start in range(0, len(sheet.rows), chunk_size):
        chunk = sheet.rows[start : start + chunk_size]
        valid = []
        errors_before = len(errors)
        for line, row in chunk:
            parsed = _parse_row(line, row, users, default_owner_id)
            if isinstance(parsed, AccountRow) and parsed.key in first_line_of:
                parsed = {"name": [f"same company as line {first_line_of[parsed.key]}"]}
            if isinstance(parsed, AccountRow):
                first_line_of[parsed.key] = line
                valid.append(parsed)
            elif len(errors) < MAX_ERRORS_KEPT:
                errors.append({"line": line, "reason": _reason(parsed, sheet.labels)})
        created, updated = upsert_accounts(
            session, book, workspace_id, valid, followups, refresh_accounts
        )
        account_import.processed_rows += len(chunk)
        account_import.created_count += created
        account_import.updated_count += updated
        if len(errors) > errors_before:
            account_import.errors = list(errors)
        session.commit()
        if on_progress:
            on_progress(account_import.processed_rows, account_import.total_rows)
    _finish(account_import, ImportStatus.DONE, account_import.errors)
    session.commit()
    return _result(account_import, followups.jobs)


def _finish(account_import: AccountImport, status: str, errors: list[dict]) -> None:
    account_import.status = status
    account_import.errors = errors
    account_import.finished_at = utcnow()


def _result(account_import: AccountImport, followup_jobs: set[tuple[Job, int]]) -> ImportResult:
    return ImportResult(
        status=account_import.status,
        total_rows=account_import.total_rows,
        created=account_import.created_count,
        updated=account_import.updated_count,
        error_count=error_count(account_import),
        errors=list(account_import.errors),
        followup_jobs=followup_jobs,
    )
